//! SpacetimeDB server module for Inner Universe.
//!
//! Holds the shared state that the Python agents and clients synchronise on:
//! agents, conversations with their messages, documents, and the sessions of
//! connected clients. All writes go through the reducers here, which validate
//! their input against the limits in [`validate`] and the per-identity
//! [`quotas`], and let only a row's owner change it.
//!
//! Visibility: every table is declared public (clients subscribe to it), and
//! row-level visibility filters (`client_visibility_filter`) decide which rows
//! each client receives, in subscriptions and in one-off queries alike. Readable
//! by all: agents (not their state), public documents, public conversations and
//! their messages, participants, stores and their members. Readable by their
//! owner only: agents' state, private documents, private conversations and
//! their messages (each message also by its author). A store's events,
//! snapshots and tracking positions: by its members. Call receipts, quota usage,
//! sessions, model calls and spend: by their own identity. The database owner (who publishes the
//! module) is not filtered. See docs/security.md.
//!
//! Every mutating reducer takes a [`calls::CallKey`] first and ignores a repeat
//! of a call that already took effect (see [`calls`]).
//!
//! - [`calls`]: `call_receipt` table; the exactly-once contract and its pruning.
//! - [`agents`]: `agent` and `agent_state` tables; register / update / set status / delete.
//! - [`conversations`]: `conversation`, `conversation_participant` and `message`
//!   tables; the owner admits participants with roles; messages can be streamed
//!   token by token with `append_message`.
//! - [`documents`]: `document` table; public or private.
//! - [`quotas`]: `quota_usage` table; rows and bytes per identity and table.
//! - [`events`]: the TemporalStore's event, snapshot and tracking tables for
//!   `eventsourcing`; a store belongs to its first opener, who admits writers.
//! - [`sessions`]: `session` table, kept by the connect/disconnect lifecycle reducers.

use spacetimedb::{Identity, ReducerContext};

pub mod agents;
pub mod calls;
pub mod chunks;
pub mod conversations;
pub mod documents;
pub mod events;
pub mod inbox;
pub mod ledger;
pub mod providers;
pub mod quotas;
pub mod sessions;
pub mod streams;
pub mod tasks;
pub mod validate;
pub mod workflows;

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
