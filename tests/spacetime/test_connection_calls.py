"""A reducer call's road, offline: the frame it sends, its key, its mistakes, both APIs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import pytest

from inner_universe.errors import (
    ArgumentError,
    NoSuchNameError,
    OutcomeUnknownError,
    ReducerError,
    SchemaError,
)
from inner_universe.spacetime import messages as m
from inner_universe.spacetime.protocol import key_bytes
from inner_universe.spacetime.schema import CallKey
from inner_universe.spacetime.threaded import ThreadedConnection
from inner_universe.spacetime.transport import MemoryTransport
from inner_universe.spacetime.types import TimeDuration, Timestamp

from .test_connection import SCHEMA, offline_builder, opened, sent

TITLE = SCHEMA.reducer("create_conversation").encode_bound(("hello",))


async def test_a_keyed_call_sends_its_key_then_its_arguments_once() -> None:
    transport = MemoryTransport()
    conn = await opened(transport)
    own = CallKey(7, 99)
    futures = [
        conn.reducers.create_conversation("hello"),
        conn.call_reducer("create_conversation", title="hello"),
        conn.reducers.create_conversation("hello", call_key=own),
        conn.call_reducer("create_conversation", "hello", call_key=CallKey(0, 0)),
        conn.reducers.with_options(notify=False).create_conversation("hello"),
    ]
    calls = [msg for msg in sent(transport) if isinstance(msg, m.CallReducer)]
    first = conn.last_call_seq - 4
    assert [msg.args for msg in calls] == [
        key_bytes(CallKey(conn.client_id, first)) + TITLE,
        key_bytes(CallKey(conn.client_id, first + 1)) + TITLE,
        key_bytes(own) + TITLE,
        bytes(24) + TITLE,
        key_bytes(CallKey(conn.client_id, first + 4)) + TITLE,
    ]
    assert [msg.flags for msg in calls] == [m.CallReducerFlags.FULL_UPDATE] * 4 + [
        m.CallReducerFlags.NO_SUCCESS_NOTIFY
    ]
    assert len({msg.request_id for msg in calls}) == 5
    assert conn.reducers.create_conversation is conn.reducers.create_conversation  # made once
    await conn.disconnect()
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(o, OutcomeUnknownError) for o in outcomes)  # sent, never answered


async def test_a_mistaken_call_raises_at_once_and_takes_no_number() -> None:
    transport = MemoryTransport()
    conn = await opened(transport)
    before = conn.last_call_seq
    with pytest.raises(ArgumentError, match="argument call_key"):
        conn.call_reducer("create_conversation", "x", call_key=CallKey(-1, 1))
    with pytest.raises(ArgumentError, match="takes no call key"):
        conn.call_reducer("init", call_key=CallKey(1, 1))
    with pytest.raises(ArgumentError, match="takes no call key"):
        conn.reducers.init(call_key=CallKey(1, 1))
    with pytest.raises(ArgumentError, match="takes 1 argument"):
        conn.reducers.create_conversation("x", "y")
    with pytest.raises(SchemaError):
        conn.call_reducer("no_such_reducer")
    with pytest.raises(NoSuchNameError):
        conn.reducers.no_such_reducer  # noqa: B018
    assert conn.last_call_seq == before
    assert not [msg for msg in sent(transport) if isinstance(msg, m.CallReducer)]
    await conn.disconnect()


def answer(conn: ThreadedConnection, call: m.CallReducer, status: m.UpdateStatus) -> bytes:
    """The server's reply to ``call`` on ``conn``: committed or failed, no rows."""
    reply = m.TransactionUpdate(
        status=status,
        timestamp=Timestamp(0),
        caller_identity=conn.identity,
        caller_connection_id=conn.connection_id,
        reducer_call=m.ReducerCallInfo(call.reducer, 3, call.args, call.request_id),
        energy_quanta_used=m.EnergyQuanta(1),
        total_host_execution_duration=TimeDuration(5),
    )
    return m.encode_server_frame(reply, m.Compression.NONE)


def test_the_threaded_api_checks_on_the_caller_s_thread_and_relays_outcomes() -> None:
    transport = MemoryTransport()
    with offline_builder(transport).connect_threaded(5) as conn:
        with pytest.raises(ArgumentError, match="takes 1 argument"):
            conn.call_reducer_async("create_conversation", "x", "y")
        with pytest.raises(ArgumentError, match="argument call_key"):
            conn.call_reducer_async("create_conversation", "x", call_key=CallKey(1, -1))
        done = conn.call_reducer_async("create_conversation", "done")
        failing = conn.call_reducer_async("create_conversation", "failing")
        waiting = conn.call_reducer_async("create_conversation", "waiting")
        calls = conn.run_on_connection_thread(  # after the three calls were made
            lambda: [msg for msg in sent(transport) if isinstance(msg, m.CallReducer)]
        )
        assert waiting.cancel()  # the caller stops waiting before any outcome
        assert len(calls) == 3
        replies = [
            answer(conn, calls[0], m.Committed(m.DatabaseUpdate())),
            answer(conn, calls[1], m.Failed("refused")),
            answer(conn, calls[2], m.Committed(m.DatabaseUpdate())),
        ]
        conn.run_on_connection_thread(lambda: [transport.feed(r) for r in replies])
        event = done.result(5)
        assert event.committed and event.args == {"title": "done"}
        with pytest.raises(ReducerError, match="refused"):
            failing.result(5)
        with pytest.raises(concurrent.futures.CancelledError):
            waiting.result(5)
        conn.flush(5)  # every call settled, the cancelled one included


def test_a_blocking_call_returns_its_event_or_raises_its_failure() -> None:
    transport = MemoryTransport()
    with (
        offline_builder(transport).connect_threaded(5) as conn,
        concurrent.futures.ThreadPoolExecutor(2) as callers,
    ):
        with pytest.raises(ArgumentError, match="takes no call key"):  # raised on the loop
            conn.call_reducer("init", call_key=CallKey(1, 1))
        done = callers.submit(conn.call_reducer, "create_conversation", "done")
        failing = callers.submit(conn.call_reducer, "create_conversation", "failing")

        def calls() -> list[m.CallReducer]:
            return [msg for msg in sent(transport) if isinstance(msg, m.CallReducer)]

        deadline = time.monotonic() + 5
        while len(conn.run_on_connection_thread(calls)) < 2 and time.monotonic() < deadline:
            pass  # each look is a round trip to the connection's thread
        by_title = {
            SCHEMA.reducer("create_conversation").decode_args(c.args)["title"]: c
            for c in conn.run_on_connection_thread(calls)
        }
        replies = [
            answer(conn, by_title["done"], m.Committed(m.DatabaseUpdate())),
            answer(conn, by_title["failing"], m.Failed("refused")),
        ]
        conn.run_on_connection_thread(lambda: [transport.feed(r) for r in replies])
        event = done.result(5)
        assert event.committed and event.args == {"title": "done"}
        with pytest.raises(ReducerError, match="refused"):
            failing.result(5)
