//! Agents: named workers with a role, a status and an opaque msgpack state.
//!
//! The `agent` row (name, role, status, version) is readable by every client;
//! the state lives in `agent_state`, readable by the agent's owner only.
//! Names are unique per owner: two identities may each have a "planner", and
//! no identity can take a name away from another. `version` starts at 1 and
//! goes up by one on every change, so clients can tell a fresh row from a stale one.
//! Each identity holds at most [`Quota::Agents`] agents.

use spacetimedb::{client_visibility_filter, Filter};
use spacetimedb::{Identity, ReducerContext, Table, Timestamp};

use crate::calls::{self, CallKey};
use crate::quotas::{self, Quota};
use crate::validate::{self, MAX_PAYLOAD_BYTES};
use crate::{owned_by_caller, OwnedRow};

#[derive(Clone)]
#[spacetimedb::table(
    name = agent,
    public,
    index(name = by_owner_name, btree(columns = [owner, name]))
)]
pub struct Agent {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub owner: Identity,
    /// Unique among the owner's agents.
    #[index(btree)]
    pub name: String,
    pub role: String,
    pub status: String,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An agent's opaque msgpack state, never interpreted here; only its owner reads it.
#[spacetimedb::table(name = agent_state, public)]
pub struct AgentState {
    #[primary_key]
    pub agent_id: u64,
    #[index(btree)]
    pub owner: Identity,
    pub state: Vec<u8>,
}

#[client_visibility_filter]
const AGENT_STATE_OF_ITS_OWNER: Filter =
    Filter::Sql("SELECT * FROM agent_state WHERE owner = :sender");

impl OwnedRow for Agent {
    const KIND: &'static str = "agent";
    fn owner(&self) -> Identity {
        self.owner
    }
}

impl Agent {
    /// What the row counts against its owner's byte quota (its state counts apart).
    fn bytes(&self) -> usize {
        self.name.len() + self.role.len() + self.status.len()
    }
}

/// Checks every client-supplied field of an agent row, and its state.
fn validate_fields(agent: &Agent, state: &[u8]) -> Result<(), String> {
    validate::label("agent name", &agent.name)?;
    validate::label("agent role", &agent.role)?;
    validate::label("agent status", &agent.status)?;
    validate::size("agent state", state.len(), MAX_PAYLOAD_BYTES)
}

/// Fails if another agent of the same owner already has this row's name.
/// New rows have id 0, which no stored row has.
fn ensure_name_free(ctx: &ReducerContext, agent: &Agent) -> Result<(), String> {
    let same_name = ctx
        .db
        .agent()
        .by_owner_name()
        .filter((&agent.owner, agent.name.as_str()))
        .find(|other| other.id != agent.id);
    match same_name {
        Some(_) => Err(format!("you already have an agent named '{}'", agent.name)),
        None => Ok(()),
    }
}

/// The stored state of an agent (empty if, impossibly, it has none).
fn state_of(ctx: &ReducerContext, id: u64) -> Vec<u8> {
    ctx.db
        .agent_state()
        .agent_id()
        .find(id)
        .map_or_else(Vec::new, |s| s.state)
}

/// Validates `agent` (and its new `state`, if it changes) and writes it over
/// `old`, the stored row with the same id, bumping `version` and `updated_at`.
fn save(
    ctx: &ReducerContext,
    old: &Agent,
    mut agent: Agent,
    state: Option<Vec<u8>>,
) -> Result<(), String> {
    let old_state_len = state.as_ref().map_or(0, |_| state_of(ctx, agent.id).len());
    validate_fields(&agent, state.as_deref().unwrap_or_default())?;
    ensure_name_free(ctx, &agent)?;
    let new_state_len = state.as_ref().map_or(0, Vec::len);
    let bytes = quotas::delta(old.bytes() + old_state_len, agent.bytes() + new_state_len);
    quotas::charge(ctx, agent.owner, Quota::Agents, 0, bytes)?;
    agent.version += 1;
    agent.updated_at = ctx.timestamp;
    if let Some(state) = state {
        ctx.db.agent_state().agent_id().update(AgentState {
            agent_id: agent.id,
            owner: agent.owner,
            state,
        });
    }
    ctx.db.agent().id().update(agent);
    Ok(())
}

/// Checks that `agent_id` names one of the caller's agents; 0 (no agent) passes.
pub(crate) fn check_own_or_none(ctx: &ReducerContext, agent_id: u64) -> Result<(), String> {
    if agent_id != 0 {
        owned_by_caller(ctx, ctx.db.agent().id().find(agent_id), agent_id)?;
    }
    Ok(())
}

/// Registers a new agent owned by the caller, with status "idle" and version 1.
/// The name must be new among the caller's agents; name, role and state are size-checked.
#[spacetimedb::reducer]
pub fn register_agent(
    ctx: &ReducerContext,
    call_key: CallKey,
    name: String,
    role: String,
    state: Vec<u8>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let agent = Agent {
        id: 0,
        owner: ctx.sender,
        name,
        role,
        status: "idle".to_string(),
        version: 1,
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    };
    validate_fields(&agent, &state)?;
    ensure_name_free(ctx, &agent)?;
    let bytes = quotas::signed(agent.bytes() + state.len());
    quotas::charge(ctx, agent.owner, Quota::Agents, 1, bytes)?;
    let agent = ctx.db.agent().try_insert(agent)?;
    ctx.db.agent_state().insert(AgentState {
        agent_id: agent.id,
        owner: agent.owner,
        state,
    });
    log::info!(
        "agent {} '{}' registered by {}",
        agent.id,
        agent.name,
        agent.owner
    );
    Ok(())
}

/// Replaces an agent's name, role, status and state. Owner only; the new name
/// must not belong to another of the owner's agents.
#[spacetimedb::reducer]
pub fn update_agent(
    ctx: &ReducerContext,
    call_key: CallKey,
    id: u64,
    name: String,
    role: String,
    status: String,
    state: Vec<u8>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let agent = owned_by_caller(ctx, ctx.db.agent().id().find(id), id)?;
    let new = Agent {
        name,
        role,
        status,
        ..agent.clone()
    };
    save(ctx, &agent, new, Some(state))
}

/// Changes only an agent's status (the common case while it works). Owner only.
#[spacetimedb::reducer]
pub fn set_agent_status(
    ctx: &ReducerContext,
    call_key: CallKey,
    id: u64,
    status: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let agent = owned_by_caller(ctx, ctx.db.agent().id().find(id), id)?;
    let new = Agent {
        status,
        ..agent.clone()
    };
    save(ctx, &agent, new, None)
}

/// Deletes an agent and its state. Owner only.
#[spacetimedb::reducer]
pub fn delete_agent(ctx: &ReducerContext, call_key: CallKey, id: u64) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let agent = owned_by_caller(ctx, ctx.db.agent().id().find(id), id)?;
    let bytes = quotas::signed(agent.bytes() + state_of(ctx, id).len());
    quotas::release(ctx, agent.owner, Quota::Agents, 1, bytes);
    ctx.db.agent_state().agent_id().delete(id);
    ctx.db.agent().id().delete(id);
    log::info!("agent {id} '{}' deleted", agent.name);
    Ok(())
}
