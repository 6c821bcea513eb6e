"""The SpacetimeDB v1 WebSocket messages (``v1.bsatn.spacetimedb``) and their BSATN codec.

Every ``ClientMessage`` and ``ServerMessage`` variant of SpacetimeDB 1.2.0 is a
frozen dataclass here, with field names and order as in the server's
``crates/client-api-messages/src/websocket.rs``. ``CallProcedure`` and
``ProcedureResult`` (added in 1.8.0) are included so that newer servers decode.

Rows and reducer arguments stay opaque ``bytes``: this layer only frames them.
Splitting a :class:`BsatnRowList` into row byte strings is the one row-level
operation, and it is validated here so that a malformed list fails while the
message is being decoded, not later inside the client cache.

The commonest server message, a committed ``TransactionUpdate``, can also be read
flat into a :class:`CommittedReply` (:func:`read_committed_reply`), without its
nested dataclasses: the protocol's fast lane.

Server frames carry a compression tag byte in front of the BSATN body;
:func:`decode_server_frame` handles it, :func:`decode_server_message` takes the
bare body. Brotli needs the optional ``brotli`` package; gzip uses the stdlib.

Decompression is streamed and capped: one server message may decompress to at
most ``max_message_size`` bytes (:data:`DEFAULT_MAX_MESSAGE_SIZE`, 64 MiB, by
default), counted over the frame and every compressed query update nested in
it, so a small frame cannot make the client allocate much more than the cap
(a decompression bomb raises :class:`~inner_universe.errors.MessageTooLargeError`).

Names follow the wire format, so :class:`SubscriptionError` here is the server
message, not :class:`inner_universe.errors.SubscriptionRejectedError`.
"""

from __future__ import annotations

import enum
import gzip
import importlib
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Final, TypeAlias

from ..errors import DecodeError, EncodeError, MessageTooLargeError
from . import codec
from .bsatn import BsatnReader, BsatnWriter
from .layout import CLASSES
from .types import ConnectionId, Identity, TimeDuration, Timestamp

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "BsatnRowList",
    "CallProcedure",
    "CallProcedureFlags",
    "CallReducer",
    "CallReducerFlags",
    "ClientMessage",
    "Committed",
    "CommittedReply",
    "CompressableQueryUpdate",
    "Compression",
    "DatabaseUpdate",
    "EnergyQuanta",
    "Failed",
    "FixedSize",
    "IdentityToken",
    "InitialSubscription",
    "OneOffQuery",
    "OneOffQueryResponse",
    "OneOffTable",
    "OutOfEnergy",
    "ProcedureInternalError",
    "ProcedureOutOfEnergy",
    "ProcedureResult",
    "ProcedureReturned",
    "ProcedureStatus",
    "QueryId",
    "QueryUpdate",
    "ReducerCallInfo",
    "RowOffsets",
    "RowSizeHint",
    "ServerMessage",
    "Subscribe",
    "SubscribeApplied",
    "SubscribeMulti",
    "SubscribeMultiApplied",
    "SubscribeRows",
    "SubscribeSingle",
    "SubscriptionError",
    "TableUpdate",
    "TransactionUpdate",
    "TransactionUpdateLight",
    "Unsubscribe",
    "UnsubscribeApplied",
    "UnsubscribeMulti",
    "UnsubscribeMultiApplied",
    "UpdateStatus",
    "decode_client_message",
    "decode_server_frame",
    "decode_server_message",
    "encode_call_reducer",
    "encode_client_message",
    "encode_server_frame",
    "encode_server_message",
    "read_committed_reply",
]


# --------------------------------------------------------------------------- enums and ids


class Compression(enum.IntEnum):
    """A compression scheme; the value is its tag both in the frame byte and in
    :class:`CompressableQueryUpdate`. ``name.title()`` is the ``compression=`` URL value."""

    NONE = 0
    BROTLI = 1
    GZIP = 2


class CallReducerFlags(enum.IntEnum):
    """``CallReducer.flags`` (a u8 on the wire)."""

    #: The caller is told the outcome (a full ``TransactionUpdate``), subscribed or not.
    FULL_UPDATE = 0
    #: The caller is told nothing beyond its subscriptions, not even failures.
    NO_SUCCESS_NOTIFY = 1


class CallProcedureFlags(enum.IntEnum):
    """``CallProcedure.flags`` (a u8 on the wire; servers >= 1.8 only)."""

    DEFAULT = 0


@dataclass(frozen=True, slots=True, order=True)
class QueryId:
    """A client-chosen id naming one subscription (a ``SubscribeMulti`` query set)."""

    id: int


# --------------------------------------------------------------------------- row lists


@dataclass(frozen=True, slots=True)
class FixedSize:
    """Every row is ``size`` bytes long."""

    size: int


@dataclass(frozen=True, slots=True)
class RowOffsets:
    """Start offset of each row; a row ends where the next starts, the last at the data end."""

    offsets: tuple[int, ...]


RowSizeHint: TypeAlias = FixedSize | RowOffsets


@dataclass(frozen=True, slots=True)
class BsatnRowList:
    """A packed list of BSATN rows: ``rows_data`` split by ``size_hint``.

    A decoded row list's ``rows_data`` may be a read-only memoryview into the message
    it came in (the rows of a big subscription are not copied out of it); it compares
    equal to the same bytes.
    """

    size_hint: RowSizeHint
    rows_data: bytes | memoryview

    @classmethod
    def from_rows(cls, rows: Iterable[bytes], fixed_size: int | None = None) -> BsatnRowList:
        """Pack ``rows``, with offsets, or as fixed-size rows when ``fixed_size`` is given."""
        rows = list(rows)
        data = b"".join(rows)
        if fixed_size is not None:
            if any(len(row) != fixed_size for row in rows):
                raise EncodeError(f"every row must be {fixed_size} bytes for FixedSize")
            return cls(FixedSize(fixed_size), data)
        offsets, pos = [], 0
        for row in rows:
            offsets.append(pos)
            pos += len(row)
        return cls(RowOffsets(tuple(offsets)), data)

    def validate(self) -> None:
        """Raise :class:`DecodeError` unless the hint describes ``rows_data`` exactly."""
        match self.size_hint:
            case FixedSize(n):
                _check_fixed_size(n, len(self.rows_data))
            case RowOffsets(offsets):
                _check_offsets(offsets, len(self.rows_data))

    def rows(self) -> list[bytes]:
        """The rows, each as its own BSATN byte string (validated first)."""
        self.validate()
        data = self.rows_data
        match self.size_hint:
            case FixedSize(n):
                raw = bytes(data)  # no copy when it is bytes already
                return [raw[i : i + n] for i in range(0, len(raw), n)] if n else []
            case RowOffsets(offsets):
                return codec.split_rows(data, offsets)

    def __len__(self) -> int:
        match self.size_hint:
            case FixedSize(n):
                return len(self.rows_data) // n if n else 0
            case RowOffsets(offsets):
                return len(offsets)


_EMPTY_ROWS = BsatnRowList(RowOffsets(()), b"")


def _check_fixed_size(n: int, size: int) -> None:
    """Raise :class:`DecodeError` unless ``size`` bytes are whole rows of ``n`` bytes."""
    if n == 0 and size:
        raise DecodeError(f"row size 0 with {size} byte(s) of row data")
    if n and size % n:
        raise DecodeError(f"{size} byte(s) of row data is not a multiple of {n}")


def _check_offsets(offsets: tuple[int, ...], size: int) -> None:
    """Raise :class:`DecodeError` unless ``offsets`` cut ``size`` bytes into rows."""
    if not offsets:
        if size:
            raise DecodeError(f"{size} byte(s) of row data but no row offsets")
        return
    if offsets[0] != 0:
        raise DecodeError(f"first row offset is {offsets[0]}, not 0")
    if offsets[-1] > size:
        raise DecodeError(f"row offset {offsets[-1]} is beyond the {size}-byte data")
    # sorted() runs in C, which matters for big initial subscriptions.
    # Equal offsets are a zero-length row (an empty product): legal.
    if tuple(sorted(offsets)) != offsets:
        raise DecodeError("row offsets are out of order")


@dataclass(frozen=True, slots=True)
class QueryUpdate:
    """The rows one query lost and gained in a transaction; deletes come first on the wire."""

    deletes: BsatnRowList = _EMPTY_ROWS
    inserts: BsatnRowList = _EMPTY_ROWS


@dataclass(frozen=True, slots=True)
class CompressableQueryUpdate:
    """A :class:`QueryUpdate` and the compression it travelled with.

    It is decompressed while decoding (so bad compressed data fails the message);
    ``compression`` is kept so the message re-encodes the way it arrived.
    """

    update: QueryUpdate
    compression: Compression = Compression.NONE


@dataclass(frozen=True, slots=True)
class TableUpdate:
    """Changes to one table; ``updates`` has one entry per contributing query.

    The same table may appear in several ``TableUpdate``s of one
    :class:`DatabaseUpdate`: consumers must merge them.
    """

    table_id: int
    table_name: str
    num_rows: int
    updates: tuple[CompressableQueryUpdate, ...]

    @classmethod
    def from_rows(
        cls,
        table_id: int,
        table_name: str,
        inserts: Sequence[bytes] = (),
        deletes: Sequence[bytes] = (),
    ) -> TableUpdate:
        """One uncompressed query update, with row offsets (handy for tests and tools)."""
        update = QueryUpdate(BsatnRowList.from_rows(deletes), BsatnRowList.from_rows(inserts))
        return cls(
            table_id, table_name, len(inserts) + len(deletes), (CompressableQueryUpdate(update),)
        )

    def delete_rows(self) -> list[bytes]:
        """Deleted rows of every query update, in order (a new list)."""
        if len(self.updates) == 1:  # the common case: rows() builds a new list already
            return self.updates[0].update.deletes.rows()
        return [row for cqu in self.updates for row in cqu.update.deletes.rows()]

    def insert_rows(self) -> list[bytes]:
        """Inserted rows of every query update, in order (a new list)."""
        if len(self.updates) == 1:
            return self.updates[0].update.inserts.rows()
        return [row for cqu in self.updates for row in cqu.update.inserts.rows()]


@dataclass(frozen=True, slots=True)
class DatabaseUpdate:
    """All row changes a client sees for one transaction (or one subscription)."""

    tables: tuple[TableUpdate, ...] = ()

    def is_empty(self) -> bool:
        return not self.tables

    def table_changes(self) -> dict[str, tuple[list[bytes], list[bytes]]]:
        """Per table name, (deleted rows, inserted rows), merging repeated ``TableUpdate``s."""
        changes: dict[str, tuple[list[bytes], list[bytes]]] = {}
        for table in self.tables:
            merged = changes.get(table.table_name)
            if merged is None:
                changes[table.table_name] = (table.delete_rows(), table.insert_rows())
            else:
                merged[0].extend(table.delete_rows())
                merged[1].extend(table.insert_rows())
        return changes


# --------------------------------------------------------------------------- client messages


@dataclass(frozen=True, slots=True)
class CallReducer:
    """Run ``reducer`` with ``args`` (the BSATN of its parameter product)."""

    reducer: str
    args: bytes
    request_id: int
    flags: CallReducerFlags = CallReducerFlags.FULL_UPDATE


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Legacy: replace the whole query set (answered by ``InitialSubscription``)."""

    query_strings: tuple[str, ...]
    request_id: int


@dataclass(frozen=True, slots=True)
class OneOffQuery:
    """Run a query once; ``message_id`` is opaque and echoed in the response."""

    message_id: bytes
    query_string: str


@dataclass(frozen=True, slots=True)
class SubscribeSingle:
    """Add one query under ``query_id`` (answered by ``SubscribeApplied``)."""

    query: str
    request_id: int
    query_id: QueryId


@dataclass(frozen=True, slots=True)
class SubscribeMulti:
    """Add a set of queries under ``query_id`` (answered by ``SubscribeMultiApplied``)."""

    query_strings: tuple[str, ...]
    request_id: int
    query_id: QueryId


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Drop a ``SubscribeSingle`` query (answered by ``UnsubscribeApplied``)."""

    request_id: int
    query_id: QueryId


@dataclass(frozen=True, slots=True)
class UnsubscribeMulti:
    """Drop a ``SubscribeMulti`` query set (answered by ``UnsubscribeMultiApplied``)."""

    request_id: int
    query_id: QueryId


@dataclass(frozen=True, slots=True)
class CallProcedure:
    """Run a procedure (servers >= 1.8.0 only; 1.2 closes the connection on it)."""

    procedure: str
    args: bytes
    request_id: int
    flags: CallProcedureFlags = CallProcedureFlags.DEFAULT


ClientMessage: TypeAlias = (
    CallReducer
    | Subscribe
    | OneOffQuery
    | SubscribeSingle
    | SubscribeMulti
    | Unsubscribe
    | UnsubscribeMulti
    | CallProcedure
)


# --------------------------------------------------------------------------- server messages


@dataclass(frozen=True, slots=True)
class Committed:
    """The reducer committed; ``update`` holds the rows this client sees change."""

    update: DatabaseUpdate


@dataclass(frozen=True, slots=True)
class Failed:
    """The reducer failed and was rolled back; ``message`` is the server's text."""

    message: str


@dataclass(frozen=True, slots=True)
class OutOfEnergy:
    """The reducer ran out of energy and was rolled back."""


UpdateStatus: TypeAlias = Committed | Failed | OutOfEnergy


@dataclass(frozen=True, slots=True)
class ReducerCallInfo:
    """Which call caused a transaction. ``request_id`` is the caller's, not ours."""

    reducer_name: str
    reducer_id: int
    args: bytes
    request_id: int


@dataclass(frozen=True, slots=True)
class EnergyQuanta:
    """Energy used by a reducer (a u128)."""

    quanta: int


@dataclass(frozen=True, slots=True)
class InitialSubscription:
    """Answer to the legacy ``Subscribe``."""

    database_update: DatabaseUpdate
    request_id: int
    total_host_execution_duration: TimeDuration


@dataclass(frozen=True, slots=True)
class TransactionUpdate:
    """A reducer ran. The all-zero ``caller_connection_id`` means "no connection"."""

    status: UpdateStatus
    timestamp: Timestamp
    caller_identity: Identity
    caller_connection_id: ConnectionId
    reducer_call: ReducerCallInfo
    energy_quanta_used: EnergyQuanta
    total_host_execution_duration: TimeDuration


@dataclass(frozen=True, slots=True)
class TransactionUpdateLight:
    """A committed transaction without reducer details (``light=true`` connections)."""

    request_id: int
    update: DatabaseUpdate


@dataclass(frozen=True, slots=True)
class IdentityToken:
    """Always the first server message: who this connection is."""

    identity: Identity
    token: str = field(repr=False)  # a credential: keep it out of logs
    connection_id: ConnectionId


@dataclass(frozen=True, slots=True)
class OneOffTable:
    """The rows one table contributed to a one-off query result."""

    table_name: str
    rows: BsatnRowList


@dataclass(frozen=True, slots=True)
class OneOffQueryResponse:
    """Answer to ``OneOffQuery``: an error, or the result tables."""

    message_id: bytes
    error: str | None
    tables: tuple[OneOffTable, ...]
    total_host_execution_duration: TimeDuration


@dataclass(frozen=True, slots=True)
class SubscribeRows:
    """The rows of one ``SubscribeSingle`` query."""

    table_id: int
    table_name: str
    table_rows: TableUpdate


@dataclass(frozen=True, slots=True)
class SubscribeApplied:
    """Answer to ``SubscribeSingle``: the query's current rows."""

    request_id: int
    total_host_execution_duration_micros: int
    query_id: QueryId
    rows: SubscribeRows


@dataclass(frozen=True, slots=True)
class UnsubscribeApplied:
    """Answer to ``Unsubscribe``: the rows to forget."""

    request_id: int
    total_host_execution_duration_micros: int
    query_id: QueryId
    rows: SubscribeRows


@dataclass(frozen=True, slots=True)
class SubscriptionError:
    """A subscription failed. ``query_id`` None means every subscription is gone (fatal)."""

    total_host_execution_duration_micros: int
    request_id: int | None
    query_id: int | None
    table_id: int | None
    error: str


@dataclass(frozen=True, slots=True)
class SubscribeMultiApplied:
    """Answer to ``SubscribeMulti``: the current rows (in ``inserts``)."""

    request_id: int
    total_host_execution_duration_micros: int
    query_id: QueryId
    update: DatabaseUpdate


@dataclass(frozen=True, slots=True)
class UnsubscribeMultiApplied:
    """Answer to ``UnsubscribeMulti``: the rows to forget (in ``deletes``)."""

    request_id: int
    total_host_execution_duration_micros: int
    query_id: QueryId
    update: DatabaseUpdate


@dataclass(frozen=True, slots=True)
class ProcedureReturned:
    """The procedure returned ``value`` (BSATN of its return type)."""

    value: bytes


@dataclass(frozen=True, slots=True)
class ProcedureOutOfEnergy:
    """The procedure ran out of energy."""


@dataclass(frozen=True, slots=True)
class ProcedureInternalError:
    """The procedure failed; ``message`` is for diagnostics only."""

    message: str


ProcedureStatus: TypeAlias = ProcedureReturned | ProcedureOutOfEnergy | ProcedureInternalError


@dataclass(frozen=True, slots=True)
class ProcedureResult:
    """Answer to ``CallProcedure`` (servers >= 1.8.0)."""

    status: ProcedureStatus
    timestamp: Timestamp
    total_host_execution_duration: TimeDuration
    request_id: int


ServerMessage: TypeAlias = (
    InitialSubscription
    | TransactionUpdate
    | TransactionUpdateLight
    | IdentityToken
    | OneOffQueryResponse
    | SubscribeApplied
    | UnsubscribeApplied
    | SubscriptionError
    | SubscribeMultiApplied
    | UnsubscribeMultiApplied
    | ProcedureResult
)


# --------------------------------------------------------------------------- compression


def _brotli() -> ModuleType | None:
    """The optional ``brotli`` module, or None when it is not installed."""
    try:
        return importlib.import_module("brotli")
    except ImportError:
        return None


#: The default cap on what one server message may decompress to (frame and nested updates).
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
#: The most one decompression step produces before the budget is checked again.
_OUTPUT_STEP = 1024 * 1024
#: Compressed input is fed in slices this big, so no step copies the rest of a large frame.
_INPUT_STEP = 64 * 1024
#: The shortest gzip member: a 10-byte header, an empty deflate stream, an 8-byte trailer.
_GZIP_MIN_SIZE = 20


class _Budget:
    """What one server message may still decompress to, shared by all its compressed parts.

    Each decompression asks its stream for at most what is left (plus one byte, to
    notice the overflow), so a bomb fails after producing about ``limit`` bytes,
    never its full expansion.
    """

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, size: int) -> None:
        """Count ``size`` more bytes of the message; raise once they pass the limit."""
        self.left -= size
        if self.left < 0:
            raise MessageTooLargeError(
                f"a server message decompresses to more than its limit of {self.limit} bytes "
                "(raise it with ConnectionBuilder.with_limits(max_message_size=...))",
                self.limit,
            )

    def _step(self) -> int:
        return min(_OUTPUT_STEP, self.left + 1)

    def decompress(self, compression: Compression, payload: bytes) -> bytes:
        """Decompress a gzip or brotli ``payload``, spending what it produces."""
        chunks: list[bytes] = []
        if compression is Compression.GZIP:
            whole = self._gunzip_whole(payload)
            if whole is not None:
                return whole
            self._gunzip(payload, chunks)
        else:
            self._unbrotli(payload, chunks)
        return b"".join(chunks)

    def _keep(self, piece: bytes, chunks: list[bytes]) -> None:
        self.spend(len(piece))
        chunks.append(piece)

    def _gunzip_whole(self, payload: bytes) -> bytes | None:
        """``payload`` decompressed in one call, into one buffer, when it is one gzip
        member that ends within the size its trailer announces and that size is within
        what is left; otherwise None, having spent nothing (:meth:`_gunzip` then
        decompresses it in steps, or raises the error).

        The announced size (the trailer's last 4 bytes) is only a hint that bounds the
        call: what a lying trailer costs is one wasted call. That call's output is built
        in blocks joined at the end (about twice its size at the peak, as the steps'
        chunks joined after), so it is kept a step under what is left: a lying trailer
        costs no more memory than an honest message at the limit.
        """
        if len(payload) < _GZIP_MIN_SIZE:
            return None
        size = int.from_bytes(payload[-4:], "little")
        if size > self.left - _OUTPUT_STEP:
            return None
        stream = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
        try:
            whole = stream.decompress(payload, size + 1)  # + 1: a longer member shows
        except zlib.error:
            return None
        if not stream.eof or stream.unused_data or len(whole) != size:
            return None
        self.spend(size)
        return whole

    def _gunzip(self, payload: bytes, chunks: list[bytes]) -> None:
        """Every gzip member in ``payload`` (as :func:`gzip.decompress`), in bounded steps."""
        view = memoryview(payload)
        inputs = deque(view[i : i + _INPUT_STEP] for i in range(0, len(view), _INPUT_STEP))
        stream = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
        try:
            while True:
                data = stream.unconsumed_tail or (inputs.popleft() if inputs else b"")
                piece = stream.decompress(data, self._step())
                self._keep(piece, chunks)
                if stream.eof:
                    if stream.unused_data:
                        inputs.appendleft(memoryview(stream.unused_data))
                    if not inputs:
                        return
                    stream = zlib.decompressobj(wbits=31)  # another gzip member follows
                elif not piece and not data:
                    raise DecodeError("invalid gzip data: the stream is truncated")
        except zlib.error as exc:
            raise DecodeError(f"invalid gzip data: {exc}") from None

    def _unbrotli(self, payload: bytes, chunks: list[bytes]) -> None:
        brotli = _brotli()
        if brotli is None:
            raise DecodeError(
                "the server sent brotli-compressed data but the 'brotli' package is not "
                "installed: pip install brotli, or connect with compression=Gzip"
            )
        stream = brotli.Decompressor()
        view = memoryview(payload)
        try:
            for start in range(0, len(view), _INPUT_STEP):
                data = view[start : start + _INPUT_STEP]
                self._keep(stream.process(data, output_buffer_limit=self._step()), chunks)
                while not stream.can_accept_more_data():  # output held back: drain it
                    self._keep(stream.process(b"", output_buffer_limit=self._step()), chunks)
        except DecodeError:
            raise
        except TypeError:  # brotli < 1.2 cannot bound its output
            raise DecodeError(
                "brotli data needs brotli>=1.2 (to decompress within a size limit): "
                "pip install -U brotli, or connect with compression=Gzip"
            ) from None
        except Exception as exc:  # brotli.error has no stable import path across versions
            raise DecodeError(f"invalid brotli data: {exc}") from None
        if not stream.is_finished():
            raise DecodeError("invalid brotli data: the stream is truncated")


class _ServerReader(BsatnReader):
    """A reader over one server message that carries the message's decompression budget."""

    __slots__ = ("budget",)

    def __init__(self, data: bytes | bytearray | memoryview, budget: _Budget, pos: int = 0) -> None:
        super().__init__(data, pos)
        self.budget = budget


def _compress(compression: Compression, payload: bytes) -> bytes:
    if compression is Compression.NONE:
        return payload
    if compression is Compression.GZIP:
        return gzip.compress(payload, compresslevel=1)
    brotli = _brotli()
    if brotli is None:
        raise EncodeError("brotli compression needs the 'brotli' package: pip install brotli")
    return bytes(brotli.compress(payload, quality=1))


# --------------------------------------------------------------------------- small readers/writers


def _read_option_u32(r: BsatnReader) -> int | None:
    return r.u32() if r.tag(2, "Option") == 0 else None  # some = 0, none = 1


def _write_option_u32(w: BsatnWriter, v: int | None) -> None:
    if v is None:
        w.tag(1)
    else:
        w.tag(0)
        w.u32(v)


def _read_option_str(r: BsatnReader) -> str | None:
    return r.string() if r.tag(2, "Option") == 0 else None


def _write_option_str(w: BsatnWriter, v: str | None) -> None:
    if v is None:
        w.tag(1)
    else:
        w.tag(0)
        w.string(v)


def _read_strings(r: BsatnReader) -> tuple[str, ...]:
    return tuple(r.string() for _ in range(r.length("string array")))


def _write_strings(w: BsatnWriter, strings: Sequence[str]) -> None:
    if isinstance(strings, str):
        raise EncodeError("expected a sequence of query strings, got a single str")
    w.length(len(strings))
    for s in strings:
        w.string(s)


# --------------------------------------------------------------------------- nested types


def _read_row_list(r: BsatnReader) -> BsatnRowList:
    hint: RowSizeHint
    if r.tag(2, "RowSizeHint") == 0:
        hint = FixedSize(r.u16())
    else:
        n = r.length("row offsets")
        hint = RowOffsets(struct.unpack(f"<{n}Q", r.take(8 * n, "row offsets")))
    rows = BsatnRowList(hint, r.view(r.length("bytes"), "bytes payload"))
    rows.validate()
    return rows


def _write_row_list(w: BsatnWriter, rows: BsatnRowList) -> None:
    match rows.size_hint:
        case FixedSize(n):
            w.tag(0)
            w.u16(n)
        case RowOffsets(offsets):
            w.tag(1)
            w.length(len(offsets))
            for off in offsets:
                w.u64(off)
    w.bytes(rows.rows_data)


def _read_query_update(r: BsatnReader) -> QueryUpdate:
    deletes = _read_row_list(r)
    return QueryUpdate(deletes, _read_row_list(r))


def _write_query_update(w: BsatnWriter, qu: QueryUpdate) -> None:
    _write_row_list(w, qu.deletes)
    _write_row_list(w, qu.inserts)


_COMPRESSIONS: Final = tuple(Compression)  # by tag: indexing is cheaper than Compression(tag)


def _read_compressable(r: _ServerReader) -> CompressableQueryUpdate:
    compression = _COMPRESSIONS[r.tag(3, "CompressableQueryUpdate")]
    if compression is Compression.NONE:
        return CompressableQueryUpdate(_read_query_update(r))
    inner = BsatnReader(r.budget.decompress(compression, r.bytes()))
    update = _read_query_update(inner)
    inner.expect_end()
    return CompressableQueryUpdate(update, compression)


def _write_compressable(w: BsatnWriter, cqu: CompressableQueryUpdate) -> None:
    w.tag(cqu.compression)
    if cqu.compression is Compression.NONE:
        _write_query_update(w, cqu.update)
    else:
        inner = BsatnWriter()
        _write_query_update(inner, cqu.update)
        w.bytes(_compress(cqu.compression, inner.getvalue()))


def _read_table_update(r: _ServerReader) -> TableUpdate:
    table_id, table_name, num_rows = r.u32(), r.string(), r.u64()
    updates = tuple(_read_compressable(r) for _ in range(r.length("query updates")))
    return TableUpdate(table_id, table_name, num_rows, updates)


def _write_table_update(w: BsatnWriter, tu: TableUpdate) -> None:
    w.u32(tu.table_id)
    w.string(tu.table_name)
    w.u64(tu.num_rows)
    w.length(len(tu.updates))
    for cqu in tu.updates:
        _write_compressable(w, cqu)


def _read_database_update(r: _ServerReader) -> DatabaseUpdate:
    return DatabaseUpdate(tuple(_read_table_update(r) for _ in range(r.length("tables"))))


def _write_database_update(w: BsatnWriter, du: DatabaseUpdate) -> None:
    w.length(len(du.tables))
    for tu in du.tables:
        _write_table_update(w, tu)


def _read_update_status(r: _ServerReader) -> UpdateStatus:
    tag = r.tag(3, "UpdateStatus")
    if tag == 0:
        return Committed(_read_database_update(r))
    return Failed(r.string()) if tag == 1 else OutOfEnergy()


def _write_update_status(w: BsatnWriter, status: UpdateStatus) -> None:
    match status:
        case Committed(update):
            w.tag(0)
            _write_database_update(w, update)
        case Failed(message):
            w.tag(1)
            w.string(message)
        case OutOfEnergy():
            w.tag(2)


def _read_reducer_call_info(r: BsatnReader) -> ReducerCallInfo:
    return ReducerCallInfo(r.string(), r.u32(), r.bytes(), r.u32())


def _write_reducer_call_info(w: BsatnWriter, info: ReducerCallInfo) -> None:
    w.string(info.reducer_name)
    w.u32(info.reducer_id)
    w.bytes(info.args)
    w.u32(info.request_id)


def _read_subscribe_rows(r: _ServerReader) -> SubscribeRows:
    return SubscribeRows(r.u32(), r.string(), _read_table_update(r))


def _write_subscribe_rows(w: BsatnWriter, rows: SubscribeRows) -> None:
    w.u32(rows.table_id)
    w.string(rows.table_name)
    _write_table_update(w, rows.table_rows)


def _read_one_off_table(r: BsatnReader) -> OneOffTable:
    return OneOffTable(r.string(), _read_row_list(r))


def _read_procedure_status(r: BsatnReader) -> ProcedureStatus:
    tag = r.tag(3, "ProcedureStatus")
    if tag == 0:
        return ProcedureReturned(r.bytes())
    return ProcedureOutOfEnergy() if tag == 1 else ProcedureInternalError(r.string())


def _write_procedure_status(w: BsatnWriter, status: ProcedureStatus) -> None:
    match status:
        case ProcedureReturned(value):
            w.tag(0)
            w.bytes(value)
        case ProcedureOutOfEnergy():
            w.tag(1)
        case ProcedureInternalError(message):
            w.tag(2)
            w.string(message)


def _identity(r: BsatnReader) -> Identity:
    return Identity(r.u256())


def _connection_id(r: BsatnReader) -> ConnectionId:
    return ConnectionId(r.u128())


def _timestamp(r: BsatnReader) -> Timestamp:
    return Timestamp(r.i64())


def _duration(r: BsatnReader) -> TimeDuration:
    return TimeDuration(r.i64())


# --------------------------------------------------------------------------- client messages codec


def _call_reducer_flags(r: BsatnReader) -> CallReducerFlags:
    start, flags = r.pos, r.u8()
    if flags > 1:
        raise DecodeError(f"invalid call reducer flags {flags}", start)
    return CallReducerFlags(flags)


def _call_procedure_flags(r: BsatnReader) -> CallProcedureFlags:
    start, flags = r.pos, r.u8()
    if flags != 0:
        raise DecodeError(f"invalid call procedure flags {flags}", start)
    return CallProcedureFlags(flags)


_CLIENT_DECODERS: tuple[Callable[[BsatnReader], ClientMessage], ...] = (
    lambda r: CallReducer(r.string(), r.bytes(), r.u32(), _call_reducer_flags(r)),
    lambda r: Subscribe(_read_strings(r), r.u32()),
    lambda r: OneOffQuery(r.bytes(), r.string()),
    lambda r: SubscribeSingle(r.string(), r.u32(), QueryId(r.u32())),
    lambda r: SubscribeMulti(_read_strings(r), r.u32(), QueryId(r.u32())),
    lambda r: Unsubscribe(r.u32(), QueryId(r.u32())),
    lambda r: UnsubscribeMulti(r.u32(), QueryId(r.u32())),
    lambda r: CallProcedure(r.string(), r.bytes(), r.u32(), _call_procedure_flags(r)),
)


_CALL_TAIL: Final = struct.Struct("<IB")  # request id, flags


# Reducer name -> its frame head: a plain dict (a lookup is about half an lru_cache call),
# bounded because a protocol user may call any name.
_CALL_HEADS: Final[dict[str, bytes]] = {}


def _call_head(reducer: str) -> bytes:
    """A ``CallReducer`` frame's bytes before the arguments: its tag and the reducer's name."""
    name = reducer.encode("utf-8")
    head = b"\x00" + _LEN.pack(len(name)) + name
    if len(_CALL_HEADS) < 1024:
        _CALL_HEADS[reducer] = head
    return head


def encode_call_reducer(
    reducer: str, args: bytes, request_id: int, flags: CallReducerFlags
) -> bytes:
    """The frame of ``CallReducer(reducer, args, request_id, flags)``, what every call sends.

    The bytes :func:`encode_client_message` writes, joined in one go without the
    message object; a reducer's name is encoded once.

    Raises:
        EncodeError: a field does not fit its wire type.
    """
    try:
        tail = _CALL_TAIL.pack(request_id, flags)
        head = _CALL_HEADS.get(reducer) or _call_head(reducer)
        return b"".join((head, _LEN.pack(len(args)), args, tail))
    except (struct.error, UnicodeEncodeError):
        # The writer raises the exact error for the field that does not fit.
        return _write_client_message(CallReducer(reducer, args, request_id, flags))


def encode_client_message(msg: ClientMessage) -> bytes:
    """BSATN of ``msg``: the payload of one binary WebSocket message to the server.

    Raises:
        EncodeError: a field does not fit its wire type.
    """
    if type(msg) is CallReducer:  # every reducer call: joined in one go
        flags = CallReducerFlags(msg.flags)
        return encode_call_reducer(msg.reducer, msg.args, msg.request_id, flags)
    return _write_client_message(msg)


def _write_client_message(msg: ClientMessage) -> bytes:
    w = BsatnWriter()
    match msg:
        case CallReducer():
            w.tag(0)
            w.string(msg.reducer)
            w.bytes(msg.args)
            w.u32(msg.request_id)
            w.u8(CallReducerFlags(msg.flags))
        case Subscribe():
            w.tag(1)
            _write_strings(w, msg.query_strings)
            w.u32(msg.request_id)
        case OneOffQuery():
            w.tag(2)
            w.bytes(msg.message_id)
            w.string(msg.query_string)
        case SubscribeSingle():
            w.tag(3)
            w.string(msg.query)
            w.u32(msg.request_id)
            w.u32(msg.query_id.id)
        case SubscribeMulti():
            w.tag(4)
            _write_strings(w, msg.query_strings)
            w.u32(msg.request_id)
            w.u32(msg.query_id.id)
        case Unsubscribe():
            w.tag(5)
            w.u32(msg.request_id)
            w.u32(msg.query_id.id)
        case UnsubscribeMulti():
            w.tag(6)
            w.u32(msg.request_id)
            w.u32(msg.query_id.id)
        case CallProcedure():
            w.tag(7)
            w.string(msg.procedure)
            w.bytes(msg.args)
            w.u32(msg.request_id)
            w.u8(CallProcedureFlags(msg.flags))
        case _:
            raise EncodeError(f"not a client message: {type(msg).__name__}")
    return w.getvalue()


def decode_client_message(data: bytes | bytearray | memoryview) -> ClientMessage:
    """Decode what :func:`encode_client_message` produces (for tests and tools)."""
    r = BsatnReader(data)
    msg = _CLIENT_DECODERS[r.tag(len(_CLIENT_DECODERS), "ClientMessage")](r)
    r.expect_end()
    return msg


# --------------------------------------------------------------------------- server messages codec


def _read_initial_subscription(r: _ServerReader) -> InitialSubscription:
    return InitialSubscription(_read_database_update(r), r.u32(), _duration(r))


def _read_transaction_update(r: _ServerReader) -> TransactionUpdate:
    return TransactionUpdate(
        status=_read_update_status(r),
        timestamp=_timestamp(r),
        caller_identity=_identity(r),
        caller_connection_id=_connection_id(r),
        reducer_call=_read_reducer_call_info(r),
        energy_quanta_used=EnergyQuanta(r.u128()),
        total_host_execution_duration=_duration(r),
    )


# The common reply (a reducer's TransactionUpdate, uncompressed, its query updates
# uncompressed too) decoded in one lean pass with struct instead of a reader method
# per field: it is most of what a busy client receives.
_TABLE_TAIL: Final = struct.Struct("<QI")  # num_rows, query update count
_LEN: Final = struct.Struct("<I")
_FIXED: Final = struct.Struct("<H")
_U64: Final = struct.Struct("<Q")


def _fast_transaction_update(data: bytes) -> TransactionUpdate | None:
    """``data`` (a whole frame: tag 0, then a TransactionUpdate) decoded, or None when it
    is anything else or not well formed: the reference reader then decodes it or raises
    the exact error. Every value equals what the reference reader returns."""
    try:
        return _lean_transaction_update(data)
    except (struct.error, IndexError, ValueError, DecodeError):  # ValueError: bad UTF-8
        return None


def _lean_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    (n,) = _LEN.unpack_from(data, pos)
    end = pos + 4 + n
    if end > len(data):
        raise IndexError
    return data[pos + 4 : end], end


def _lean_string(data: bytes, pos: int) -> tuple[str, int]:
    raw, end = _lean_bytes(data, pos)
    return raw.decode("utf-8"), end


# An empty row list as the server sends it (no row offsets, no row data): the deletes of
# most transactions. It decodes to the shared, equal ``_EMPTY_ROWS``.
_NO_ROWS: Final = b"\x01" + bytes(8)


def _lean_row_list(data: bytes, pos: int) -> tuple[BsatnRowList, int]:
    if data[pos : pos + 9] == _NO_ROWS:
        return _EMPTY_ROWS, pos + 9
    hint: RowSizeHint
    if data[pos] == 0:
        hint = FixedSize(_FIXED.unpack_from(data, pos + 1)[0])
        pos += 3
    elif data[pos] == 1:
        (n,) = _LEN.unpack_from(data, pos + 1)
        pos += 5
        if pos + 8 * n > len(data):
            raise IndexError
        hint = RowOffsets(struct.unpack_from(f"<{n}Q", data, pos))
        pos += 8 * n
    else:
        raise IndexError
    rows_data, pos = _lean_bytes(data, pos)
    rows = BsatnRowList(hint, rows_data)
    rows.validate()
    return rows, pos


# The caller of the last transaction decoded, by its 48 wire bytes: a client mostly
# receives its own calls' replies, so the same two immutable objects serve them all.
_last_caller: tuple[bytes, tuple[Identity, ConnectionId]] = (b"", (Identity(0), ConnectionId(0)))


def _caller(raw: bytes) -> tuple[Identity, ConnectionId]:
    """The Identity and ConnectionId in these 48 bytes (shared with the last reply's)."""
    global _last_caller
    if len(raw) != 48:
        raise IndexError
    last_raw, caller = _last_caller
    if raw != last_raw:
        caller = (
            Identity(int.from_bytes(raw[:32], "little")),
            ConnectionId(int.from_bytes(raw[32:], "little")),
        )
        _last_caller = (raw, caller)
    return caller


def _lean_transaction_update(data: bytes) -> TransactionUpdate | None:
    if data[0] != Compression.NONE or data[1] != 1:  # not a bare TransactionUpdate
        return None
    status: UpdateStatus
    pos = 3
    if data[2] == 0:
        (n_tables,) = _LEN.unpack_from(data, pos)
        pos += 4
        tables = []
        for _ in range(n_tables):
            (table_id,) = _LEN.unpack_from(data, pos)
            name, pos = _lean_string(data, pos + 4)
            num_rows, n_updates = _TABLE_TAIL.unpack_from(data, pos)
            pos += 12
            updates = []
            for _ in range(n_updates):
                if data[pos] != Compression.NONE:
                    return None  # compressed: the reference decompresses within its budget
                deletes, pos = _lean_row_list(data, pos + 1)
                inserts, pos = _lean_row_list(data, pos)
                updates.append(CompressableQueryUpdate(QueryUpdate(deletes, inserts)))
            tables.append(TableUpdate(table_id, name, num_rows, tuple(updates)))
        status = Committed(DatabaseUpdate(tuple(tables)))
    elif data[2] == 1:
        message, pos = _lean_string(data, pos)
        status = Failed(message)
    elif data[2] == 2:
        status = OutOfEnergy()
    else:
        return None
    tail = _lean_tail(data, pos)
    if tail is None:
        return None
    timestamp, caller, _, reducer_name, reducer_id, args, request_id, energy, duration = tail
    return TransactionUpdate(
        status=status,
        timestamp=timestamp,
        caller_identity=caller[0],
        caller_connection_id=caller[1],
        reducer_call=ReducerCallInfo(reducer_name, reducer_id, args, request_id),
        energy_quanta_used=EnergyQuanta(energy),
        total_host_execution_duration=duration,
    )


_Tail: TypeAlias = tuple[
    Timestamp, tuple[Identity, ConnectionId], bytes, str, int, bytes, int, int, TimeDuration
]
# A TransactionUpdate after its status: timestamp, caller (48 bytes) and the reducer
# name's length; the name; reducer id and the arguments' length; the arguments;
# request id, energy (a u128 as two u64) and duration.
_CALL_HEAD: Final = struct.Struct("<q48sI")
_CALL_MID: Final = struct.Struct("<II")
_CALL_END: Final = struct.Struct("<IQQq")


def _lean_tail(data: bytes, pos: int) -> _Tail | None:
    """A TransactionUpdate's fields after its status, read from ``pos`` to the end:
    timestamp, caller (and its 48 wire bytes), reducer name, id, arguments, request id,
    energy, duration. None if bytes are left over."""
    micros, caller_bytes, size = _CALL_HEAD.unpack_from(data, pos)
    pos += _CALL_HEAD.size
    end = pos + size
    if end > len(data):
        raise IndexError
    reducer_name = data[pos:end].decode("utf-8")
    reducer_id, size = _CALL_MID.unpack_from(data, end)
    pos = end + _CALL_MID.size
    end = pos + size
    if end > len(data):
        raise IndexError
    args = data[pos:end]
    request_id, energy_low, energy_high, duration = _CALL_END.unpack_from(data, end)
    if end + _CALL_END.size != len(data):
        return None
    return (
        Timestamp(micros),
        _caller(caller_bytes),
        caller_bytes,
        reducer_name,
        reducer_id,
        args,
        request_id,
        energy_high << 64 | energy_low,
        TimeDuration(duration),
    )


# --------------------------------------------------------------------------- the common reply


class CommittedReply:
    """A committed reducer transaction as flat fields, read from its frame in one pass.

    The reply a busy client receives most (a ``TransactionUpdate``: committed,
    uncompressed, its query updates uncompressed) without the nested message
    dataclasses the reference reader builds for it (about 16 per reply): what the
    protocol's fast lane needs (``ClientProtocol(lean_replies=True)``). ``changes``
    equals :meth:`DatabaseUpdate.table_changes` of the same message, each row list
    validated once; ``caller_bytes`` are the caller's 48 wire bytes (identity, then
    connection id). A plain record for the SDK's own use, not a message type.
    """

    __slots__ = (
        "args",
        "caller_bytes",
        "caller_connection_id",
        "caller_identity",
        "changes",
        "duration",
        "energy_used",
        "reducer_id",
        "reducer_name",
        "request_id",
        "timestamp",
    )

    def __init__(self, changes: dict[str, tuple[list[bytes], list[bytes]]], tail: _Tail) -> None:
        self.changes = changes
        (
            self.timestamp,
            (self.caller_identity, self.caller_connection_id),
            self.caller_bytes,
            self.reducer_name,
            self.reducer_id,
            self.args,
            self.request_id,
            self.energy_used,
            self.duration,
        ) = tail


def read_committed_reply(
    data: bytes | bytearray | memoryview, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> CommittedReply | None:
    """``data`` (a whole frame) as a :class:`CommittedReply`, or None when it is anything
    else or not well formed: :func:`decode_server_frame` then decodes it or raises the
    exact error. Every value equals what the reference reader yields for it."""
    if type(data) is not bytes or len(data) > max_message_size:
        return None
    return _read_reply(data)


def _python_reply(data: bytes) -> CommittedReply | None:
    """The reference reader of the common reply (pure Python)."""
    try:
        return _lean_committed_reply(data)
    except (struct.error, IndexError, ValueError, DecodeError):  # ValueError: bad UTF-8
        return None


def _lean_committed_reply(data: bytes) -> CommittedReply | None:
    if data[:3] != b"\x00\x01\x00":  # not uncompressed, a TransactionUpdate, committed
        return None
    (n_tables,) = _LEN.unpack_from(data, 3)
    pos = 7
    changes: dict[str, tuple[list[bytes], list[bytes]]] = {}
    for _ in range(n_tables):
        name, pos = _lean_string(data, pos + 4)  # after the table id
        _, n_updates = _TABLE_TAIL.unpack_from(data, pos)
        pos += 12
        merged = changes.get(name)
        if merged is None:
            merged = changes[name] = ([], [])
        for _ in range(n_updates):
            if data[pos] != Compression.NONE:
                return None  # compressed: the reference decompresses within its budget
            pos = _lean_rows(data, pos + 1, merged[0])
            pos = _lean_rows(data, pos, merged[1])
    tail = _lean_tail(data, pos)
    return None if tail is None else CommittedReply(changes, tail)


def _lean_rows(data: bytes, pos: int, into: list[bytes]) -> int:
    """Append the rows of the row list at ``pos`` to ``into`` (validated); return its end."""
    if data[pos : pos + 9] == _NO_ROWS:
        return pos + 9
    if data[pos] == 0:
        (n,) = _FIXED.unpack_from(data, pos + 1)
        raw, pos = _lean_bytes(data, pos + 3)
        _check_fixed_size(n, len(raw))
        if n:
            into += [raw[i : i + n] for i in range(0, len(raw), n)]
        return pos
    if data[pos] != 1:
        raise IndexError
    (count,) = _LEN.unpack_from(data, pos + 1)
    pos += 5
    if count == 1:  # one row (most commits): its data is the row; its offset must be 0
        if _U64.unpack_from(data, pos)[0] != 0:
            raise IndexError
        raw, pos = _lean_bytes(data, pos + 8)
        into.append(raw)
        return pos
    if pos + 8 * count > len(data):
        raise IndexError
    offsets = struct.unpack_from(f"<{count}Q", data, pos)
    raw, pos = _lean_bytes(data, pos + 8 * count)
    _check_offsets(offsets, len(raw))
    into += codec.split_rows(raw, offsets)
    return pos


#: The reader :func:`read_committed_reply` uses: the native one (``_native.ReplyReader``,
#: the same checks and values; the reply is ~14 % of the SDK's own time per call in pure
#: Python) when the codec chose the native extension, else the reference.
_read_reply: Final[Callable[[bytes], CommittedReply | None]] = (
    _python_reply
    if codec.NATIVE is None
    else codec.NATIVE.ReplyReader(CommittedReply, CLASSES).read
)


def _read_transaction_update_light(r: _ServerReader) -> TransactionUpdateLight:
    return TransactionUpdateLight(r.u32(), _read_database_update(r))


def _read_identity_token(r: BsatnReader) -> IdentityToken:
    return IdentityToken(_identity(r), r.string(), _connection_id(r))


def _read_one_off_query_response(r: BsatnReader) -> OneOffQueryResponse:
    message_id, error = r.bytes(), _read_option_str(r)
    tables = tuple(_read_one_off_table(r) for _ in range(r.length("tables")))
    return OneOffQueryResponse(message_id, error, tables, _duration(r))


def _read_subscribe_applied(r: _ServerReader) -> SubscribeApplied:
    return SubscribeApplied(r.u32(), r.u64(), QueryId(r.u32()), _read_subscribe_rows(r))


def _read_unsubscribe_applied(r: _ServerReader) -> UnsubscribeApplied:
    return UnsubscribeApplied(r.u32(), r.u64(), QueryId(r.u32()), _read_subscribe_rows(r))


def _read_subscription_error(r: BsatnReader) -> SubscriptionError:
    return SubscriptionError(
        r.u64(), _read_option_u32(r), _read_option_u32(r), _read_option_u32(r), r.string()
    )


def _read_subscribe_multi_applied(r: _ServerReader) -> SubscribeMultiApplied:
    return SubscribeMultiApplied(r.u32(), r.u64(), QueryId(r.u32()), _read_database_update(r))


def _read_unsubscribe_multi_applied(r: _ServerReader) -> UnsubscribeMultiApplied:
    return UnsubscribeMultiApplied(r.u32(), r.u64(), QueryId(r.u32()), _read_database_update(r))


def _read_procedure_result(r: BsatnReader) -> ProcedureResult:
    return ProcedureResult(_read_procedure_status(r), _timestamp(r), _duration(r), r.u32())


#: Indexed by the ServerMessage tag.
_SERVER_DECODERS: tuple[Callable[[_ServerReader], ServerMessage], ...] = (
    _read_initial_subscription,
    _read_transaction_update,
    _read_transaction_update_light,
    _read_identity_token,
    _read_one_off_query_response,
    _read_subscribe_applied,
    _read_unsubscribe_applied,
    _read_subscription_error,
    _read_subscribe_multi_applied,
    _read_unsubscribe_multi_applied,
    _read_procedure_result,
)


def _read_server_message(r: _ServerReader) -> ServerMessage:
    msg = _SERVER_DECODERS[r.tag(len(_SERVER_DECODERS), "ServerMessage")](r)
    r.expect_end()
    return msg


def decode_server_message(
    data: bytes | bytearray | memoryview, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> ServerMessage:
    """Decode one BSATN ``ServerMessage`` (no compression tag byte in front).

    ``max_message_size`` caps the message's bytes plus everything its compressed
    query updates decompress to.

    Raises:
        DecodeError: truncated input, an invalid tag or value, bad row offsets,
            undecompressable data, or trailing bytes.
        MessageTooLargeError: the message is, or decompresses to, more than
            ``max_message_size`` bytes (raised before allocating much more than that).
    """
    budget = _Budget(max_message_size)
    budget.spend(len(data))
    return _read_server_message(_ServerReader(data, budget))


def decode_server_frame(
    data: bytes | bytearray | memoryview, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> ServerMessage:
    """Decode one whole binary WebSocket message from the server.

    Byte 0 is the compression tag (0 none, 1 brotli, 2 gzip); the rest is the
    (possibly compressed) BSATN ``ServerMessage``. Raises as
    :func:`decode_server_message`; ``max_message_size`` bounds the decompressed
    body and its nested compressed updates together.
    """
    if not data:
        raise DecodeError("empty server message (no compression tag byte)", 0)
    tag = data[0]
    if tag > Compression.GZIP:
        raise DecodeError(f"invalid compression tag {tag} (expected 0, 1 or 2)", 0)
    if tag == Compression.NONE and type(data) is bytes and len(data) <= max_message_size:
        fast = _fast_transaction_update(data)
        if fast is not None:
            return fast
    budget = _Budget(max_message_size)
    if tag == Compression.NONE:
        budget.spend(len(data) - 1)
        return _read_server_message(_ServerReader(data, budget, pos=1))
    body = budget.decompress(Compression(tag), bytes(data[1:]))
    return _read_server_message(_ServerReader(body, budget))


def encode_server_message(msg: ServerMessage) -> bytes:
    """BSATN of a server message (the server's side; for tests and tools)."""
    w = BsatnWriter()
    match msg:
        case InitialSubscription():
            w.tag(0)
            _write_database_update(w, msg.database_update)
            w.u32(msg.request_id)
            w.i64(msg.total_host_execution_duration.micros)
        case TransactionUpdate():
            w.tag(1)
            _write_update_status(w, msg.status)
            w.i64(msg.timestamp.micros_since_epoch)
            w.u256(msg.caller_identity.value)
            w.u128(msg.caller_connection_id.value)
            _write_reducer_call_info(w, msg.reducer_call)
            w.u128(msg.energy_quanta_used.quanta)
            w.i64(msg.total_host_execution_duration.micros)
        case TransactionUpdateLight():
            w.tag(2)
            w.u32(msg.request_id)
            _write_database_update(w, msg.update)
        case IdentityToken():
            w.tag(3)
            w.u256(msg.identity.value)
            w.string(msg.token)
            w.u128(msg.connection_id.value)
        case OneOffQueryResponse():
            w.tag(4)
            w.bytes(msg.message_id)
            _write_option_str(w, msg.error)
            w.length(len(msg.tables))
            for table in msg.tables:
                w.string(table.table_name)
                _write_row_list(w, table.rows)
            w.i64(msg.total_host_execution_duration.micros)
        case SubscribeApplied() | UnsubscribeApplied():
            w.tag(5 if isinstance(msg, SubscribeApplied) else 6)
            w.u32(msg.request_id)
            w.u64(msg.total_host_execution_duration_micros)
            w.u32(msg.query_id.id)
            _write_subscribe_rows(w, msg.rows)
        case SubscriptionError():
            w.tag(7)
            w.u64(msg.total_host_execution_duration_micros)
            _write_option_u32(w, msg.request_id)
            _write_option_u32(w, msg.query_id)
            _write_option_u32(w, msg.table_id)
            w.string(msg.error)
        case SubscribeMultiApplied() | UnsubscribeMultiApplied():
            w.tag(8 if isinstance(msg, SubscribeMultiApplied) else 9)
            w.u32(msg.request_id)
            w.u64(msg.total_host_execution_duration_micros)
            w.u32(msg.query_id.id)
            _write_database_update(w, msg.update)
        case ProcedureResult():
            w.tag(10)
            _write_procedure_status(w, msg.status)
            w.i64(msg.timestamp.micros_since_epoch)
            w.i64(msg.total_host_execution_duration.micros)
            w.u32(msg.request_id)
        case _:
            raise EncodeError(f"not a server message: {type(msg).__name__}")
    return w.getvalue()


def encode_server_frame(msg: ServerMessage, compression: Compression = Compression.NONE) -> bytes:
    """A whole server WebSocket message: compression tag byte + (compressed) BSATN."""
    return bytes([compression]) + _compress(compression, encode_server_message(msg))
