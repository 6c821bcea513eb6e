"""The one place that chooses between the pure-Python and the native BSATN codec.

The rest of the SDK decodes rows and encodes reducer arguments only through the
functions here, so swapping in the native extension changes nothing else. Pure
Python is the reference; the native codec gives identical results: the same
values of the same Python types, and for malformed input the same
:class:`DecodeError` with the same offset (the differential tests in
``tests/spacetime/test_codec_differential.py`` hold the two to that).

The native codec (``inner_universe._native.Layout``) is used when the extension
imports and provides it, unless the environment variable
``INNER_UNIVERSE_PURE_PYTHON`` is set to anything but ``""``/``"0"``.
:data:`IMPLEMENTATION` says which one this process uses.

The native side gets bytes and, once per table or reducer, a compact layout
descriptor (:mod:`.layout`); it decodes a whole row list per call. It encodes
values in their canonical forms (what decoding yields, tuples for products) and
declines anything else, which the pure encoder then handles: the conveniences
(mappings, datetimes, ...) and every encoding error come from the reference.
"""

from __future__ import annotations

import gc
import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import pairwise
from types import ModuleType
from typing import Any, Final, Literal, Protocol, TypeAlias
from weakref import WeakKeyDictionary

from ..errors import DecodeError
from .bsatn import BsatnReader
from .layout import CLASSES, descriptor
from .sats import RefType
from .schema import CallKey, ReducerSchema, TableSchema

__all__ = [
    "IMPLEMENTATION",
    "NATIVE",
    "PURE_PYTHON_ENV",
    "args_encoder",
    "decode_args",
    "decode_row",
    "decode_row_list",
    "decode_rows",
    "encode_args",
    "encode_row",
    "row_decoder",
    "select_implementation",
    "split_rows",
]

PURE_PYTHON_ENV: Final = "INNER_UNIVERSE_PURE_PYTHON"

#: Packed row data: bytes, or a read-only view of the message it came in.
Data: TypeAlias = bytes | memoryview


def select_implementation(
    environ: Mapping[str, str] = os.environ,
) -> tuple[Literal["python", "native"], ModuleType | None]:
    """Which codec to use, and the native module if it is that one."""
    if environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return "python", None
    try:
        native = importlib.import_module(".._native", __package__)
    except ImportError:
        return "python", None
    if not all(hasattr(native, name) for name in ("Layout", "ReplyReader")):
        return "python", None  # a build older than this code: the test run says which is used
    return "native", native


# ------------------------------------------------------------------ the public API


def decode_rows(table: TableSchema, rows_data: Data, size_hint: Any) -> list[Any]:
    """Decode the rows of a ``BsatnRowList`` of ``table`` in one call.

    ``size_hint`` is its ``RowSizeHint``: an int for ``FixedSize(n)``, a sequence of
    start offsets for ``RowOffsets``, or an object with ``.size`` / ``.offsets``
    (``messages.FixedSize`` / ``messages.RowOffsets``). Every byte must belong to
    exactly one row; anything else is a DecodeError naming the table.
    """
    if hasattr(size_hint, "size"):
        size_hint = size_hint.size
    elif hasattr(size_hint, "offsets"):
        size_hint = size_hint.offsets
    try:
        with _gc_paused():
            if isinstance(size_hint, int) and not isinstance(size_hint, bool):
                return _decode_fixed_size(table, rows_data, size_hint)
            if isinstance(size_hint, Sequence):
                return _codec.decode_offsets(table, rows_data, size_hint)
    except DecodeError as exc:
        raise _in_table(table, exc) from None
    raise TypeError(f"size_hint must be a row size or a sequence of offsets, not {size_hint!r}")


def decode_row_list(table: TableSchema, rows: Sequence[bytes]) -> list[Any]:
    """Decode separately encoded rows of ``table`` (the client cache's row bytes) in one call.

    A malformed row is a DecodeError naming the table and the row's index, with
    the offset inside that row.
    """
    return row_decoder(table)(rows)


def row_decoder(table: TableSchema) -> Callable[[Sequence[bytes]], list[Any]]:
    """:func:`decode_row_list` for ``table``, with the codec's per-table work done once.

    Made once per table by whoever decodes its rows often (the client cache): each
    call then skips the native codec's layout lookup (a weak-keyed dictionary).
    """
    decode_each = _codec.row_decoder(table)

    def decode(rows: Sequence[bytes]) -> list[Any]:
        try:
            if len(rows) < GC_PAUSE_MIN_ROWS:
                return decode_each(rows)
            with _gc_paused():
                return decode_each(rows)
        except DecodeError as exc:
            raise _in_table(table, exc) from None

    return decode


def split_rows(data: Data, offsets: Sequence[int]) -> list[bytes]:
    """The rows of a ``RowOffsets`` row list, one byte string each (the cache's keys).

    ``offsets`` must be validated first (``BsatnRowList.validate`` raises the errors).
    """
    return _codec.split_rows(data, offsets)


def decode_row(table: TableSchema, data: bytes) -> Any:
    """Decode one row spanning exactly ``data``."""
    return _codec.decode_row(table, data)


def encode_row(table: TableSchema, row: Any) -> bytes:
    """The BSATN bytes of ``row`` (a row class instance, tuple or mapping)."""
    return _codec.encode_row(table, row)


def encode_args(
    reducer: ReducerSchema, /, *args: Any, call_key: CallKey | None = None, **kwargs: Any
) -> bytes:
    """Reducer arguments bound like a Python call; ArgumentError before anything is sent.

    ``call_key`` goes first when the reducer takes one (see ``ReducerSchema.call_values``).
    """
    values = reducer.call_values(*args, call_key=call_key, **kwargs)
    return _codec.encode_args(reducer, values)


def args_encoder(reducer: ReducerSchema) -> Callable[[tuple[Any, ...]], bytes]:
    """A function encoding a call's bound arguments, the call key left out.

    Takes the tuple ``reducer.bind(...)`` returns; raises ArgumentError naming
    the bad argument. Made once per reducer by whoever calls it often (a
    connection's call plans): each call then skips the codec's layout lookup.
    See ``ReducerSchema.encode_bound`` for where a call key goes.
    """
    return _codec.args_encoder(reducer)


def decode_args(reducer: ReducerSchema, data: bytes) -> dict[str, Any]:
    """The arguments of a reducer call, by parameter name, from their BSATN bytes."""
    return _codec.decode_args(reducer, data)


# ------------------------------------------------------------------ shared parts


def _in_table(table: TableSchema, exc: DecodeError) -> DecodeError:
    err = DecodeError(f"table {table.name!r}: {exc}")
    err.offset = exc.offset
    return err


#: Batches smaller than this decode without pausing the collector: they allocate too
#: little to trigger it, and pausing costs more than it saves on a one-row update.
GC_PAUSE_MIN_ROWS: Final = 256


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while decoding a batch of rows.

    Decoding allocates several tracked objects per row (the row, its Identity and
    Timestamp values) and none of them form cycles, yet the collector keeps
    rescanning the growing batch: pausing it makes large row lists ~1.5x faster.
    If the application has disabled the collector itself, it stays disabled.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _decode_fixed_size(table: TableSchema, data: Data, size: int) -> list[Any]:
    if size <= 0:
        if data:
            raise DecodeError(f"row size hint {size} with {len(data)} bytes of rows")
        return []
    if len(data) % size:
        raise DecodeError(f"{len(data)} bytes of rows is not a multiple of the row size {size}")
    expected = table.static_row_size
    if expected is not None and expected != size:
        raise DecodeError(f"the server's row size {size} differs from the schema's {expected}")
    return _codec.decode_fixed(table, data, size)


class _Codec(Protocol):
    """What differs between the two implementations; everything else is shared above."""

    name: Literal["python", "native"]

    def decode_fixed(self, table: TableSchema, data: Data, size: int) -> list[Any]: ...
    def decode_offsets(
        self, table: TableSchema, data: Data, offsets: Sequence[int]
    ) -> list[Any]: ...
    def decode_each(self, table: TableSchema, rows: Sequence[bytes]) -> list[Any]: ...
    def row_decoder(self, table: TableSchema) -> Callable[[Sequence[bytes]], list[Any]]: ...
    def split_rows(self, data: Data, offsets: Sequence[int]) -> list[bytes]: ...
    def decode_row(self, table: TableSchema, data: bytes) -> Any: ...
    def encode_row(self, table: TableSchema, row: Any) -> bytes: ...
    def encode_args(self, reducer: ReducerSchema, values: tuple[Any, ...]) -> bytes: ...
    def args_encoder(self, reducer: ReducerSchema) -> Callable[[tuple[Any, ...]], bytes]: ...
    def decode_args(self, reducer: ReducerSchema, data: bytes) -> dict[str, Any]: ...


# ------------------------------------------------------------- pure Python (reference)


class _PythonCodec:
    """The reference: the closures :mod:`.sats` compiles once per type."""

    name: Literal["python", "native"] = "python"

    def decode_fixed(self, table: TableSchema, data: Data, size: int) -> list[Any]:
        layout = table.fixed_layout
        if layout is not None:  # fast path: one struct call per row
            build = layout.build
            try:
                return [build(raw) for raw in layout.struct.iter_unpack(data)]
            except DecodeError:  # an invalid bool byte: find the row it is in
                for i, raw in enumerate(layout.struct.iter_unpack(data)):
                    try:
                        build(raw)
                    except DecodeError:
                        raise layout.bool_error(raw, i * size) from None
                raise  # pragma: no cover - the failing row is always found again
        reader = BsatnReader(data)
        decode = table.decode_row_at
        rows: list[Any] = []
        for end in range(size, len(data) + 1, size):
            rows.append(decode(reader))
            if reader.pos != end:
                raise DecodeError(f"row {len(rows) - 1} is not {size} bytes long", reader.pos)
        return rows

    def decode_offsets(self, table: TableSchema, data: Data, offsets: Sequence[int]) -> list[Any]:
        reader = BsatnReader(data)
        decode = table.decode_row_at
        rows: list[Any] = []
        for start in offsets:
            if reader.pos != start:
                raise DecodeError(
                    f"row {len(rows)} should start at byte {start}, "
                    f"but the rows before it end at byte {reader.pos}"
                )
            rows.append(decode(reader))
        reader.expect_end()
        return rows

    def decode_each(self, table: TableSchema, rows: Sequence[bytes]) -> list[Any]:
        return self.row_decoder(table)(rows)

    def row_decoder(self, table: TableSchema) -> Callable[[Sequence[bytes]], list[Any]]:
        decode = table.decode_row

        def decode_each(rows: Sequence[bytes]) -> list[Any]:
            values: list[Any] = []
            try:
                for row in rows:
                    values.append(decode(row))
            except DecodeError as exc:
                err = DecodeError(f"row {len(values)}: {exc}")
                err.offset = exc.offset
                raise err from None
            return values

        return decode_each

    def split_rows(self, data: Data, offsets: Sequence[int]) -> list[bytes]:
        data = bytes(data)  # no copy when it is bytes already
        return [data[start:end] for start, end in pairwise((*offsets, len(data)))]

    def decode_row(self, table: TableSchema, data: bytes) -> Any:
        return table.decode_row(data)

    def encode_row(self, table: TableSchema, row: Any) -> bytes:
        return table.encode_row(row)

    def encode_args(self, reducer: ReducerSchema, values: tuple[Any, ...]) -> bytes:
        return reducer.encode_values(values)

    def args_encoder(self, reducer: ReducerSchema) -> Callable[[tuple[Any, ...]], bytes]:
        return reducer.encode_bound

    def decode_args(self, reducer: ReducerSchema, data: bytes) -> dict[str, Any]:
        return reducer.decode_args(data)


# ---------------------------------------------------------------------- native


class _NativeCodec:
    """``inner_universe._native``: one compiled Layout per table row type and reducer."""

    name: Literal["python", "native"] = "native"

    def __init__(self, native: ModuleType) -> None:
        self._new_layout = native.Layout
        self._split_rows = native.split_rows
        self._layouts: WeakKeyDictionary[TableSchema | ReducerSchema, Any] = WeakKeyDictionary()
        # A keyed reducer's parameters after its call key (see ReducerSchema.args_type).
        self._args_layouts: WeakKeyDictionary[ReducerSchema, Any] = WeakKeyDictionary()

    def layout(self, schema: TableSchema | ReducerSchema) -> Any:
        """The native Layout of a table's rows or a reducer's parameters, compiled once."""
        layout = self._layouts.get(schema)
        if layout is None:
            if isinstance(schema, TableSchema):
                nodes = descriptor(RefType(schema.product_type_ref), schema.typespace)
            else:
                nodes = descriptor(schema.params_type, schema.typespace)
            layout = self._layouts[schema] = self._new_layout(nodes, CLASSES)
        return layout

    def decode_fixed(self, table: TableSchema, data: Data, size: int) -> list[Any]:
        rows: list[Any] = self.layout(table).decode_fixed(data, size)
        return rows

    def decode_offsets(self, table: TableSchema, data: Data, offsets: Sequence[int]) -> list[Any]:
        rows: list[Any] = self.layout(table).decode_offsets(data, offsets)
        return rows

    def decode_each(self, table: TableSchema, rows: Sequence[bytes]) -> list[Any]:
        return self.row_decoder(table)(rows)

    def row_decoder(self, table: TableSchema) -> Callable[[Sequence[bytes]], list[Any]]:
        decode_each: Callable[[Sequence[bytes]], list[Any]] = self.layout(table).decode_each
        return decode_each

    def split_rows(self, data: Data, offsets: Sequence[int]) -> list[bytes]:
        rows: list[bytes] = self._split_rows(data, offsets)
        return rows

    def decode_row(self, table: TableSchema, data: bytes) -> Any:
        return self.layout(table).decode(data)

    def encode_row(self, table: TableSchema, row: Any) -> bytes:
        data: bytes | None = self.layout(table).encode(row)
        return data if data is not None else table.encode_row(row)

    def encode_args(self, reducer: ReducerSchema, values: tuple[Any, ...]) -> bytes:
        data: bytes | None = self.layout(reducer).encode(values)
        return data if data is not None else reducer.encode_values(values)

    def args_encoder(self, reducer: ReducerSchema) -> Callable[[tuple[Any, ...]], bytes]:
        if not reducer.takes_call_key:
            layout = self.layout(reducer)
        else:
            layout = self._args_layouts.get(reducer)
            if layout is None:
                nodes = descriptor(reducer.args_type, reducer.typespace)
                layout = self._args_layouts[reducer] = self._new_layout(nodes, CLASSES)
        encode_native, encode_pure = layout.encode, reducer.encode_bound

        def encode(values: tuple[Any, ...]) -> bytes:
            data: bytes | None = encode_native(values)
            return data if data is not None else encode_pure(values)

        return encode

    def decode_args(self, reducer: ReducerSchema, data: bytes) -> dict[str, Any]:
        return reducer.split_values(self.layout(reducer).decode(data))[0]


# ------------------------------------------------------------------ the choice

IMPLEMENTATION: Literal["python", "native"]
_native: ModuleType | None
IMPLEMENTATION, _native = select_implementation()
#: The native extension when it is the implementation in use, else None: where another
#: module has a native twin of a reader (``messages.read_committed_reply``), it takes it
#: from here, so the choice is still made once.
NATIVE: Final = _native
_codec: _Codec = _NativeCodec(_native) if _native is not None else _PythonCodec()
