"""The fast lane for the common reply gives exactly the general path's outcome.

``ClientProtocol(lean_replies=True)`` (the driver's setting) reads a committed
``TransactionUpdate`` into a flat ``CommittedReply`` and reports it as one
``TransactionCommitted`` event. Each test here plays one conversation twice, fast
lane on and off, and compares everything observable: the reader's values, the
protocol's events and pending calls, and through the driver the callbacks' values,
the cache and the calls' futures. The protocol and driver tests also check that the
fast lane was (or was not) taken, so the comparison is not vacuous.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

import pytest

from inner_universe.errors import DecodeError, ReducerError
from inner_universe.spacetime import messages as m
from inner_universe.spacetime import protocol as p
from inner_universe.spacetime.connection import DbConnection
from inner_universe.spacetime.messages import (
    BsatnRowList,
    Compression,
    DatabaseUpdate,
    FixedSize,
    QueryUpdate,
    RowOffsets,
    TableUpdate,
)
from inner_universe.spacetime.protocol import CallKey, ClientProtocol, key_bytes
from inner_universe.spacetime.transport import MemoryTransport
from inner_universe.spacetime.types import ConnectionId, Identity, TimeDuration, Timestamp

from .test_connection import opened
from .test_protocol import ME, MY_CONN, OTHER, OTHER_CONN, ROWS, frame, tx


def committed(reducer: str, request_id: int, update: DatabaseUpdate = ROWS, **kw: Any) -> bytes:
    """A commit frame; the protocol tests' helper with the update as a parameter."""
    return tx(m.Committed(update), reducer, request_id, **kw)


# --------------------------------------------------------------------------- the reader

TWO_TABLES = DatabaseUpdate(
    (
        TableUpdate.from_rows(1, "person", inserts=[b"\x01\x00", b"\x02\x00\x00"]),
        TableUpdate(
            2,
            "pet",
            3,
            (
                m.CompressableQueryUpdate(
                    QueryUpdate(
                        BsatnRowList(FixedSize(2), b"\x01\x02\x03\x04"),
                        BsatnRowList(RowOffsets((0, 0, 1)), b"\x05\x06"),
                    )
                ),
                m.CompressableQueryUpdate(QueryUpdate()),
            ),
        ),
        TableUpdate.from_rows(1, "person", deletes=[b"\x03"]),  # the same table again
        TableUpdate(4, "empty", 0, ()),
    )
)


@pytest.mark.parametrize(
    "update", [DatabaseUpdate(), ROWS, TWO_TABLES], ids=["no tables", "one row", "mixed"]
)
def test_the_reader_yields_the_reference_decoders_values(update: DatabaseUpdate) -> None:
    for data in (
        committed("add", 7, update),
        committed("add", 0, update, args=b"xyz", caller=OTHER, conn=ConnectionId(0)),
    ):
        reply = m.read_committed_reply(data)
        msg = m.decode_server_frame(data)
        assert reply is not None and isinstance(msg, m.TransactionUpdate)
        assert isinstance(msg.status, m.Committed)
        assert reply.changes == msg.status.update.table_changes()
        info = msg.reducer_call
        assert (reply.reducer_name, reply.reducer_id, reply.args, reply.request_id) == (
            info.reducer_name,
            info.reducer_id,
            info.args,
            info.request_id,
        )
        assert (reply.caller_identity, reply.caller_connection_id) == (
            msg.caller_identity,
            msg.caller_connection_id,
        )
        assert reply.caller_bytes == msg.caller_identity.to_bytes() + struct.pack(
            "<QQ",
            msg.caller_connection_id.value & (2**64 - 1),
            msg.caller_connection_id.value >> 64,
        )
        assert (reply.timestamp, reply.energy_used, reply.duration) == (
            msg.timestamp,
            msg.energy_quanta_used.quanta,
            msg.total_host_execution_duration,
        )


def test_the_reader_declines_everything_but_a_well_formed_bare_commit() -> None:
    good = committed("add", 7)
    gzipped_update = TableUpdate(
        1,
        "person",
        1,
        (
            m.CompressableQueryUpdate(
                QueryUpdate(inserts=ROWS.tables[0].updates[0].update.inserts), Compression.GZIP
            ),
        ),
    )

    def bad(rows: BsatnRowList) -> bytes:
        update = m.CompressableQueryUpdate(QueryUpdate(rows))
        return committed("add", 7, DatabaseUpdate((TableUpdate(1, "person", 1, (update,)),)))

    malformed = {
        "one row not at offset 0": bad(BsatnRowList(RowOffsets((1,)), b"ab")),
        "offsets out of order": bad(BsatnRowList(RowOffsets((0, 2, 1)), b"abc")),
        "offset beyond the data": bad(BsatnRowList(RowOffsets((0, 4)), b"abc")),
        "rows not a multiple of their size": bad(BsatnRowList(FixedSize(2), b"abc")),
    }
    for data in malformed.values():  # the reference reader raises the exact error
        with pytest.raises(DecodeError):
            m.decode_server_frame(data)
    declined = {
        "failed": tx(m.Failed("boom"), "add", 0),
        "out of energy": tx(m.OutOfEnergy(), "add", 7),
        "light": frame(m.TransactionUpdateLight(7, ROWS)),
        "identity token": frame(m.IdentityToken(ME, "token", MY_CONN)),
        "gzipped frame": frame(
            m.TransactionUpdate(
                m.Committed(ROWS),
                Timestamp(0),
                ME,
                MY_CONN,
                m.ReducerCallInfo("add", 3, b"", 7),
                m.EnergyQuanta(0),
                TimeDuration(0),
            ),
            Compression.GZIP,
        ),
        "compressed query update": committed("add", 7, DatabaseUpdate((gzipped_update,))),
        "truncated": good[:-1],
        "trailing byte": good + b"\x00",
        "empty": b"",
        **malformed,
    }
    assert m.read_committed_reply(good) is not None
    for what, data in declined.items():
        assert m.read_committed_reply(data) is None, what
    assert m.read_committed_reply(memoryview(good)) is None  # only whole bytes objects
    assert m.read_committed_reply(good, max_message_size=len(good) - 1) is None


# --------------------------------------------------------------------------- the protocol


def normalized(events: list[p.ProtocolEvent]) -> list[object]:
    """Events with each TransactionCommitted replaced by what it stands for, as values."""
    out: list[object] = []
    for event in events:
        if isinstance(event, p.TransactionCommitted):
            r = event.reply
            cid = None if r.caller_connection_id.is_zero() else r.caller_connection_id
            out.append(
                (
                    *("tx", True, None, r.request_id, r.timestamp, r.caller_identity, cid),
                    *(r.reducer_name, r.reducer_id, r.args, r.energy_used, r.duration, r.changes),
                )
            )
            if event.settles:
                out.append(("result", r.request_id, r.reducer_name, True, None, len(out) - 1, True))
        elif isinstance(event, p.TransactionApplied):
            out.append(
                (
                    *("tx", event.committed, event.error, event.request_id, event.timestamp),
                    *(event.caller_identity, event.caller_connection_id, event.reducer_name),
                    *(event.reducer_id, event.reducer_args, event.energy_used, event.duration),
                    event.update.table_changes(),
                )
            )
        elif isinstance(event, p.ReducerResult):
            # The transaction that reported it, as the index of its event in this list.
            found = [i for i, e in enumerate(events) if e is event.transaction]
            where: object = found[0] if found else event.transaction
            out.append(
                (
                    *("result", event.request_id, event.reducer, event.committed, event.error),
                    *(where, event.reported),
                )
            )
        else:
            out.append(event)
    return out


Script = Callable[[ClientProtocol, Callable[[bytes], None]], None]


def play(lean: bool, script: Script) -> tuple[list[object], int]:
    """Run ``script`` on a fresh open protocol; what it showed, and how many fast-lane events."""
    proto = ClientProtocol(lean_replies=lean)
    proto.receive_message(frame(m.IdentityToken(ME, "token", MY_CONN)))
    proto.events_received()
    shown: list[object] = []
    fast = 0

    def feed(data: bytes) -> None:
        nonlocal fast
        proto.receive_message(data)
        events = proto.events_received()
        fast += sum(isinstance(e, p.TransactionCommitted) for e in events)
        shown.append((normalized(events), proto.pending_calls(), len(proto.data_to_send())))

    script(proto, feed)
    return shown, fast


def own_calls_in_order(proto: ClientProtocol, feed: Callable[[bytes], None]) -> None:
    keys = [CallKey(9, n) for n in (1, 2, 3)]
    ids = [proto.call_reducer("add", key_bytes(k) + b"x", keyed=True) for k in keys]
    for request_id in ids:
        feed(committed("add", request_id))


def someone_elses_commits(proto: ClientProtocol, feed: Callable[[bytes], None]) -> None:
    mine = proto.call_reducer("add")
    feed(committed("add", mine, caller=OTHER, conn=OTHER_CONN))  # their id clashes with ours
    feed(committed("add", 5, caller=OTHER, conn=ConnectionId(0)))  # no connection (scheduled)
    feed(committed("add", mine, caller=ME, conn=OTHER_CONN))  # our identity, another socket
    feed(committed("add", mine))


def a_failed_call(proto: ClientProtocol, feed: Callable[[bytes], None]) -> None:
    key = CallKey(9, 1)
    proto.call_reducer("add", key_bytes(key), keyed=True)
    feed(tx(m.Failed("no"), "add", 0, args=key_bytes(key), energy=5, micros=9))  # route A
    later = proto.call_reducer("add")
    feed(committed("add", later))


def a_silent_call_before(proto: ClientProtocol, feed: Callable[[bytes], None]) -> None:
    proto.call_reducer("quiet", flags=m.CallReducerFlags.NO_SUCCESS_NOTIFY)
    loud = proto.call_reducer("add")
    feed(committed("add", loud))  # settles the silent call before it: the general path
    again = proto.call_reducer("add")
    feed(committed("add", again))


def replies_out_of_order(proto: ClientProtocol, feed: Callable[[bytes], None]) -> None:
    first, second = proto.call_reducer("add"), proto.call_reducer("send")
    feed(committed("send", second))  # not the oldest: the general path
    feed(committed("add", first))


def a_held_error(proto: ClientProtocol, feed: Callable[[bytes], None]) -> None:
    first = proto.call_reducer("add")
    proto.call_reducer("add")
    feed(tx(m.Failed("bad args"), "add", 0, energy=0, micros=0))  # route B: held
    feed(committed("add", first))  # the oldest, but an error is held: the general path
    assert proto.pending_calls() == ()  # the held error went to the second call
    third = proto.call_reducer("add")
    feed(committed("add", third))


def light_and_compressed(proto: ClientProtocol, feed: Callable[[bytes], None]) -> None:
    first, second = proto.call_reducer("add"), proto.call_reducer("add")
    compressed = m.TransactionUpdate(
        m.Committed(ROWS),
        Timestamp(1),
        ME,
        MY_CONN,
        m.ReducerCallInfo("add", 3, b"", first),
        m.EnergyQuanta(1),
        TimeDuration(1),
    )
    feed(frame(compressed, Compression.GZIP))
    feed(frame(m.TransactionUpdateLight(second, ROWS)))
    feed(committed("add", second, TWO_TABLES))


@pytest.mark.parametrize(
    ("script", "fast_events"),
    [
        (own_calls_in_order, 3),
        (someone_elses_commits, 4),
        (a_failed_call, 1),
        (a_silent_call_before, 1),
        (replies_out_of_order, 1),
        (a_held_error, 1),
        (light_and_compressed, 1),
    ],
)
def test_the_fast_lane_shows_what_the_general_path_shows(script: Script, fast_events: int) -> None:
    general, none = play(False, script)
    lean, fast = play(True, script)
    assert none == 0 and fast == fast_events
    assert lean == general


# --------------------------------------------------------------------------- the driver

CONVERSATION = 7  # the conversation table's id


def conversation_row(n: int, owner: Identity, title: str) -> bytes:
    """id, owner, title, private, last_sequence, created_at, updated_at."""
    raw = title.encode()
    return (
        struct.pack("<Q", n)
        + owner.to_bytes()
        + struct.pack("<I", len(raw))
        + raw
        + b"\x00"
        + struct.pack("<Qqq", 0, n, n)
    )


class Module:
    """Plays the server for one connection: answers are built by the test, step by step."""

    def __init__(self) -> None:
        self.transport = MemoryTransport()
        self.read = 0

    async def connect(self) -> DbConnection:
        return await opened(self.transport)

    def written(self) -> list[m.ClientMessage]:
        """Messages the client wrote since the last look."""
        new = self.transport.sent[self.read :]
        self.read = len(self.transport.sent)
        return [m.decode_client_message(data) for data in new]

    def reply(
        self,
        conn: DbConnection,
        call: m.CallReducer,
        status: m.UpdateStatus,
        caller: tuple[Identity, ConnectionId] | None = None,
    ) -> None:
        assert conn.identity is not None and conn.connection_id is not None
        identity, connection_id = caller or (conn.identity, conn.connection_id)
        request_id = call.request_id if isinstance(status, m.Committed) else 0
        self.transport.feed(
            frame(
                m.TransactionUpdate(
                    status,
                    Timestamp(1_700_000_000_000_000 + call.request_id),
                    identity,
                    connection_id,
                    m.ReducerCallInfo(call.reducer, 3, call.args, request_id),
                    m.EnergyQuanta(100 + call.request_id),
                    TimeDuration(call.request_id),
                )
            )
        )


def rows(*changes: tuple[list[bytes], list[bytes]]) -> m.Committed:
    tables = tuple(
        TableUpdate.from_rows(CONVERSATION, "conversation", inserts=ins, deletes=dels)
        for dels, ins in changes
    )
    return m.Committed(DatabaseUpdate(tables))


async def conversation(lean: bool) -> tuple[list[object], int]:
    """A session of own, foreign, failed, silent and out-of-order calls; what it showed."""
    module = Module()
    conn = await module.connect()
    assert conn._session is not None and conn.identity is not None
    protocol = conn._session.protocol
    protocol.lean_replies = lean
    seen: list[object] = []
    table = conn.db.conversation
    table.on_insert(lambda ctx, row: seen.append(("insert", ctx.event, ctx.sequence, row)))
    table.on_delete(lambda ctx, row: seen.append(("delete", ctx.event, ctx.sequence, row)))
    table.on_update(lambda ctx, old, new: seen.append(("update", ctx.sequence, old, new)))
    conn.on_reducer(None, lambda ctx, event: seen.append(("reducer", ctx.sequence, event)))
    conn.on_transaction(lambda ctx: seen.append(("tx", ctx.event, ctx.diff, ctx.sequence)))
    fast = 0
    dispatch = conn._dispatch

    def counting(session: Any, event: p.ProtocolEvent) -> None:
        nonlocal fast
        fast += isinstance(event, p.TransactionCommitted)
        dispatch(session, event)

    conn._dispatch = counting  # type: ignore[method-assign]

    me = conn.identity
    first = conversation_row(1, me, "first")
    handle = conn.subscribe("SELECT * FROM conversation")
    (sub,) = module.written()
    assert isinstance(sub, m.SubscribeMulti)
    initial = DatabaseUpdate((TableUpdate.from_rows(CONVERSATION, "conversation", [first]),))
    module.transport.feed(frame(m.SubscribeMultiApplied(sub.request_id, 1, sub.query_id, initial)))
    await handle

    async def outcome(future: asyncio.Future[Any]) -> object:
        try:
            return ("ok", await asyncio.wait_for(future, 5))
        except ReducerError as exc:
            return ("error", str(exc))

    # Three pipelined own calls, answered in order: one inserts, one updates, one deletes.
    calls = [conn.reducers.create_conversation(f"c{n}") for n in range(3)]
    a, b, c = module.written()
    assert isinstance(a, m.CallReducer) and isinstance(b, m.CallReducer)
    assert isinstance(c, m.CallReducer)
    second = conversation_row(2, me, "second")
    renamed = conversation_row(1, me, "renamed")
    module.reply(conn, a, rows(([], [second])))
    module.reply(conn, b, rows(([first], [renamed])))
    module.reply(conn, c, rows(([second], [])))
    seen += [await outcome(f) for f in calls]

    # Someone else's commit, and one of a scheduled reducer (no connection).
    foreign = conversation_row(3, OTHER, "theirs")
    module.reply(conn, a, rows(([], [foreign])), (OTHER, OTHER_CONN))
    module.reply(conn, b, rows(([foreign], [])), (OTHER, ConnectionId(0)))

    # A call that fails while running (route A), then a silent call before a loud one.
    failing = conn.reducers.create_conversation("fails")
    (d,) = module.written()
    assert isinstance(d, m.CallReducer)
    module.reply(conn, d, m.Failed("title taken"))
    seen.append(await outcome(failing))
    quiet = conn.reducers.with_options(notify=False).create_conversation("quiet")
    loud = conn.reducers.create_conversation("loud")
    e, barrier, f = module.written()
    assert isinstance(e, m.CallReducer) and isinstance(f, m.CallReducer)
    assert isinstance(barrier, m.SubscribeMulti)
    module.reply(conn, f, rows(([], [conversation_row(4, me, "loud")])))
    seen += [await outcome(quiet), await outcome(loud)]

    # Two calls answered out of order.
    later = [conn.reducers.create_conversation(t) for t in ("x", "y")]
    x, y = (w for w in module.written() if isinstance(w, m.CallReducer))
    module.reply(conn, y, rows(([], [conversation_row(6, me, "y")])))
    module.reply(conn, x, rows(([], [conversation_row(5, me, "x")])))
    seen += [await outcome(f) for f in later]

    await conn.flush(5)
    seen.append(sorted((row.id, row.title) for row in table))
    seen.append(protocol.pending_calls())
    await conn.disconnect()
    return seen, fast


async def test_through_the_driver_the_fast_lane_changes_nothing_observable() -> None:
    general, none = await conversation(False)
    lean, fast = await conversation(True)
    # The fast lane takes the 3 own calls in order, the 2 foreign commits and x (the
    # oldest once y is settled); the failure, loud (quiet is older) and y do not.
    assert none == 0 and fast == 6
    assert lean == general
