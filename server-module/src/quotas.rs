//! Per-identity quotas: how many rows, and how many bytes, one identity may hold per table.
//!
//! Field sizes alone (see [`crate::validate`]) do not stop an identity from
//! creating rows without end; these limits do. Usage is counted in
//! `quota_usage`, one row per (identity, table), updated in the same transaction
//! as the writes it counts, so it is exact. The identity charged is the one the
//! rows belong to: an agent's or a document's owner, a message's author, the
//! writer of an event, a task's submitter (and for its result, the worker that
//! wrote it), a workflow's submitter, an inbox message's sender, a model call's
//! caller, a provider health row's reporter. Rows that are never deleted by their own life (tasks, workflows,
//! inbox messages, model calls, provider rows) have a `forget_*` reducer that gives their
//! quota back. Each identity can read its own usage and no one else's.

use spacetimedb::{client_visibility_filter, Filter};
use spacetimedb::{Identity, ReducerContext, Table};

const MIB: u64 = 1024 * 1024;

/// The kinds of rows that count against an identity's quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    Agents,
    Conversations,
    Messages,
    Documents,
    /// Stored events and snapshots together, over all stores.
    Events,
    /// Event stores opened (owned).
    Stores,
    /// Tasks submitted (their payloads), and the results the identity's workers wrote.
    Tasks,
    /// Workflows submitted (their steps' payloads).
    Workflows,
    /// Messages sent to agents' inboxes.
    AgentMessages,
    /// Model calls in the ledger.
    ModelCalls,
    /// Provider health rows (one per provider an identity has called).
    Providers,
}

impl Quota {
    /// The name in `quota_usage.kind` and in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Quota::Agents => "agents",
            Quota::Conversations => "conversations",
            Quota::Messages => "messages",
            Quota::Documents => "documents",
            Quota::Events => "events",
            Quota::Stores => "stores",
            Quota::Tasks => "tasks",
            Quota::Workflows => "workflows",
            Quota::AgentMessages => "agent messages",
            Quota::ModelCalls => "model calls",
            Quota::Providers => "providers",
        }
    }

    /// The most rows one identity may hold.
    pub fn max_rows(self) -> u64 {
        match self {
            Quota::Agents => 10_000,
            Quota::Conversations => 10_000,
            Quota::Messages => 100_000,
            Quota::Documents => 1_000,
            Quota::Events => 1_000_000,
            Quota::Stores => 100,
            Quota::Tasks => 100_000,
            Quota::Workflows => 10_000,
            Quota::AgentMessages => 100_000,
            Quota::ModelCalls => 1_000_000,
            Quota::Providers => 1_000,
        }
    }

    /// The most bytes (of text and payloads) one identity may hold.
    pub fn max_bytes(self) -> u64 {
        match self {
            Quota::Agents => 16 * MIB,
            Quota::Conversations => 4 * MIB,
            Quota::Messages => 64 * MIB,
            Quota::Documents => 64 * MIB,
            Quota::Events => 256 * MIB,
            Quota::Stores => MIB,
            // Every worker replicates the task table: kept well under a message's 64 MiB.
            Quota::Tasks => 32 * MIB,
            Quota::Workflows => 64 * MIB,
            Quota::AgentMessages => 64 * MIB,
            Quota::ModelCalls => 64 * MIB,
            // A row counts the most its texts can hold (about 1.5 KiB): rows run out first.
            Quota::Providers => 2 * MIB,
        }
    }
}

/// How much of one quota an identity uses.
#[spacetimedb::table(
    name = quota_usage,
    public,
    index(name = by_owner_kind, btree(columns = [owner, kind]))
)]
pub struct QuotaUsage {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// Indexed on its own too: the visibility filter selects by it.
    #[index(btree)]
    pub owner: Identity,
    /// One of the [`Quota`] names.
    pub kind: String,
    pub rows: u64,
    pub bytes: u64,
}

/// Each identity sees only its own usage.
#[client_visibility_filter]
const QUOTA_USAGE_OF_THE_CALLER: Filter =
    Filter::Sql("SELECT * FROM quota_usage WHERE owner = :sender");

/// Adds `rows` and `bytes` (either may be negative) to `owner`'s usage of `quota`.
/// Fails, changing nothing, when the result would be over a limit; a decrease
/// never fails (usage does not go below zero).
pub fn charge(
    ctx: &ReducerContext,
    owner: Identity,
    quota: Quota,
    rows: i64,
    bytes: i64,
) -> Result<(), String> {
    let table = ctx.db.quota_usage();
    let current = table.by_owner_kind().filter((&owner, quota.name())).next();
    let (old_rows, old_bytes) = current.as_ref().map_or((0, 0), |u| (u.rows, u.bytes));
    let new_rows = old_rows.saturating_add_signed(rows);
    let new_bytes = old_bytes.saturating_add_signed(bytes);
    if rows > 0 && new_rows > quota.max_rows() {
        return Err(format!(
            "quota reached: {owner} holds {old_rows} {}; the limit is {}",
            quota.name(),
            quota.max_rows()
        ));
    }
    if bytes > 0 && new_bytes > quota.max_bytes() {
        return Err(format!(
            "quota reached: {owner}'s {} would take {new_bytes} bytes; the limit is {}",
            quota.name(),
            quota.max_bytes()
        ));
    }
    match current {
        Some(usage) => {
            table.id().update(QuotaUsage {
                rows: new_rows,
                bytes: new_bytes,
                ..usage
            });
        }
        None => {
            table.insert(QuotaUsage {
                id: 0,
                owner,
                kind: quota.name().to_owned(),
                rows: new_rows,
                bytes: new_bytes,
            });
        }
    }
    Ok(())
}

/// Gives back `rows` and `bytes` of `owner`'s usage of `quota` (a row deleted,
/// bytes dropped). Never fails: [`charge`] refuses only increases, and usage
/// stops at zero.
pub fn release(ctx: &ReducerContext, owner: Identity, quota: Quota, rows: i64, bytes: i64) {
    let _ = charge(ctx, owner, quota, -rows, -bytes);
}

/// A byte count as a signed delta for [`charge`].
pub fn signed(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// The change in bytes when a row of `old` bytes becomes `new` bytes.
pub fn delta(old: usize, new: usize) -> i64 {
    signed(new) - signed(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_deltas_are_signed() {
        assert_eq!(delta(10, 4), -6);
        assert_eq!(delta(4, 10), 6);
        assert_eq!(signed(usize::MAX), i64::MAX);
        assert_eq!(Quota::Agents.name(), "agents");
        assert!(Quota::Events.max_rows() > Quota::Messages.max_rows());
    }
}
