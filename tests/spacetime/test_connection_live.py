"""The SDK against a real local SpacetimeDB with the Inner Universe module published.

Two connections with different identities act on shared rows; every assertion is
about what the real server did and what each client's replica shows.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from inner_universe.errors import (
    ArgumentError,
    ConnectError,
    QueryError,
    ReducerError,
    SchemaError,
    SubscriptionRejectedError,
)
from inner_universe.spacetime.call_keys import PreparedCall
from inner_universe.spacetime.connection import (
    CallOptions,
    ConnectionBuilder,
    DbConnection,
    connect,
)
from inner_universe.spacetime.events import EventContext, ReducerEvent, SubscribeAppliedEvent
from inner_universe.spacetime.transport import Transport, WebSocketTransport
from tests.conftest import PublishedDatabase, until

pytestmark = pytest.mark.integration


async def test_two_identities_see_each_others_changes(universe_db: PublishedDatabase) -> None:
    async with (
        connect(universe_db.uri, universe_db.name) as a,
        connect(universe_db.uri, universe_db.name) as b,
    ):
        assert a.identity != b.identity
        inserted: list[Any] = []
        updated: list[tuple[Any, Any]] = []
        b.db.agent.on_insert(lambda ctx, row: inserted.append(row))
        b.db.agent.on_update(lambda ctx, old, new: updated.append((old, new)))
        await a.subscribe("SELECT * FROM agent")
        await b.subscribe("SELECT * FROM agent")

        event = await a.reducers.register_agent("alpha", "planning", b"\x80")
        assert isinstance(event, ReducerEvent) and event.committed
        assert event.caller_identity == a.identity
        await until(lambda: inserted)
        row = inserted[0]
        assert [row] == a.db.agent.filter("name", "alpha")
        assert (row.name, row.role, row.owner, row.version, row.status) == (
            "alpha",
            "planning",
            a.identity,
            1,
            "idle",
        )

        await a.reducers.set_agent_status(row.id, "busy")
        await until(lambda: updated)
        old, new = updated[0]
        assert (old.status, new.status) == ("idle", "busy")
        assert (old.version, new.version) == (1, 2)
        assert b.db.agent.find("id", row.id) == new

        # B does not own the agent: the module refuses and nothing changes anywhere.
        with pytest.raises(ReducerError) as refused:
            await b.reducers.set_agent_status(row.id, "hijacked")
        assert "belongs to another identity" in refused.value.message
        with pytest.raises(ReducerError):
            await b.reducers.delete_agent(row.id)
        await a.reducers.set_agent_status(row.id, "busy-again")  # a later commit, as a barrier
        await until(lambda: b.db.agent.find("id", row.id).status == "busy-again")
        final = b.db.agent.find("id", row.id)
        assert final.owner == a.identity and final.version == 3
        assert universe_db.server.sql(
            universe_db.name, f"SELECT status FROM agent WHERE id = {row.id}"
        )[0]["rows"] == [["busy-again"]]


async def test_invalid_arguments_raise_before_anything_is_sent(
    universe_db: PublishedDatabase,
) -> None:
    sent: list[bytes] = []

    async def counting_link(url: str, token: str | None) -> Transport:
        link = await WebSocketTransport.open(url, token=token)
        real_send, real_send_now = link.send, link.send_now

        async def counting_send(data: bytes) -> None:
            sent.append(data)
            await real_send(data)

        def counting_send_now(data: bytes) -> bool:
            written = real_send_now(data)
            if written:
                sent.append(data)
            return written

        link.send = counting_send  # type: ignore[method-assign]
        link.send_now = counting_send_now  # type: ignore[method-assign]
        return link

    builder = ConnectionBuilder().with_uri(universe_db.uri).with_database(universe_db.name)
    async with await builder.with_transport(counting_link).connect() as conn:
        with pytest.raises(ArgumentError, match="register_agent"):
            conn.reducers.register_agent("x", "y")  # state missing
        with pytest.raises(ArgumentError):
            conn.reducers.set_agent_status("not an id", "busy")
        with pytest.raises(ArgumentError):
            conn.reducers.set_agent_status(-1, "busy")  # u64
        with pytest.raises(SchemaError):
            conn.reducers.no_such_reducer()
        await asyncio.sleep(0.05)  # give the send task every chance to run
        assert sent == []
        await conn.reducers.create_conversation("valid call goes out")
        assert len(sent) == 1


async def test_failed_validation_raises_the_servers_message(
    universe_db: PublishedDatabase,
) -> None:
    async with connect(universe_db.uri, universe_db.name) as conn:
        with pytest.raises(ReducerError) as empty:
            await conn.reducers.register_agent("", "role", b"")
        assert empty.value.reducer == "register_agent"
        assert "must not be empty" in empty.value.message
        with pytest.raises(ReducerError) as long_name:
            await conn.reducers.register_agent("n" * 300, "role", b"")
        assert "limit" in long_name.value.message
        with pytest.raises(ReducerError, match="no agent with id"):
            await conn.reducers.set_agent_status(987654321, "busy")
        # The connection is still healthy after failures.
        event = await conn.reducers.create_conversation("still fine")
        assert event.committed


async def test_reconnecting_with_the_saved_token_keeps_the_identity(
    universe_db: PublishedDatabase,
) -> None:
    first = await connect(universe_db.uri, universe_db.name)
    identity, token, connection_id = first.identity, first.token, first.connection_id
    await first.disconnect()
    async with connect(universe_db.uri, universe_db.name, token=token) as again:
        assert again.identity == identity
        assert again.connection_id != connection_id
    async with connect(universe_db.uri, universe_db.name) as stranger:
        assert stranger.identity != identity


async def test_overlapping_subscriptions_count_multiplicity(fresh_db: PublishedDatabase) -> None:
    async with connect(fresh_db.uri, fresh_db.name) as conn:
        await conn.reducers.register_agent("overlap", "r", b"")
        deleted: list[Any] = []
        conn.db.agent.on_delete(lambda ctx, row: deleted.append(row))
        by_name = await conn.subscribe("SELECT * FROM agent WHERE name = 'overlap'")
        everything = await conn.subscribe("SELECT * FROM agent")
        assert conn.db.agent.count() == 1
        [row] = conn.db.agent.filter("name", "overlap")
        assert (
            conn.cache.table("agent").multiplicity(conn.schema.table("agent").encode_row(row)) == 2
        )
        await everything.unsubscribe()
        assert conn.db.agent.filter("name", "overlap") == [row]  # still held by the other query
        assert deleted == []
        await by_name.unsubscribe()
        assert conn.db.agent.count() == 0  # the last holder is gone: so is the row
        assert deleted == [row]


async def test_unsubscribe_removes_rows_and_fires_deletes(fresh_db: PublishedDatabase) -> None:
    async with connect(fresh_db.uri, fresh_db.name) as conn:
        await conn.reducers.create_conversation("one")
        await conn.reducers.create_conversation("two")
        events: list[Any] = []
        conn.db.conversation.on_insert(lambda ctx, row: events.append(("+", ctx.event)))
        conn.db.conversation.on_delete(lambda ctx, row: events.append(("-", ctx.event)))
        handle = await conn.subscribe("SELECT * FROM conversation")
        assert handle.is_active()
        assert sorted(c.title for c in conn.db.conversation.iter()) == ["one", "two"]
        assert all(isinstance(ev, SubscribeAppliedEvent) for sign, ev in events if sign == "+")
        await handle.unsubscribe()
        assert handle.is_ended()
        assert conn.db.conversation.count() == 0
        assert [sign for sign, _ in events] == ["+", "+", "-", "-"]


async def test_bad_query_raises_subscription_error_and_connection_survives(
    universe_db: PublishedDatabase,
) -> None:
    async with connect(universe_db.uri, universe_db.name) as conn:
        with pytest.raises(SubscriptionRejectedError):
            await conn.subscribe("SELECT * FROM no_such_table")
        await conn.subscribe("SELECT * FROM agent")
        assert conn.is_connected


async def test_callbacks_fire_after_the_whole_transaction(universe_db: PublishedDatabase) -> None:
    """A reducer that deletes a conversation and its messages: callbacks see the final state."""
    async with connect(universe_db.uri, universe_db.name) as conn:
        await conn.subscribe("SELECT * FROM conversation", "SELECT * FROM message")
        await conn.reducers.create_conversation("to delete")
        convo = next(c for c in conn.db.conversation.iter() if c.title == "to delete")
        for text in ("a", "b", "c"):
            await conn.reducers.post_message(convo.id, "user", text)
        seen_counts: list[int] = []
        conn.db.message.on_delete(
            lambda ctx, row: seen_counts.append(
                len(conn.db.message.filter("conversation_id", convo.id))
            )
        )
        txs: list[EventContext] = []
        conn.on_transaction(txs.append)
        await conn.reducers.delete_conversation(convo.id)
        assert seen_counts == [0, 0, 0]  # every delete already applied when the first fires
        assert len(txs) == 1 and len(txs[0].diff["message"].deletes) == 3


async def test_connect_callbacks_and_bad_token(universe_db: PublishedDatabase) -> None:
    connected: list[Any] = []
    disconnected: list[Any] = []
    errors: list[Exception] = []
    builder = (
        ConnectionBuilder()
        .with_uri(universe_db.uri)
        .with_database(universe_db.name)
        .on_connect(lambda conn, identity, token: connected.append(identity))
        .on_disconnect(lambda conn, error: disconnected.append(error))
        .on_connect_error(errors.append)
    )
    conn = await builder.connect()
    assert connected == [conn.identity]
    await conn.disconnect()
    assert disconnected == [None]

    bad = ConnectionBuilder().with_uri(universe_db.uri).with_database(universe_db.name)
    bad.with_token("not-a-jwt").on_connect_error(errors.append)
    with pytest.raises(ConnectError):
        await bad.connect()
    assert len(errors) == 1
    missing = ConnectionBuilder().with_uri(universe_db.uri).with_database("no-such-database-x")
    with pytest.raises(ConnectError):
        await missing.connect()


async def test_a_raising_callback_does_not_break_the_connection(
    universe_db: PublishedDatabase,
) -> None:
    async with connect(universe_db.uri, universe_db.name) as conn:

        def boom(ctx: EventContext, row: Any) -> None:
            raise RuntimeError("callback bug")

        seen: list[Any] = []
        conn.db.document.on_insert(boom)
        conn.db.document.on_insert(lambda ctx, row: seen.append(row))
        await conn.subscribe("SELECT * FROM document")
        await conn.reducers.create_document("doc", "text", b"")
        assert [d.title for d in seen] == ["doc"]
        assert conn.is_connected


async def test_reducer_callbacks_see_other_callers(universe_db: PublishedDatabase) -> None:
    async with (
        connect(universe_db.uri, universe_db.name) as a,
        connect(universe_db.uri, universe_db.name) as b,
    ):
        seen: list[ReducerEvent] = []
        b.on_reducer("create_conversation", lambda ctx, ev: seen.append(ev))
        await b.subscribe("SELECT * FROM conversation")
        await a.reducers.create_conversation("watched")
        await until(lambda: seen)
        assert seen[0].caller_identity == a.identity
        assert seen[0].args == {"title": "watched"}


async def test_pipelined_calls_complete_in_order(universe_db: PublishedDatabase) -> None:
    async with connect(universe_db.uri, universe_db.name) as conn:
        await conn.subscribe("SELECT * FROM conversation")
        futures = [conn.reducers.create_conversation(f"p{i}") for i in range(50)]
        events = await asyncio.gather(*futures)
        assert all(e.committed for e in events)
        stamps = [e.timestamp for e in events]
        assert stamps == sorted(stamps)
        titles = {c.title for c in conn.db.conversation.iter()}
        assert {f"p{i}" for i in range(50)} <= titles


def test_threaded_connection_from_synchronous_code(universe_db: PublishedDatabase) -> None:
    builder = ConnectionBuilder().with_uri(universe_db.uri).with_database(universe_db.name)
    with builder.connect_threaded() as conn:
        conn.subscribe("SELECT * FROM agent")
        event = conn.reducers.register_agent("sync-agent", "tester", b"")
        assert event.committed
        [row] = conn.db.agent.filter("name", "sync-agent")
        assert row is not None and row.owner == conn.identity
        with pytest.raises(ReducerError, match="already have an agent named"):
            conn.reducers.register_agent("sync-agent", "tester", b"")
        with pytest.raises(ArgumentError):
            conn.reducers.register_agent(1, 2, 3)


async def test_session_table_tracks_presence(universe_db: PublishedDatabase) -> None:
    async with connect(universe_db.uri, universe_db.name) as watcher:
        await watcher.subscribe("SELECT * FROM session")
        # Sessions are visible to their own identity: the same identity, connected twice.
        other: DbConnection = await connect(universe_db.uri, universe_db.name, token=watcher.token)
        await until(lambda: watcher.db.session.find("connection_id", other.connection_id))
        assert (
            watcher.db.session.find("connection_id", other.connection_id).identity == other.identity
        )
        await other.disconnect()
        await until(lambda: watcher.db.session.find("connection_id", other.connection_id) is None)


async def test_one_off_query_reads_without_subscribing(universe_db: PublishedDatabase) -> None:
    async with connect(universe_db.uri, universe_db.name) as conn:
        await conn.reducers.create_document("queried", "body", b"")
        result = await conn.one_off_query("SELECT * FROM document WHERE title = 'queried'")
        assert [d.content for d in result["document"]] == ["body"]
        assert conn.db.document.count() == 0  # nothing entered the cache
        with pytest.raises(QueryError):
            await conn.one_off_query("SELECT * FROM nowhere")


async def test_outcomes_reach_their_own_calls_among_undecodable_ones(
    fresh_db: PublishedDatabase,
) -> None:
    """Calls the server cannot decode (an outdated client's), pipelined among valid ones.

    Their rejections overtake earlier commits on the wire; each outcome must still
    reach its own call: commits carry their own title, failures their own reason.
    """
    rng = random.Random(11)
    async with connect(fresh_db.uri, fresh_db.name) as conn:
        total = 0
        for round_ in range(4):
            expected: list[tuple[str, str]] = []
            futures = []
            for i in range(300):
                kind = rng.choices(["ok", "undecodable", "refused"], [8, 1, 1])[0]
                if kind == "undecodable":
                    bad = PreparedCall("create_conversation", bytes([round_, i % 256]), False)
                    futures.append(conn._submit(bad, CallOptions()))
                elif kind == "refused":
                    futures.append(conn.reducers.create_conversation(""))
                else:
                    futures.append(conn.reducers.create_conversation(f"r{round_}-{i}"))
                expected.append((kind, f"r{round_}-{i}"))
            outcomes = await asyncio.gather(*futures, return_exceptions=True)
            for (kind, title), outcome in zip(expected, outcomes, strict=True):
                if kind == "ok":
                    assert isinstance(outcome, ReducerEvent) and outcome.committed
                    assert outcome.args == {"title": title}
                else:
                    assert isinstance(outcome, ReducerError)
                    reason = "must not be empty" if kind == "refused" else "arguments"
                    assert reason in outcome.message, (kind, outcome.message)
            total += len(futures)
            assert conn._session is not None and conn._session.protocol.pending_calls() == ()
            assert not conn._unsettled
        assert total >= 1000
    committed = sum(1 for kind, _ in expected if kind == "ok")
    assert committed > 0


async def test_cancelling_a_subscription_before_it_is_applied(
    fresh_db: PublishedDatabase,
) -> None:
    async with connect(fresh_db.uri, fresh_db.name) as conn:
        await conn.reducers.create_conversation("exists")
        applied: list[object] = []
        inserted: list[object] = []
        conn.db.conversation.on_insert(lambda ctx, row: inserted.append(row))
        handle = conn.subscribe("SELECT * FROM conversation", on_applied=applied.append)
        await handle.unsubscribe()  # before the server applied it
        assert handle.is_ended() and not handle.is_active()
        later = await conn.subscribe("SELECT * FROM conversation")  # the socket is fine
        assert [c.title for c in conn.db.conversation.iter()] == ["exists"]
        assert applied == []  # the cancelled one's callback never ran
        assert len(inserted) == 1  # rows arrived once, through the second subscription
        await later.unsubscribe()


async def test_a_call_without_success_notification(fresh_db: PublishedDatabase) -> None:
    async with connect(fresh_db.uri, fresh_db.name) as conn:
        seen: list[ReducerEvent] = []
        conn.on_reducer("create_conversation", lambda ctx, event: seen.append(event))
        quiet = conn.reducers.with_options(notify=False)
        assert await quiet.create_conversation("quietly") is None  # handled, not reported
        assert await quiet.create_conversation("") is None  # its failure is not reported either
        assert seen == []  # the server told this client nothing about them
        result = await conn.one_off_query("SELECT * FROM conversation")
        assert [c.title for c in result["conversation"]] == ["quietly"]
        loud = await conn.reducers.create_conversation("loudly")
        assert loud is not None and loud.committed and len(seen) == 1
