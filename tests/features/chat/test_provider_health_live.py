"""Provider health per reporter, and the private ledger, tried as a hostile identity would.

A stranger ends its own calls as failed with the longest cooldown it may ask for;
it must not stop anyone else's calls or routing. A router heeds only the reports
of the identities it trusts. Nobody but the caller reads its ledger and spend.
"""

from __future__ import annotations

from typing import Any

import pytest

from inner_universe.errors import ReducerError
from inner_universe.features.chat import (
    ChatSession,
    Deployment,
    FlushPolicy,
    ProviderRouter,
    ProvidersFailedError,
    ledger_rows,
)
from inner_universe.features.chat.inserts import OwnInserts
from inner_universe.spacetime.connection import DbConnection
from inner_universe.spacetime.types import Identity
from tests.conftest import until
from tests.features.chat.conftest import READONLY_WARNING, new_conversation

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings(READONLY_WARNING)]

HOUR_MS = 3_600_000  # the longest cooldown the module accepts


def echo(name: str) -> Deployment:
    return Deployment(name, "offline/echo", {"pace": 0})


def large(name: str) -> Deployment:
    return Deployment(name, "offline/large", {"pace": 0})  # ten times echo's price


def session(
    conn: DbConnection, *deployments: Deployment, trust: tuple[Identity, ...] = ()
) -> ChatSession:
    router = ProviderRouter(deployments, trust=trust)
    return ChatSession(conn, router, policy=FlushPolicy(max_chars=64, max_delay=0.01))


async def fail_with_cooldown(conn: DbConnection, provider: str) -> None:
    """End one call of ``conn``'s own on ``provider`` as failed, cooling it for an hour."""
    await conn.subscribe(f"SELECT * FROM model_call WHERE caller = 0x{identity(conn).to_hex()}")
    call = await OwnInserts(conn).call(
        "begin_model_call", "model_call", 0, 0, provider, "m", 1, 0, 0
    )
    await conn.reducers.end_model_call(call.id, "failed", 1, 0, 0, None, 1, "down!", HOUR_MS)


def identity(conn: DbConnection) -> Identity:
    assert conn.identity is not None
    return conn.identity


async def test_a_strangers_cooldown_stops_neither_the_module_nor_anothers_router(
    alice: DbConnection, bob: DbConnection
) -> None:
    await fail_with_cooldown(bob, "popular")
    # Bob's own calls on it are refused: his report binds him.
    with pytest.raises(
        ReducerError, match=r"'popular' is cooling down for .* ms more after: down!"
    ):
        await bob.reducers.begin_model_call(0, 0, "popular", "m", 1, 0, 0)
    # Alice's router, trusting only herself, routes to it, and the module lets her call.
    chat = session(alice, echo("popular"), large("pricier"))
    reply = await chat.reply(await new_conversation(alice), script="still here")
    assert (reply.status, reply.provider, reply.errors) == ("done", "popular", {})
    assert chat.cooling() == {}


async def test_a_router_that_trusts_another_identity_heeds_its_cooldowns(
    alice: DbConnection, bob: DbConnection
) -> None:
    await fail_with_cooldown(bob, "shared-cheap")
    trusting = session(alice, echo("shared-cheap"), large("shared-big"), trust=(identity(bob),))
    conversation = await new_conversation(alice)
    reply = await trusting.reply(conversation, script="routed around")
    assert (reply.status, reply.provider) == ("done", "shared-big")  # the cheap one was skipped
    assert trusting.cooling() == {
        "shared-cheap": f"down! (reported by {identity(bob).to_hex()[:8]})"
    }
    calls = await ledger_rows(alice, f"message_id = {reply.message_id}")
    assert [call.provider for call in calls] == ["shared-big"]  # never tried

    # With every deployment cooling for a trusted reporter, nothing is called.
    only = session(alice, echo("shared-cheap"), trust=(identity(bob),))
    with pytest.raises(ProvidersFailedError, match="shared-cheap: cooling down after: down!"):
        await only.reply(conversation, script="no")


def test_trust_takes_identities() -> None:
    with pytest.raises(Exception, match="trust takes Identity values"):
        ProviderRouter([echo("x")], trust=["not an identity"])  # type: ignore[list-item]


async def test_a_stranger_reads_none_of_the_ledger_or_spend(
    alice: DbConnection, bob: DbConnection
) -> None:
    seen: list[Any] = []
    bob.db.model_call.on_insert(lambda _ctx, row: seen.append(row))
    bob.db.spend.on_insert(lambda _ctx, row: seen.append(row))
    await bob.subscribe("SELECT * FROM model_call", "SELECT * FROM spend", "SELECT * FROM provider")
    chat = session(alice, echo("private-ledger"))
    reply = await chat.reply(await new_conversation(alice), script="my business")
    (call,) = await ledger_rows(alice, f"message_id = {reply.message_id}")
    assert call.caller == identity(alice) and call.status == "done"
    assert any(
        row.calls == 1 for row in (await alice.one_off_query("SELECT * FROM spend"))["spend"]
    )

    # Bob's own call commits after alice's: once he sees it, he has seen all he will of hers.
    await fail_with_cooldown(bob, "barrier")
    await until(lambda: any(row.caller == identity(bob) for row in bob.db.model_call.iter()))
    assert all(getattr(row, "caller", None) == identity(bob) for row in bob.db.model_call.iter())
    assert all(getattr(row, "owner", identity(bob)) == identity(bob) for row in seen)
    assert [row for row in seen if getattr(row, "caller", None) == identity(alice)] == []
    assert await ledger_rows(bob, f"message_id = {reply.message_id}") == []
    spend = (await bob.one_off_query("SELECT * FROM spend"))["spend"]
    assert {row.owner for row in spend} == {identity(bob)}
    # Health is public: bob sees that alice called the provider, and nothing of what it cost.
    (health,) = [row for row in bob.db.provider.iter() if row.owner == identity(alice)]
    assert (health.name, health.calls, health.failures) == ("private-ledger", 1, 0)
    assert not hasattr(health, "spent_nano_usd")
