"""Every failure path of the public API raises an InnerUniverseError subclass (issue 7).

A sweep: each entry is a misuse or a failure a user can meet; none may escape
as a built-in TimeoutError, ValueError, TypeError, KeyError or AttributeError
that is not also one of ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from inner_universe.errors import InnerUniverseError
from inner_universe.spacetime import ConnectionBuilder, ReconnectPolicy, connect, fetch_schema
from inner_universe.spacetime.connection import DbConnection, KeepAlive
from inner_universe.spacetime.protocol import ClientProtocol
from inner_universe.spacetime.transport import subscribe_url
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration


def offline_failures() -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("builder without uri", lambda: asyncio.run(ConnectionBuilder().connect())),
        ("bad uri scheme", lambda: subscribe_url("ftp://x", "db")),
        ("uri with a query", lambda: subscribe_url("http://x/?a=1", "db")),
        ("unreachable schema", lambda: fetch_schema("http://127.0.0.1:9", "db", timeout=2)),
        ("bad jitter", lambda: ReconnectPolicy(jitter=2)),
        ("bad keepalive", lambda: KeepAlive(interval=0)),
        ("bad compression", lambda: ConnectionBuilder().with_compression("zip")),  # type: ignore[arg-type]
        ("negative ack window", lambda: ConnectionBuilder().with_ack_window(-1)),
        ("subscribe a bare string", lambda: _open_protocol().subscribe("SELECT 1")),
        ("subscribe nothing", lambda: _open_protocol().subscribe([])),
        ("call before identified", lambda: ClientProtocol().call_reducer("x")),
    ]


def _open_protocol() -> ClientProtocol:
    proto = ClientProtocol()
    proto.state = proto.state.OPEN
    return proto


def expect_ours(what: str, fail: Callable[[], Any]) -> None:
    """``fail()`` must raise an InnerUniverseError; anything else names the culprit."""
    try:
        fail()
    except InnerUniverseError:
        return
    except Exception as exc:
        pytest.fail(f"{what}: {type(exc).__name__} escaped: {exc}")
    pytest.fail(f"{what}: nothing was raised")


@pytest.mark.parametrize(("what", "fail"), offline_failures(), ids=lambda x: str(x)[:30])
def test_offline_failures_are_inner_universe_errors(what: str, fail: Callable[[], Any]) -> None:
    expect_ours(what, fail)


def live_failures(conn: DbConnection) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("no such table", lambda: conn.db.no_such_table),
        ("no such reducer", lambda: conn.reducers.no_such_reducer),
        ("missing argument", lambda: conn.reducers.create_conversation()),
        ("wrong argument type", lambda: conn.reducers.create_conversation(42)),
        ("unknown keyword", lambda: conn.reducers.create_conversation(nope=1)),
        ("find on a non-unique column", lambda: conn.db.message.find("role", "x")),
        ("filter on no column", lambda: conn.db.agent.filter("nope", 1)),
        ("on_update without primary key", lambda: _no_pk_table(conn).on_update(print)),
        ("remove an unknown callback", lambda: conn.db.agent.remove_on_insert(print)),
        ("remove an unknown tx callback", lambda: conn.remove_on_transaction(print)),
        ("subscribe with no query", lambda: conn.subscribe()),
        ("zero timeout", lambda: conn.reducers.with_options(timeout=0)),
        ("reducer callback for none", lambda: conn.on_reducer("nope", print)),
    ]


def _no_pk_table(conn: DbConnection) -> Any:
    name = next(n for n, t in conn.schema.tables.items() if t.primary_key is None)
    return conn.db[name]


def live_async_failures(conn: DbConnection) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    return [
        ("bad subscription", lambda: conn.subscribe("SELECT * FROM nowhere")),
        ("bad one-off query", lambda: conn.one_off_query("SELECT * FROM nowhere")),
        ("failing reducer", lambda: conn.reducers.create_conversation("")),
        # No "call with no time" here: a reply is handled in the turn it arrives, so on
        # a live link it can beat a timeout shorter than the loop's timer resolution.
        # test_connection.py times calls out deterministically (no answer, never sent).
    ]


async def test_live_failures_are_inner_universe_errors(universe_db: PublishedDatabase) -> None:
    conn = await connect(universe_db.uri, universe_db.name)
    for what, fail in live_failures(conn):
        expect_ours(what, fail)
    for what, fail_async in live_async_failures(conn):
        try:
            await fail_async()
        except InnerUniverseError:
            continue
        except Exception as exc:
            pytest.fail(f"{what}: {type(exc).__name__} escaped: {exc}")
        pytest.fail(f"{what}: nothing was raised")
    await conn.disconnect()
    with pytest.raises(InnerUniverseError):
        conn.reducers.create_conversation("after disconnect")
    with pytest.raises(InnerUniverseError):
        conn.subscribe("SELECT * FROM agent")
    missing = ConnectionBuilder().with_uri(universe_db.uri).with_database("no-such-db-xyz")
    with pytest.raises(InnerUniverseError):
        await missing.connect()
    with pytest.raises(InnerUniverseError):
        missing.connect_threaded(timeout=5)


def test_threaded_failures_are_inner_universe_errors(universe_db: PublishedDatabase) -> None:
    builder = ConnectionBuilder().with_uri(universe_db.uri).with_database(universe_db.name)
    with builder.connect_threaded() as conn:
        with pytest.raises(InnerUniverseError):
            conn.subscribe("SELECT * FROM nowhere")
        with pytest.raises(InnerUniverseError):
            conn.one_off_query("SELECT * FROM nowhere")
        with pytest.raises(InnerUniverseError):
            conn.call_reducer("create_conversation", 1)
        with pytest.raises(InnerUniverseError):
            conn.run_on_connection_thread(lambda: conn.flush(1))
