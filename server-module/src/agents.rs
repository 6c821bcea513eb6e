//! Agents: named workers with a role, a status and an opaque msgpack state.
//!
//! Names are unique across all owners. `version` starts at 1 and goes up by one
//! on every change, so clients can tell a fresh row from a stale one.

use spacetimedb::{Identity, ReducerContext, Table, Timestamp};

use crate::calls::{self, CallKey};
use crate::validate::{self, MAX_PAYLOAD_BYTES};
use crate::{owned_by_caller, OwnedRow};

#[spacetimedb::table(name = agent, public)]
pub struct Agent {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub owner: Identity,
    #[unique]
    pub name: String,
    pub role: String,
    pub status: String,
    /// Opaque msgpack payload, never interpreted here.
    pub state: Vec<u8>,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl OwnedRow for Agent {
    const KIND: &'static str = "agent";
    fn owner(&self) -> Identity {
        self.owner
    }
}

/// Checks every client-supplied field of an agent row.
fn validate_fields(agent: &Agent) -> Result<(), String> {
    validate::label("agent name", &agent.name)?;
    validate::label("agent role", &agent.role)?;
    validate::label("agent status", &agent.status)?;
    validate::size("agent state", agent.state.len(), MAX_PAYLOAD_BYTES)
}

/// Fails with a readable message (instead of a unique-index panic) if another
/// agent already has this row's name. New rows have id 0, which no stored row has.
fn ensure_name_free(ctx: &ReducerContext, agent: &Agent) -> Result<(), String> {
    match ctx.db.agent().name().find(&agent.name) {
        Some(other) if other.id != agent.id => {
            Err(format!("an agent named '{}' already exists", agent.name))
        }
        _ => Ok(()),
    }
}

/// Validates `agent` and writes it over the stored row with the same id,
/// bumping `version` and `updated_at`.
fn save(ctx: &ReducerContext, mut agent: Agent) -> Result<(), String> {
    validate_fields(&agent)?;
    ensure_name_free(ctx, &agent)?;
    agent.version += 1;
    agent.updated_at = ctx.timestamp;
    ctx.db.agent().id().update(agent);
    Ok(())
}

/// Registers a new agent owned by the caller, with status "idle" and version 1.
/// The name must be unique; name, role and state are size-checked.
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
        state,
        version: 1,
        created_at: ctx.timestamp,
        updated_at: ctx.timestamp,
    };
    validate_fields(&agent)?;
    ensure_name_free(ctx, &agent)?;
    let agent = ctx.db.agent().try_insert(agent)?;
    log::info!(
        "agent {} '{}' registered by {}",
        agent.id,
        agent.name,
        agent.owner
    );
    Ok(())
}

/// Replaces an agent's name, role, status and state. Owner only; the new name
/// must not belong to another agent.
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
    save(
        ctx,
        Agent {
            name,
            role,
            status,
            state,
            ..agent
        },
    )
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
    save(ctx, Agent { status, ..agent })
}

/// Deletes an agent. Owner only.
#[spacetimedb::reducer]
pub fn delete_agent(ctx: &ReducerContext, call_key: CallKey, id: u64) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let agent = owned_by_caller(ctx, ctx.db.agent().id().find(id), id)?;
    ctx.db.agent().id().delete(id);
    log::info!("agent {id} '{}' deleted", agent.name);
    Ok(())
}
