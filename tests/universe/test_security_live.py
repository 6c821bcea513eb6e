"""The module's security model against a real server, tried as a stranger would.

Two or three identities act on each other's rows: participants and roles in
conversations, what each can read (subscriptions and one-off queries alike),
quotas, bounded deletion, and agent names per owner. Each test would have failed
before the model existed.
"""

from __future__ import annotations

from typing import Any

import pytest

from inner_universe.errors import ReducerError
from inner_universe.spacetime.connection import DbConnection
from tests.conftest import PublishedDatabase, until

pytestmark = pytest.mark.integration


def _count(db: PublishedDatabase, sql: str) -> int:
    [result] = db.server.sql(db.name, sql)
    return len(result["rows"])


async def _mine(conn: DbConnection, table: str) -> Any:
    """The newest row of ``table`` the caller owns (read with a one-off query)."""
    rows = (await conn.one_off_query(f"SELECT * FROM {table}"))[table]
    return max((r for r in rows if r.owner == conn.identity), key=lambda r: r.id)


# --- conversations: participants and roles ------------------------------------------------


async def test_a_stranger_cannot_post_into_a_conversation(
    ab: tuple[DbConnection, DbConnection], fresh_db: PublishedDatabase
) -> None:
    a, b = ab
    await a.reducers.create_conversation("a's")
    conversation = await _mine(a, "conversation")
    for role in ("user", "tool", "assistant", "system"):
        with pytest.raises(ReducerError, match="not a participant"):
            await b.reducers.post_message(conversation.id, role, "injected")
    assert _count(fresh_db, "SELECT * FROM message") == 0


async def test_roles_are_what_the_owner_admitted(
    ab: tuple[DbConnection, DbConnection], fresh_db: PublishedDatabase
) -> None:
    a, b = ab
    await a.reducers.create_conversation("roles")
    conversation = await _mine(a, "conversation")
    await a.reducers.admit_participant(conversation.id, b.identity, ["user", "tool"])
    await b.reducers.post_message(conversation.id, "user", "hello")
    for role in ("system", "assistant"):
        with pytest.raises(ReducerError, match=f"not admitted you to post as '{role}'"):
            await b.reducers.post_message(conversation.id, role, "I am the system now")
    with pytest.raises(ReducerError, match="belongs to another identity"):
        await b.reducers.admit_participant(conversation.id, b.identity, ["system"])
    await a.reducers.admit_participant(conversation.id, b.identity, ["assistant"])
    await b.reducers.post_message(conversation.id, "assistant", "answer")
    with pytest.raises(ReducerError, match="not admitted you to post as 'user'"):
        await b.reducers.post_message(conversation.id, "user", "no longer")
    # Removed, b can neither post nor keep streaming into its earlier message.
    [message] = [
        m
        for m in (await b.one_off_query("SELECT * FROM message"))["message"]
        if m.role == "assistant"
    ]
    await a.reducers.remove_participant(conversation.id, b.identity)
    with pytest.raises(ReducerError, match="not a participant"):
        await b.reducers.append_message(message.id, " and more")
    with pytest.raises(ReducerError, match="cannot be removed"):
        await a.reducers.remove_participant(conversation.id, a.identity)
    roles = sorted(
        r[0] for r in fresh_db.server.sql(fresh_db.name, "SELECT role FROM message")[0]["rows"]
    )
    assert roles == ["assistant", "user"]


async def test_the_exported_helpers_agree_with_the_reducers(
    ab: tuple[DbConnection, DbConnection],
) -> None:
    a, b = ab
    await a.reducers.create_conversation("owner speaks every role")
    conversation = await _mine(a, "conversation")
    for role in ("user", "assistant", "system", "tool"):
        await a.reducers.post_message(conversation.id, role, role)
    with pytest.raises(ReducerError, match="is not one of"):
        await a.reducers.post_message(conversation.id, "root", "x")
    with pytest.raises(ReducerError, match="no conversation with id 999"):
        await b.reducers.post_message(999, "user", "x")


# --- visibility --------------------------------------------------------------------------


async def test_a_stranger_cannot_read_private_rows(
    ab: tuple[DbConnection, DbConnection], fresh_db: PublishedDatabase
) -> None:
    a, b = ab
    await a.reducers.register_agent("spy", "watching", b"secret state")
    await a.reducers.create_private_document("diary", "secret", b"")
    await a.reducers.create_document("notice", "public", b"")
    await a.reducers.create_private_conversation("plans")
    await a.reducers.create_conversation("lobby")
    conversations = (await a.one_off_query("SELECT * FROM conversation"))["conversation"]
    by_title = {c.title: c for c in conversations}
    assert set(by_title) == {"plans", "lobby"}
    await a.reducers.post_message(by_title["plans"].id, "user", "secret plan")
    await a.reducers.post_message(by_title["lobby"].id, "user", "hi all")

    queries = {
        "document": "SELECT * FROM document",
        "conversation": "SELECT * FROM conversation",
        "message": "SELECT * FROM message",
        "session": "SELECT * FROM session",
        "agent": "SELECT * FROM agent",
        "agent_state": "SELECT * FROM agent_state",
        "conversation_participant": "SELECT * FROM conversation_participant",
    }
    seen_once = {t: (await b.one_off_query(q))[t] for t, q in queries.items()}
    await b.subscribe(*queries.values())
    for table, rows in seen_once.items():
        live = list(b.db[table])
        assert sorted(map(repr, live)) == sorted(map(repr, rows)), table
    assert [d.title for d in b.db.document] == ["notice"]
    assert [c.title for c in b.db.conversation] == ["lobby"]
    assert [m.content for m in b.db.message] == ["hi all"]
    assert {s.identity for s in b.db.session} == {b.identity}
    assert [x.name for x in b.db.agent] == ["spy"] and len(b.db.agent_state) == 0
    lobby, plans = by_title["lobby"].id, by_title["plans"].id
    assert [p.conversation_id for p in b.db.conversation_participant] == [lobby]
    [state] = (await a.one_off_query("SELECT * FROM agent_state"))["agent_state"]
    assert state.state == b"secret state"
    # The owner sees everything it owns; the rows exist (SQL as the database owner).
    assert len((await a.one_off_query("SELECT * FROM document"))["document"]) == 2
    assert _count(fresh_db, "SELECT * FROM message") == 2

    # Admitted to the private conversation, b reads what it writes there, nothing more;
    # the owner reads everything.
    await a.reducers.admit_participant(plans, b.identity, ["user"])
    await b.reducers.post_message(plans, "user", "b's idea")
    await until(lambda: len(b.db.message) == 2)
    assert sorted(m.content for m in b.db.message) == ["b's idea", "hi all"]
    assert [c.title for c in b.db.conversation] == ["lobby"]
    mine = [(p.conversation_id, p.identity) for p in b.db.conversation_participant]
    assert sorted(mine) == sorted([(lobby, a.identity), (plans, b.identity)])
    seen_by_a = await a.one_off_query(f"SELECT * FROM message WHERE conversation_id = {plans}")
    assert sorted(m.content for m in seen_by_a["message"]) == ["b's idea", "secret plan"]


# --- quotas, bounded work, names ------------------------------------------------------------


async def test_quotas_stop_an_identity_with_a_clear_error(
    ab: tuple[DbConnection, DbConnection], fresh_db: PublishedDatabase
) -> None:
    a, b = ab
    # Agents' bytes run out at 16 MiB (here, of state); b's quota is its own.
    # (Row quotas: tests/nerv/test_store_security.py runs an identity out of stores.)
    state = bytes(1024 * 1024)
    for i in range(15):
        await a.reducers.register_agent(f"heavy-{i}", "r", state)
    with pytest.raises(ReducerError, match=r"quota reached: .*agents would take \d+ bytes"):
        await a.reducers.register_agent("heavy-15", "r", state)
    await b.reducers.register_agent("heavy-0", "r", state)
    usage = (await a.one_off_query("SELECT * FROM quota_usage"))["quota_usage"]
    assert [(u.owner, u.kind, u.rows) for u in usage] == [(a.identity, "agents", 15)]
    # Deleting gives quota back.
    heavy = await _mine(a, "agent")
    await a.reducers.delete_agent(heavy.id)
    await a.reducers.register_agent("heavy-15", "r", state)
    assert _count(fresh_db, "SELECT * FROM agent") == 16


async def test_agent_names_are_unique_per_owner(
    ab: tuple[DbConnection, DbConnection], fresh_db: PublishedDatabase
) -> None:
    a, b = ab
    await a.reducers.register_agent("planner", "planning", b"")
    await b.reducers.register_agent("planner", "planning", b"")  # no squatting across owners
    with pytest.raises(ReducerError, match="you already have an agent named 'planner'"):
        await a.reducers.register_agent("planner", "other", b"")
    assert _count(fresh_db, "SELECT * FROM agent WHERE name = 'planner'") == 2


async def test_deleting_a_long_conversation_is_done_in_bounded_batches(
    ab: tuple[DbConnection, DbConnection], fresh_db: PublishedDatabase
) -> None:
    a, _ = ab
    await a.reducers.create_conversation("long")
    conversation = await _mine(a, "conversation")
    posts = [a.reducers.post_message(conversation.id, "user", f"m{i}") for i in range(2500)]
    for post in posts:
        await post
    await a.reducers.delete_conversation(conversation.id)
    # The call deleted the conversation and the first 1,000 messages; scheduled
    # transactions delete the rest, 1,000 at a time.
    assert _count(fresh_db, "SELECT * FROM conversation") == 0
    await until(lambda: _count(fresh_db, "SELECT * FROM message") == 0, timeout=30)
    usage = (await a.one_off_query("SELECT * FROM quota_usage"))["quota_usage"]
    assert {u.kind: u.rows for u in usage} == {"conversations": 0, "messages": 0}
