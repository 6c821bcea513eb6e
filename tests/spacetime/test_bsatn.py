"""BsatnReader / BsatnWriter primitives: bounds, golden bytes, truncation, invalid values."""

from __future__ import annotations

import array
import contextlib
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inner_universe.errors import DecodeError, EncodeError
from inner_universe.spacetime.bsatn import MAX_COLLECTION_LEN, BsatnReader, BsatnWriter

INTS = {
    f"{sign}{bits}": (bits // 8, sign == "i") for sign in "ui" for bits in (8, 16, 32, 64, 128, 256)
}


def bounds(kind: str) -> tuple[int, int]:
    size, signed = INTS[kind]
    bits = size * 8
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def write(method: str, value: Any) -> bytes:
    w = BsatnWriter()
    getattr(w, method)(value)
    return w.getvalue()


@pytest.mark.parametrize("kind", INTS)
def test_int_bounds_round_trip_little_endian(kind: str) -> None:
    size, signed = INTS[kind]
    for value in (*bounds(kind), 0, 1):
        data = write(kind, value)
        assert data == value.to_bytes(size, "little", signed=signed)
        reader = BsatnReader(data)
        assert getattr(reader, kind)() == value
        reader.expect_end()


@pytest.mark.parametrize("kind", INTS)
def test_int_out_of_range_and_wrong_types(kind: str) -> None:
    lo, hi = bounds(kind)
    for value in (lo - 1, hi + 1):
        with pytest.raises(EncodeError, match=f"does not fit in {kind} "):
            write(kind, value)
    for value in (True, 1.0, "1", None):
        with pytest.raises(EncodeError, match=f"{kind} expects an int"):
            write(kind, value)


@pytest.mark.parametrize("kind", INTS)
def test_truncated_ints_are_decode_errors_with_offset(kind: str) -> None:
    size, _ = INTS[kind]
    reader = BsatnReader(b"\x00" * (size + size - 1))
    getattr(reader, kind)()
    with pytest.raises(DecodeError, match=f"truncated input: .*needs {size} byte") as info:
        getattr(reader, kind)()
    assert info.value.offset == size


def test_huge_ints_give_encode_errors_not_value_errors() -> None:
    # str() of an int over 4300 digits raises ValueError in Python 3.11; messages must not.
    for method in ("u64", "i256", "f32", "f64"):
        with pytest.raises(EncodeError, match="an int of 16610 bits"):
            write(method, 10**5000)


def test_bool() -> None:
    assert write("bool", True) == b"\x01" and write("bool", False) == b"\x00"
    assert BsatnReader(b"\x01").bool() is True
    with pytest.raises(DecodeError, match="invalid bool byte 2"):
        BsatnReader(b"\x02").bool()
    with pytest.raises(EncodeError, match="bool expects a bool"):
        write("bool", 1)


@settings(max_examples=50, deadline=None)
@given(st.floats(), st.floats(width=32))
def test_floats(f64: float, f32: float) -> None:
    data = write("f64", f64) + write("f32", f32)
    assert data == struct.pack("<df", f64, f32)
    reader = BsatnReader(data)
    back64, back32 = reader.f64(), reader.f32()
    assert struct.pack("<df", back64, back32) == data


def test_float_errors() -> None:
    with pytest.raises(EncodeError, match="out of range for f32"):
        write("f32", 1e39)
    with pytest.raises(EncodeError, match="f64 expects a float, got bool"):
        write("f64", True)
    assert write("f64", 3) == struct.pack("<d", 3.0)


def test_strings_and_bytes() -> None:
    assert write("string", "hé") == b"\x03\x00\x00\x00h\xc3\xa9"
    assert write("bytes", b"\x00\xff") == b"\x02\x00\x00\x00\x00\xff"
    reader = BsatnReader(b"\x03\x00\x00\x00h\xc3\xa9\x01\x00\x00\x00z")
    assert reader.string() == "hé"
    assert reader.bytes() == b"z"
    reader.expect_end()
    with pytest.raises(DecodeError, match="not valid UTF-8"):
        BsatnReader(b"\x01\x00\x00\x00\xff").string()
    with pytest.raises(DecodeError, match="truncated"):
        BsatnReader(b"\x05\x00\x00\x00abc").string()
    with pytest.raises(EncodeError, match="string expects a str"):
        write("string", b"x")
    with pytest.raises(EncodeError, match="not encodable as UTF-8"):
        write("string", "\udcff")


def test_memoryview_bytes_are_written_by_byte_length() -> None:
    words = memoryview(array.array("I", [1, 2]))
    assert write("bytes", words) == b"\x08\x00\x00\x00" + bytes(words)


def test_length_limits() -> None:
    with pytest.raises(DecodeError, match="claims 4294967295 item"):
        BsatnReader(b"\xff\xff\xff\xff").length()
    with pytest.raises(EncodeError, match="exceeds the limit"):
        BsatnWriter().length(MAX_COLLECTION_LEN + 1)


def test_tags() -> None:
    assert BsatnReader(b"\x01").tag(2) == 1
    with pytest.raises(DecodeError, match="invalid widget tag 2 \\(expected < 2\\)"):
        BsatnReader(b"\x02").tag(2, "widget")
    with pytest.raises(EncodeError):
        BsatnWriter().tag(256)


def test_unpack_reads_a_struct_in_place() -> None:
    layout = struct.Struct("<HQ")
    reader = BsatnReader(b"\x00" + layout.pack(7, 9) + b"\xff", pos=1)
    assert reader.unpack(layout) == (7, 9)
    assert reader.pos == 11 and reader.remaining == 1
    with pytest.raises(DecodeError, match="truncated input: row needs 10"):
        reader.unpack(layout, "row")


def test_reader_accepts_bytearray_and_memoryview() -> None:
    for data in (bytearray(b"\x05"), memoryview(b"\x05")):
        assert BsatnReader(data).u8() == 5


def test_expect_end_and_take() -> None:
    reader = BsatnReader(b"abc")
    assert reader.take(2) == b"ab" and not reader.at_end()
    with pytest.raises(DecodeError, match="1 unexpected trailing byte"):
        reader.expect_end()
    with pytest.raises(DecodeError, match="truncated"):
        reader.take(2)


READERS: list[Callable[[BsatnReader], Any]] = [
    BsatnReader.u8,
    BsatnReader.i8,
    BsatnReader.bool,
    BsatnReader.u16,
    BsatnReader.i16,
    BsatnReader.u32,
    BsatnReader.i32,
    BsatnReader.u64,
    BsatnReader.i64,
    BsatnReader.u128,
    BsatnReader.i128,
    BsatnReader.u256,
    BsatnReader.i256,
    BsatnReader.f32,
    BsatnReader.f64,
    BsatnReader.string,
    BsatnReader.bytes,
    BsatnReader.length,
]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(READERS), st.binary(max_size=40))
def test_readers_raise_only_decode_errors(read: Callable[[BsatnReader], Any], data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        read(BsatnReader(data))
