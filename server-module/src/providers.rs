//! Model providers' health and the money spent on them, shared by every process.
//!
//! `provider` has one row per provider (a LiteLLM deployment name): its calls,
//! failures and spend, and a cooldown after a failure during which no call may
//! start on it. `spend` has one row per owner (agent 0) and per owner's agent:
//! what its model calls cost, and an optional budget. Both change only through
//! the ledger's reducers (a call starts: checked here; it ends: recorded here),
//! so every process sees a cooldown or a spent budget as soon as it commits.
//!
//! Money is counted in nano-dollars (1e-9 USD) as integers: cheap models cost
//! a few hundred nano-dollars per token, and integers add up exactly.

use spacetimedb::{Identity, ReducerContext, Table, TimeDuration, Timestamp};

use crate::agents::agent;
use crate::calls::{self, CallKey};
use crate::owned_by_caller;
use crate::validate::{self, MAX_TITLE_BYTES};

/// Longest cooldown a failure report may ask for (one hour).
pub const MAX_COOLDOWN_MS: u64 = 3_600_000;

#[spacetimedb::table(name = provider, public)]
pub struct Provider {
    /// The deployment's name, as the router knows it.
    #[primary_key]
    pub name: String,
    /// The model it serves last time it was called.
    pub model: String,
    pub calls: u64,
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    pub last_error: String,
    /// No call starts on this provider before this time.
    pub cooldown_until: Timestamp,
    pub spent_nano_usd: u64,
    pub updated_at: Timestamp,
}

#[spacetimedb::table(name = spend, public)]
pub struct Spend {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    #[index(btree)]
    pub owner: Identity,
    /// The owner's agent this row counts (0: all of the owner's calls).
    pub agent_id: u64,
    pub calls: u64,
    pub spent_nano_usd: u64,
    /// The most this owner or agent may spend; None: no limit.
    pub budget_nano_usd: Option<u64>,
    pub updated_at: Timestamp,
}

/// Sets (or with None removes) the budget of the caller (`agent_id` 0) or of
/// one of the caller's agents. Calls are refused once it would be exceeded.
#[spacetimedb::reducer]
pub fn set_budget(
    ctx: &ReducerContext,
    call_key: CallKey,
    agent_id: u64,
    budget_nano_usd: Option<u64>,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    if agent_id != 0 {
        owned_by_caller(ctx, ctx.db.agent().id().find(agent_id), agent_id)?;
    }
    let row = spend_row(ctx, ctx.sender, agent_id);
    ctx.db.spend().id().update(Spend {
        budget_nano_usd,
        updated_at: ctx.timestamp,
        ..row
    });
    Ok(())
}

/// Refuses a call that would start on a cooling provider or overrun a budget
/// of the caller or its agent; says which and why.
pub(crate) fn check_call_allowed(
    ctx: &ReducerContext,
    agent_id: u64,
    provider: &str,
    estimate_nano_usd: u64,
) -> Result<(), String> {
    validate::size("provider", provider.len(), MAX_TITLE_BYTES)?;
    if let Some(row) = ctx.db.provider().name().find(provider.to_string()) {
        if row.cooldown_until > ctx.timestamp {
            let left = row
                .cooldown_until
                .time_duration_since(ctx.timestamp)
                .map_or(0, |d| d.to_micros() / 1000);
            return Err(format!(
                "provider '{provider}' is cooling down for {left} ms more after: {}",
                row.last_error
            ));
        }
    }
    let mut scopes = vec![0];
    if agent_id != 0 {
        scopes.push(agent_id);
    }
    for scope in scopes {
        let Some(row) = find_spend(ctx, ctx.sender, scope) else {
            continue;
        };
        if let Some(budget) = row.budget_nano_usd {
            if row.spent_nano_usd.saturating_add(estimate_nano_usd) > budget {
                let whose = if scope == 0 {
                    "the caller".to_string()
                } else {
                    format!("agent {scope}")
                };
                return Err(format!(
                    "budget refused: {whose} has spent {} of its budget of {}, and this call \
                     may cost up to {}",
                    dollars(row.spent_nano_usd),
                    dollars(budget),
                    dollars(estimate_nano_usd)
                ));
            }
        }
    }
    Ok(())
}

/// What one ended call did to its provider and to the caller's spend.
pub(crate) struct CallOutcome<'a> {
    pub agent_id: u64,
    pub provider: &'a str,
    pub model: &'a str,
    pub cost_nano_usd: u64,
    /// The provider's error, if the provider failed.
    pub failure: Option<&'a str>,
    pub cooldown_ms: u64,
}

/// Adds an ended call to its provider's health and to the caller's spend rows.
pub(crate) fn record_call(ctx: &ReducerContext, call: CallOutcome<'_>) -> Result<(), String> {
    if call.cooldown_ms > MAX_COOLDOWN_MS {
        return Err(format!(
            "cooldown is {} ms; the limit is {MAX_COOLDOWN_MS}",
            call.cooldown_ms
        ));
    }
    let now = ctx.timestamp;
    let name = call.provider.to_string();
    let existing = ctx.db.provider().name().find(&name);
    let known = existing.is_some();
    let mut row = existing.unwrap_or(Provider {
        name,
        model: String::new(),
        calls: 0,
        failures: 0,
        consecutive_failures: 0,
        last_error: String::new(),
        cooldown_until: now,
        spent_nano_usd: 0,
        updated_at: now,
    });
    row.model = call.model.to_string();
    row.calls += 1;
    row.spent_nano_usd = row.spent_nano_usd.saturating_add(call.cost_nano_usd);
    row.updated_at = now;
    match call.failure {
        Some(error) => {
            row.failures += 1;
            row.consecutive_failures += 1;
            row.last_error = error.to_string();
            row.cooldown_until = now + TimeDuration::from_micros(call.cooldown_ms as i64 * 1000);
        }
        None => row.consecutive_failures = 0,
    }
    if known {
        ctx.db.provider().name().update(row);
    } else {
        ctx.db.provider().insert(row);
    }

    let mut scopes = vec![0];
    if call.agent_id != 0 {
        scopes.push(call.agent_id);
    }
    for scope in scopes {
        let spend = spend_row(ctx, ctx.sender, scope);
        ctx.db.spend().id().update(Spend {
            calls: spend.calls + 1,
            spent_nano_usd: spend.spent_nano_usd.saturating_add(call.cost_nano_usd),
            updated_at: now,
            ..spend
        });
    }
    Ok(())
}

fn find_spend(ctx: &ReducerContext, owner: Identity, agent_id: u64) -> Option<Spend> {
    ctx.db
        .spend()
        .owner()
        .filter(owner)
        .find(|row| row.agent_id == agent_id)
}

/// The spend row of `owner`'s `agent_id`, created empty if it does not exist yet.
fn spend_row(ctx: &ReducerContext, owner: Identity, agent_id: u64) -> Spend {
    find_spend(ctx, owner, agent_id).unwrap_or_else(|| {
        ctx.db.spend().insert(Spend {
            id: 0,
            owner,
            agent_id,
            calls: 0,
            spent_nano_usd: 0,
            budget_nano_usd: None,
            updated_at: ctx.timestamp,
        })
    })
}

/// Nano-dollars as "$0.000123".
fn dollars(nano_usd: u64) -> String {
    format!(
        "${}.{:06}",
        nano_usd / 1_000_000_000,
        (nano_usd % 1_000_000_000) / 1000
    )
}

#[cfg(test)]
mod tests {
    use super::dollars;

    #[test]
    fn dollars_show_micro_dollars() {
        assert_eq!(dollars(0), "$0.000000");
        assert_eq!(dollars(123_000), "$0.000123");
        assert_eq!(dollars(2_500_000_000), "$2.500000");
    }
}
