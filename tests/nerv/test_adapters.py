"""EventBus and StateProjector wired to live connections, against the real local server.

Two or three connections with their own identities act on shared tables; the
assertions compare what the bus and the projector report with the server's own
ordering (message sequence numbers, given out in commit order) and with a rescan
of the connection's cache.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from inner_universe.errors import ConnectError
from inner_universe.nerv.adapters import (
    attach_event_bus,
    attach_projector,
    event_bus_hooks,
    primary_keys,
)
from inner_universe.nerv.bus import BusEvent, EventBus
from inner_universe.nerv.projector import GroupBy, SortedGroups
from inner_universe.spacetime.connection import ConnectionBuilder, DbConnection, connect
from inner_universe.spacetime.events import ReducerEvent, SubscribeAppliedEvent
from tests.conftest import PublishedDatabase, until

pytestmark = pytest.mark.integration

TIMEOUT = 15.0


async def test_changes_from_two_connections_reach_a_third_bus_in_commit_order(
    fresh_db: PublishedDatabase,
) -> None:
    async with (
        connect(fresh_db.uri, fresh_db.name) as a,
        connect(fresh_db.uri, fresh_db.name) as b,
        connect(fresh_db.uri, fresh_db.name) as watcher,
    ):
        bus = attach_event_bus(watcher, history=5000)
        inserts: list[BusEvent] = []
        bus.connect("message.insert", lambda s, event: inserts.append(event), weak=False)
        await watcher.subscribe("SELECT * FROM message", "SELECT * FROM conversation")
        await a.subscribe("SELECT * FROM conversation")
        await a.reducers.create_conversation("shared")
        [conv] = list(a.db.conversation.iter())
        await a.reducers.admit_participant(conv.id, b.identity, ["user"])  # b may post too

        per_side = 60
        calls = [
            conn.reducers.post_message(conv.id, "user", f"{name}{i}")
            for i in range(per_side)
            for conn, name in ((a, "a"), (b, "b"))
        ]
        await asyncio.gather(*calls)
        await until(lambda: len(inserts) == 2 * per_side)

        # The module numbers messages in commit order; the bus delivered them in that order.
        assert [e.new.sequence for e in inserts] == list(range(1, 2 * per_side + 1))
        assert [e.sequence for e in inserts] == sorted(e.sequence or 0 for e in inserts)
        assert all(e.sender is watcher for e in inserts)
        authors = {e.new.author for e in inserts}
        assert authors == {a.identity, b.identity}
        for conn, name in ((a, "a"), (b, "b")):  # each side's pipelined calls kept their order
            mine = [e.new.content for e in inserts if e.new.author == conn.identity]
            assert mine == [f"{name}{i}" for i in range(per_side)]

        history = bus.history()
        assert [e.index for e in history] == sorted(e.index for e in history)
        posts = [e for e in history if e.name == "reducer.post_message"]
        assert len(posts) == 2 * per_side
        assert all(isinstance(e.event, ReducerEvent) and e.event.committed for e in posts)
        # Each transaction: its rows, then "transaction", then its reducer outcome.
        for post in posts:
            same = [e.name for e in history if e.sequence == post.sequence]
            assert sorted(same[:2]) == ["conversation.update", "message.insert"]  # server's order
            assert same[2:] == ["transaction", "reducer.post_message"]
        applied = [e for e in history if isinstance(e.event, SubscribeAppliedEvent)]
        assert applied and applied[-1].name == "transaction"


async def test_failed_reducers_and_receiver_errors_do_not_break_the_connection(
    universe_db: PublishedDatabase,
) -> None:
    async with connect(universe_db.uri, universe_db.name) as conn:
        bus = attach_event_bus(conn)
        outcomes: list[BusEvent] = []
        bus.connect("reducer.register_agent", lambda s, event: outcomes.append(event), weak=False)

        def broken(sender: Any, *, event: BusEvent) -> None:
            raise RuntimeError("receiver bug")

        bus.connect("agent.insert", broken, weak=False)
        await conn.subscribe("SELECT * FROM agent")
        await conn.reducers.register_agent("bus-agent", "r", b"")
        with pytest.raises(Exception, match="already have an agent named"):
            await conn.reducers.register_agent("bus-agent", "r", b"")
        assert [e.event.committed for e in outcomes] == [True, False]
        assert "already have an agent named" in (outcomes[1].event.error or "")
        assert [str(e.error) for e in bus.errors()] == ["receiver bug"]
        assert conn.is_connected
        assert conn.db.agent.filter("name", "bus-agent")


async def test_async_receivers_run_on_the_connection_loop_and_drain(
    universe_db: PublishedDatabase,
) -> None:
    async with connect(universe_db.uri, universe_db.name) as conn:
        bus = attach_event_bus(conn)
        seen: list[str] = []

        async def slow(sender: Any, *, event: BusEvent) -> None:
            await asyncio.sleep(0.001)
            seen.append(event.new.title)

        bus.connect("conversation.insert", slow)
        await conn.subscribe("SELECT * FROM conversation")
        before = len(seen)
        for i in range(10):
            await conn.reducers.create_conversation(f"async-{i}")
        await bus.drain()
        assert seen[before:] == [f"async-{i}" for i in range(10)]


async def test_connection_events_from_the_builder(fresh_db: PublishedDatabase) -> None:
    builder = ConnectionBuilder().with_uri(fresh_db.uri).with_database(fresh_db.name)
    bus = event_bus_hooks(builder)
    conn = await builder.connect()
    await conn.subscribe("SELECT * FROM conversation")
    await conn.reducers.create_conversation("hooked")
    await conn.disconnect()
    names = [e.name for e in bus.history()]
    assert names[0] == "connection.connect" and names[-1] == "connection.disconnect"
    assert "conversation.insert" in names
    assert all(e.sender is conn for e in bus.history())
    assert bus.history()[-1].error is None

    bad = ConnectionBuilder().with_uri(fresh_db.uri).with_database("no-such-database-here")
    bad_bus = event_bus_hooks(bad)
    with pytest.raises(ConnectError):
        await bad.connect()
    [failure] = bad_bus.history()
    assert failure.name == "connection.connect_error" and isinstance(failure.error, ConnectError)


async def test_attached_bus_reports_the_disconnect(universe_db: PublishedDatabase) -> None:
    conn = await connect(universe_db.uri, universe_db.name)
    bus = attach_event_bus(conn)
    await conn.disconnect()
    await until(lambda: bus.history("connection.disconnect"))
    assert bus.history()[-1].error is None and bus.history()[-1].sender is conn


def rescan_messages(conn: DbConnection) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for row in sorted(conn.db.message.iter(), key=lambda m: (m.sequence, m.id)):
        out.setdefault(row.conversation_id, []).append(row)
    return out


def rescan_agents(conn: DbConnection) -> dict[str, dict[int, Any]]:
    out: dict[str, dict[int, Any]] = {}
    for row in conn.db.agent.iter():
        out.setdefault(row.status, {})[row.id] = row
    return out


async def test_projector_versions_time_travel_and_projections_match_the_cache(
    fresh_db: PublishedDatabase,
) -> None:
    async with (
        connect(fresh_db.uri, fresh_db.name) as a,
        connect(fresh_db.uri, fresh_db.name) as watcher,
    ):
        await a.reducers.create_conversation("before the projector")
        await watcher.subscribe("SELECT * FROM conversation")
        projector = attach_projector(
            watcher,
            window=500,
            projections={
                "messages": SortedGroups("message", "conversation_id", "sequence", key="id"),
                "agents": GroupBy("agent", "status"),
            },
        )
        assert projector.version == 0
        assert [c.title for c in projector.table("conversation").values()] == [
            "before the projector"
        ]
        sequences: list[int] = []
        watcher.on_transaction(lambda ctx: sequences.append(ctx.sequence))
        await watcher.subscribe("SELECT * FROM message", "SELECT * FROM agent")

        await a.reducers.register_agent("p-1", "worker", b"")
        await a.reducers.register_agent("p-2", "worker", b"")
        await a.subscribe("SELECT * FROM agent", "SELECT * FROM conversation")
        [agent_1] = a.db.agent.filter("name", "p-1")
        conv = next(iter(a.db.conversation.iter()))
        await until(lambda: watcher.db.agent.count() == 2)
        idle_version = projector.version
        await a.reducers.set_agent_status(agent_1.id, "busy")
        for i in range(5):
            await a.reducers.post_message(conv.id, "assistant", f"m{i}")
        await a.subscribe("SELECT * FROM message")
        first = a.db.message.find("id", min(m.id for m in a.db.message.iter()))
        await a.reducers.append_message(first.id, " more")
        await a.reducers.delete_message(a.db.message.find("id", first.id + 1).id)
        await a.reducers.delete_agent(a.db.agent.filter("name", "p-2")[0].id)
        await a.reducers.create_conversation("second")
        await a.reducers.set_agent_status(agent_1.id, "done")  # a barrier: the last commit
        await until(lambda: watcher.db.agent.find("id", agent_1.id).status == "done")

        # One version per applied transaction, in the connection's commit order.
        versions = projector.versions()
        assert [v.number for v in versions] == list(range(len(versions)))
        assert [v.delta.sequence for v in versions[1:]] == sequences
        # Time travel: the version before the status change still shows it idle.
        assert projector.at(idle_version).get("agent", agent_1.id).status == "idle"
        assert projector.current.get("agent", agent_1.id).status == "done"
        assert projector.at(idle_version + 1).delta.updated("agent")[0][1].status == "busy"
        # The snapshot is the cache, and the projections are their rescans.
        for name in ("agent", "conversation", "message"):
            assert set(projector.table(name).values()) == set(watcher.db[name].iter())
        assert {k: list(v) for k, v in projector.projection("messages").items()} == rescan_messages(
            watcher
        )
        assert {k: dict(v) for k, v in projector.projection("agents").items()} == rescan_agents(
            watcher
        )
        messages = projector.projection("messages")[conv.id]
        assert [m.content for m in messages] == ["m0 more", "m2", "m3", "m4"]


def test_threaded_connection_bus_and_projector(universe_db: PublishedDatabase) -> None:
    builder = ConnectionBuilder().with_uri(universe_db.uri).with_database(universe_db.name)
    with builder.connect_threaded() as conn:
        bus = attach_event_bus(conn, EventBus())
        projector = attach_projector(conn, window=50)
        assert primary_keys(conn)["agent"] == "id"
        threads: set[str] = set()
        done: list[str] = []

        def on_insert(sender: Any, *, event: BusEvent) -> None:
            threads.add(threading.current_thread().name)

        async def later(sender: Any, *, event: BusEvent) -> None:
            done.append(event.new.name)

        bus.connect("agent.insert", on_insert)
        bus.connect("agent.insert", later)
        conn.subscribe("SELECT * FROM agent")
        start = projector.version
        conn.reducers.register_agent("threaded-1", "r", b"")
        conn.reducers.register_agent("threaded-2", "r", b"")
        assert bus.wait_idle(TIMEOUT)
        assert threads == {"spacetimedb-connection"}
        assert done[-2:] == ["threaded-1", "threaded-2"]
        assert projector.version == start + 2
        names = {r.name for r in projector.table("agent").values()}
        assert {"threaded-1", "threaded-2"} <= names
        assert "threaded-2" not in {r.name for r in projector.table("agent", start + 1).values()}
        assert all(e.sender is conn.connection for e in bus.history("agent.insert"))
    assert [e.name for e in bus.history()][-1] == "connection.disconnect"
