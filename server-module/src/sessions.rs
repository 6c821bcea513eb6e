//! Sessions: one row per connected client, kept by the lifecycle reducers.
//!
//! The server runs `client_disconnected` for every connection it still knows of
//! when it restarts, so the table does not accumulate stale rows. Each identity
//! sees only its own sessions: who else is online is not public.

use spacetimedb::{client_visibility_filter, Filter};
use spacetimedb::{ConnectionId, Identity, ReducerContext, Table, Timestamp};

#[spacetimedb::table(name = session, public)]
pub struct Session {
    #[primary_key]
    pub connection_id: ConnectionId,
    #[index(btree)]
    pub identity: Identity,
    pub connected_at: Timestamp,
}

#[client_visibility_filter]
const SESSIONS_OF_THEIR_IDENTITY: Filter =
    Filter::Sql("SELECT * FROM session WHERE identity = :sender");

/// Records a new connection. Runs on connect; a failure here refuses the client.
#[spacetimedb::reducer(client_connected)]
pub fn client_connected(ctx: &ReducerContext) -> Result<(), String> {
    let connection_id = ctx
        .connection_id
        .ok_or("a client connected without a connection id")?;
    // Should a connection id ever be reused, replace the old row rather than fail.
    ctx.db.session().connection_id().delete(connection_id);
    ctx.db.session().insert(Session {
        connection_id,
        identity: ctx.sender,
        connected_at: ctx.timestamp,
    });
    Ok(())
}

/// Forgets a connection. Runs on disconnect.
#[spacetimedb::reducer(client_disconnected)]
pub fn client_disconnected(ctx: &ReducerContext) {
    if let Some(connection_id) = ctx.connection_id {
        ctx.db.session().connection_id().delete(connection_id);
    }
}
