"""The one place that chooses between the pure-Python and the native BSATN codec.

The rest of the SDK decodes rows and encodes reducer arguments only through the
functions here, so swapping in the native extension changes nothing else. Pure
Python is the reference; the native codec must give identical results.

The native codec is used when ``inner_universe._native`` imports and provides
``decode_rows`` (with this module's signature), unless the environment variable
``INNER_UNIVERSE_PURE_PYTHON`` is set to anything but ``""``/``"0"``. Today the
extension provides no codec, so :data:`IMPLEMENTATION` is ``"python"``.
"""

from __future__ import annotations

import gc
import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Final, Literal, TypeVar, cast

from ..errors import DecodeError
from .bsatn import BsatnReader
from .schema import ReducerSchema, TableSchema

__all__ = [
    "IMPLEMENTATION",
    "PURE_PYTHON_ENV",
    "decode_args",
    "decode_row",
    "decode_rows",
    "encode_args",
    "encode_row",
    "select_implementation",
]

PURE_PYTHON_ENV: Final = "INNER_UNIVERSE_PURE_PYTHON"


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
    if not hasattr(native, "decode_rows"):
        return "python", None
    return "native", native


IMPLEMENTATION: Literal["python", "native"]
_native: ModuleType | None
IMPLEMENTATION, _native = select_implementation()

_F = TypeVar("_F", bound=Callable[..., Any])


def _choose(name: str, python_version: _F) -> _F:
    """The native function called ``name`` when the native codec is selected and has it."""
    if _native is not None and hasattr(_native, name):
        return cast(_F, getattr(_native, name))
    return python_version


# ------------------------------------------------------------ pure-Python versions


def _decode_rows(table: TableSchema, rows_data: bytes, size_hint: Any) -> list[Any]:
    """Decode the rows of a ``BsatnRowList`` of ``table``.

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
                return _decode_with_offsets(table, rows_data, size_hint)
    except DecodeError as exc:
        err = DecodeError(f"table {table.name!r}: {exc}")
        err.offset = exc.offset
        raise err from None
    raise TypeError(f"size_hint must be a row size or a sequence of offsets, not {size_hint!r}")


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


def _decode_fixed_size(table: TableSchema, data: bytes, size: int) -> list[Any]:
    if size <= 0:
        if data:
            raise DecodeError(f"row size hint {size} with {len(data)} bytes of rows")
        return []
    if len(data) % size:
        raise DecodeError(f"{len(data)} bytes of rows is not a multiple of the row size {size}")
    expected = table.static_row_size
    if expected is not None and expected != size:
        raise DecodeError(f"the server's row size {size} differs from the schema's {expected}")
    layout = table.fixed_layout
    if layout is not None:  # fast path: one struct call per row
        build = layout.build
        return [build(raw) for raw in layout.struct.iter_unpack(data)]
    reader = BsatnReader(data)
    decode = table.decode_row_at
    rows: list[Any] = []
    for end in range(size, len(data) + 1, size):
        rows.append(decode(reader))
        if reader.pos != end:
            raise DecodeError(f"row {len(rows) - 1} is not {size} bytes long", reader.pos)
    return rows


def _decode_with_offsets(table: TableSchema, data: bytes, offsets: Sequence[int]) -> list[Any]:
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


def _decode_row(table: TableSchema, data: bytes) -> Any:
    """Decode one row spanning exactly ``data``."""
    return table.decode_row(data)


def _encode_row(table: TableSchema, row: Any) -> bytes:
    return table.encode_row(row)


def _encode_args(reducer: ReducerSchema, /, *args: Any, **kwargs: Any) -> bytes:
    """Reducer arguments bound like a Python call; ArgumentError before anything is sent."""
    return reducer.encode_args(*args, **kwargs)


def _decode_args(reducer: ReducerSchema, data: bytes) -> dict[str, Any]:
    return reducer.decode_args(data)


# ------------------------------------------------------------------ the chosen ones

decode_rows = _choose("decode_rows", _decode_rows)
decode_row = _choose("decode_row", _decode_row)
encode_row = _choose("encode_row", _encode_row)
encode_args = _choose("encode_args", _encode_args)
decode_args = _choose("decode_args", _decode_args)
