//! Exactly-once reducer calls: every mutating reducer takes a [`CallKey`] first.
//!
//! A client that is not sure whether a call took effect (the connection dropped
//! before the answer came, the server restarted) sends the same call again with
//! the same key. [`first_call`] records the key for the caller in the reducer's
//! own transaction, so a key is recorded exactly when the call's writes commit,
//! and a repeat finds it and does nothing.
//!
//! Receipts are kept for [`RECEIPT_RETENTION`] (15 minutes): a client must
//! settle its doubtful calls within that time, or a late repeat runs again.
//! They are pruned by [`prune_call_receipts`], a scheduled reducer that runs
//! every [`PRUNE_INTERVAL`] and deletes at most [`PRUNE_BATCH`] rows per run,
//! so no transaction does unbounded work.
//!
//! A caller reads its own receipts (`SELECT * FROM call_receipt WHERE client = ...`)
//! to learn which calls took effect; the visibility filter below shows each
//! identity only its own.

use std::time::Duration;

use spacetimedb::{client_visibility_filter, Filter};
use spacetimedb::{Identity, ReducerContext, ScheduleAt, SpacetimeType, Table};

/// How long a receipt is kept: a repeat arriving later than this runs again.
pub const RECEIPT_RETENTION: Duration = Duration::from_secs(15 * 60);
/// How often old receipts are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(10);
/// The most receipts one pruning run deletes (so at most 30,000 a minute).
pub const PRUNE_BATCH: usize = 5_000;

/// Identifies one call of one client: `client` is a random id the client chose
/// (0 means "no key": the call is not deduplicated), `seq` numbers its calls.
#[derive(SpacetimeType, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallKey {
    pub client: u128,
    pub seq: u64,
}

/// A call that took effect: recorded in the same transaction as its writes.
#[spacetimedb::table(
    name = call_receipt,
    public,
    index(name = by_call, btree(columns = [caller, client, seq]))
)]
pub struct CallReceipt {
    /// Indexed on its own too: the visibility filter selects by it.
    #[index(btree)]
    pub caller: Identity,
    pub client: u128,
    pub seq: u64,
    /// When the call ran, in microseconds since the Unix epoch (indexed for pruning).
    #[index(btree)]
    pub at_micros: i64,
}

/// Each identity sees only its own receipts.
#[client_visibility_filter]
const CALL_RECEIPTS_OF_THE_CALLER: Filter =
    Filter::Sql("SELECT * FROM call_receipt WHERE caller = :sender");

/// The schedule of [`prune_call_receipts`].
#[spacetimedb::table(name = call_receipt_pruning, scheduled(prune_call_receipts))]
pub struct CallReceiptPruning {
    #[primary_key]
    #[auto_inc]
    pub scheduled_id: u64,
    pub scheduled_at: ScheduleAt,
}

/// Records `key` for the caller and returns true, or returns false if this
/// caller already made this call (the reducer must then return `Ok(())` and
/// change nothing). A key with `client == 0` is no key: always true, nothing kept.
pub fn first_call(ctx: &ReducerContext, key: &CallKey) -> Result<bool, String> {
    if key.client == 0 {
        return Ok(true);
    }
    let receipts = ctx.db.call_receipt();
    if receipts
        .by_call()
        .filter((&ctx.sender, &key.client, &key.seq))
        .next()
        .is_some()
    {
        return Ok(false);
    }
    receipts.insert(CallReceipt {
        caller: ctx.sender,
        client: key.client,
        seq: key.seq,
        at_micros: ctx.timestamp.to_micros_since_unix_epoch(),
    });
    Ok(true)
}

/// Starts the pruning schedule (called once, from the module's `init`).
pub fn schedule_pruning(ctx: &ReducerContext) {
    ctx.db.call_receipt_pruning().insert(CallReceiptPruning {
        scheduled_id: 0,
        scheduled_at: PRUNE_INTERVAL.into(),
    });
}

/// Deletes up to [`PRUNE_BATCH`] receipts older than [`RECEIPT_RETENTION`],
/// oldest first. Run by the scheduler only.
#[spacetimedb::reducer]
pub fn prune_call_receipts(
    ctx: &ReducerContext,
    _schedule: CallReceiptPruning,
) -> Result<(), String> {
    if ctx.sender != ctx.identity() {
        return Err("prune_call_receipts runs on the module's schedule only".into());
    }
    let retention = i64::try_from(RECEIPT_RETENTION.as_micros()).unwrap_or(i64::MAX);
    let cutoff = ctx
        .timestamp
        .to_micros_since_unix_epoch()
        .saturating_sub(retention);
    let receipts = ctx.db.call_receipt();
    let old: Vec<CallReceipt> = receipts
        .at_micros()
        .filter(..cutoff)
        .take(PRUNE_BATCH)
        .collect();
    for receipt in old {
        receipts.delete(receipt);
    }
    Ok(())
}
