"""The connection driver over an in-memory transport, fed messages captured from the server.

These tests exercise the driver's plumbing (protocol -> cache -> callbacks ->
futures) quickly and without a server; test_connection_live.py proves the same
behaviour against the real one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from inner_universe.errors import ConnectionClosedError, ReducerError, SubscriptionError
from inner_universe.spacetime.connection import ConnectionBuilder, DbConnection
from inner_universe.spacetime.messages import CallReducer, decode_client_message
from inner_universe.spacetime.schema import CallKey, ModuleSchema
from inner_universe.spacetime.transport import MemoryTransport

DATA = Path(__file__).parents[1] / "data"
SCHEMA = ModuleSchema.from_json(json.loads((DATA / "schema_inner_universe_v9.json").read_text()))


def captured(name: str) -> bytes:
    return (DATA / "captured" / name).read_bytes()


async def opened(
    transport: MemoryTransport, builder: ConnectionBuilder | None = None
) -> DbConnection:
    conn = DbConnection(transport, SCHEMA, builder=builder or ConnectionBuilder())
    transport.feed(captured("plain_0001_identity_token.bin"))
    await asyncio.wait_for(asyncio.shield(conn._identified), 5)
    return conn


async def test_the_captured_session_through_the_driver() -> None:
    transport = MemoryTransport()
    conn = await opened(transport)
    assert conn.identity is not None and conn.is_connected

    inserted: list[Any] = []
    deleted: list[Any] = []
    conn.db.agent.on_insert(lambda ctx, row: inserted.append(row))
    conn.db.agent.on_delete(lambda ctx, row: deleted.append(row))

    handle = conn.subscribe("SELECT * FROM agent")
    transport.feed(captured("plain_0002_subscribe_multi_applied.bin"))
    await handle
    assert handle.is_active()

    call = conn.reducers.register_agent("captured", "capturing", b"\x81\xa1k\xa1v")
    transport.feed(captured("plain_0003_transaction_update.bin"))
    event = await call
    assert event.committed and event.reducer == "register_agent"
    assert event.args == {"name": "captured", "role": "capturing", "state": b"\x81\xa1k\xa1v"}
    assert [row.name for row in inserted] == ["captured"]
    assert conn.db.agent.filter("name", "captured")[0].owner == conn.identity

    failing = conn.reducers.register_agent("", "empty name", b"")
    transport.feed(captured("plain_0004_transaction_update.bin"))
    with pytest.raises(ReducerError, match="must not be empty"):
        await failing

    bad = conn.subscribe("SELECT * FROM no_such_table")
    transport.feed(captured("plain_0005_subscription_error.bin"))
    with pytest.raises(SubscriptionError, match="no_such_table"):
        await bad

    ending = asyncio.ensure_future(handle.unsubscribe())
    await asyncio.sleep(0)
    transport.feed(captured("plain_0006_unsubscribe_multi_applied.bin"))
    await ending
    assert deleted == inserted and conn.db.agent.count() == 0
    await conn.disconnect()
    assert transport.closed


async def test_closing_fails_what_is_still_waiting_and_reports_disconnect() -> None:
    disconnects: list[Exception | None] = []
    builder = ConnectionBuilder().on_disconnect(lambda conn, error: disconnects.append(error))
    transport = MemoryTransport()
    conn = await opened(transport, builder)
    call = conn.reducers.create_conversation("never answered")
    transport.feed_close()
    with pytest.raises(ConnectionClosedError):
        await call
    assert await conn.wait_closed() is not None
    assert len(disconnects) == 1


async def test_a_malformed_server_message_closes_the_connection_with_a_decode_error() -> None:
    transport = MemoryTransport()
    conn = await opened(transport)
    transport.feed(b"\x00\x01\x02")  # tag none, then a truncated TransactionUpdate
    error = await asyncio.wait_for(conn.wait_closed(), 5)
    assert error is not None and "truncated" in str(error)


async def test_each_call_carries_the_connections_next_call_key() -> None:
    transport = MemoryTransport()
    conn = await opened(transport)
    assert 0 < conn.client_id < 2**128
    calls = [
        conn.reducers.create_conversation("first"),
        conn.call_reducer("create_conversation", "resent", call_key=CallKey(conn.client_id, 1)),
        conn.reducers.create_conversation("second"),
    ]

    async def all_sent() -> None:
        while len(transport.sent) < len(calls):
            await asyncio.sleep(0)

    await asyncio.wait_for(all_sent(), 5)
    sent = [decode_client_message(data) for data in transport.sent]
    reducer = SCHEMA.reducer("create_conversation")
    decoded = [reducer.decode_call(msg.args) for msg in sent if isinstance(msg, CallReducer)]
    assert decoded == [
        ({"title": "first"}, CallKey(conn.client_id, 1)),
        ({"title": "resent"}, CallKey(conn.client_id, 1)),
        ({"title": "second"}, CallKey(conn.client_id, 2)),
    ]
    await conn.disconnect()
    failed = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(f, ConnectionClosedError) for f in failed)
