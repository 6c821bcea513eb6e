//! Workflows: a DAG of steps, each run as a task, with readiness kept in the module.
//!
//! A workflow is submitted whole: its steps in an order where every step comes after
//! the steps it needs (the Python side sorts them and rejects cycles first; the module
//! checks the order again, so a cycle cannot be stored). Steps that need nothing
//! start at once. When a step's task succeeds, the steps that needed it and have
//! nothing else to wait for get their tasks in the *same transaction* as the
//! completion, so any worker process can take them the moment it commits, and
//! independent steps run in parallel. A task that fails for good (after its retry
//! policy) fails its step; the steps that need it, directly or not, are cancelled
//! with the reason, independent branches go on, and the workflow ends `failed`
//! with the first failure's reason once nothing is left running.
//!
//! Step states: waiting -> ready (its task exists) -> succeeded | failed | cancelled.
//! Workflow states: running -> succeeded | failed | cancelled.

use spacetimedb::{Identity, ReducerContext, SpacetimeType, Table, Timestamp};

use crate::calls::{self, CallKey};
use crate::quotas::{self, Quota};
use crate::tasks::{self, task, Lineage, Task, TaskSpec};
use crate::validate;
use crate::{owned_by_caller, OwnedRow};

/// Steps in one workflow.
pub const MAX_STEPS: usize = 256;

pub const WAITING: &str = "waiting";
pub const READY: &str = "ready";
pub const RUNNING: &str = "running";

#[spacetimedb::table(name = workflow, public)]
pub struct Workflow {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// Chosen by the submitter to find its new row.
    #[index(btree)]
    pub ticket: u128,
    pub name: String,
    pub submitter: Identity,
    pub from_agent: u64,
    pub status: String,
    /// Steps not yet succeeded, failed or cancelled.
    pub open_steps: u32,
    /// The first failure's reason ("" while none).
    pub error: String,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

impl OwnedRow for Workflow {
    const KIND: &'static str = "workflow";
    fn owner(&self) -> Identity {
        self.submitter
    }
}

#[spacetimedb::table(name = workflow_step, public)]
#[derive(Clone)]
pub struct WorkflowStep {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub workflow_id: u64,
    /// Index in the submitted order; `needs` refers to these.
    pub position: u32,
    pub name: String,
    pub spec: TaskSpec,
    pub needs: Vec<u32>,
    /// Needed steps not yet succeeded.
    pub waiting_on: u32,
    /// The step's task once it is ready (0 before).
    pub task_id: u64,
    pub status: String,
    pub error: String,
}

/// A step as submitted: what to run, and the positions of the steps it needs.
#[derive(SpacetimeType)]
pub struct NewStep {
    pub name: String,
    pub spec: TaskSpec,
    pub needs: Vec<u32>,
}

/// Stores a workflow and starts the steps that need nothing. `from_agent` (0 for
/// none) must be the caller's; each step's task is delegated from it.
#[spacetimedb::reducer]
pub fn submit_workflow(
    ctx: &ReducerContext,
    call_key: CallKey,
    ticket: u128,
    name: String,
    from_agent: u64,
    steps: Vec<NewStep>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    validate::label("workflow name", &name)?;
    check_steps(ctx, &steps)?;
    let (from_agent, _, _) = tasks::lineage(ctx, from_agent, 0)?;
    if from_agent != 0 {
        for step in &steps {
            tasks::check_rules(ctx, from_agent, &step.spec)?;
        }
    }
    let payloads: usize = steps.iter().map(|step| step.spec.payload.len()).sum();
    quotas::charge(
        ctx,
        ctx.sender,
        Quota::Workflows,
        1,
        quotas::signed(payloads),
    )?;
    let workflow = ctx.db.workflow().insert(Workflow {
        id: 0,
        ticket,
        name,
        submitter: ctx.sender,
        from_agent,
        status: RUNNING.into(),
        open_steps: steps.len() as u32,
        error: String::new(),
        created_at: ctx.timestamp,
        finished_at: None,
    });
    for (position, step) in steps.into_iter().enumerate() {
        let waiting_on = step.needs.len() as u32;
        let row = ctx.db.workflow_step().insert(WorkflowStep {
            id: 0,
            workflow_id: workflow.id,
            position: position as u32,
            name: step.name,
            spec: step.spec,
            needs: step.needs,
            waiting_on,
            task_id: 0,
            status: WAITING.into(),
            error: String::new(),
        });
        if waiting_on == 0 {
            // Checked above with check_steps, so the task is accepted.
            start(ctx, row, ctx.sender, from_agent)?;
        }
    }
    Ok(())
}

/// Names unique, every dependency an earlier step, every spec acceptable as a task.
fn check_steps(ctx: &ReducerContext, steps: &[NewStep]) -> Result<(), String> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(format!(
            "a workflow has 1 to {MAX_STEPS} steps, not {}",
            steps.len()
        ));
    }
    for (position, step) in steps.iter().enumerate() {
        validate::label("step name", &step.name)?;
        if steps[..position].iter().any(|s| s.name == step.name) {
            return Err(format!("two steps are named '{}'", step.name));
        }
        for (i, &need) in step.needs.iter().enumerate() {
            if need as usize >= position {
                return Err(format!(
                    "step '{}' (position {position}) needs position {need}, which is not \
                     before it: steps must come after the steps they need (no cycles)",
                    step.name
                ));
            }
            if step.needs[..i].contains(&need) {
                return Err(format!("step '{}' needs position {need} twice", step.name));
            }
        }
        tasks::check_spec(ctx, &step.spec)?;
    }
    Ok(())
}

/// Creates a ready step's task, for the workflow's submitter.
fn start(
    ctx: &ReducerContext,
    step: WorkflowStep,
    submitter: Identity,
    from_agent: u64,
) -> Result<(), String> {
    let task = tasks::enqueue(
        ctx,
        0,
        step.spec.clone(),
        Lineage {
            submitter,
            from_agent,
            parent_id: 0,
            hops: 0,
            inherited_hops: 0,
            step_id: step.id,
        },
    )?;
    ctx.db.workflow_step().id().update(WorkflowStep {
        task_id: task.id,
        status: READY.into(),
        ..step
    });
    Ok(())
}

/// A step's task has finished (called by the tasks module in the finishing transaction).
pub(crate) fn task_finished(ctx: &ReducerContext, task: &Task) {
    let Some(step) = ctx.db.workflow_step().id().find(task.step_id) else {
        return;
    };
    if step.status != READY || step.task_id != task.id {
        return;
    }
    let Some(workflow) = ctx.db.workflow().id().find(step.workflow_id) else {
        return;
    };
    let succeeded = task.status == tasks::SUCCEEDED;
    let reason = format!("step '{}' {}: {}", step.name, task.status, task.error);
    let position = step.position;
    let workflow_id = workflow.id;
    if !succeeded {
        note_failure(ctx, workflow_id, reason);
    }
    close(ctx, step, &task.status, task.error.clone());
    if succeeded {
        release_dependants(ctx, &workflow, position);
    } else {
        cancel_dependants(ctx, workflow_id, position);
    }
}

/// Counts down the steps that needed `position`; starts those with nothing left to wait for.
fn release_dependants(ctx: &ReducerContext, workflow: &Workflow, position: u32) {
    let workflow_id = workflow.id;
    for step in dependants(ctx, workflow_id, position) {
        let step = WorkflowStep {
            waiting_on: step.waiting_on - 1,
            ..step
        };
        if step.waiting_on > 0 {
            ctx.db.workflow_step().id().update(step);
            continue;
        }
        if let Err(error) = start(ctx, step.clone(), workflow.submitter, workflow.from_agent) {
            // The task was acceptable at submission; a capability may since have gone.
            let position = step.position;
            note_failure(
                ctx,
                workflow_id,
                format!("step '{}' failed: {error}", step.name),
            );
            close(ctx, step, tasks::FAILED, error);
            cancel_dependants(ctx, workflow_id, position);
        }
    }
}

/// Cancels every waiting step that needs `position`, directly or not.
fn cancel_dependants(ctx: &ReducerContext, workflow_id: u64, position: u32) {
    let needed = ctx
        .db
        .workflow_step()
        .workflow_id()
        .filter(workflow_id)
        .find(|s| s.position == position)
        .map_or_else(String::new, |s| s.name);
    for step in dependants(ctx, workflow_id, position) {
        let position = step.position;
        let reason = format!("needs step '{needed}', which did not succeed");
        close(ctx, step, tasks::CANCELLED, reason);
        cancel_dependants(ctx, workflow_id, position);
    }
}

/// Every step of the workflow.
fn steps_of(ctx: &ReducerContext, workflow_id: u64) -> Vec<WorkflowStep> {
    ctx.db
        .workflow_step()
        .workflow_id()
        .filter(workflow_id)
        .collect()
}

/// Waiting steps of the workflow that need the step at `position`.
fn dependants(ctx: &ReducerContext, workflow_id: u64, position: u32) -> Vec<WorkflowStep> {
    ctx.db
        .workflow_step()
        .workflow_id()
        .filter(workflow_id)
        .filter(|s| s.status == WAITING && s.needs.contains(&position))
        .collect()
}

/// Ends a step, and the workflow when it was the last open one.
fn close(ctx: &ReducerContext, step: WorkflowStep, status: &str, error: String) {
    let workflow_id = step.workflow_id;
    ctx.db.workflow_step().id().update(WorkflowStep {
        status: status.into(),
        error,
        ..step
    });
    let Some(workflow) = ctx.db.workflow().id().find(workflow_id) else {
        return;
    };
    let open_steps = workflow.open_steps.saturating_sub(1);
    let status = match (open_steps, workflow.status.as_str()) {
        (0, RUNNING) if workflow.error.is_empty() => tasks::SUCCEEDED.to_string(),
        (0, RUNNING) => tasks::FAILED.to_string(),
        _ => workflow.status.clone(),
    };
    let finished_at = (open_steps == 0).then_some(ctx.timestamp);
    ctx.db.workflow().id().update(Workflow {
        open_steps,
        status,
        finished_at,
        ..workflow
    });
}

/// Keeps the first failure's reason (before the failed step closes, so that the
/// workflow's end, if this was its last step, is `failed`).
fn note_failure(ctx: &ReducerContext, workflow_id: u64, reason: String) {
    if let Some(workflow) = ctx.db.workflow().id().find(workflow_id) {
        if workflow.error.is_empty() {
            ctx.db.workflow().id().update(Workflow {
                error: reason,
                ..workflow
            });
        }
    }
}

/// Cancels a running workflow: its running tasks are cancelled (their workers see
/// it) and its waiting steps with them. Submitter only.
#[spacetimedb::reducer]
pub fn cancel_workflow(
    ctx: &ReducerContext,
    call_key: CallKey,
    workflow_id: u64,
    reason: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let workflow = owned_by_caller(ctx, ctx.db.workflow().id().find(workflow_id), workflow_id)?;
    validate::size("cancel reason", reason.len(), tasks::MAX_ERROR_BYTES)?;
    if workflow.status != RUNNING {
        return Err(format!(
            "workflow {workflow_id} has already {}",
            workflow.status
        ));
    }
    ctx.db.workflow().id().update(Workflow {
        status: tasks::CANCELLED.into(),
        error: format!("cancelled: {reason}"),
        ..workflow
    });
    let steps = steps_of(ctx, workflow_id);
    for step in steps {
        if step.status == READY {
            if let Some(task) = ctx.db.task().id().find(step.task_id) {
                tasks::cancel(ctx, task, format!("workflow cancelled: {reason}"));
            }
        }
    }
    let waiting: Vec<WorkflowStep> = ctx
        .db
        .workflow_step()
        .workflow_id()
        .filter(workflow_id)
        .filter(|s| s.status == WAITING)
        .collect();
    for step in waiting {
        close(
            ctx,
            step,
            tasks::CANCELLED,
            format!("workflow cancelled: {reason}"),
        );
    }
    Ok(())
}

/// Deletes a finished workflow of the caller's with its steps and their tasks,
/// giving back the quota they held.
#[spacetimedb::reducer]
pub fn forget_workflow(
    ctx: &ReducerContext,
    call_key: CallKey,
    workflow_id: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let workflow = owned_by_caller(ctx, ctx.db.workflow().id().find(workflow_id), workflow_id)?;
    if workflow.status == RUNNING {
        return Err(format!(
            "workflow {workflow_id} is running; only a finished workflow can be forgotten"
        ));
    }
    let steps = steps_of(ctx, workflow_id);
    let mut payloads = 0;
    for step in steps {
        payloads += step.spec.payload.len();
        if let Some(task) = ctx.db.task().id().find(step.task_id) {
            tasks::forget(ctx, task);
        }
        ctx.db.workflow_step().id().delete(step.id);
    }
    ctx.db.workflow().id().delete(workflow_id);
    quotas::release(
        ctx,
        workflow.submitter,
        Quota::Workflows,
        1,
        quotas::signed(payloads),
    );
    Ok(())
}
