"""The v1 message codec: round trips, golden bytes, compression, malformed input, captures."""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import re
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inner_universe.errors import DecodeError, EncodeError
from inner_universe.spacetime import messages as m
from inner_universe.spacetime.bsatn import BsatnWriter
from inner_universe.spacetime.messages import (
    BsatnRowList,
    CompressableQueryUpdate,
    Compression,
    DatabaseUpdate,
    FixedSize,
    QueryId,
    QueryUpdate,
    RowOffsets,
    TableUpdate,
)
from inner_universe.spacetime.types import ConnectionId, Identity, TimeDuration, Timestamp

HAVE_BROTLI = importlib.util.find_spec("brotli") is not None
CAPTURED = Path(__file__).resolve().parents[1] / "data" / "captured"

# --------------------------------------------------------------------------- strategies

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
names = st.text(max_size=12)
blobs = st.binary(max_size=24)
opt_u32 = st.none() | u32
query_ids = st.builds(QueryId, u32)
durations = st.builds(TimeDuration, i64)
timestamps = st.builds(Timestamp, i64)
identities = st.builds(Identity, st.integers(0, 2**256 - 1))
connection_ids = st.builds(ConnectionId, st.integers(0, 2**128 - 1))
compressions = st.sampled_from(
    [Compression.NONE, Compression.GZIP] + ([Compression.BROTLI] if HAVE_BROTLI else [])
)


@st.composite
def row_lists(draw: st.DrawFn) -> BsatnRowList:
    if draw(st.booleans()):
        size = draw(st.integers(1, 6))
        rows = draw(st.lists(st.binary(min_size=size, max_size=size), max_size=5))
        return BsatnRowList.from_rows(rows, fixed_size=size)
    return BsatnRowList.from_rows(draw(st.lists(blobs, max_size=5)))


query_updates = st.builds(QueryUpdate, row_lists(), row_lists())
table_updates = st.builds(
    TableUpdate,
    u32,
    names,
    u64,
    st.lists(st.builds(CompressableQueryUpdate, query_updates, compressions), max_size=3).map(
        tuple
    ),
)
database_updates = st.builds(DatabaseUpdate, st.lists(table_updates, max_size=3).map(tuple))
update_statuses = st.one_of(
    st.builds(m.Committed, database_updates), st.builds(m.Failed, names), st.just(m.OutOfEnergy())
)
procedure_statuses = st.one_of(
    st.builds(m.ProcedureReturned, blobs),
    st.just(m.ProcedureOutOfEnergy()),
    st.builds(m.ProcedureInternalError, names),
)
subscribe_rows = st.builds(m.SubscribeRows, u32, names, table_updates)
query_lists = st.lists(names, max_size=3).map(tuple)

client_messages = st.one_of(
    st.builds(m.CallReducer, names, blobs, u32, st.sampled_from(m.CallReducerFlags)),
    st.builds(m.Subscribe, query_lists, u32),
    st.builds(m.OneOffQuery, blobs, names),
    st.builds(m.SubscribeSingle, names, u32, query_ids),
    st.builds(m.SubscribeMulti, query_lists, u32, query_ids),
    st.builds(m.Unsubscribe, u32, query_ids),
    st.builds(m.UnsubscribeMulti, u32, query_ids),
    st.builds(m.CallProcedure, names, blobs, u32),
)
transaction_updates = st.builds(
    m.TransactionUpdate,
    update_statuses,
    timestamps,
    identities,
    connection_ids,
    st.builds(m.ReducerCallInfo, names, u32, blobs, u32),
    st.builds(m.EnergyQuanta, st.integers(0, 2**128 - 1)),
    durations,
)
server_messages = st.one_of(
    st.builds(m.InitialSubscription, database_updates, u32, durations),
    transaction_updates,
    st.builds(m.TransactionUpdateLight, u32, database_updates),
    st.builds(m.IdentityToken, identities, names, connection_ids),
    st.builds(
        m.OneOffQueryResponse,
        blobs,
        st.none() | names,
        st.lists(st.builds(m.OneOffTable, names, row_lists()), max_size=2).map(tuple),
        durations,
    ),
    st.builds(m.SubscribeApplied, u32, u64, query_ids, subscribe_rows),
    st.builds(m.UnsubscribeApplied, u32, u64, query_ids, subscribe_rows),
    st.builds(m.SubscriptionError, u64, opt_u32, opt_u32, opt_u32, names),
    st.builds(m.SubscribeMultiApplied, u32, u64, query_ids, database_updates),
    st.builds(m.UnsubscribeMultiApplied, u32, u64, query_ids, database_updates),
    st.builds(m.ProcedureResult, procedure_statuses, timestamps, durations, u32),
)

# --------------------------------------------------------------------------- round trips


@given(client_messages)
def test_client_messages_round_trip(msg: m.ClientMessage) -> None:
    assert m.decode_client_message(m.encode_client_message(msg)) == msg


@given(server_messages)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_server_messages_round_trip(msg: m.ServerMessage) -> None:
    assert m.decode_server_message(m.encode_server_message(msg)) == msg


@given(server_messages, compressions)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_server_frames_round_trip(msg: m.ServerMessage, compression: Compression) -> None:
    frame = m.encode_server_frame(msg, compression)
    assert frame[0] == compression
    assert m.decode_server_frame(frame) == msg


# --------------------------------------------------------------------------- golden bytes


def u32le(n: int) -> bytes:
    return n.to_bytes(4, "little")


def s(text: str) -> bytes:
    return u32le(len(text.encode())) + text.encode()


def test_golden_call_reducer() -> None:
    msg = m.CallReducer("add", b"\x01\x02", request_id=7)
    expected = bytes.fromhex("00030000006164640200000001020700000000")
    assert m.encode_client_message(msg) == expected
    flags = m.CallReducerFlags.NO_SUCCESS_NOTIFY
    no_notify = m.encode_client_message(m.CallReducer("add", b"", 1, flags))
    assert no_notify[-1] == 1


@given(
    st.text(max_size=12),
    blobs,
    st.integers(-1, 0x1_0000_0000),
    st.sampled_from(m.CallReducerFlags),
)
def test_a_call_reducer_encodes_as_the_bsatn_writer_writes_it(
    reducer: str, args: bytes, request_id: int, flags: m.CallReducerFlags
) -> None:
    """The joined fast path for calls: the writer's bytes, or the writer's error."""
    msg = m.CallReducer(reducer, args, request_id, flags)
    w = BsatnWriter()
    try:
        w.tag(0)
        w.string(reducer)
        w.bytes(args)
        w.u32(request_id)
        w.u8(flags)
    except EncodeError:
        with pytest.raises(EncodeError):
            m.encode_client_message(msg)
        return
    assert m.encode_client_message(msg) == w.getvalue()


def test_golden_subscribe_multi_and_unsubscribe_multi() -> None:
    sub = m.SubscribeMulti(("SELECT * FROM t",), request_id=1, query_id=QueryId(2))
    expected = b"\x04" + u32le(1) + s("SELECT * FROM t") + u32le(1) + u32le(2)
    assert m.encode_client_message(sub) == expected
    unsub = m.UnsubscribeMulti(request_id=5, query_id=QueryId(2))
    assert m.encode_client_message(unsub) == bytes.fromhex("060500000002000000")


def test_golden_one_off_query() -> None:
    msg = m.OneOffQuery(b"\xaa\xbb", "SELECT 1")
    assert m.encode_client_message(msg) == b"\x02" + u32le(2) + b"\xaa\xbb" + s("SELECT 1")


def test_golden_identity_token() -> None:
    # Identity and ConnectionId are little-endian on the wire, big-endian in hex.
    identity = Identity.from_hex("c2" + "00" * 30 + "01")
    data = (
        b"\x03"
        + b"\x01" + b"\x00" * 30 + b"\xc2"
        + s("jwt")
        + b"\x09" + b"\x00" * 15
    )  # fmt: skip
    msg = m.decode_server_message(data)
    assert msg == m.IdentityToken(identity, "jwt", ConnectionId(9))
    assert m.decode_server_frame(b"\x00" + data) == msg
    assert "jwt" not in repr(msg)  # the token is a credential


def test_golden_subscribe_multi_applied_with_fixed_size_rows() -> None:
    data = (
        b"\x08" + u32le(3) + (250).to_bytes(8, "little") + u32le(2)  # request, micros, query
        + u32le(1)  # one table
        + u32le(4096) + s("person") + (2).to_bytes(8, "little")
        + u32le(1) + b"\x00"  # one Uncompressed query update
        + b"\x01" + u32le(0) + u32le(0)  # deletes: RowOffsets([]), no data
        + b"\x00" + b"\x04\x00" + u32le(8) + b"AAAABBBB"  # inserts: FixedSize(4), 8 bytes
    )  # fmt: skip
    msg = m.decode_server_message(data)
    assert isinstance(msg, m.SubscribeMultiApplied)
    assert (msg.request_id, msg.total_host_execution_duration_micros) == (3, 250)
    assert msg.query_id == QueryId(2)
    (table,) = msg.update.tables
    assert (table.table_id, table.table_name, table.num_rows) == (4096, "person", 2)
    assert table.insert_rows() == [b"AAAA", b"BBBB"]
    assert table.delete_rows() == []
    assert m.encode_server_message(msg) == data


def test_golden_failed_transaction_update() -> None:
    data = (
        b"\x01"
        + b"\x01" + s("boom")  # Failed("boom")
        + (1_700_000_000_000_000).to_bytes(8, "little", signed=True)  # micros
        + b"\x07" + b"\x00" * 31  # caller identity
        + b"\x05" + b"\x00" * 15  # caller connection id
        + s("send") + u32le(2) + u32le(1) + b"\x2a" + u32le(0)  # reducer call info
        + b"\x00" * 16  # energy
        + (12).to_bytes(8, "little", signed=True)  # duration
    )  # fmt: skip
    msg = m.decode_server_message(data)
    assert msg == m.TransactionUpdate(
        m.Failed("boom"),
        Timestamp(1_700_000_000_000_000),
        Identity(7),
        ConnectionId(5),
        m.ReducerCallInfo("send", 2, b"\x2a", 0),
        m.EnergyQuanta(0),
        TimeDuration(12),
    )
    assert m.encode_server_message(msg) == data


def test_golden_subscription_error_options() -> None:
    # Option is a sum with some = 0, none = 1.
    data = b"\x07" + bytes(8) + b"\x00" + u32le(9) + b"\x01" + b"\x01" + s("bad query")
    msg = m.decode_server_message(data)
    assert msg == m.SubscriptionError(0, 9, None, None, "bad query")
    assert m.encode_server_message(msg) == data


# --------------------------------------------------------------------------- compression


IDENTITY_MSG = m.IdentityToken(Identity(1), "t", ConnectionId(2))


def test_gzip_frame() -> None:
    frame = b"\x02" + gzip.compress(m.encode_server_message(IDENTITY_MSG))
    assert m.decode_server_frame(frame) == IDENTITY_MSG


@pytest.mark.skipif(not HAVE_BROTLI, reason="brotli is not installed")
def test_brotli_frame() -> None:
    brotli = pytest.importorskip("brotli")
    frame = b"\x01" + brotli.compress(m.encode_server_message(IDENTITY_MSG))
    assert m.decode_server_frame(frame) == IDENTITY_MSG


def test_brotli_without_the_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(m, "_brotli", lambda: None)
    with pytest.raises(DecodeError, match=r"pip install brotli.*compression=Gzip"):
        m.decode_server_frame(b"\x01\x8b\x00\x80")
    inner = TableUpdate(1, "t", 0, (CompressableQueryUpdate(QueryUpdate(), Compression.BROTLI),))
    with pytest.raises(EncodeError, match="brotli"):
        m.encode_server_message(m.TransactionUpdateLight(0, DatabaseUpdate((inner,))))


def test_gzip_compressed_query_update() -> None:
    inner = QueryUpdate(inserts=BsatnRowList.from_rows([b"x", b"yy"]))
    table = TableUpdate(1, "t", 2, (CompressableQueryUpdate(inner, Compression.GZIP),))
    msg = m.TransactionUpdateLight(4, DatabaseUpdate((table,)))
    data = m.encode_server_message(msg)
    assert gzip.compress(b"")[:2] in data  # the gzip magic is inside
    decoded = m.decode_server_message(data)
    assert decoded == msg
    assert isinstance(decoded, m.TransactionUpdateLight)
    assert decoded.update.tables[0].insert_rows() == [b"x", b"yy"]


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (b"", "empty"),
        (b"\x03" + m.encode_server_message(IDENTITY_MSG), "compression tag 3"),
        (b"\xff", "compression tag 255"),
        (b"\x02not gzip at all", "gzip"),
        (b"\x02" + gzip.compress(m.encode_server_message(IDENTITY_MSG), mtime=0)[:-5], "gzip"),
    ],
)
def test_bad_frames(frame: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        m.decode_server_frame(frame)


@pytest.mark.skipif(not HAVE_BROTLI, reason="brotli is not installed")
def test_corrupt_brotli_frame() -> None:
    with pytest.raises(DecodeError, match="brotli"):
        m.decode_server_frame(b"\x01garbage")


def test_corrupt_inner_gzip() -> None:
    light = b"\x02" + u32le(0) + u32le(1) + u32le(1) + s("t") + bytes(8) + u32le(1)
    with pytest.raises(DecodeError, match="gzip"):
        m.decode_server_message(light + b"\x02" + u32le(3) + b"bad")


def test_inner_gzip_with_trailing_bytes() -> None:
    empty_rows = b"\x01" + u32le(0) + u32le(0)
    payload = gzip.compress(empty_rows + empty_rows + b"extra")
    light = b"\x02" + u32le(0) + u32le(1) + u32le(1) + s("t") + bytes(8) + u32le(1)
    with pytest.raises(DecodeError, match="trailing"):
        m.decode_server_message(light + b"\x02" + u32le(len(payload)) + payload)


# --------------------------------------------------------------------------- malformed input


#: One of every server variant, with nested structure, for exhaustive truncation.
SERVER_SAMPLES: list[m.ServerMessage] = [
    IDENTITY_MSG,
    m.InitialSubscription(
        DatabaseUpdate((TableUpdate.from_rows(1, "t", inserts=[b"a"]),)), 1, TimeDuration(2)
    ),
    m.TransactionUpdateLight(3, DatabaseUpdate((TableUpdate.from_rows(1, "t", deletes=[b"a"]),))),
    m.SubscribeApplied(1, 2, QueryId(3), m.SubscribeRows(4, "t", TableUpdate.from_rows(4, "t"))),
    m.UnsubscribeApplied(1, 2, QueryId(3), m.SubscribeRows(4, "t", TableUpdate.from_rows(4, "t"))),
    m.UnsubscribeMultiApplied(1, 2, QueryId(3), DatabaseUpdate()),
    m.SubscribeMultiApplied(
        1,
        2,
        QueryId(3),
        DatabaseUpdate(
            (
                TableUpdate.from_rows(1, "a", inserts=[b"r1", b"row2"], deletes=[b"d"]),
                TableUpdate(
                    2,
                    "b",
                    2,
                    (
                        CompressableQueryUpdate(
                            QueryUpdate(inserts=BsatnRowList.from_rows([b"xy", b"zw"], 2)),
                            Compression.GZIP,
                        ),
                    ),
                ),
            )
        ),
    ),
    m.TransactionUpdate(
        m.Committed(DatabaseUpdate((TableUpdate.from_rows(7, "t", inserts=[b"\x01"]),))),
        Timestamp(5),
        Identity(6),
        ConnectionId(7),
        m.ReducerCallInfo("r", 1, b"args", 9),
        m.EnergyQuanta(10),
        TimeDuration(11),
    ),
    m.OneOffQueryResponse(
        b"id", None, (m.OneOffTable("t", BsatnRowList.from_rows([b"a"])),), TimeDuration(0)
    ),
    m.SubscriptionError(1, None, None, None, "fatal"),
    m.ProcedureResult(m.ProcedureInternalError("x"), Timestamp(1), TimeDuration(2), 3),
]


#: One of every client variant.
CLIENT_SAMPLES: list[m.ClientMessage] = [
    m.CallReducer("r", b"args", 1),
    m.Subscribe(("SELECT * FROM t",), 2),
    m.OneOffQuery(b"id", "SELECT * FROM t"),
    m.SubscribeSingle("SELECT * FROM t", 3, QueryId(4)),
    m.SubscribeMulti(("SELECT * FROM t", "SELECT * FROM u"), 5, QueryId(6)),
    m.Unsubscribe(7, QueryId(4)),
    m.UnsubscribeMulti(8, QueryId(6)),
    m.CallProcedure("p", b"", 9),
]


def test_samples_cover_every_variant() -> None:
    assert {m.encode_server_message(msg)[0] for msg in SERVER_SAMPLES} == set(range(11))
    assert {m.encode_client_message(msg)[0] for msg in CLIENT_SAMPLES} == set(range(8))


@pytest.mark.parametrize("msg", SERVER_SAMPLES, ids=lambda msg: type(msg).__name__)
def test_every_truncation_is_a_decode_error(msg: m.ServerMessage) -> None:
    assert m.decode_server_message(m.encode_server_message(msg)) == msg
    data = m.encode_server_message(msg)
    for end in range(len(data)):
        with pytest.raises(DecodeError):
            m.decode_server_message(data[:end])
        with pytest.raises(DecodeError):
            m.decode_server_frame(b"\x00" + data[:end])


@pytest.mark.parametrize("msg", CLIENT_SAMPLES, ids=lambda msg: type(msg).__name__)
def test_every_client_truncation_is_a_decode_error(msg: m.ClientMessage) -> None:
    data = m.encode_client_message(msg)
    assert m.decode_client_message(data) == msg
    for end in range(len(data)):
        with pytest.raises(DecodeError):
            m.decode_client_message(data[:end])


@given(server_messages, st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_random_truncations_are_decode_errors(msg: m.ServerMessage, data: st.DataObject) -> None:
    encoded = m.encode_server_message(msg)
    end = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(DecodeError):
        m.decode_server_message(encoded[:end])


@given(server_messages, st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_corrupted_messages_decode_or_raise_decode_error(
    msg: m.ServerMessage, data: st.DataObject
) -> None:
    encoded = bytearray(m.encode_server_message(msg))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(encoded) - 1))
        encoded[pos] = data.draw(st.integers(0, 255))
    with contextlib.suppress(DecodeError):
        m.decode_server_message(bytes(encoded))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    for decode in (m.decode_server_message, m.decode_server_frame, m.decode_client_message):
        with contextlib.suppress(DecodeError):
            decode(data)


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        m.decode_server_message(m.encode_server_message(IDENTITY_MSG) + b"\x00")
    with pytest.raises(DecodeError, match="trailing"):
        m.decode_client_message(m.encode_client_message(m.Unsubscribe(1, QueryId(1))) + b"\x00")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x0b", "ServerMessage tag 11"),
        (b"\x01\x03", "UpdateStatus tag 3"),
        (b"\x07" + bytes(8) + b"\x02", "Option tag 2"),
        (b"\x02" + u32le(0) + u32le(1) + u32le(1) + s("t") + bytes(8) + u32le(1) + b"\x03", "tag"),
        (
            b"\x02" + u32le(0) + u32le(1) + u32le(1) + s("t") + bytes(8) + u32le(1) + b"\x00\x02",
            "RowSizeHint",
        ),
        (b"\x0a\x03", "ProcedureStatus tag 3"),
        (b"\x03" + bytes(32) + u32le(2) + b"\xff\xfe" + bytes(16), "UTF-8"),
    ],
)
def test_invalid_server_values(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        m.decode_server_message(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x08", "ClientMessage tag 8"),
        (b"\x00" + s("r") + u32le(0) + u32le(1) + b"\x02", "call reducer flags 2"),
        (b"\x07" + s("p") + u32le(0) + u32le(1) + b"\x01", "call procedure flags 1"),
    ],
)
def test_invalid_client_values(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        m.decode_client_message(data)


def test_encode_errors() -> None:
    with pytest.raises(EncodeError):
        m.encode_client_message(m.CallReducer("r", b"", 2**32))
    with pytest.raises(EncodeError, match="single str"):
        m.encode_client_message(m.SubscribeMulti("SELECT * FROM t", 1, QueryId(1)))  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="not a client message"):
        m.encode_client_message(IDENTITY_MSG)  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="not a server message"):
        m.encode_server_message(m.Unsubscribe(1, QueryId(1)))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- row lists


def offsets_list(offsets: list[int], data: bytes) -> bytes:
    return (
        b"\x01" + u32le(len(offsets)) + struct.pack(f"<{len(offsets)}Q", *offsets) + s_bytes(data)
    )


def s_bytes(data: bytes) -> bytes:
    return u32le(len(data)) + data


def one_off_with(row_list: bytes) -> bytes:
    """A OneOffQueryResponse carrying one table whose row list is ``row_list``."""
    return b"\x04" + s_bytes(b"id") + b"\x01" + u32le(1) + s("t") + row_list + bytes(8)


def test_row_offsets_split() -> None:
    rows = BsatnRowList(RowOffsets((0, 1, 1, 4)), b"abcdefg")
    assert rows.rows() == [b"a", b"", b"bcd", b"efg"]  # equal offsets: a zero-length row
    assert len(rows) == 4


def test_fixed_size_split() -> None:
    assert BsatnRowList(FixedSize(3), b"abcdef").rows() == [b"abc", b"def"]
    assert len(BsatnRowList(FixedSize(3), b"abcdef")) == 2
    assert BsatnRowList(FixedSize(0), b"").rows() == []
    assert len(BsatnRowList(FixedSize(0), b"")) == 0
    assert BsatnRowList(RowOffsets(()), b"").rows() == []


def test_a_decoded_row_list_views_its_message_without_copying() -> None:
    """The rows of a (big) row list are not copied out of their message: its
    rows_data is a read-only view, equal to the bytes, and its rows are bytes."""
    frame = one_off_with(offsets_list([0, 1, 1, 4], b"abcdefg"))
    msg = m.decode_server_message(frame)
    assert isinstance(msg, m.OneOffQueryResponse)
    rows = msg.tables[0].rows
    assert isinstance(rows.rows_data, memoryview)
    assert rows.rows_data.readonly
    assert rows.rows_data.obj is frame
    assert rows == BsatnRowList(RowOffsets((0, 1, 1, 4)), b"abcdefg")
    assert rows.rows() == [b"a", b"", b"bcd", b"efg"]
    assert all(type(row) is bytes for row in rows.rows())
    assert BsatnRowList(FixedSize(2), memoryview(b"abcd")).rows() == [b"ab", b"cd"]


@pytest.mark.parametrize(
    ("row_list", "match"),
    [
        (offsets_list([0, 5, 3], b"abcdef"), "out of order"),
        (offsets_list([0, 7], b"abcdef"), "beyond"),
        (offsets_list([2, 4], b"abcdef"), "first row offset is 2"),
        (offsets_list([], b"abc"), "no row offsets"),
        (b"\x00" + b"\x04\x00" + s_bytes(b"abcdef"), "not a multiple of 4"),
        (b"\x00" + b"\x00\x00" + s_bytes(b"abc"), "row size 0"),
        (b"\x01" + u32le(0x7FFF_FFFF) + b"\x00" * 16, "truncated"),
    ],
)
def test_bad_row_lists_fail_decoding(row_list: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        m.decode_server_message(one_off_with(row_list))


@pytest.mark.parametrize(
    "rows",
    [
        BsatnRowList(RowOffsets((0, 5, 3)), b"abcdef"),
        BsatnRowList(RowOffsets((0, 9)), b"abcdef"),
        BsatnRowList(FixedSize(4), b"abcdef"),
        BsatnRowList(FixedSize(0), b"a"),
    ],
)
def test_bad_row_lists_fail_rows(rows: BsatnRowList) -> None:
    with pytest.raises(DecodeError):
        rows.rows()


def test_from_rows_fixed_size_checks_lengths() -> None:
    with pytest.raises(EncodeError):
        BsatnRowList.from_rows([b"ab", b"c"], fixed_size=2)


def test_table_changes_merges_repeated_tables() -> None:
    update = DatabaseUpdate(
        (
            TableUpdate.from_rows(1, "a", inserts=[b"1"]),
            TableUpdate.from_rows(2, "b", deletes=[b"2"]),
            TableUpdate.from_rows(1, "a", inserts=[b"3"], deletes=[b"4"]),
        )
    )
    assert update.table_changes() == {"a": ([b"4"], [b"1", b"3"]), "b": ([b"2"], [])}
    assert not update.is_empty()
    assert DatabaseUpdate().is_empty()


# --------------------------------------------------------------------------- real-server captures


def _manifest() -> dict[str, str]:
    """``file name -> message type`` from the table rows of ``captured/README.md``."""
    readme = CAPTURED / "README.md"
    if not readme.exists():
        return {}
    entries = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`?([\w.-]+\.bin)`?\s*\|\s*`?(\w+)`?\s*\|", line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def _uncompressed_body(frame: bytes) -> bytes:
    if frame[0] == Compression.GZIP:
        return gzip.decompress(frame[1:])
    if frame[0] == Compression.BROTLI:
        brotli = pytest.importorskip("brotli")
        return bytes(brotli.decompress(frame[1:]))
    return frame[1:]


def _has_compressed_query_updates(msg: m.ServerMessage) -> bool:
    updates: list[DatabaseUpdate] = []
    match msg:
        case m.InitialSubscription(database_update=u) | m.TransactionUpdateLight(update=u):
            updates.append(u)
        case m.SubscribeMultiApplied(update=u) | m.UnsubscribeMultiApplied(update=u):
            updates.append(u)
        case m.TransactionUpdate(status=m.Committed(update=u)):
            updates.append(u)
        case m.SubscribeApplied(rows=r) | m.UnsubscribeApplied(rows=r):
            updates.append(DatabaseUpdate((r.table_rows,)))
    return any(
        cqu.compression is not Compression.NONE
        for u in updates
        for table in u.tables
        for cqu in table.updates
    )


@pytest.mark.parametrize("path", sorted(CAPTURED.glob("*.bin")), ids=lambda path: path.name)
def test_captured_server_message(path: Path) -> None:
    """Each whole WebSocket message captured from a real server decodes and re-encodes exactly."""
    manifest = _manifest()
    assert path.name in manifest, f"{path.name} is not described in {CAPTURED / 'README.md'}"
    frame = path.read_bytes()
    msg = m.decode_server_frame(frame)
    assert type(msg).__name__ == manifest[path.name], f"{path.name} is a {type(msg).__name__}"
    if not _has_compressed_query_updates(msg):
        assert m.encode_server_message(msg) == _uncompressed_body(frame)


# ------------------------------------------------- the lean TransactionUpdate decoder


def reference_decode(frame: bytes) -> m.ServerMessage:
    """What the reference reader makes of an uncompressed frame (the lean path bypassed)."""
    budget = m._Budget(m.DEFAULT_MAX_MESSAGE_SIZE)
    return m._read_server_message(m._ServerReader(frame, budget, pos=1))


def agrees_with_the_reference(frame: bytes) -> m.TransactionUpdate | None:
    """The lean decoder gives the reference's value, or None; never accepts what it rejects."""
    lean = m._fast_transaction_update(frame)
    try:
        reference = reference_decode(frame)
    except DecodeError:
        assert lean is None
        return None
    assert lean is None or lean == reference
    return lean


def all_uncompressed(msg: m.TransactionUpdate) -> bool:
    status = msg.status
    return not isinstance(status, m.Committed) or all(
        cqu.compression is Compression.NONE for tu in status.update.tables for cqu in tu.updates
    )


@given(transaction_updates)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_the_lean_decoder_takes_every_uncompressed_transaction_update(
    msg: m.TransactionUpdate,
) -> None:
    frame = m.encode_server_frame(msg)
    lean = agrees_with_the_reference(frame)
    assert (lean is not None) == all_uncompressed(msg)
    assert m.decode_server_frame(frame) == msg


@given(transaction_updates, st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_the_lean_decoder_agrees_on_truncated_and_corrupted_frames(
    msg: m.TransactionUpdate, data: st.DataObject
) -> None:
    frame = m.encode_server_frame(msg)
    assert agrees_with_the_reference(frame[: data.draw(st.integers(1, len(frame) - 1))]) is None
    corrupted = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(1, len(corrupted) - 1))
        corrupted[pos] = data.draw(st.integers(0, 255))
    agrees_with_the_reference(bytes(corrupted))


def test_a_malformed_transaction_update_raises_the_reference_error() -> None:
    (sample,) = [msg for msg in SERVER_SAMPLES if isinstance(msg, m.TransactionUpdate)]
    frame = m.encode_server_frame(sample)
    for end in range(2, len(frame)):
        with pytest.raises(DecodeError) as lean_path:
            m.decode_server_frame(frame[:end])
        with pytest.raises(DecodeError) as reference:
            reference_decode(frame[:end])
        assert (str(lean_path.value), lean_path.value.offset) == (
            str(reference.value),
            reference.value.offset,
        )
