"""The native reader of the common reply against the pure-Python reference.

``messages.read_committed_reply`` reads a committed, uncompressed ``TransactionUpdate``
with the native ``ReplyReader`` when the codec chose the extension, else with the
reference (``messages._python_reply``). Both are run here on the same frames, whichever
one this process selected: generated well-formed replies, and the same replies
corrupted, truncated or extended. Both must yield equal values of the same types, or
both decline (None). The extension is always built by the setup command; without it
there is nothing to compare.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inner_universe.spacetime import codec
from inner_universe.spacetime import messages as m
from inner_universe.spacetime.layout import CLASSES
from inner_universe.spacetime.messages import (
    BsatnRowList,
    CompressableQueryUpdate,
    Compression,
    DatabaseUpdate,
    FixedSize,
    QueryUpdate,
    RowOffsets,
    TableUpdate,
)
from inner_universe.spacetime.types import ConnectionId, Identity, TimeDuration, Timestamp

_native = pytest.importorskip("inner_universe._native", reason="the native extension is not built")

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
PYTHON = m._python_reply
NATIVE = _native.ReplyReader(m.CommittedReply, CLASSES).read

FIELDS = (
    "timestamp",
    "caller_identity",
    "caller_connection_id",
    "caller_bytes",
    "reducer_name",
    "reducer_id",
    "args",
    "request_id",
    "energy_used",
    "duration",
)


def snapshot(reply: m.CommittedReply | None) -> object:
    """Everything a reply holds, with the type of every value and the tables' order."""
    if reply is None:
        return None
    changes = [
        (
            type(name),
            name,
            type(lists),
            [(type(rows), [(type(r), r) for r in rows]) for rows in lists],
        )
        for name, lists in reply.changes.items()
    ]
    return type(reply.changes), changes, [(type(v), v) for v in map(reply.__getattribute__, FIELDS)]


def agree(data: bytes) -> m.CommittedReply | None:
    """Both readers' reply for ``data``, asserted equal; the reference's is returned."""
    expected = PYTHON(data)
    assert snapshot(NATIVE(data)) == snapshot(expected)
    return expected


# --------------------------------------------------------------------------- generated replies

U32 = st.integers(0, 2**32 - 1)
NAMES = st.sampled_from(["person", "pet", "empty", "é\u4e2d", "", "person"]) | st.text(max_size=6)
ROWS = st.lists(st.binary(max_size=6), max_size=5)


@st.composite
def row_lists(draw: st.DrawFn) -> BsatnRowList:
    """Well-formed row lists: offsets (zero-length rows too) or fixed-size rows, often empty."""
    if draw(st.booleans()):
        return BsatnRowList.from_rows(draw(ROWS))
    size = draw(st.integers(0, 4))
    count = draw(st.integers(0, 4)) if size else 0
    return BsatnRowList.from_rows(
        [draw(st.binary(min_size=size, max_size=size)) for _ in range(count)], fixed_size=size
    )


query_updates = st.builds(
    lambda deletes, inserts: CompressableQueryUpdate(QueryUpdate(deletes, inserts)),
    row_lists(),
    row_lists(),
)
table_updates = st.builds(
    TableUpdate,
    U32,
    NAMES,
    st.integers(0, 2**64 - 1),
    st.lists(query_updates, max_size=3).map(tuple),
)


@st.composite
def replies(draw: st.DrawFn) -> bytes:
    """A committed, uncompressed TransactionUpdate frame, from the reference encoder."""
    update = DatabaseUpdate(tuple(draw(st.lists(table_updates, max_size=4))))
    return m.encode_server_frame(
        m.TransactionUpdate(
            m.Committed(update),
            Timestamp(draw(st.integers(-(2**63), 2**63 - 1))),
            Identity(draw(st.sampled_from([0, 7, 2**256 - 1]) | st.integers(0, 2**256 - 1))),
            ConnectionId(draw(st.integers(0, 2**128 - 1))),
            m.ReducerCallInfo(
                draw(st.text(max_size=8)), draw(U32), draw(st.binary(max_size=8)), draw(U32)
            ),
            m.EnergyQuanta(draw(st.sampled_from([0, 2**128 - 1]) | st.integers(0, 2**128 - 1))),
            TimeDuration(draw(st.integers(-(2**63), 2**63 - 1))),
        )
    )


@SETTINGS
@given(replies())
def test_well_formed_replies_read_alike(data: bytes) -> None:
    reply = agree(data)
    msg = m.decode_server_frame(data)
    assert reply is not None and isinstance(msg, m.TransactionUpdate)  # not vacuous
    assert isinstance(msg.status, m.Committed)
    assert reply.changes == msg.status.update.table_changes()


@SETTINGS
@given(replies(), st.data())
def test_truncated_or_extended_replies_read_alike(data: bytes, draw: st.DataObject) -> None:
    cut = draw.draw(st.integers(0, len(data)))
    agree(data[:cut])
    agree(data + draw.draw(st.binary(min_size=1, max_size=9)))


@SETTINGS
@given(replies(), st.data())
def test_corrupted_replies_read_alike(data: bytes, draw: st.DataObject) -> None:
    at = draw.draw(st.integers(0, len(data) - 1))
    byte = draw.draw(st.integers(0, 255) | st.sampled_from([0xFF, 0x80, 0xC3]))
    agree(data[:at] + bytes([byte]) + data[at + 1 :])  # one byte changed
    agree(data[:at] + draw.draw(st.binary(min_size=1, max_size=4)) + data[at:])  # bytes inserted
    agree(data[:at] + data[at + 1 :])  # one byte dropped


# --------------------------------------------------------------------------- hand-made cases

offset_lists = st.builds(
    lambda offsets, data: BsatnRowList(RowOffsets(tuple(offsets)), data),
    st.lists(st.integers(0, 8) | st.sampled_from([2**64 - 1, 2**63]), max_size=4),
    st.binary(max_size=8),
)
fixed_lists = st.builds(
    lambda size, data: BsatnRowList(FixedSize(size), data),
    st.integers(0, 3) | st.just(2**16 - 1),
    st.binary(max_size=7),
)


@SETTINGS
@given(st.lists(offset_lists | fixed_lists | row_lists(), min_size=2, max_size=4))
def test_row_lists_with_any_hint_read_alike(lists: list[BsatnRowList]) -> None:
    """Size hints that may not cut their data into rows: out of order, beyond the end,
    not starting at 0, not a multiple of the row size, a size of 0 with data."""
    updates = tuple(
        CompressableQueryUpdate(QueryUpdate(a, b))
        for a, b in zip(lists[::2], lists[1::2], strict=False)
    )
    agree(committed(DatabaseUpdate((TableUpdate(1, "t", 0, updates),))))


def committed(update: DatabaseUpdate, status: Any = None, **frame: Any) -> bytes:
    return m.encode_server_frame(
        m.TransactionUpdate(
            status or m.Committed(update),
            Timestamp(1),
            Identity(2),
            ConnectionId(3),
            m.ReducerCallInfo("add", 4, b"args", 5),
            m.EnergyQuanta(6),
            TimeDuration(7),
        ),
        **frame,
    )


PERSON = TableUpdate.from_rows(1, "person", inserts=[b"\x01\x00"])


GOOD = committed(DatabaseUpdate((PERSON,)))
GZIPPED_UPDATE = CompressableQueryUpdate(QueryUpdate(), Compression.GZIP)
FRAMES = {
    "committed": GOOD,
    "failed": committed(DatabaseUpdate(()), m.Failed("boom")),
    "out of energy": committed(DatabaseUpdate(()), m.OutOfEnergy()),
    "gzipped frame": committed(DatabaseUpdate((PERSON,)), compression=Compression.GZIP),
    "gzipped query update": committed(
        DatabaseUpdate((TableUpdate(1, "person", 1, (GZIPPED_UPDATE,)),))
    ),
    "light": m.encode_server_frame(m.TransactionUpdateLight(7, DatabaseUpdate((PERSON,)))),
    "bad UTF-8 table name": GOOD.replace(b"person", b"pers\xffn"),
    "bad UTF-8 reducer name": GOOD.replace(b"add", b"a\xc0d"),
    "empty": b"",
    "compression tag only": b"\x00",
    "message tag only": b"\x00\x01",
    "status tag only": b"\x00\x01\x00",
    "a huge table count, no tables": b"\x00\x01\x00\xff\xff\xff\xff",
}


@pytest.mark.parametrize("what", FRAMES)
def test_hand_made_frames_read_alike(what: str) -> None:
    agree(FRAMES[what])


def test_consecutive_replies_of_one_caller_share_its_objects() -> None:
    """A client mostly receives its own calls' replies: one Identity serves them all."""
    data = committed(DatabaseUpdate((PERSON,)))
    for read in (PYTHON, NATIVE):
        first, second = read(data), read(data)
        assert first is not None and second is not None
        assert first.caller_identity is second.caller_identity
        assert first.caller_connection_id is second.caller_connection_id


def test_the_reader_in_use_is_the_one_the_codec_chose() -> None:
    in_use = m._read_reply
    if codec.IMPLEMENTATION == "native":
        assert isinstance(getattr(in_use, "__self__", None), _native.ReplyReader)
    else:
        assert in_use is PYTHON
