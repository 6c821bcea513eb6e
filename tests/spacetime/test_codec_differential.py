"""The native codec against the pure-Python reference, on random types and values.

Both run in the same process whichever one :mod:`codec` selected: the native
extension is always built by the setup command. Encoding must agree byte for byte,
decoding value for value (same Python types), and malformed or truncated input must
fail in both with the same DecodeError: same message, same offset.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from inner_universe import _native
from inner_universe.errors import DecodeError, EncodeError
from inner_universe.spacetime import codec
from inner_universe.spacetime.layout import CLASSES, descriptor
from inner_universe.spacetime.sats import (
    BOOL,
    F32,
    I32,
    STRING,
    U8,
    AlgebraicType,
    RefType,
    Typespace,
    array,
    decode_value,
    encode_value,
    option,
    product,
)

from .test_codec import AGENT, FLAG, SESSION, pack
from .test_sats import RECURSIVE, same, typespaces, values_for
from .test_schema import SCHEMA, agent

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
PYTHON = codec._PythonCodec()
NATIVE = codec._NativeCodec(_native)


def layout(ty: AlgebraicType, ts: Typespace) -> Any:
    return _native.Layout(descriptor(ty, ts), CLASSES)


def outcome(decode: Any, *args: Any) -> tuple[str, Any]:
    """("ok", value) or ("error", (type, message, offset)) of a decode."""
    try:
        return "ok", decode(*args)
    except DecodeError as exc:
        return "error", (type(exc), str(exc), exc.offset)


def agree(a: tuple[str, Any], b: tuple[str, Any]) -> None:
    assert a[0] == b[0], (a, b)
    if a[0] == "ok":
        x, y = (tuple(v) if isinstance(v, list) else v for v in (a[1], b[1]))  # rows come in lists
        assert same(x, y), (a, b)
        assert _types(a[1]) == _types(b[1])
    else:
        assert a[1] == b[1]


def _types(value: Any) -> Any:
    """The Python types inside a decoded value, to compare beyond equality (True == 1)."""
    if isinstance(value, tuple):
        return (tuple, tuple(_types(v) for v in value))
    if hasattr(value, "__dataclass_fields__"):
        return (type(value), tuple(_types(getattr(value, f)) for f in value.__dataclass_fields__))
    return type(value)


# ---------------------------------------------------------------- random types


@SETTINGS
@given(st.data())
def test_encode_and_decode_agree_on_random_types(data: st.DataObject) -> None:
    ty, ts = data.draw(typespaces())
    value = data.draw(values_for(ty, ts))
    native = layout(ty, ts)
    expected = encode_value(ty, value, ts)
    assert native.encode(value) == expected  # canonical values are never declined
    agree(outcome(native.decode, expected), outcome(decode_value, ty, expected, ts))


@SETTINGS
@given(st.data())
def test_truncated_and_corrupted_input_fails_the_same_way(data: st.DataObject) -> None:
    ty, ts = data.draw(typespaces())
    # A corrupted count of zero-sized items may claim 2**24 of them: valid, but slow to check.
    assume(not any(node[0] == "array" and node[2] == 0 for node in descriptor(ty, ts)))
    good = encode_value(ty, data.draw(values_for(ty, ts)), ts)
    native = layout(ty, ts)
    cut = data.draw(st.integers(0, len(good)))
    agree(outcome(native.decode, good[:cut]), outcome(decode_value, ty, good[:cut], ts))
    if good:
        at = data.draw(st.integers(0, len(good) - 1))
        bad = good[:at] + bytes([data.draw(st.integers(0, 255))]) + good[at + 1 :]
        agree(outcome(native.decode, bad), outcome(decode_value, ty, bad, ts))
    noise = data.draw(st.binary(max_size=40))
    agree(outcome(native.decode, noise), outcome(decode_value, ty, noise, ts))
    agree(outcome(native.decode, good + noise), outcome(decode_value, ty, good + noise, ts))


def encoded_by_codec(ty: AlgebraicType, ts: Typespace, value: Any) -> tuple[str, Any]:
    """What the native path of codec.py yields: native bytes, or the reference on decline."""
    data = layout(ty, ts).encode(value)
    if data is not None:
        return "ok", data
    return encoded_by_reference(ty, ts, value)


def encoded_by_reference(ty: AlgebraicType, ts: Typespace, value: Any) -> tuple[str, Any]:
    try:
        return "ok", encode_value(ty, value, ts)
    except EncodeError as exc:
        return "error", (type(exc), str(exc))


@SETTINGS
@given(st.data())
def test_values_of_the_wrong_type_encode_or_fail_like_the_reference(
    data: st.DataObject,
) -> None:
    ty, ts = data.draw(typespaces())
    other, other_ts = data.draw(typespaces())
    value = data.draw(values_for(other, other_ts))
    assert encoded_by_codec(ty, ts, value) == encoded_by_reference(ty, ts, value)


@pytest.mark.parametrize(
    ("ty", "value"),
    [
        (I32, 2**31),
        (I32, True),
        (I32, 1.0),
        (U8, -1),
        (BOOL, 1),
        (F32, 1e300),
        (F32, 3),  # the reference accepts ints for floats
        (STRING, "\ud800"),
        (STRING, b"x"),
        (array(U8), memoryview(b"abc")),
        (array(I32), [1, 2, 3]),
        (product(("a", I32), ("b", STRING)), {"a": 1, "b": "x"}),
        (product(("a", I32), ("b", STRING)), (1,)),
        (option(I32), 5),
        (option(I32), None),
    ],
)
def test_declined_values_get_the_reference_result(ty: AlgebraicType, value: Any) -> None:
    ts = Typespace()
    assert encoded_by_codec(ty, ts, value) == encoded_by_reference(ty, ts, value)


@given(st.floats(width=32) | st.sampled_from([math.nan, -math.nan, math.inf]))
def test_f32_bits_agree(value: float) -> None:
    assert layout(F32, Typespace()).encode(value) == encode_value(F32, value)


def test_deeply_nested_input_is_a_decode_error() -> None:
    deep = b"\x01\x00\x00\x00\x00" * 100_000 + b"\x00"  # a list nested 100,000 deep
    with pytest.raises(DecodeError, match="nested too deeply"):
        layout(RefType(1), RECURSIVE).decode(deep)


@SETTINGS
@given(st.data())
def test_recursive_values_agree(data: st.DataObject) -> None:
    ty = RefType(data.draw(st.integers(0, len(RECURSIVE) - 1)))
    value = data.draw(values_for(ty, RECURSIVE))
    native = layout(ty, RECURSIVE)
    expected = encode_value(ty, value, RECURSIVE)
    assert native.encode(value) == expected
    agree(outcome(native.decode, expected), outcome(decode_value, ty, expected, RECURSIVE))


# ------------------------------------------------------------ row lists, as codec.py uses them


@SETTINGS
@given(st.data())
def test_row_lists_of_the_module_tables_agree(data: st.DataObject) -> None:
    table = SCHEMA.table(data.draw(st.sampled_from(sorted(SCHEMA.tables))))
    rows = data.draw(
        st.lists(values_for(RefType(table.product_type_ref), SCHEMA.typespace), max_size=5)
    )
    encoded = [PYTHON.encode_row(table, r) for r in rows]
    assert [NATIVE.encode_row(table, r) for r in rows] == encoded
    blob, offsets = pack(encoded)
    for data_of_rows in (blob, memoryview(blob)):
        agree(
            outcome(NATIVE.decode_offsets, table, data_of_rows, offsets),
            outcome(PYTHON.decode_offsets, table, data_of_rows, offsets),
        )
    agree(outcome(NATIVE.decode_each, table, encoded), outcome(PYTHON.decode_each, table, encoded))
    # Corrupt one byte, or cut the data short: both fail (or not) the same way.
    if blob:
        at = data.draw(st.integers(0, len(blob) - 1))
        bad = blob[:at] + bytes([data.draw(st.integers(0, 255))]) + blob[at + 1 :]
        cut = blob[: data.draw(st.integers(0, len(blob)))]
        for broken in (bad, cut):
            agree(
                outcome(NATIVE.decode_offsets, table, broken, offsets),
                outcome(PYTHON.decode_offsets, table, broken, offsets),
            )
        row = data.draw(st.integers(0, len(encoded) - 1))
        mangled = [*encoded]
        mangled[row] = mangled[row][: data.draw(st.integers(0, len(mangled[row])))] + bad[:2]
        agree(
            outcome(NATIVE.decode_each, table, mangled),
            outcome(PYTHON.decode_each, table, mangled),
        )
    size = table.static_row_size
    if size is not None:
        for hint_data in (blob, blob[: len(blob) // 2 * 2]):
            assume(len(hint_data) % size == 0)
            agree(
                outcome(NATIVE.decode_fixed, table, hint_data, size),
                outcome(PYTHON.decode_fixed, table, hint_data, size),
            )


@SETTINGS
@given(st.lists(st.binary(max_size=12), max_size=8))
def test_row_lists_split_into_the_same_row_bytes(rows: list[bytes]) -> None:
    blob, offsets = pack(rows)
    assert NATIVE.split_rows(blob, offsets) == PYTHON.split_rows(blob, offsets) == rows
    assert all(type(row) is bytes for row in NATIVE.split_rows(blob, offsets))
    view = memoryview(blob)  # how a decoded row list holds its data
    assert NATIVE.split_rows(view, offsets) == PYTHON.split_rows(view, offsets) == rows


@pytest.mark.parametrize("offsets", [[0, 5, 3], [0, 11], [2**64 - 1]])
def test_native_split_refuses_offsets_out_of_order_or_range(offsets: list[int]) -> None:
    """Callers validate first; the native side still never reads past its data."""
    with pytest.raises(ValueError, match="row list"):
        NATIVE.split_rows(bytes(10), offsets)


def test_fixed_size_rows_with_an_invalid_bool_fail_at_the_same_byte() -> None:
    flag = FLAG
    data = bytes.fromhex("01000000010200000002")
    py = outcome(PYTHON.decode_fixed, flag, data, 5)
    assert py[0] == "error" and py[1][2] == 9
    agree(outcome(NATIVE.decode_fixed, flag, data, 5), py)
    rows = [data[:5], data[5:]]
    agree(outcome(NATIVE.decode_each, flag, rows), outcome(PYTHON.decode_each, flag, rows))


def test_rows_decode_to_the_table_row_class() -> None:
    row = agent()
    data = PYTHON.encode_row(AGENT, row)
    assert type(NATIVE.decode_row(AGENT, data)) is AGENT.row_class
    assert NATIVE.decode_row(AGENT, data) == row
    assert SESSION.static_row_size is not None


def test_reducer_arguments_agree() -> None:
    register = SCHEMA.reducer("register_agent")
    values = register.call_values("n", role="r", state=b"\x01")
    assert NATIVE.encode_args(register, values) == PYTHON.encode_args(register, values)
    data = PYTHON.encode_args(register, values)
    assert NATIVE.decode_args(register, data) == PYTHON.decode_args(register, data)
    agree(
        outcome(NATIVE.decode_args, register, data[:-1]),
        outcome(PYTHON.decode_args, register, data[:-1]),
    )
