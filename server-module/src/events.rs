//! The TemporalStore: event-sourcing records for Python's `eventsourcing` library.
//!
//! Events are grouped in named *stores* (one per event-sourced application), so
//! several applications can share one database without mixing their notification
//! logs. Each store has its own notification sequence 1, 2, 3, ... with no gaps:
//! the next id is kept in [`EventLog`] and taken inside the same transaction as the
//! insert, so a failed batch rolls the counter back too (an `#[auto_inc]`
//! sequence may skip values, which `eventsourcing` followers would read as lost
//! events).
//!
//! Ownership: a store belongs to the identity that opened it first (`open_store`,
//! or its first append). Its owner keeps a list of members (`event_store_member`):
//! writers append events and snapshots and move the store's tracking positions;
//! readers only read. Only members read a store's events, snapshots and tracking
//! positions; which stores exist, who owns them and who their members are is public.
//!
//! - `event_run`: the events, as runs of consecutive events of one originator
//!   (usually one run per saved aggregate), by store, and by store, originator id
//!   and last version, with the writer of each run.
//! - `stored_event`: events written by an earlier module, one row each; still
//!   read, and still checked for conflicts, but no longer written.
//! - `stored_snapshot`: aggregate snapshots (no notification ids).
//! - `event_tracking`: per store, the last notification id processed from each
//!   upstream application; it never goes backwards, and never beyond the end of
//!   the upstream store's log (the upstream application's store, by its name).
//! - `event_log`: per store, its owner and the last notification id given out.
//! - `event_store_member`: per store, who may read and who may write.
//!
//! Events are immutable: there is no reducer that changes or deletes one.
//! Errors that mean "this record already exists" (optimistic-concurrency conflicts,
//! repeated tracking positions) start with [`INTEGRITY`], which the Python side
//! turns into `eventsourcing.persistence.IntegrityError`.

use spacetimedb::{client_visibility_filter, Filter};
use spacetimedb::{Identity, ReducerContext, SpacetimeType, Table, Timestamp};

use crate::calls::{self, CallKey};
use crate::quotas::{self, Quota};
use crate::validate::{self, MAX_PAYLOAD_BYTES};

/// Prefix of every error that reports a conflict with an existing record.
pub const INTEGRITY: &str = "integrity error: ";
/// Store names: short labels of ASCII letters, digits and `_ - . :`.
pub const MAX_STORE_BYTES: usize = 64;
/// Originator ids (UUID strings, or other short ids).
pub const MAX_ORIGINATOR_ID_BYTES: usize = 128;
/// Event topics (`module:Class` paths).
pub const MAX_TOPIC_BYTES: usize = 1024;
/// Events (or snapshots) in one batch.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// All event states of one batch together.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Members of one store, its owner included.
pub const MAX_STORE_MEMBERS: usize = 256;

/// One domain event, as earlier modules recorded them (now written as [`EventRun`]s).
/// Kept so a database written by an earlier module upgrades in place: its
/// events stay readable, and new appends are checked against them.
#[spacetimedb::table(
    name = stored_event,
    public,
    index(name = by_stream, btree(columns = [store, originator_id, originator_version]))
)]
pub struct StoredEvent {
    /// Indexed on its own too, though the composite indexes start with it: the
    /// visibility filter joins on it, and SpacetimeDB 1.2 rejects a subscription
    /// whose join column has no single-column index.
    #[index(btree)]
    pub store: String,
    /// 1, 2, 3, ... within the store, in commit order, without gaps.
    pub notification_id: u64,
    pub originator_id: String,
    pub originator_version: u64,
    pub topic: String,
    /// The mapper's bytes (transcoded, maybe compressed and encrypted); opaque here.
    pub state: Vec<u8>,
    /// The identity that appended the event.
    pub writer: Identity,
}

/// A run of recorded events: consecutive events of one batch from one originator,
/// with consecutive versions `first_version..=last_version` and consecutive
/// notification ids from `first_notification_id`. `append_runs` stores each run a
/// client sends (the client groups a batch, a save usually being one run), and
/// `append_events` groups its events the same way: one row per run, not per event,
/// since the server's cost of a transaction grows with its rows, not its bytes.
///
/// An originator's runs hold disjoint sets of versions, and each run's versions
/// are a range, so its runs are disjoint ranges: ordered by `last_version`, the
/// first run ending at or after a version is the only one that can hold it.
/// Events written by an earlier module, one row each, stay in `stored_event`.
#[spacetimedb::table(
    name = event_run,
    public,
    index(name = by_stream_end, btree(columns = [store, originator_id, last_version]))
)]
pub struct EventRun {
    /// Indexed on its own for the visibility filter's join (see [`StoredEvent`]).
    #[index(btree)]
    pub store: String,
    /// The notification id of the run's first event; the next ones follow.
    pub first_notification_id: u64,
    pub originator_id: String,
    pub first_version: u64,
    pub last_version: u64,
    /// The events' topics and states, in version order: `topics[i]` and
    /// `states[i]` are version `first_version + i`. Two flat arrays rather than
    /// an array of structs: a client decodes them into strings and bytes only,
    /// with no object per event around them.
    pub topics: Vec<String>,
    /// The mapper's bytes of each event (transcoded, maybe compressed and encrypted).
    pub states: Vec<Vec<u8>>,
    /// The identity that appended the events.
    pub writer: Identity,
}

/// One aggregate snapshot; like an event, but outside the notification log.
#[spacetimedb::table(
    name = stored_snapshot,
    public,
    index(name = by_stream, btree(columns = [store, originator_id, originator_version]))
)]
pub struct StoredSnapshot {
    #[index(btree)]
    pub store: String,
    pub originator_id: String,
    pub originator_version: u64,
    pub topic: String,
    pub state: Vec<u8>,
    /// The identity that appended the snapshot.
    pub writer: Identity,
}

/// How far a store's application has processed another application's log.
#[spacetimedb::table(
    name = event_tracking,
    public,
    index(name = by_upstream, btree(columns = [store, application_name]))
)]
pub struct EventTracking {
    #[index(btree)]
    pub store: String,
    pub application_name: String,
    /// The highest notification id processed; only ever increases.
    pub notification_id: u64,
}

/// The owner and notification counter of one store.
#[spacetimedb::table(name = event_log, public)]
pub struct EventLog {
    #[primary_key]
    pub store: String,
    /// The last notification id given out (0 before the first event).
    pub last_notification_id: u64,
    /// The identity that opened the store first; it manages the members.
    #[index(btree)]
    pub owner: Identity,
    pub created_at: Timestamp,
}

/// An identity admitted to a store: a writer, or a reader.
#[spacetimedb::table(
    name = event_store_member,
    public,
    index(name = by_member, btree(columns = [store, identity]))
)]
pub struct StoreMember {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub store: String,
    pub identity: Identity,
    /// May append events and snapshots and record tracking positions.
    pub writer: bool,
}

#[client_visibility_filter]
const EVENTS_OF_THEIR_STORES_MEMBERS: Filter = Filter::Sql(
    "SELECT stored_event.* FROM stored_event JOIN event_store_member \
     ON stored_event.store = event_store_member.store \
     WHERE event_store_member.identity = :sender",
);

#[client_visibility_filter]
const EVENT_RUNS_OF_THEIR_STORES_MEMBERS: Filter = Filter::Sql(
    "SELECT event_run.* FROM event_run JOIN event_store_member \
     ON event_run.store = event_store_member.store \
     WHERE event_store_member.identity = :sender",
);

#[client_visibility_filter]
const SNAPSHOTS_OF_THEIR_STORES_MEMBERS: Filter = Filter::Sql(
    "SELECT stored_snapshot.* FROM stored_snapshot JOIN event_store_member \
     ON stored_snapshot.store = event_store_member.store \
     WHERE event_store_member.identity = :sender",
);

#[client_visibility_filter]
const TRACKING_OF_THEIR_STORES_MEMBERS: Filter = Filter::Sql(
    "SELECT event_tracking.* FROM event_tracking JOIN event_store_member \
     ON event_tracking.store = event_store_member.store \
     WHERE event_store_member.identity = :sender",
);

/// An event (or snapshot) to record, as sent by a client.
#[derive(SpacetimeType)]
pub struct NewEvent {
    pub originator_id: String,
    pub originator_version: u64,
    pub topic: String,
    pub state: Vec<u8>,
}

/// Consecutive events of one originator, as a client sends them to [`append_runs`]:
/// `topics[i]` and `states[i]` are version `first_version + i`. The originator id
/// comes once per run rather than once per event, so a save of one aggregate's
/// events is one id, two flat arrays and no per-event struct to decode.
#[derive(SpacetimeType)]
pub struct NewRun {
    pub originator_id: String,
    pub first_version: u64,
    pub topics: Vec<String>,
    pub states: Vec<Vec<u8>>,
}

/// A tracking position to record with a batch of events.
#[derive(SpacetimeType)]
pub struct NewTracking {
    pub application_name: String,
    pub notification_id: u64,
}

fn member(ctx: &ReducerContext, store: &str, identity: Identity) -> Option<StoreMember> {
    ctx.db
        .event_store_member()
        .by_member()
        .filter((store, &identity))
        .next()
}

/// The store's log, claimed for the caller (its first opener) if it has none yet.
fn open(ctx: &ReducerContext, store: &str) -> Result<EventLog, String> {
    store_name(store)?;
    if let Some(log) = ctx.db.event_log().store().find(store.to_owned()) {
        return Ok(log);
    }
    quotas::charge(
        ctx,
        ctx.sender,
        Quota::Stores,
        1,
        quotas::signed(store.len()),
    )?;
    ctx.db.event_store_member().insert(StoreMember {
        id: 0,
        store: store.to_owned(),
        identity: ctx.sender,
        writer: true,
    });
    log::info!("store '{store}' opened by {}", ctx.sender);
    Ok(ctx.db.event_log().insert(EventLog {
        store: store.to_owned(),
        last_notification_id: 0,
        owner: ctx.sender,
        created_at: ctx.timestamp,
    }))
}

/// The store's log, if the caller may write to it (claiming a new store for the caller).
fn open_for_writing(ctx: &ReducerContext, store: &str) -> Result<EventLog, String> {
    let log = open(ctx, store)?;
    match member(ctx, store, ctx.sender) {
        Some(m) if m.writer => Ok(log),
        _ => Err(format!(
            "store '{store}' belongs to {}; you ({}) are not one of its writers",
            log.owner, ctx.sender
        )),
    }
}

/// The store's log, if the caller owns it.
fn owned_store(ctx: &ReducerContext, store: &str) -> Result<EventLog, String> {
    store_name(store)?;
    let log = ctx
        .db
        .event_log()
        .store()
        .find(store.to_owned())
        .ok_or_else(|| format!("no store named '{store}'"))?;
    if log.owner != ctx.sender {
        return Err(format!("store '{store}' belongs to another identity"));
    }
    Ok(log)
}

/// Claims a store for the caller if no one has opened it yet; otherwise does nothing.
#[spacetimedb::reducer]
pub fn open_store(ctx: &ReducerContext, call_key: CallKey, store: String) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    open(ctx, &store)?;
    Ok(())
}

/// Admits `identity` to a store as a writer or a reader (or changes which it is).
/// Owner only; the owner is always a writer.
#[spacetimedb::reducer]
pub fn set_store_member(
    ctx: &ReducerContext,
    call_key: CallKey,
    store: String,
    identity: Identity,
    writer: bool,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let log = owned_store(ctx, &store)?;
    if identity == log.owner {
        return Err("the owner of a store is always one of its writers".into());
    }
    let members = ctx.db.event_store_member();
    match member(ctx, &store, identity) {
        Some(existing) => {
            members.id().update(StoreMember { writer, ..existing });
        }
        None => {
            let count = members.store().filter(&store).count();
            if count >= MAX_STORE_MEMBERS {
                return Err(format!(
                    "store '{store}' has {count} members; the limit is {MAX_STORE_MEMBERS}"
                ));
            }
            members.insert(StoreMember {
                id: 0,
                store,
                identity,
                writer,
            });
        }
    }
    Ok(())
}

/// Removes a member from a store. Owner only; the owner stays.
#[spacetimedb::reducer]
pub fn remove_store_member(
    ctx: &ReducerContext,
    call_key: CallKey,
    store: String,
    identity: Identity,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let log = owned_store(ctx, &store)?;
    if identity == log.owner {
        return Err("the owner of a store cannot be removed from it".into());
    }
    let existing = member(ctx, &store, identity)
        .ok_or_else(|| format!("{identity} is not a member of store '{store}'"))?;
    ctx.db.event_store_member().id().delete(existing.id);
    Ok(())
}

/// Records a batch of events, and optionally a tracking position, all or nothing.
/// Writers only (the first caller on a new store becomes its owner).
///
/// Each event gets the store's next notification id, in batch order. An event
/// whose (originator id, version) is already in the store (or earlier in the batch)
/// fails the whole call with an [`INTEGRITY`] error, as does a tracking position
/// not above the one recorded for that upstream application.
#[spacetimedb::reducer]
pub fn append_events(
    ctx: &ReducerContext,
    call_key: CallKey,
    store: String,
    events: Vec<NewEvent>,
    tracking: Option<NewTracking>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    batch(&events)?;
    let log = open_for_writing(ctx, &store)?;
    if let Some(tracking) = tracking {
        record_tracking(ctx, &store, tracking)?;
    }
    if events.is_empty() {
        return Ok(());
    }
    charge(ctx, &events)?;
    let keys: Vec<(&str, u64)> = events
        .iter()
        .map(|e| (e.originator_id.as_str(), e.originator_version))
        .collect();
    check_new_events(ctx, &store, &keys)?;
    let first = log.last_notification_id + 1;
    let last = log.last_notification_id + events.len() as u64;
    for run in into_runs(&store, first, events, ctx.sender) {
        ctx.db.event_run().insert(run);
    }
    ctx.db.event_log().store().update(EventLog {
        last_notification_id: last,
        ..log
    });
    Ok(())
}

/// Records a batch of events given as runs, and optionally a tracking position, all
/// or nothing: the same as [`append_events`] with the runs' events in order (the
/// same checks, notification ids, conflicts and errors), in a more compact form.
/// Each run is stored as given, as one [`EventRun`] row.
#[spacetimedb::reducer]
pub fn append_runs(
    ctx: &ReducerContext,
    call_key: CallKey,
    store: String,
    runs: Vec<NewRun>,
    tracking: Option<NewTracking>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let (count, bytes) = run_batch(&runs)?;
    let log = open_for_writing(ctx, &store)?;
    if let Some(tracking) = tracking {
        record_tracking(ctx, &store, tracking)?;
    }
    if count == 0 {
        return Ok(());
    }
    let rows = i64::try_from(count).unwrap_or(i64::MAX);
    quotas::charge(ctx, ctx.sender, Quota::Events, rows, quotas::signed(bytes))?;
    let keys: Vec<(&str, u64)> = runs
        .iter()
        .flat_map(|run| {
            let id = run.originator_id.as_str();
            (run.first_version..)
                .take(run.states.len())
                .map(move |v| (id, v))
        })
        .collect();
    check_new_events(ctx, &store, &keys)?;
    drop(keys);
    let mut next = log.last_notification_id + 1;
    for run in runs {
        let len = run.states.len() as u64;
        ctx.db.event_run().insert(EventRun {
            store: store.clone(),
            first_notification_id: next,
            originator_id: run.originator_id,
            first_version: run.first_version,
            last_version: run.first_version + (len - 1),
            topics: run.topics,
            states: run.states,
            writer: ctx.sender,
        });
        next += len;
    }
    ctx.db.event_log().store().update(EventLog {
        last_notification_id: next - 1,
        ..log
    });
    Ok(())
}

/// Fails with an [`INTEGRITY`] error if an event's (originator id, version) is
/// repeated in `keys` or already in the store, as a run or an earlier module's row.
fn check_new_events(ctx: &ReducerContext, store: &str, keys: &[(&str, u64)]) -> Result<(), String> {
    let singles = ctx.db.stored_event().by_stream();
    let runs = ctx.db.event_run().by_stream_end();
    check_new("event", store, keys, |id, lo, hi| {
        let mut found: Vec<u64> = singles
            .filter((store, id, lo..=hi))
            .map(|e| e.originator_version)
            .collect();
        // A run holding a version in lo..=hi ends at or after lo, and (being at
        // most a batch long) before hi + MAX_BATCH_EVENTS. The originator's runs
        // are disjoint ranges, in order: after one that starts beyond hi, so do all.
        let ends = lo..=hi.saturating_add(MAX_BATCH_EVENTS as u64);
        for run in runs.filter((store, id, ends)) {
            if run.first_version > hi {
                break;
            }
            found.extend(run.first_version.max(lo)..=run.last_version.min(hi));
        }
        found
    })
}

/// A checked batch as runs, numbered from notification id `first` in batch order:
/// each event joins the run before it if that run is its originator's and ends
/// at the version just before its own, and starts a new run otherwise.
fn into_runs(store: &str, first: u64, events: Vec<NewEvent>, writer: Identity) -> Vec<EventRun> {
    let mut runs: Vec<EventRun> = Vec::new();
    for (notification_id, event) in (first..).zip(events) {
        let NewEvent {
            originator_id,
            originator_version: version,
            topic,
            state,
        } = event;
        match runs.last_mut() {
            Some(run)
                if run.originator_id == originator_id
                    && run.last_version.checked_add(1) == Some(version) =>
            {
                run.last_version = version;
                run.topics.push(topic);
                run.states.push(state);
            }
            _ => runs.push(EventRun {
                store: store.to_owned(),
                first_notification_id: notification_id,
                originator_id,
                first_version: version,
                last_version: version,
                topics: vec![topic],
                states: vec![state],
                writer,
            }),
        }
    }
    runs
}

/// Records a batch of snapshots, all or nothing; writers only. An existing
/// (originator id, version) in the store fails the call with an [`INTEGRITY`] error.
#[spacetimedb::reducer]
pub fn append_snapshots(
    ctx: &ReducerContext,
    call_key: CallKey,
    store: String,
    snapshots: Vec<NewEvent>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    batch(&snapshots)?;
    open_for_writing(ctx, &store)?;
    charge(ctx, &snapshots)?;
    let stream = ctx.db.stored_snapshot().by_stream();
    let keys: Vec<(&str, u64)> = snapshots
        .iter()
        .map(|s| (s.originator_id.as_str(), s.originator_version))
        .collect();
    check_new("snapshot", &store, &keys, |id, lo, hi| {
        stream
            .filter((store.as_str(), id, lo..=hi))
            .map(|s| s.originator_version)
            .collect()
    })?;
    for snapshot in snapshots {
        ctx.db.stored_snapshot().insert(StoredSnapshot {
            store: store.clone(),
            originator_id: snapshot.originator_id,
            originator_version: snapshot.originator_version,
            topic: snapshot.topic,
            state: snapshot.state,
            writer: ctx.sender,
        });
    }
    Ok(())
}

/// Counts a batch against the writer's event quota.
fn charge(ctx: &ReducerContext, events: &[NewEvent]) -> Result<(), String> {
    let bytes: usize = events
        .iter()
        .map(|e| e.originator_id.len() + e.topic.len() + e.state.len())
        .sum();
    let rows = i64::try_from(events.len()).unwrap_or(i64::MAX);
    quotas::charge(ctx, ctx.sender, Quota::Events, rows, quotas::signed(bytes))
}

/// Moves a store's position in an upstream log forward; never back, never in place.
fn record_tracking(ctx: &ReducerContext, store: &str, tracking: NewTracking) -> Result<(), String> {
    validate::label("tracking application name", &tracking.application_name)?;
    let upstream = &tracking.application_name;
    let Some(upstream_log) = ctx.db.event_log().store().find(upstream) else {
        return Err(format!(
            "store '{store}' cannot track '{upstream}': no store of that name in this database"
        ));
    };
    if tracking.notification_id > upstream_log.last_notification_id {
        return Err(format!(
            "store '{store}' cannot track notification {} of '{upstream}': \
             its log ends at {}",
            tracking.notification_id, upstream_log.last_notification_id
        ));
    }
    let table = ctx.db.event_tracking();
    let current = table
        .by_upstream()
        .filter((store, tracking.application_name.as_str()))
        .next();
    if let Some(current) = current {
        if tracking.notification_id <= current.notification_id {
            return Err(format!(
                "{INTEGRITY}store '{store}' has already processed notification {} of '{}'; \
                 {} is not after it",
                current.notification_id, tracking.application_name, tracking.notification_id
            ));
        }
        table.delete(current);
    }
    table.insert(EventTracking {
        store: store.to_owned(),
        application_name: tracking.application_name,
        notification_id: tracking.notification_id,
    });
    Ok(())
}

/// Fails with an [`INTEGRITY`] error if a record's (originator id, version) is
/// repeated in the batch or already stored. `stored(id, lo, hi)` gives the
/// stored versions of originator `id` between `lo` and `hi` inclusive.
///
/// One index scan per originator in the batch, not one per record: a save
/// usually writes consecutive versions of one aggregate, so the scan covers
/// just the batch's range. An originator whose versions in the batch are far
/// apart falls back to one lookup per record, so a sparse batch never scans a
/// long history.
fn check_new(
    kind: &str,
    store: &str,
    keys: &[(&str, u64)],
    stored: impl Fn(&str, u64, u64) -> Vec<u64>,
) -> Result<(), String> {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        if pair[0] == pair[1] {
            return Err(conflict(kind, store, pair[1]));
        }
    }
    for group in sorted.chunk_by(|a, b| a.0 == b.0) {
        let id = group[0].0;
        let (lo, hi) = (group[0].1, group[group.len() - 1].1);
        let dense = hi - lo < 2 * group.len() as u64;
        let ranges: Vec<(u64, u64)> = if dense {
            vec![(lo, hi)]
        } else {
            group.iter().map(|&(_, v)| (v, v)).collect()
        };
        for (lo, hi) in ranges {
            for version in stored(id, lo, hi) {
                if let Ok(i) = group.binary_search_by_key(&version, |&(_, v)| v) {
                    return Err(conflict(kind, store, group[i]));
                }
            }
        }
    }
    Ok(())
}

fn conflict(kind: &str, store: &str, (id, version): (&str, u64)) -> String {
    format!("{INTEGRITY}store '{store}' already has {kind} version {version} of originator {id}")
}

/// A store name: non-empty, short, and made only of characters that need no
/// quoting in a subscription query (`... WHERE store = 'name'`).
fn store_name(store: &str) -> Result<(), String> {
    if store.is_empty() {
        return Err("store name must not be empty".into());
    }
    validate::size("store name", store.len(), MAX_STORE_BYTES)?;
    if let Some(bad) = store
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(format!(
            "store name '{store}' contains {bad:?}; use ASCII letters, digits and _ - . :"
        ));
    }
    Ok(())
}

/// A batch: not too many records, each one well formed, all states together not too big.
fn batch(events: &[NewEvent]) -> Result<(), String> {
    if events.len() > MAX_BATCH_EVENTS {
        return Err(format!(
            "a batch has {} events; the limit is {MAX_BATCH_EVENTS}",
            events.len()
        ));
    }
    let mut total = 0;
    for event in events {
        if event.originator_id.is_empty() {
            return Err("originator id must not be empty".into());
        }
        validate::size(
            "originator id",
            event.originator_id.len(),
            MAX_ORIGINATOR_ID_BYTES,
        )?;
        validate::size("event topic", event.topic.len(), MAX_TOPIC_BYTES)?;
        validate::size("event state", event.state.len(), MAX_PAYLOAD_BYTES)?;
        total += event.state.len();
    }
    validate::size("the batch's event states", total, MAX_BATCH_BYTES)
}

/// A batch of runs, checked like [`batch`] event by event; returns its number of
/// events and their bytes as [`charge`] counts them. Each run holds at least one
/// event, a topic for each state, and versions that fit in a u64.
fn run_batch(runs: &[NewRun]) -> Result<(usize, usize), String> {
    let count: usize = runs.iter().map(|run| run.states.len()).sum();
    if count > MAX_BATCH_EVENTS {
        return Err(format!(
            "a batch has {count} events; the limit is {MAX_BATCH_EVENTS}"
        ));
    }
    let (mut total, mut bytes) = (0, 0);
    for run in runs {
        let id = &run.originator_id;
        if run.states.is_empty() || run.topics.len() != run.states.len() {
            return Err(format!(
                "a run of originator {id} has {} topics and {} states; it needs one of each \
                 per event, and at least one event",
                run.topics.len(),
                run.states.len()
            ));
        }
        if id.is_empty() {
            return Err("originator id must not be empty".into());
        }
        validate::size("originator id", id.len(), MAX_ORIGINATOR_ID_BYTES)?;
        if run
            .first_version
            .checked_add(run.states.len() as u64 - 1)
            .is_none()
        {
            return Err(format!(
                "a run of originator {id} from version {} is past the last version",
                run.first_version
            ));
        }
        for (topic, state) in run.topics.iter().zip(&run.states) {
            validate::size("event topic", topic.len(), MAX_TOPIC_BYTES)?;
            validate::size("event state", state.len(), MAX_PAYLOAD_BYTES)?;
            total += state.len();
            bytes += id.len() + topic.len() + state.len();
        }
    }
    validate::size("the batch's event states", total, MAX_BATCH_BYTES)?;
    Ok((count, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_are_short_plain_labels() {
        assert_eq!(store_name("BankAccounts"), Ok(()));
        assert_eq!(store_name("app-1.v2:events_x"), Ok(()));
        assert!(store_name("").is_err());
        assert!(store_name("it's").unwrap_err().contains("'\\''"));
        assert!(store_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn batches_are_checked_before_anything_is_written() {
        let event = |id: &str, state: usize| NewEvent {
            originator_id: id.into(),
            originator_version: 1,
            topic: "t".into(),
            state: vec![0; state],
        };
        assert_eq!(batch(&[event("a", 10)]), Ok(()));
        assert!(batch(&[event("", 10)]).is_err());
        assert!(batch(&[event("a", MAX_PAYLOAD_BYTES + 1)]).is_err());
    }

    #[test]
    fn a_batch_is_split_into_runs_of_consecutive_versions_of_one_originator() {
        let event = |id: &str, version: u64| NewEvent {
            originator_id: id.into(),
            originator_version: version,
            topic: format!("t{version}"),
            state: vec![],
        };
        let batch = vec![
            event("a", 1),
            event("a", 2),
            event("a", 3),
            event("b", 1),
            event("a", 4),
            event("a", 6),
        ];
        let runs = into_runs("s", 10, batch, Identity::ZERO);
        let shape: Vec<(u64, &str, u64, u64, usize)> = runs
            .iter()
            .map(|r| {
                (
                    r.first_notification_id,
                    r.originator_id.as_str(),
                    r.first_version,
                    r.last_version,
                    r.states.len(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (10, "a", 1, 3, 3),
                (13, "b", 1, 1, 1),
                (14, "a", 4, 4, 1),
                (15, "a", 6, 6, 1),
            ]
        );
        assert_eq!(runs[0].topics, ["t1", "t2", "t3"]);
        assert_eq!(runs[0].topics.len(), runs[0].states.len());
    }

    #[test]
    fn conflicts_are_found_in_the_batch_and_in_the_store() {
        let record = |id: &'static str, version: u64| (id, version);
        let stored_a_3 = |id: &str, lo: u64, hi: u64| -> Vec<u64> {
            if id == "a" && lo <= 3 && 3 <= hi {
                vec![3]
            } else {
                vec![]
            }
        };
        let fresh = [
            record("b", 2),
            record("a", 1),
            record("b", 1),
            record("a", 2),
        ];
        assert_eq!(check_new("event", "s", &fresh, stored_a_3), Ok(()));
        let repeated = [record("b", 1), record("a", 1), record("b", 1)];
        let error = check_new("event", "s", &repeated, stored_a_3).unwrap_err();
        assert!(error.starts_with(INTEGRITY) && error.contains("version 1 of originator b"));
        let stored = [record("a", 2), record("a", 3), record("a", 4)];
        let error = check_new("event", "s", &stored, stored_a_3).unwrap_err();
        assert!(error.contains("version 3 of originator a"), "{error}");
        // Far-apart versions are looked up one by one: 3 is not among them.
        let sparse = [record("a", 1), record("a", 1_000)];
        let probes = std::cell::RefCell::new(vec![]);
        let ok = check_new("event", "s", &sparse, |id, lo, hi| {
            probes.borrow_mut().push((lo, hi));
            stored_a_3(id, lo, hi)
        });
        assert_eq!(ok, Ok(()));
        assert_eq!(probes.into_inner(), vec![(1, 1), (1_000, 1_000)]);
    }

    #[test]
    fn runs_are_checked_like_the_events_they_hold() {
        let run = |id: &str, first: u64, topics: usize, states: &[usize]| NewRun {
            originator_id: id.into(),
            first_version: first,
            topics: vec!["t".into(); topics],
            states: states.iter().map(|&n| vec![0; n]).collect(),
        };
        let runs = [run("ab", 1, 2, &[3, 4]), run("c", 7, 1, &[0])];
        // Bytes as `charge` counts them for the same events: id, topic and state each.
        assert_eq!(
            run_batch(&runs),
            Ok((3, (2 + 1 + 3) + (2 + 1 + 4) + (1 + 1)))
        );
        assert_eq!(run_batch(&[]), Ok((0, 0)));
        assert!(run_batch(&[run("a", 1, 0, &[])])
            .unwrap_err()
            .contains("at least one"));
        assert!(run_batch(&[run("a", 1, 1, &[1, 1])])
            .unwrap_err()
            .contains("1 topics and 2"));
        assert!(run_batch(&[run("", 1, 1, &[1])]).is_err());
        assert!(run_batch(&[run("a", u64::MAX, 2, &[1, 1])])
            .unwrap_err()
            .contains("past"));
        assert_eq!(run_batch(&[run("a", u64::MAX, 1, &[1])]), Ok((1, 3)));
        let state = run_batch(&[run("a", 1, 1, &[MAX_PAYLOAD_BYTES + 1])]).unwrap_err();
        assert!(state.starts_with("event state"), "{state}");
        let many = run_batch(&[run(
            "a",
            1,
            MAX_BATCH_EVENTS + 1,
            &[0; MAX_BATCH_EVENTS + 1],
        )]);
        assert!(many.unwrap_err().contains("limit is 10000"));
    }
}
