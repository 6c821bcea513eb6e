"""The connection driver over an in-memory transport, fed messages captured from the server.

These tests exercise the driver's plumbing (protocol -> cache -> callbacks ->
futures) quickly and without a server; test_connection_live.py proves the same
behaviour against the real one.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from inner_universe.errors import (
    ConnectError,
    InvalidStateError,
    NotSentError,
    OutcomeUnknownError,
    ReducerError,
    SubscriptionRejectedError,
)
from inner_universe.spacetime import messages as m
from inner_universe.spacetime.connection import ConnectionBuilder, DbConnection, ReconnectPolicy
from inner_universe.spacetime.outbox import DurableOutbox, OutboxCall
from inner_universe.spacetime.protocol import BARRIER_QUERY
from inner_universe.spacetime.schema import CallKey, ModuleSchema
from inner_universe.spacetime.transport import MemoryTransport
from inner_universe.spacetime.types import TimeDuration, Timestamp

DATA = Path(__file__).parents[1] / "data"
SCHEMA = ModuleSchema.from_json(json.loads((DATA / "schema_inner_universe_v9.json").read_text()))


def captured(name: str) -> bytes:
    return (DATA / "captured" / name).read_bytes()


def offline_builder(transport: MemoryTransport) -> ConnectionBuilder:
    """A builder whose one link is ``transport``, already holding the server's IdentityToken."""

    async def open_link(url: str, token: str | None) -> MemoryTransport:
        if transport.closed:
            raise ConnectError("the in-memory server is gone")
        transport.feed(captured("plain_0001_identity_token.bin"))
        return transport

    return (
        ConnectionBuilder()
        .with_uri("http://127.0.0.1:9")
        .with_database("captured")
        .with_schema(SCHEMA)
        .with_transport(open_link)
        .with_reconnect(False)
    )


async def opened(
    transport: MemoryTransport, builder: ConnectionBuilder | None = None
) -> DbConnection:
    return await (builder or offline_builder(transport)).connect(5)


def sent(transport: MemoryTransport) -> list[m.ClientMessage]:
    return [m.decode_client_message(data) for data in transport.sent]


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
    with pytest.raises(SubscriptionRejectedError, match="no_such_table"):
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
    transport = MemoryTransport()
    builder = offline_builder(transport).on_disconnect(
        lambda conn, error: disconnects.append(error)
    )
    conn = await opened(transport, builder)
    call = conn.reducers.create_conversation("never answered")
    transport.feed_close()
    with pytest.raises(OutcomeUnknownError, match="may or may not have taken effect"):
        await call
    assert await conn.wait_closed() is not None
    assert len(disconnects) == 1


async def test_a_malformed_server_message_closes_the_connection_with_a_decode_error() -> None:
    transport = MemoryTransport()
    conn = await opened(transport)
    transport.feed(b"\x00\x01\x02")  # tag none, then a truncated TransactionUpdate
    error = await asyncio.wait_for(conn.wait_closed(), 5)
    assert error is not None and "truncated" in str(error)


async def test_calls_go_out_in_the_callers_turn_and_queue_in_order_when_the_link_is_full() -> None:
    transport = MemoryTransport()
    conn = await opened(transport)
    before = len(transport.sent)
    conn.reducers.with_options(timeout=5).create_conversation("now")
    assert len(transport.sent) == before + 1  # written before the caller yields

    transport.hold_writes = True  # as a socket whose write buffer is full
    conn.reducers.with_options(timeout=5).create_conversation("queued")
    transport.hold_writes = False
    conn.reducers.with_options(timeout=5).create_conversation("behind the queued one")
    assert len(transport.sent) == before + 1  # nothing overtakes a queued message
    await asyncio.wait_for(_until_written(transport, before + 3), 5)  # by the send task
    conn.reducers.with_options(timeout=5).create_conversation("now again")
    assert len(transport.sent) == before + 4
    calls = sent(transport)[before:]
    assert all(isinstance(call, m.CallReducer) for call in calls)
    ids = [call.request_id for call in calls if isinstance(call, m.CallReducer)]
    assert ids == sorted(ids) and len(set(ids)) == 4
    await conn.disconnect()


async def test_a_sent_call_without_an_answer_times_out_as_outcome_unknown() -> None:
    transport = MemoryTransport()
    conn = await opened(transport)
    call = conn.reducers.with_options(timeout=0.05).create_conversation("no answer")
    with pytest.raises(OutcomeUnknownError, match="may still take effect"):
        await call
    await conn.disconnect()


async def test_calls_time_out_in_deadline_order_whatever_order_they_were_made() -> None:
    transport = MemoryTransport()
    conn = await opened(transport)
    expired: list[str] = []
    slow = conn.reducers.with_options(timeout=0.3).create_conversation("slow")
    many = [conn.reducers.with_options(timeout=5).create_conversation(f"{i}") for i in range(100)]
    fast = conn.reducers.with_options(timeout=0.05).create_conversation("fast")
    for name, call in (("slow", slow), ("fast", fast)):
        call.add_done_callback(lambda _, name=name: expired.append(name))
    with pytest.raises(OutcomeUnknownError):
        await fast
    assert expired == ["fast"] and not slow.done()
    with pytest.raises(OutcomeUnknownError):
        await slow
    assert expired == ["fast", "slow"] and not any(call.done() for call in many)
    await conn.disconnect()
    outcomes = await asyncio.gather(*many, return_exceptions=True)
    assert all(isinstance(outcome, OutcomeUnknownError) for outcome in outcomes)


async def test_a_call_that_could_not_be_sent_times_out_as_not_sent() -> None:
    transport = MemoryTransport()
    builder = offline_builder(transport).with_reconnect(ReconnectPolicy(initial_delay=0.01))
    conn = await opened(transport, builder)
    transport.feed_close()  # the server goes away and stays away
    await asyncio.wait_for(_until_disconnected(conn), 5)
    call = conn.reducers.with_options(timeout=0.05).create_conversation("never sent")
    with pytest.raises(NotSentError, match="will not take effect"):
        await call
    await conn.disconnect()


async def _until_written(transport: MemoryTransport, count: int) -> None:
    while len(transport.sent) < count:
        await asyncio.sleep(0.001)


async def _until_disconnected(conn: DbConnection) -> None:
    while conn.is_connected:
        await asyncio.sleep(0.001)


async def test_a_subscription_cancelled_before_it_is_applied_never_shows_its_rows() -> None:
    transport = MemoryTransport()
    conn = await opened(transport)
    applied: list[object] = []
    inserted: list[object] = []
    conn.db.agent.on_insert(lambda ctx, row: inserted.append(row))
    handle = conn.subscribe("SELECT * FROM agent", on_applied=applied.append)
    cancelling = asyncio.ensure_future(handle.unsubscribe())
    await asyncio.sleep(0)
    transport.feed(captured("plain_0002_subscribe_multi_applied.bin"))
    transport.feed(captured("plain_0006_unsubscribe_multi_applied.bin"))
    await asyncio.wait_for(cancelling, 5)
    assert applied == [] and inserted == [] and conn.db.agent.count() == 0
    assert isinstance(sent(transport)[-1], m.UnsubscribeMulti)
    with pytest.raises(InvalidStateError, match="cancelled"):
        await handle
    await conn.disconnect()


async def test_a_call_without_success_notification_resolves_once_handled() -> None:
    transport = MemoryTransport()
    conn = await opened(transport)
    call = conn.reducers.with_options(notify=False).create_conversation("quiet")
    await asyncio.sleep(0)
    call_msg, barrier = sent(transport)
    assert (
        isinstance(call_msg, m.CallReducer)
        and call_msg.flags == m.CallReducerFlags.NO_SUCCESS_NOTIFY
    )
    assert isinstance(barrier, m.SubscribeMulti) and barrier.query_strings == (BARRIER_QUERY,)
    answer = m.SubscriptionError(0, barrier.request_id, barrier.query_id.id, None, "parse error")
    transport.feed(m.encode_server_frame(answer, m.Compression.NONE))
    assert await asyncio.wait_for(call, 5) is None
    await conn.disconnect()


async def test_a_failure_of_a_call_its_caller_cancelled_is_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The caller stopped waiting; the failure that comes later must not break the link."""
    transport = MemoryTransport()
    conn = await opened(transport)
    call = conn.reducers.create_conversation("given up")
    call.cancel()
    assert conn.identity is not None and conn.connection_id is not None
    rejected = m.TransactionUpdate(  # failed before the reducer ran: it names no request
        status=m.Failed("the module rejected it"),
        timestamp=Timestamp(0),
        caller_identity=conn.identity,
        caller_connection_id=conn.connection_id,
        reducer_call=m.ReducerCallInfo("create_conversation", 0, b"", 0),
        energy_quanta_used=m.EnergyQuanta(0),
        total_host_execution_duration=TimeDuration(0),
    )
    transport.feed(m.encode_server_frame(rejected, m.Compression.NONE))
    await conn.flush(5)  # the call is settled: forgotten
    assert conn.is_connected
    # (Other tests' abandoned futures may log while this one runs: look for ours only.)
    raised = [r for r in caplog.records if r.getMessage().startswith("Exception in callback")]
    assert raised == []
    await conn.disconnect()


def test_reconnect_backoff_grows_with_jitter_up_to_the_cap() -> None:
    policy = ReconnectPolicy(initial_delay=0.1, max_delay=2.0, multiplier=2.0, jitter=0.5)
    rng = random.Random(3)
    delays = [policy.delay(attempt, rng) for attempt in range(12)]
    for attempt, delay in enumerate(delays):
        base = min(2.0, 0.1 * 2**attempt)
        assert base * 0.5 <= delay <= base
    assert len({round(d, 6) for d in delays[6:]}) > 1  # jittered, not in step
    assert ReconnectPolicy(jitter=0).delay(0) == 0.1


def test_a_durable_outbox_keeps_unsettled_calls_token_and_numbering(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    first = DurableOutbox(path, ack_window=30)
    first.save_token("secret-token")
    calls = [
        OutboxCall(first.next_seq(), "create_conversation", b"k" * 24 + b"x", True, True)
        for _ in range(3)
    ]
    for call in calls:
        first.add(call)
    calls[0].acked_at = time.time()
    first.acked(calls[0])
    first.remove(calls[1])  # failed: forgotten
    first.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    again = DurableOutbox(path, ack_window=30)
    assert (again.client_id, again.token, again.last_seq) == (first.client_id, "secret-token", 3)
    loaded = again.load()
    assert [(c.seq, c.state.value, c.was_sent) for c in loaded] == [
        (1, "acked", True),
        (3, "queued", True),
    ]
    assert again.next_seq() == 4
    again.close()


async def test_each_call_carries_the_connections_next_call_key() -> None:
    """Keys are the client id and the call's number in the outbox; call_key= is sent as given."""
    transport = MemoryTransport()
    conn = await opened(transport)
    assert 0 < conn.client_id < 2**128
    calls = [
        conn.reducers.create_conversation("first"),
        conn.call_reducer("create_conversation", "resent", call_key=CallKey(conn.client_id, 1)),
        conn.reducers.create_conversation("second"),
    ]
    await asyncio.sleep(0)
    reducer = SCHEMA.reducer("create_conversation")
    decoded = [
        reducer.decode_call(msg.args) for msg in sent(transport) if isinstance(msg, m.CallReducer)
    ]
    assert decoded == [
        ({"title": "first"}, CallKey(conn.client_id, 1)),
        ({"title": "resent"}, CallKey(conn.client_id, 1)),
        ({"title": "second"}, CallKey(conn.client_id, 3)),  # the explicit call took number 2
    ]
    await conn.disconnect()
    failed = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(f, OutcomeUnknownError) for f in failed)  # sent, never answered
