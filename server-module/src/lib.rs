//! SpacetimeDB server module for Inner Universe.
//!
//! Holds the shared state that the Python agents and clients synchronise on:
//! agents, conversations with their messages, documents, and the sessions of
//! connected clients. All tables are public (clients subscribe to them); a
//! visibility filter shows each identity only its own `call_receipt` rows. All
//! writes go through the reducers here, which validate their input against
//! the limits in [`validate`] and let only a row's owner change it.
//!
//! Every mutating reducer takes a [`calls::CallKey`] first and ignores a repeat
//! of a call that already took effect (see [`calls`]).
//!
//! - [`calls`]: `call_receipt` table; the exactly-once contract and its pruning.
//! - [`agents`]: `agent` table; register / update / set status / delete.
//! - [`conversations`]: `conversation` and `message` tables; messages can be
//!   streamed token by token with `append_message`.
//! - [`documents`]: `document` table.
//! - [`events`]: the TemporalStore's event, snapshot and tracking tables for `eventsourcing`.
//! - [`sessions`]: `session` table, kept by the connect/disconnect lifecycle reducers.

use spacetimedb::{Identity, ReducerContext};

pub mod agents;
pub mod calls;
pub mod conversations;
pub mod documents;
pub mod events;
pub mod sessions;
pub mod validate;

/// Runs once, when the database is first published: starts the module's schedules.
#[spacetimedb::reducer(init)]
pub fn init(ctx: &ReducerContext) {
    calls::schedule_pruning(ctx);
}

/// A row that belongs to one identity: only that identity may change or delete it.
trait OwnedRow {
    /// What the row is called in error messages ("agent", "message", ...).
    const KIND: &'static str;
    /// The identity allowed to change the row (its owner or author).
    fn owner(&self) -> Identity;
}

/// Turns a failed lookup by id into "no agent with id 42".
fn found<T: OwnedRow>(row: Option<T>, id: u64) -> Result<T, String> {
    row.ok_or_else(|| format!("no {} with id {id}", T::KIND))
}

/// Like [`found`], and also requires that the caller owns the row.
fn owned_by_caller<T: OwnedRow>(
    ctx: &ReducerContext,
    row: Option<T>,
    id: u64,
) -> Result<T, String> {
    let row = found(row, id)?;
    if row.owner() != ctx.sender {
        return Err(format!("{} {id} belongs to another identity", T::KIND));
    }
    Ok(row)
}
