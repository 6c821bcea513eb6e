"""BSATN, SpacetimeDB's binary encoding: the pure-Python reference codec.

BSATN is not self-describing: the reader must know the type. Everything is
little-endian; strings and byte strings carry a u32 length prefix, arrays a u32
element count; products are their fields in order; sums are a u8 tag and the
variant's payload.

This module holds the two primitives everything else is written on:
:class:`BsatnReader` (bytes in, values out, with a typed :class:`DecodeError`
for every malformed input instead of ``IndexError`` or a silent wrong value) and
:class:`BsatnWriter`.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from ..errors import DecodeError, EncodeError

__all__ = ["MAX_COLLECTION_LEN", "MAX_ZERO_SIZED_ITEMS", "BsatnReader", "BsatnWriter"]

#: The largest length prefix a writer produces (BSATN lengths are u32).
MAX_COLLECTION_LEN: Final = (1 << 32) - 1
#: Arrays of zero-sized items (units) cannot be bounded by the input size; cap them.
MAX_ZERO_SIZED_ITEMS: Final = 1 << 24

_U16 = struct.Struct("<H")
_I16 = struct.Struct("<h")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")

_INT_RANGES: Final[dict[str, tuple[int, int]]] = {
    f"{sign}{bits}": (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if sign == "i" else (0, (1 << bits) - 1)
    )
    for sign in ("u", "i")
    for bits in (8, 16, 32, 64, 128, 256)
}


def _show(v: float) -> str:
    """Format a number for an error message; huge ints would exceed Python's str() digit limit."""
    if isinstance(v, int) and v.bit_length() > 512:
        return f"an int of {v.bit_length()} bits"
    return repr(v)


class BsatnReader:
    """Reads BSATN values from a buffer, front to back.

    Every method raises :class:`DecodeError` (with the byte offset) when the
    buffer ends early or holds an invalid value. Call :meth:`expect_end` after
    reading a whole value to reject trailing garbage.
    """

    __slots__ = ("_buf", "_end", "pos")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self._buf = bytes(data) if not isinstance(data, bytes) else data
        self._end = len(self._buf)
        self.pos = pos

    @property
    def remaining(self) -> int:
        """How many bytes are left unread."""
        return self._end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self._end

    def expect_end(self) -> None:
        """Raise unless every byte has been consumed."""
        if self.pos != self._end:
            raise DecodeError(f"{self._end - self.pos} unexpected trailing byte(s)", self.pos)

    def _need(self, n: int, what: str) -> int:
        start = self.pos
        if n < 0:
            raise DecodeError(f"negative length {n} for {what}", start)
        if n > self._end - start:
            raise DecodeError(
                f"truncated input: {what} needs {n} byte(s), {self._end - start} left", start
            )
        self.pos = start + n
        return start

    def take(self, n: int, what: str = "bytes") -> bytes:
        """Read exactly ``n`` raw bytes."""
        start = self._need(n, what)
        return self._buf[start : start + n]

    def view(self, n: int, what: str = "bytes") -> memoryview:
        """Read exactly ``n`` raw bytes as a read-only view of the input (no copy: the
        view keeps the whole input alive)."""
        start = self._need(n, what)
        return memoryview(self._buf)[start : start + n]

    def u8(self) -> int:
        start = self._need(1, "u8")
        return self._buf[start]

    def i8(self) -> int:
        v = self.u8()
        return v - 256 if v > 127 else v

    def bool(self) -> bool:
        start = self._need(1, "bool")
        b = self._buf[start]
        if b > 1:
            raise DecodeError(f"invalid bool byte {b}", start)
        return b == 1

    def u16(self) -> int:
        return int(_U16.unpack_from(self._buf, self._need(2, "u16"))[0])

    def i16(self) -> int:
        return int(_I16.unpack_from(self._buf, self._need(2, "i16"))[0])

    def u32(self) -> int:
        return int(_U32.unpack_from(self._buf, self._need(4, "u32"))[0])

    def i32(self) -> int:
        return int(_I32.unpack_from(self._buf, self._need(4, "i32"))[0])

    def u64(self) -> int:
        return int(_U64.unpack_from(self._buf, self._need(8, "u64"))[0])

    def i64(self) -> int:
        return int(_I64.unpack_from(self._buf, self._need(8, "i64"))[0])

    def u128(self) -> int:
        start = self._need(16, "u128")
        return int.from_bytes(self._buf[start : start + 16], "little")

    def i128(self) -> int:
        start = self._need(16, "i128")
        return int.from_bytes(self._buf[start : start + 16], "little", signed=True)

    def u256(self) -> int:
        start = self._need(32, "u256")
        return int.from_bytes(self._buf[start : start + 32], "little")

    def i256(self) -> int:
        start = self._need(32, "i256")
        return int.from_bytes(self._buf[start : start + 32], "little", signed=True)

    def f32(self) -> float:
        return float(_F32.unpack_from(self._buf, self._need(4, "f32"))[0])

    def f64(self) -> float:
        return float(_F64.unpack_from(self._buf, self._need(8, "f64"))[0])

    def length(self, what: str = "array", min_item_size: int = 1) -> int:
        """Read a u32 length/count prefix, refusing counts the rest of the input cannot hold.

        Each item takes at least ``min_item_size`` bytes, so a corrupt prefix fails
        here, before anything is allocated or looped over. Items of size zero (unit
        values) cannot be checked that way and are capped at
        :data:`MAX_ZERO_SIZED_ITEMS` instead.
        """
        start = self.pos
        n = self.u32()
        if min_item_size > 0:
            if n * min_item_size > self._end - self.pos:
                raise DecodeError(
                    f"truncated input: {what} claims {n} item(s) of at least "
                    f"{min_item_size} byte(s), but only {self._end - self.pos} byte(s) are left",
                    start,
                )
        elif n > MAX_ZERO_SIZED_ITEMS:
            raise DecodeError(
                f"{what} of zero-sized items claims {n} items; the limit is {MAX_ZERO_SIZED_ITEMS}",
                start,
            )
        return n

    def bytes(self) -> bytes:
        n = self.length("bytes")
        return self.take(n, "bytes payload")

    def string(self) -> str:
        n = self.length("string")
        start = self._need(n, "string payload")
        try:
            return self._buf[start : start + n].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"string is not valid UTF-8: {exc.reason}", start) from None

    def tag(self, variants: int, what: str = "sum") -> int:
        """Read a sum tag and check it names one of ``variants`` variants."""
        start = self.pos
        t = self.u8()
        if t >= variants:
            raise DecodeError(f"invalid {what} tag {t} (expected < {variants})", start)
        return t

    def unpack(self, layout: struct.Struct, what: str = "fixed-size fields") -> tuple[Any, ...]:
        """Read several fixed-size fields at once with a precompiled little-endian struct.

        The type-directed decoders use this for runs of fixed-width fields: one
        ``unpack_from`` on the buffer instead of one call per field, and no copy.
        """
        return layout.unpack_from(self._buf, self._need(layout.size, what))


class BsatnWriter:
    """Appends BSATN values to a growing buffer; :meth:`getvalue` returns the bytes.

    Integer writers check their range and raise :class:`EncodeError` when a value
    does not fit, so a bad value never silently wraps.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)

    def raw(self, data: bytes | bytearray | memoryview) -> None:
        """Append already-encoded bytes."""
        self._buf += data

    def _int(self, kind: str, v: int, size: int, signed: bool) -> None:
        if isinstance(v, bool) or not isinstance(v, int):
            raise EncodeError(f"{kind} expects an int, got {type(v).__name__}")
        lo, hi = _INT_RANGES[kind]
        if not lo <= v <= hi:
            raise EncodeError(f"{_show(v)} does not fit in {kind} (range {lo}..{hi})")
        self._buf += v.to_bytes(size, "little", signed=signed)

    def u8(self, v: int) -> None:
        self._int("u8", v, 1, False)

    def i8(self, v: int) -> None:
        self._int("i8", v, 1, True)

    def u16(self, v: int) -> None:
        self._int("u16", v, 2, False)

    def i16(self, v: int) -> None:
        self._int("i16", v, 2, True)

    def u32(self, v: int) -> None:
        self._int("u32", v, 4, False)

    def i32(self, v: int) -> None:
        self._int("i32", v, 4, True)

    def u64(self, v: int) -> None:
        self._int("u64", v, 8, False)

    def i64(self, v: int) -> None:
        self._int("i64", v, 8, True)

    def u128(self, v: int) -> None:
        self._int("u128", v, 16, False)

    def i128(self, v: int) -> None:
        self._int("i128", v, 16, True)

    def u256(self, v: int) -> None:
        self._int("u256", v, 32, False)

    def i256(self, v: int) -> None:
        self._int("i256", v, 32, True)

    def bool(self, v: bool) -> None:
        if not isinstance(v, bool):
            raise EncodeError(f"bool expects a bool, got {type(v).__name__}")
        self._buf.append(1 if v else 0)

    def f32(self, v: float) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise EncodeError(f"f32 expects a float, got {type(v).__name__}")
        try:
            self._buf += _F32.pack(float(v))  # float(): huge ints raise OverflowError
        except OverflowError:
            raise EncodeError(f"{_show(v)} is out of range for f32") from None

    def f64(self, v: float) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise EncodeError(f"f64 expects a float, got {type(v).__name__}")
        try:
            self._buf += _F64.pack(float(v))
        except OverflowError:
            raise EncodeError(f"{_show(v)} is out of range for f64") from None

    def length(self, n: int) -> None:
        """Write a u32 length/count prefix."""
        if n < 0 or n > MAX_COLLECTION_LEN:
            raise EncodeError(f"length {n} exceeds the limit {MAX_COLLECTION_LEN}")
        self._buf += _U32.pack(n)

    def bytes(self, v: bytes | bytearray | memoryview) -> None:
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise EncodeError(f"bytes expects bytes, got {type(v).__name__}")
        # len() of a memoryview counts items, not bytes (e.g. a view of u32s).
        self.length(v.nbytes if isinstance(v, memoryview) else len(v))
        self._buf += v

    def string(self, v: str) -> None:
        if not isinstance(v, str):
            raise EncodeError(f"string expects a str, got {type(v).__name__}")
        try:
            data = v.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodeError(f"string is not encodable as UTF-8: {exc.reason}") from None
        self.length(len(data))
        self._buf += data

    def tag(self, t: int) -> None:
        """Write a sum tag."""
        self._int("u8", t, 1, False)
