//! The model-call ledger: every call to a model is one row, from its start to its outcome.
//!
//! `begin_model_call` is where a call is allowed or refused (a provider the
//! caller's calls cooled, a spent budget: see [`crate::providers`]), atomically
//! with recording it; `end_model_call` records what it did (tokens, cost,
//! latency to the first token, duration, outcome) and adds it to the caller's
//! health row of the provider and the caller's spend in the same transaction. Rows stay until their caller forgets
//! them, so spend per agent, provider or day can be recomputed from them.
//!
//! Only the caller reads its rows: who called which model, when, at what cost,
//! for which (perhaps private) message is its own business.

use spacetimedb::{client_visibility_filter, Filter};
use spacetimedb::{Identity, ReducerContext, Table, Timestamp};

use crate::agents;
use crate::calls::{self, CallKey};
use crate::providers::{self, CallOutcome};
use crate::quotas::{self, Quota};
use crate::streams::{stream, STREAMING};
use crate::validate;
use crate::{owned_by_caller, OwnedRow};

/// A call that has started and not ended.
pub const RUNNING: &str = "running";
/// The outcomes a call may end with.
pub const OUTCOMES: [&str; 3] = ["done", "failed", "cancelled"];
/// Errors are cut to this many bytes.
pub const MAX_ERROR_BYTES: usize = 1024;

#[spacetimedb::table(name = model_call, public)]
pub struct ModelCall {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// Who asked. Indexed on its own: the visibility filter selects by it.
    #[index(btree)]
    pub caller: Identity,
    /// For which of the caller's agents (0: none).
    #[index(btree)]
    pub agent_id: u64,
    /// The streamed message this call writes (0: none).
    #[index(btree)]
    pub message_id: u64,
    pub provider: String,
    pub model: String,
    /// Bytes of the reply already written before this call: > 0 when it
    /// continues a stream another provider started (a fallback).
    pub resumed_from: u64,
    /// [`RUNNING`], then one of [`OUTCOMES`].
    pub status: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_nano_usd: u64,
    /// Milliseconds from the start to the first token (None: no token came).
    pub first_token_ms: Option<u64>,
    pub duration_ms: u64,
    pub error: String,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

/// Each identity sees only its own calls.
#[client_visibility_filter]
const MODEL_CALLS_OF_THEIR_CALLER: Filter =
    Filter::Sql("SELECT * FROM model_call WHERE caller = :sender");

impl OwnedRow for ModelCall {
    const KIND: &'static str = "model call";
    fn owner(&self) -> Identity {
        self.caller
    }
}

/// Records the start of a model call, or refuses it with the reason: the
/// caller's own calls put the provider in cooldown, or the caller's or agent's
/// budget would be exceeded by `estimate_nano_usd`. `message_id` (0: none) must
/// be a stream of the caller's that is still streaming and has no other call
/// running. Creates the caller's health row of the provider if it has none.
#[spacetimedb::reducer]
#[allow(clippy::too_many_arguments)] // the ledger row's fields, checked in one transaction
pub fn begin_model_call(
    ctx: &ReducerContext,
    call_key: CallKey,
    message_id: u64,
    agent_id: u64,
    provider: String,
    model: String,
    tokens_in: u64,
    estimate_nano_usd: u64,
    resumed_from: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    agents::check_own_or_none(ctx, agent_id)?;
    if message_id != 0 {
        let stream = owned_by_caller(
            ctx,
            ctx.db.stream().message_id().find(message_id),
            message_id,
        )?;
        if stream.status != STREAMING {
            return Err(format!(
                "stream of message {message_id} is {}: no model call may start on it",
                stream.status
            ));
        }
        if let Some(running) = ctx
            .db
            .model_call()
            .message_id()
            .filter(message_id)
            .find(|call| call.status == RUNNING)
        {
            return Err(format!(
                "message {message_id} already has model call {} running",
                running.id
            ));
        }
    }
    validate::title("provider", &provider)?;
    validate::title("model", &model)?;
    providers::check_call_allowed(ctx, agent_id, &provider, estimate_nano_usd)?;
    let bytes = quotas::signed(provider.len() + model.len());
    quotas::charge(ctx, ctx.sender, Quota::ModelCalls, 1, bytes)?;
    providers::ensure_provider(ctx, &provider)?;
    ctx.db.model_call().insert(ModelCall {
        id: 0,
        caller: ctx.sender,
        agent_id,
        message_id,
        provider,
        model,
        resumed_from,
        status: RUNNING.into(),
        tokens_in,
        tokens_out: 0,
        cost_nano_usd: 0,
        first_token_ms: None,
        duration_ms: 0,
        error: String::new(),
        started_at: ctx.timestamp,
        ended_at: None,
    });
    Ok(())
}

/// Records how a running call ended (caller only, once). A failed call puts
/// its provider in cooldown for `cooldown_ms`, in the caller's own health row
/// (other identities' calls are not refused); every call adds its cost to the
/// caller's spend.
#[spacetimedb::reducer]
#[allow(clippy::too_many_arguments)] // the ledger row's fields, recorded in one transaction
pub fn end_model_call(
    ctx: &ReducerContext,
    call_key: CallKey,
    call_id: u64,
    outcome: String,
    tokens_in: u64,
    tokens_out: u64,
    cost_nano_usd: u64,
    first_token_ms: Option<u64>,
    duration_ms: u64,
    error: String,
    cooldown_ms: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let call = owned_by_caller(ctx, ctx.db.model_call().id().find(call_id), call_id)?;
    if call.status != RUNNING {
        return Err(format!(
            "model call {call_id} already ended as {}",
            call.status
        ));
    }
    if !OUTCOMES.contains(&outcome.as_str()) {
        return Err(format!(
            "outcome '{outcome}' is not one of {}",
            OUTCOMES.join(", ")
        ));
    }
    let error = validate::truncate(&error, MAX_ERROR_BYTES);
    quotas::charge(
        ctx,
        ctx.sender,
        Quota::ModelCalls,
        0,
        quotas::signed(error.len()),
    )?;
    providers::record_call(
        ctx,
        CallOutcome {
            agent_id: call.agent_id,
            provider: &call.provider,
            model: &call.model,
            cost_nano_usd,
            failure: (outcome == "failed").then_some(error.as_str()),
            cooldown_ms,
        },
    )?;
    ctx.db.model_call().id().update(ModelCall {
        status: outcome,
        tokens_in,
        tokens_out,
        cost_nano_usd,
        first_token_ms,
        duration_ms,
        error,
        ended_at: Some(ctx.timestamp),
        ..call
    });
    Ok(())
}

/// Deletes an ended model call of the caller's from the ledger, giving its quota
/// back. What it cost stays counted in `spend`, and its outcome in `provider`.
#[spacetimedb::reducer]
pub fn forget_model_call(
    ctx: &ReducerContext,
    call_key: CallKey,
    call_id: u64,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let call = owned_by_caller(ctx, ctx.db.model_call().id().find(call_id), call_id)?;
    if call.status == RUNNING {
        return Err(format!(
            "model call {call_id} is running; only an ended call can be forgotten"
        ));
    }
    ctx.db.model_call().id().delete(call_id);
    let bytes = quotas::signed(call.provider.len() + call.model.len() + call.error.len());
    quotas::release(ctx, call.caller, Quota::ModelCalls, 1, bytes);
    Ok(())
}
