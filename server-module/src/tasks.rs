//! Tasks: durable work that one agent hands to another, with leases and fencing.
//!
//! A task names who may take it: any agent offering a capability, or one agent.
//! Its life:
//!
//! ```text
//! queued --claim--> claimed --heartbeat--> running --complete--> succeeded
//!    ^                 |                      |------fail-------> failed (no retry left)
//!    |                 +----lease expires-----+----------------> dead   (no attempt left)
//!    +--backoff ends-- retrying <--lease expires / fail(retry)--+
//! any state before the end --cancel (by the submitter)--> cancelled
//!                           (and so are the tasks delegated from it)
//! ```
//!
//! Every claim bumps `epoch`: it is the fencing token. Heartbeat, complete and
//! fail must carry the epoch of the claim they belong to, so a worker that lost
//! its lease (killed, paused, partitioned) cannot overwrite the work of the one
//! that took the task after it. Lease expiry is scheduled, not polled: each claim
//! schedules [`expire_lease`] at its deadline; a heartbeat only moves the
//! deadline, and the timer re-arms itself when it finds the lease extended.
//!
//! Delegation rules are rows: an agent with at least one rule may delegate only
//! to the targets its rules name (an agent with none is unrestricted). A task
//! submitted from within another (`parent_id`) is one hop further; a chain longer
//! than its `max_hops` is refused, which is what stops delegation loops. Rules
//! guard agents against runaway delegation; they are not access control (any
//! identity may submit tasks on its own behalf, with `from_agent` 0).
//!
//! Errors that clients need to tell apart start with a fixed prefix
//! ([`STALE_EPOCH`], [`NOT_ALLOWED`], [`HOP_LIMIT`]).

use std::time::Duration;

use spacetimedb::{Identity, ReducerContext, ScheduleAt, SpacetimeType, Table, Timestamp};

use crate::agents::agent;
use crate::calls::{self, CallKey};
use crate::quotas::{self, Quota};
use crate::validate::{self, MAX_LABEL_BYTES};
use crate::{found, owned_by_caller, workflows, OwnedRow};

/// Prefix of the error for a heartbeat, completion or failure with an old epoch.
pub const STALE_EPOCH: &str = "stale epoch: ";
/// Prefix of the error for a delegation the rules do not allow.
pub const NOT_ALLOWED: &str = "delegation not allowed: ";
/// Prefix of the error for a delegation chain over its hop limit.
pub const HOP_LIMIT: &str = "hop limit: ";

/// Task payloads and results (msgpack, opaque here).
pub const MAX_TASK_BYTES: usize = 256 * 1024;
/// A failure's error text.
pub const MAX_ERROR_BYTES: usize = 4 * 1024;
/// Capabilities one agent may offer.
pub const MAX_CAPABILITIES: usize = 32;
/// Attempts a task may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// The hop limit when a task does not set one.
pub const DEFAULT_MAX_HOPS: u32 = 8;
/// Leases between 100 ms and one hour.
pub const MIN_LEASE_MS: u32 = 100;
pub const MAX_LEASE_MS: u32 = 3_600_000;
/// The longest wait between attempts, however many attempts have failed.
pub const MAX_BACKOFF_MS: u64 = 300_000;

pub const QUEUED: &str = "queued";
pub const CLAIMED: &str = "claimed";
pub const RUNNING: &str = "running";
pub const RETRYING: &str = "retrying";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";
pub const DEAD: &str = "dead";

/// One unit of delegated work.
#[spacetimedb::table(
    name = task,
    public,
    index(name = by_capability_queue, btree(columns = [status, capability, id])),
    index(name = by_agent_queue, btree(columns = [status, agent_id, id]))
)]
#[derive(Clone)]
pub struct Task {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// Chosen by the submitter to find its new row (reducers return no values).
    #[index(btree)]
    pub ticket: u128,
    pub kind: String,
    /// msgpack, opaque here.
    pub payload: Vec<u8>,
    pub submitter: Identity,
    /// The agent on whose behalf the task was submitted; 0 for none.
    pub from_agent: u64,
    /// Any agent offering this capability may take the task ("" when `agent_id` is set).
    pub capability: String,
    /// Only this agent may take the task (0 when `capability` is set).
    pub agent_id: u64,
    pub status: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub lease_ms: u32,
    pub backoff_ms: u32,
    /// The current claim's deadline; None when not claimed.
    pub lease_deadline: Option<Timestamp>,
    /// Bumped by every claim: the fencing token.
    pub epoch: u64,
    /// The agent holding the current claim (0 for none), and the identity it runs as.
    pub claimed_by: u64,
    pub claimant: Option<Identity>,
    pub result: Vec<u8>,
    pub error: String,
    /// The task this one was delegated from (0 for none), and how many hops down it is.
    #[index(btree)]
    pub parent_id: u64,
    pub hops: u32,
    pub max_hops: u32,
    /// The workflow step this task runs (0 for none).
    pub step_id: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl OwnedRow for Task {
    const KIND: &'static str = "task";
    fn owner(&self) -> Identity {
        self.submitter
    }
}

impl Task {
    fn is_finished(&self) -> bool {
        [SUCCEEDED, FAILED, CANCELLED, DEAD].contains(&self.status.as_str())
    }

    fn target(&self) -> String {
        if self.agent_id != 0 {
            format!("agent {}", self.agent_id)
        } else {
            format!("capability '{}'", self.capability)
        }
    }
}

/// A capability an agent offers (a worker registers them with its agent).
#[spacetimedb::table(name = agent_capability, public)]
pub struct AgentCapability {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub agent_id: u64,
    #[index(btree)]
    pub capability: String,
}

/// An agent may delegate to this target (a capability, an agent, or both must match;
/// "" and 0 match anything).
#[spacetimedb::table(name = delegation_rule, public)]
pub struct DelegationRule {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub from_agent: u64,
    pub to_capability: String,
    pub to_agent: u64,
}

/// What a client asks for when it submits a task (a workflow step carries one too).
#[derive(SpacetimeType, Clone)]
pub struct TaskSpec {
    pub kind: String,
    pub payload: Vec<u8>,
    pub capability: String,
    pub agent_id: u64,
    pub max_attempts: u32,
    pub lease_ms: u32,
    pub backoff_ms: u32,
    /// 0: inherit the parent's, or [`DEFAULT_MAX_HOPS`].
    pub max_hops: u32,
}

/// Fires at a claim's lease deadline.
#[spacetimedb::table(name = lease_timer, scheduled(expire_lease))]
pub struct LeaseTimer {
    #[primary_key]
    #[auto_inc]
    pub scheduled_id: u64,
    pub scheduled_at: ScheduleAt,
    pub task_id: u64,
    pub epoch: u64,
}

/// Fires when a task's backoff is over, to queue it again.
#[spacetimedb::table(name = retry_timer, scheduled(end_backoff))]
pub struct RetryTimer {
    #[primary_key]
    #[auto_inc]
    pub scheduled_id: u64,
    pub scheduled_at: ScheduleAt,
    pub task_id: u64,
    pub attempts: u32,
}

// --- capabilities and rules ----------------------------------------------------------------

/// Replaces the capabilities an agent offers. Owner of the agent only.
#[spacetimedb::reducer]
pub fn set_agent_capabilities(
    ctx: &ReducerContext,
    call_key: CallKey,
    agent_id: u64,
    capabilities: Vec<String>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    owned_by_caller(ctx, ctx.db.agent().id().find(agent_id), agent_id)?;
    if capabilities.len() > MAX_CAPABILITIES {
        return Err(format!(
            "an agent may offer at most {MAX_CAPABILITIES} capabilities, not {}",
            capabilities.len()
        ));
    }
    for capability in &capabilities {
        validate::label("capability", capability)?;
    }
    for old in ctx.db.agent_capability().agent_id().filter(agent_id) {
        ctx.db.agent_capability().id().delete(old.id);
    }
    for capability in capabilities {
        ctx.db.agent_capability().insert(AgentCapability {
            id: 0,
            agent_id,
            capability,
        });
    }
    Ok(())
}

/// Lets `from_agent` delegate to a capability and/or an agent ("" / 0: any).
/// Owner of `from_agent` only.
#[spacetimedb::reducer]
pub fn allow_delegation(
    ctx: &ReducerContext,
    call_key: CallKey,
    from_agent: u64,
    to_capability: String,
    to_agent: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    owned_by_caller(ctx, ctx.db.agent().id().find(from_agent), from_agent)?;
    if !to_capability.is_empty() {
        validate::label("capability", &to_capability)?;
    }
    if to_agent != 0 {
        found(ctx.db.agent().id().find(to_agent), to_agent)?;
    }
    ctx.db.delegation_rule().insert(DelegationRule {
        id: 0,
        from_agent,
        to_capability,
        to_agent,
    });
    Ok(())
}

/// Removes a delegation rule. Owner of the rule's agent only.
#[spacetimedb::reducer]
pub fn revoke_delegation(
    ctx: &ReducerContext,
    call_key: CallKey,
    rule_id: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let rule = ctx
        .db
        .delegation_rule()
        .id()
        .find(rule_id)
        .ok_or_else(|| format!("no delegation rule with id {rule_id}"))?;
    owned_by_caller(
        ctx,
        ctx.db.agent().id().find(rule.from_agent),
        rule.from_agent,
    )?;
    ctx.db.delegation_rule().id().delete(rule_id);
    Ok(())
}

// --- the task's life ---------------------------------------------------------------------------

/// Submits a task. `from_agent` (0 for none) must be the caller's; `parent_id`
/// (0 for none) must be a task the caller is running, and `from_agent` then
/// defaults to the agent running it.
#[spacetimedb::reducer]
pub fn submit_task(
    ctx: &ReducerContext,
    call_key: CallKey,
    ticket: u128,
    spec: TaskSpec,
    from_agent: u64,
    parent_id: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let (from_agent, hops, inherited_hops) = lineage(ctx, from_agent, parent_id)?;
    enqueue(
        ctx,
        ticket,
        spec,
        Lineage {
            submitter: ctx.sender,
            from_agent,
            parent_id,
            hops,
            inherited_hops,
            step_id: 0,
        },
    )?;
    Ok(())
}

/// Where a new task comes from: who asks, its parent and hop count, its workflow step.
pub(crate) struct Lineage {
    /// Who the task is for, and whose quota it counts against: the caller, or for a
    /// workflow's step the workflow's submitter (whoever's completion released it).
    pub submitter: Identity,
    pub from_agent: u64,
    pub parent_id: u64,
    pub hops: u32,
    /// The parent's hop limit, which a child may lower but not raise (0: none).
    pub inherited_hops: u32,
    pub step_id: u64,
}

/// Checks who asks and the delegation chain: (from_agent, hops, parent's hop limit).
pub(crate) fn lineage(
    ctx: &ReducerContext,
    from_agent: u64,
    parent_id: u64,
) -> Result<(u64, u32, u32), String> {
    if parent_id == 0 {
        if from_agent != 0 {
            owned_by_caller(ctx, ctx.db.agent().id().find(from_agent), from_agent)?;
        }
        return Ok((from_agent, 0, 0));
    }
    let parent = found(ctx.db.task().id().find(parent_id), parent_id)?;
    if parent.claimant != Some(ctx.sender) || parent.is_finished() {
        return Err(format!(
            "task {parent_id} is not running under the caller's identity; \
             only its current worker may delegate from it"
        ));
    }
    let from_agent = if from_agent == 0 {
        parent.claimed_by
    } else {
        from_agent
    };
    if from_agent != parent.claimed_by {
        return Err(format!(
            "task {parent_id} is run by agent {}, not agent {from_agent}",
            parent.claimed_by
        ));
    }
    Ok((from_agent, parent.hops + 1, parent.max_hops))
}

/// Validates a task and inserts it as queued; shared with workflows.
pub(crate) fn enqueue(
    ctx: &ReducerContext,
    ticket: u128,
    spec: TaskSpec,
    lineage: Lineage,
) -> Result<Task, String> {
    check_spec(ctx, &spec)?;
    let mut max_hops = if spec.max_hops == 0 {
        DEFAULT_MAX_HOPS
    } else {
        spec.max_hops
    };
    if lineage.inherited_hops != 0 {
        max_hops = max_hops.min(lineage.inherited_hops);
    }
    if lineage.hops > max_hops {
        return Err(format!(
            "{HOP_LIMIT}task would be hop {} of at most {max_hops}; delegation chain: {}",
            lineage.hops,
            chain(ctx, lineage.parent_id, &spec)
        ));
    }
    if lineage.from_agent != 0 {
        check_rules(ctx, lineage.from_agent, &spec)?;
    }
    let bytes = quotas::signed(spec.payload.len());
    quotas::charge(ctx, lineage.submitter, Quota::Tasks, 1, bytes)?;
    let task = ctx.db.task().insert(Task {
        id: 0,
        ticket,
        kind: spec.kind,
        payload: spec.payload,
        submitter: lineage.submitter,
        from_agent: lineage.from_agent,
        capability: spec.capability,
        agent_id: spec.agent_id,
        status: QUEUED.into(),
        attempts: 0,
        max_attempts: spec.max_attempts,
        lease_ms: spec.lease_ms,
        backoff_ms: spec.backoff_ms,
        lease_deadline: None,
        epoch: 0,
        claimed_by: 0,
        claimant: None,
        result: Vec::new(),
        error: String::new(),
        parent_id: lineage.parent_id,
        hops: lineage.hops,
        max_hops,
        step_id: lineage.step_id,
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    });
    Ok(task)
}

/// What a task asks for, checked on its own (the chain and the rules are checked apart).
pub(crate) fn check_spec(ctx: &ReducerContext, spec: &TaskSpec) -> Result<(), String> {
    validate::label("task kind", &spec.kind)?;
    validate::size("task payload", spec.payload.len(), MAX_TASK_BYTES)?;
    check_target(ctx, spec)?;
    if spec.max_attempts == 0 || spec.max_attempts > MAX_ATTEMPTS {
        return Err(format!(
            "max_attempts is {}; it must be between 1 and {MAX_ATTEMPTS}",
            spec.max_attempts
        ));
    }
    if !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&spec.lease_ms) {
        return Err(format!(
            "lease is {} ms; it must be between {MIN_LEASE_MS} and {MAX_LEASE_MS} ms",
            spec.lease_ms
        ));
    }
    Ok(())
}

/// Exactly one of capability and agent; the capability must be offered by some agent.
fn check_target(ctx: &ReducerContext, spec: &TaskSpec) -> Result<(), String> {
    match (spec.capability.is_empty(), spec.agent_id) {
        (true, 0) => Err("a task needs a capability or an agent to take it".into()),
        (false, id) if id != 0 => Err("a task names a capability or an agent, not both".into()),
        (true, id) => found(ctx.db.agent().id().find(id), id).map(|_| ()),
        (false, _) => {
            validate::size("capability", spec.capability.len(), MAX_LABEL_BYTES)?;
            let offered = ctx
                .db
                .agent_capability()
                .capability()
                .filter(&spec.capability)
                .next()
                .is_some();
            if offered {
                Ok(())
            } else {
                Err(format!(
                    "unknown capability '{}': no agent offers it",
                    spec.capability
                ))
            }
        }
    }
}

/// An agent with rules may delegate only to a target one of them names.
pub(crate) fn check_rules(
    ctx: &ReducerContext,
    from_agent: u64,
    spec: &TaskSpec,
) -> Result<(), String> {
    let rules: Vec<DelegationRule> = ctx
        .db
        .delegation_rule()
        .from_agent()
        .filter(from_agent)
        .collect();
    let allowed = rules.is_empty()
        || rules.iter().any(|rule| {
            (rule.to_capability.is_empty() || rule.to_capability == spec.capability)
                && (rule.to_agent == 0 || rule.to_agent == spec.agent_id)
        });
    if allowed {
        return Ok(());
    }
    let target = if spec.agent_id != 0 {
        format!("agent {}", spec.agent_id)
    } else {
        format!("capability '{}'", spec.capability)
    };
    Err(format!(
        "{NOT_ALLOWED}agent {} may not delegate to {target}; its rules allow: {}",
        agent_name(ctx, from_agent),
        rules
            .iter()
            .map(|r| match (r.to_capability.as_str(), r.to_agent) {
                (cap, 0) => format!("capability '{cap}'"),
                ("", id) => format!("agent {}", agent_name(ctx, id)),
                (cap, id) => format!("capability '{cap}' on agent {}", agent_name(ctx, id)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn agent_name(ctx: &ReducerContext, id: u64) -> String {
    ctx.db
        .agent()
        .id()
        .find(id)
        .map_or_else(|| format!("#{id}"), |a| format!("'{}'", a.name))
}

/// "capability 'x' <- task 7 run by 'a' <- task 3 run by 'b'": who delegated to whom.
fn chain(ctx: &ReducerContext, mut parent_id: u64, spec: &TaskSpec) -> String {
    let mut links = vec![if spec.agent_id != 0 {
        format!("agent {}", agent_name(ctx, spec.agent_id))
    } else {
        format!("capability '{}'", spec.capability)
    }];
    while let Some(task) = ctx.db.task().id().find(parent_id) {
        links.push(format!(
            "task {} run by {}",
            task.id,
            agent_name(ctx, task.claimed_by)
        ));
        parent_id = task.parent_id;
    }
    links.join(" <- ")
}

/// Claims the oldest queued task the agent may take, if any (no task: nothing
/// changes). Owner of the agent only. Sets the lease, bumps the epoch and the
/// attempt count, and schedules the lease's expiry.
#[spacetimedb::reducer]
pub fn claim_task(ctx: &ReducerContext, call_key: CallKey, agent_id: u64) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    owned_by_caller(ctx, ctx.db.agent().id().find(agent_id), agent_id)?;
    let Some(task) = next_claimable(ctx, agent_id) else {
        return Ok(());
    };
    let deadline = ctx.timestamp + Duration::from_millis(task.lease_ms.into());
    let task = Task {
        status: CLAIMED.into(),
        attempts: task.attempts + 1,
        epoch: task.epoch + 1,
        claimed_by: agent_id,
        claimant: Some(ctx.sender),
        lease_deadline: Some(deadline),
        updated_at: ctx.timestamp,
        ..task
    };
    ctx.db.lease_timer().insert(LeaseTimer {
        scheduled_id: 0,
        scheduled_at: deadline.into(),
        task_id: task.id,
        epoch: task.epoch,
    });
    ctx.db.task().id().update(task);
    Ok(())
}

/// The oldest queued task addressed to this agent or to one of its capabilities.
fn next_claimable(ctx: &ReducerContext, agent_id: u64) -> Option<Task> {
    let mine = ctx
        .db
        .task()
        .by_agent_queue()
        .filter((QUEUED, agent_id))
        .next();
    let by_capability = ctx
        .db
        .agent_capability()
        .agent_id()
        .filter(agent_id)
        .filter_map(|offer| {
            ctx.db
                .task()
                .by_capability_queue()
                .filter((QUEUED, offer.capability.as_str()))
                .find(|task| task.agent_id == 0)
        });
    mine.into_iter()
        .chain(by_capability)
        .min_by_key(|task| task.id)
}

/// The task, if the caller holds its current claim with this epoch.
fn held_by_caller(ctx: &ReducerContext, task_id: u64, epoch: u64) -> Result<Task, String> {
    let task = found(ctx.db.task().id().find(task_id), task_id)?;
    if task.epoch != epoch || !(task.status == CLAIMED || task.status == RUNNING) {
        return Err(format!(
            "{STALE_EPOCH}task {task_id} is {} at epoch {}; epoch {epoch} no longer holds it",
            task.status, task.epoch
        ));
    }
    if task.claimant != Some(ctx.sender) {
        return Err(format!(
            "task {task_id} is held by another identity; only its worker may report on it"
        ));
    }
    Ok(task)
}

/// Extends the lease (and marks the task running). Only with the current epoch.
#[spacetimedb::reducer]
pub fn heartbeat_task(
    ctx: &ReducerContext,
    call_key: CallKey,
    task_id: u64,
    epoch: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let task = held_by_caller(ctx, task_id, epoch)?;
    let deadline = ctx.timestamp + Duration::from_millis(task.lease_ms.into());
    ctx.db.task().id().update(Task {
        status: RUNNING.into(),
        lease_deadline: Some(deadline),
        updated_at: ctx.timestamp,
        ..task
    });
    Ok(())
}

/// Records the result. Refused with a stale epoch.
#[spacetimedb::reducer]
pub fn complete_task(
    ctx: &ReducerContext,
    call_key: CallKey,
    task_id: u64,
    epoch: u64,
    result: Vec<u8>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let task = held_by_caller(ctx, task_id, epoch)?;
    validate::size("task result", result.len(), MAX_TASK_BYTES)?;
    // The worker wrote the result: it counts against the worker's quota.
    quotas::charge(
        ctx,
        ctx.sender,
        Quota::Tasks,
        0,
        quotas::signed(result.len()),
    )?;
    finish(
        ctx,
        Task {
            status: SUCCEEDED.into(),
            result,
            error: String::new(),
            ..task
        },
    );
    Ok(())
}

/// Records a failure: retried after a backoff if `retry` and attempts remain,
/// otherwise final. Refused with a stale epoch.
#[spacetimedb::reducer]
pub fn fail_task(
    ctx: &ReducerContext,
    call_key: CallKey,
    task_id: u64,
    epoch: u64,
    error: String,
    retry: bool,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let task = held_by_caller(ctx, task_id, epoch)?;
    validate::size("task error", error.len(), MAX_ERROR_BYTES)?;
    let task = Task { error, ..task };
    if retry && task.attempts < task.max_attempts {
        back_off(ctx, task);
    } else {
        finish(
            ctx,
            Task {
                status: FAILED.into(),
                ..task
            },
        );
    }
    Ok(())
}

/// Cancels a task that has not finished. Submitter only; its worker sees the
/// status change and stops.
#[spacetimedb::reducer]
pub fn cancel_task(
    ctx: &ReducerContext,
    call_key: CallKey,
    task_id: u64,
    reason: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let task = owned_by_caller(ctx, ctx.db.task().id().find(task_id), task_id)?;
    validate::size("cancel reason", reason.len(), MAX_ERROR_BYTES)?;
    if task.is_finished() {
        return Err(format!("task {task_id} has already {}", task.status));
    }
    cancel(ctx, task, reason);
    Ok(())
}

/// Deletes a finished task of the caller's, giving back the quota it held (the
/// submitter's for the task, the worker's for its result). A workflow's steps go
/// with their workflow: see `forget_workflow`.
#[spacetimedb::reducer]
pub fn forget_task(ctx: &ReducerContext, call_key: CallKey, task_id: u64) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let task = owned_by_caller(ctx, ctx.db.task().id().find(task_id), task_id)?;
    if task.step_id != 0 {
        return Err(format!(
            "task {task_id} is a workflow's step; forget the workflow instead"
        ));
    }
    if !task.is_finished() {
        return Err(format!(
            "task {task_id} is {}; only a finished task can be forgotten",
            task.status
        ));
    }
    forget(ctx, task);
    Ok(())
}

/// Deletes a task and gives its quota back (also for a forgotten workflow's steps).
pub(crate) fn forget(ctx: &ReducerContext, task: Task) {
    let payload = quotas::signed(task.payload.len());
    quotas::release(ctx, task.submitter, Quota::Tasks, 1, payload);
    if let (Some(worker), false) = (task.claimant, task.result.is_empty()) {
        let result = quotas::signed(task.result.len());
        quotas::release(ctx, worker, Quota::Tasks, 0, result);
    }
    ctx.db.task().id().delete(task.id);
}

/// Ends an unfinished task as cancelled (also used when a workflow gives up on a step).
/// The tasks delegated from it, and theirs, are cancelled with it: their results
/// would have no one to go to.
pub(crate) fn cancel(ctx: &ReducerContext, task: Task, reason: String) {
    let task_id = task.id;
    finish(
        ctx,
        Task {
            status: CANCELLED.into(),
            error: reason,
            ..task
        },
    );
    let children: Vec<Task> = ctx
        .db
        .task()
        .parent_id()
        .filter(task_id)
        .filter(|child| !child.is_finished())
        .collect();
    for child in children {
        cancel(
            ctx,
            child,
            format!("task {task_id}, which it was delegated from, was cancelled"),
        );
    }
}

/// Writes a task's final state and tells its workflow, in the same transaction.
fn finish(ctx: &ReducerContext, task: Task) {
    let task = Task {
        lease_deadline: None,
        updated_at: ctx.timestamp,
        ..task
    };
    ctx.db.task().id().update(task.clone());
    if task.step_id != 0 {
        workflows::task_finished(ctx, &task);
    }
}

/// Puts a task aside until its backoff is over: `backoff_ms` doubled per failed attempt.
fn back_off(ctx: &ReducerContext, task: Task) {
    let wait_ms = backoff_ms(task.backoff_ms, task.attempts);
    ctx.db.retry_timer().insert(RetryTimer {
        scheduled_id: 0,
        scheduled_at: (ctx.timestamp + Duration::from_millis(wait_ms)).into(),
        task_id: task.id,
        attempts: task.attempts,
    });
    ctx.db.task().id().update(Task {
        status: RETRYING.into(),
        lease_deadline: None,
        claimed_by: 0,
        claimant: None,
        updated_at: ctx.timestamp,
        ..task
    });
}

/// The wait after `attempts` attempts: `base_ms`, doubled per attempt after the
/// first, at most [`MAX_BACKOFF_MS`].
fn backoff_ms(base_ms: u32, attempts: u32) -> u64 {
    let doublings = attempts.saturating_sub(1).min(20);
    (u64::from(base_ms) << doublings).min(MAX_BACKOFF_MS)
}

/// Only the database itself runs the scheduled reducers.
fn scheduler_only(ctx: &ReducerContext, what: &str) -> Result<(), String> {
    if ctx.sender != ctx.identity() {
        return Err(format!(
            "{what} runs on the database's schedule, not on request"
        ));
    }
    Ok(())
}

/// A claim's deadline has come: if the lease was extended, wait for the new
/// deadline; if not, retry the task after a backoff, or mark it dead after its
/// last attempt.
#[spacetimedb::reducer]
pub fn expire_lease(ctx: &ReducerContext, timer: LeaseTimer) -> Result<(), String> {
    scheduler_only(ctx, "expire_lease")?;
    let Some(task) = ctx.db.task().id().find(timer.task_id) else {
        return Ok(());
    };
    let held = task.epoch == timer.epoch && (task.status == CLAIMED || task.status == RUNNING);
    let Some(deadline) = task.lease_deadline.filter(|_| held) else {
        return Ok(()); // finished, or claimed again since: this timer is obsolete
    };
    if deadline > ctx.timestamp {
        ctx.db.lease_timer().insert(LeaseTimer {
            scheduled_id: 0,
            scheduled_at: deadline.into(),
            ..timer
        });
        return Ok(());
    }
    log::info!("task {} lease expired at epoch {}", task.id, task.epoch);
    let error = format!(
        "lease expired: agent {} sent no heartbeat within {} ms (attempt {} of {})",
        agent_name(ctx, task.claimed_by),
        task.lease_ms,
        task.attempts,
        task.max_attempts
    );
    if task.attempts < task.max_attempts {
        back_off(ctx, Task { error, ..task });
    } else {
        finish(
            ctx,
            Task {
                status: DEAD.into(),
                error,
                ..task
            },
        );
    }
    Ok(())
}

/// A backoff is over: the task is queued again for any worker to claim.
#[spacetimedb::reducer]
pub fn end_backoff(ctx: &ReducerContext, timer: RetryTimer) -> Result<(), String> {
    scheduler_only(ctx, "end_backoff")?;
    if let Some(task) = ctx.db.task().id().find(timer.task_id) {
        if task.status == RETRYING && task.attempts == timer.attempts {
            log::info!("task {} queued again for {}", task.id, task.target());
            ctx.db.task().id().update(Task {
                status: QUEUED.into(),
                updated_at: ctx.timestamp,
                ..task
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_attempt_up_to_the_cap() {
        assert_eq!(backoff_ms(100, 1), 100);
        assert_eq!(backoff_ms(100, 2), 200);
        assert_eq!(backoff_ms(100, 4), 800);
        assert_eq!(backoff_ms(1_000, 30), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(u32::MAX, 100), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(0, 5), 0);
    }
}
