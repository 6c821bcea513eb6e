//! Model providers' health as each identity saw it, and the money each identity spent.
//!
//! `provider` has one row per reporter and provider (a LiteLLM deployment name):
//! the calls that identity made on it, their failures, and a cooldown after a
//! failure during which that identity's calls may not start on it. Only the
//! reporter's own calls write its row, and `begin_model_call` looks only at the
//! caller's row, so no identity can stop another's calls. The rows are public:
//! processes that trust each other's reports (the Python router chooses whom it
//! trusts) read them and route alike. They hold no money.
//!
//! `spend` has one row per owner (agent 0) and per owner's agent: what its model
//! calls cost, and an optional budget. Only its owner reads it. Both tables
//! change only through the ledger's reducers (a call starts: checked here; it
//! ends: recorded here), so every process sees a cooldown or a spent budget as
//! soon as it commits.
//!
//! Money is counted in nano-dollars (1e-9 USD) as integers: cheap models cost
//! a few hundred nano-dollars per token, and integers add up exactly.

use spacetimedb::{client_visibility_filter, Filter};
use spacetimedb::{Identity, ReducerContext, Table, TimeDuration, Timestamp};

use crate::agents;
use crate::calls::{self, CallKey};
use crate::ledger::MAX_ERROR_BYTES;
use crate::quotas::{self, Quota};
use crate::validate::{self, MAX_TITLE_BYTES};

/// Longest cooldown a failure report may ask for (one hour).
pub const MAX_COOLDOWN_MS: u64 = 3_600_000;

/// One identity's experience of one provider.
#[spacetimedb::table(
    name = provider,
    public,
    index(name = by_owner_name, btree(columns = [owner, name]))
)]
pub struct Provider {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// The identity whose calls this row reports (the only one that writes it).
    #[index(btree)]
    pub owner: Identity,
    /// The deployment's name, as the router knows it.
    pub name: String,
    /// The model it served the last time it was called.
    pub model: String,
    pub calls: u64,
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    pub last_error: String,
    /// The owner's calls do not start on this provider before this time.
    pub cooldown_until: Timestamp,
    pub updated_at: Timestamp,
}

#[spacetimedb::table(name = spend, public)]
pub struct Spend {
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// Indexed on its own: the visibility filter selects by it.
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

/// Each identity sees only its own spend and budgets.
#[client_visibility_filter]
const SPEND_OF_ITS_OWNER: Filter = Filter::Sql("SELECT * FROM spend WHERE owner = :sender");

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
    agents::check_own_or_none(ctx, agent_id)?;
    let row = spend_row(ctx, ctx.sender, agent_id);
    ctx.db.spend().id().update(Spend {
        budget_nano_usd,
        updated_at: ctx.timestamp,
        ..row
    });
    Ok(())
}

/// Deletes the caller's row of provider `name` (its counts and any cooldown),
/// giving its quota back. Other identities' rows of that name stay.
#[spacetimedb::reducer]
pub fn forget_provider(
    ctx: &ReducerContext,
    call_key: CallKey,
    name: String,
) -> Result<(), String> {
    if !calls::first_call(ctx, &call_key)? {
        return Ok(());
    }
    let Some(row) = own_provider(ctx, &name) else {
        return Err(format!("no provider '{name}' in the caller's health rows"));
    };
    ctx.db.provider().id().delete(row.id);
    quotas::release(ctx, ctx.sender, Quota::Providers, 1, provider_bytes(&name));
    Ok(())
}

/// Refuses a call that would start on a provider the caller itself has put in
/// cooldown, or overrun a budget of the caller or its agent; says which and why.
/// Other identities' reports never refuse a call (the router may heed them).
pub(crate) fn check_call_allowed(
    ctx: &ReducerContext,
    agent_id: u64,
    provider: &str,
    estimate_nano_usd: u64,
) -> Result<(), String> {
    validate::size("provider", provider.len(), MAX_TITLE_BYTES)?;
    if let Some(row) = own_provider(ctx, provider) {
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

/// Makes sure the caller has a health row for `provider` (a call is starting on
/// it), charging the providers quota for a new one.
pub(crate) fn ensure_provider(ctx: &ReducerContext, provider: &str) -> Result<(), String> {
    if own_provider(ctx, provider).is_some() {
        return Ok(());
    }
    quotas::charge(
        ctx,
        ctx.sender,
        Quota::Providers,
        1,
        provider_bytes(provider),
    )?;
    ctx.db.provider().insert(Provider {
        id: 0,
        owner: ctx.sender,
        name: provider.to_string(),
        model: String::new(),
        calls: 0,
        failures: 0,
        consecutive_failures: 0,
        last_error: String::new(),
        cooldown_until: ctx.timestamp,
        updated_at: ctx.timestamp,
    });
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

/// Adds an ended call to the caller's health row of its provider (unless the
/// caller forgot that row meanwhile) and to the caller's spend rows.
pub(crate) fn record_call(ctx: &ReducerContext, call: CallOutcome<'_>) -> Result<(), String> {
    if call.cooldown_ms > MAX_COOLDOWN_MS {
        return Err(format!(
            "cooldown is {} ms; the limit is {MAX_COOLDOWN_MS}",
            call.cooldown_ms
        ));
    }
    let now = ctx.timestamp;
    if let Some(mut row) = own_provider(ctx, call.provider) {
        row.model = call.model.to_string();
        row.calls += 1;
        row.updated_at = now;
        match call.failure {
            Some(error) => {
                row.failures += 1;
                row.consecutive_failures += 1;
                row.last_error = error.to_string();
                row.cooldown_until =
                    now + TimeDuration::from_micros(call.cooldown_ms as i64 * 1000);
            }
            None => row.consecutive_failures = 0,
        }
        ctx.db.provider().id().update(row);
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

/// The caller's health row of provider `name`, if it has one.
fn own_provider(ctx: &ReducerContext, name: &str) -> Option<Provider> {
    ctx.db
        .provider()
        .by_owner_name()
        .filter((&ctx.sender, name))
        .next()
}

/// What a provider row counts against the quota: the most its texts can hold
/// (its name, a model name, an error), so later updates never go over.
fn provider_bytes(name: &str) -> i64 {
    quotas::signed(name.len() + MAX_TITLE_BYTES + MAX_ERROR_BYTES)
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
