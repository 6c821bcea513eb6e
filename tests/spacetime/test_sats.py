"""The SATS type algebra and its compiled BSATN codecs: round trips over random types and
values, golden bytes, malformed input, encode errors, SATS-JSON parsing and special types."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import struct
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inner_universe.errors import DecodeError, EncodeError, SchemaError
from inner_universe.spacetime.bsatn import BsatnReader, BsatnWriter
from inner_universe.spacetime.sats import (
    BOOL,
    CONNECTION_ID,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    I128,
    I256,
    IDENTITY,
    SCHEDULE_AT,
    STRING,
    TIME_DURATION,
    TIMESTAMP,
    U8,
    U16,
    U32,
    U64,
    U128,
    U256,
    UNIT,
    AlgebraicType,
    ArrayType,
    PrimitiveType,
    ProductType,
    RefType,
    SumType,
    Typespace,
    Variant,
    array,
    compile_decoder,
    compile_encoder,
    decode_value,
    encode_value,
    fixed_layout,
    option,
    parse_type,
    product,
    special_kind,
    static_size,
    sum_type,
    type_to_json,
)
from inner_universe.spacetime.types import (
    ConnectionId,
    Identity,
    ScheduleAt,
    TimeDuration,
    Timestamp,
)

# ------------------------------------------------------------------ value strategies

INT_RANGES = {
    f"{sign}{bits}": (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if sign == "I"
    else (0, (1 << bits) - 1)
    for sign in "IU"
    for bits in (8, 16, 32, 64, 128, 256)
}
INT_TYPES = [I8, U8, I16, U16, I32, U32, I64, U64, I128, U128, I256, U256]
PRIMITIVES: list[AlgebraicType] = [BOOL, *INT_TYPES, F32, F64, STRING]
SPECIALS: list[AlgebraicType] = [IDENTITY, CONNECTION_ID, TIMESTAMP, TIME_DURATION, SCHEDULE_AT]
SPECIAL_NAMES = ["Identity", "ConnectionId", "Timestamp", "TimeDuration", "ScheduleAt"]

i64s = st.integers(-(2**63), 2**63 - 1)


def ints(kind: str) -> st.SearchStrategy[int]:
    lo, hi = INT_RANGES[kind]
    # Bounds and their neighbours are drawn often, the rest uniformly.
    return st.one_of(
        st.sampled_from([lo, lo + 1, 0 if lo < 0 else 1, hi - 1, hi]), st.integers(lo, hi)
    )


@functools.cache
def values_for(ty: AlgebraicType, ts: Typespace, depth: int = 0) -> st.SearchStrategy[Any]:
    """Canonical Python values of ``ty`` (what decoding yields)."""
    kind = special_kind(ty, ts)
    if kind == "identity":
        return st.builds(Identity, ints("U256"))
    if kind == "connection_id":
        return st.builds(ConnectionId, ints("U128"))
    if kind == "timestamp":
        return st.builds(Timestamp, i64s)
    if kind == "time_duration":
        return st.builds(TimeDuration, i64s)
    if kind == "schedule_at":
        return st.builds(ScheduleAt.every, st.builds(TimeDuration, i64s)) | st.builds(
            ScheduleAt.at, st.builds(Timestamp, i64s)
        )
    resolved = ts.resolve(ty)
    if kind == "option":
        assert isinstance(resolved, SumType)
        if depth > 3:  # keep recursive types finite
            return st.none()
        return st.none() | values_for(resolved.variants[0].type, ts, depth + 1)
    if isinstance(resolved, PrimitiveType):
        if resolved.kind == "Bool":
            return st.booleans()
        if resolved.kind == "String":
            return st.text(max_size=12)
        if resolved.kind == "F32":
            return st.floats(width=32)
        if resolved.kind == "F64":
            return st.floats()
        return ints(resolved.kind)
    if isinstance(resolved, ArrayType):
        if ts.resolve(resolved.elem) == U8:
            return st.binary(max_size=16)
        if depth > 3:  # keep recursive types finite
            return st.just(())
        return st.lists(values_for(resolved.elem, ts, depth + 1), max_size=3).map(tuple)
    if isinstance(resolved, ProductType):
        fields = [values_for(e.type, ts, depth + 1) for e in resolved.elements]
        cls = ts.product_class(ty.index) if isinstance(ty, RefType) else None
        if cls is not None:
            return st.builds(cls, *fields)
        return st.tuples(*fields)
    assert isinstance(resolved, SumType)
    variants = resolved.variants[:1] if depth > 3 else resolved.variants  # first = base case
    options = [
        st.builds(Variant, st.just(v.name or str(i)), values_for(v.type, ts, depth + 1))
        for i, v in enumerate(variants)
    ]
    return st.one_of(options) if options else st.nothing()


# ------------------------------------------------------------------- type strategies

field_names = st.sampled_from(["a", "b", "c", "d", "e", "from", "id", "class"])


def _products(inner: st.SearchStrategy[AlgebraicType]) -> st.SearchStrategy[AlgebraicType]:
    fields = st.lists(st.tuples(field_names, inner), max_size=4, unique_by=lambda f: f[0])
    anonymous = st.lists(inner, max_size=3).map(lambda ts: product(*((None, t) for t in ts)))
    return fields.map(lambda fs: product(*fs)) | anonymous


def _sums(inner: st.SearchStrategy[AlgebraicType]) -> st.SearchStrategy[AlgebraicType]:
    return st.lists(inner, min_size=1, max_size=4).map(
        lambda ts: sum_type(*((f"V{i}", t) for i, t in enumerate(ts)))
    )


@functools.cache
def types(refs: tuple[int, ...] = ()) -> st.SearchStrategy[AlgebraicType]:
    """Random types; ``refs`` are typespace indices they may refer to."""
    leaves = st.sampled_from(PRIMITIVES + SPECIALS + [UNIT, array(U8)])
    if refs:
        leaves = leaves | st.sampled_from([RefType(i) for i in refs])
    return st.recursive(
        leaves,
        lambda inner: inner.map(ArrayType) | inner.map(option) | _products(inner) | _sums(inner),
        max_leaves=8,
    )


@functools.cache
def _entries(refs: tuple[int, ...]) -> st.SearchStrategy[AlgebraicType]:
    return _products(types(refs)) | types(refs)  # mostly products: they get row classes


@st.composite
def typespaces(draw: st.DrawFn) -> tuple[AlgebraicType, Typespace]:
    """A random acyclic typespace (entry i refers only to entries > i), all entries named,
    and a random type over it."""
    count = draw(st.integers(0, 3))
    entries: list[AlgebraicType] = [UNIT] * count
    for i in reversed(range(count)):
        entries[i] = draw(_entries(tuple(range(i + 1, count))))
    ts = Typespace(entries, {i: f"T{i}" for i in range(count)})
    return draw(types(tuple(range(count)))), ts


def same(a: Any, b: Any) -> bool:
    """Structural equality where NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Variant) and isinstance(b, Variant):
        return a.name == b.name and same(a.value, b.value)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and same(
            tuple(getattr(a, f.name) for f in dataclasses.fields(a)),
            tuple(getattr(b, f.name) for f in dataclasses.fields(b)),
        )
    return type(a) is type(b) and a == b


def round_trip(ty: AlgebraicType, value: Any, ts: Typespace | None = None) -> bytes:
    data = encode_value(ty, value, ts)
    back = decode_value(ty, data, ts)
    assert same(back, value), (back, value)
    assert encode_value(ty, back, ts) == data  # bit-exact, NaNs included
    return data


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------- round trips


@FAST
@given(st.data())
def test_round_trip_random_types_and_values(data: st.DataObject) -> None:
    ty, ts = data.draw(typespaces())
    value = data.draw(values_for(ty, ts))
    encoded = round_trip(ty, value, ts)
    size = static_size(ty, ts)
    if size is not None:
        assert len(encoded) == size


@pytest.mark.parametrize("ty", PRIMITIVES + SPECIALS, ids=[*map(repr, PRIMITIVES), *SPECIAL_NAMES])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip_every_primitive_and_special_type(
    ty: AlgebraicType, data: st.DataObject
) -> None:
    ts = Typespace()
    round_trip(ty, data.draw(values_for(ty, ts)), ts)


@pytest.mark.parametrize("ty", INT_TYPES, ids=repr)
def test_integer_bounds_round_trip(ty: PrimitiveType) -> None:
    lo, hi = INT_RANGES[ty.kind]
    for value in (lo, hi, 0):
        round_trip(ty, value)
    with pytest.raises(EncodeError, match=f"does not fit in {ty.kind.lower()}"):
        encode_value(ty, hi + 1)
    with pytest.raises(EncodeError, match=f"does not fit in {ty.kind.lower()}"):
        encode_value(ty, lo - 1)


@pytest.mark.parametrize(
    ("ty", "bits"),
    [(F64, "7ff8000000000001"), (F64, "fff0000000000123"), (F64, "7ff4000000000000")],
)
def test_f64_nan_payloads_are_bit_exact(ty: AlgebraicType, bits: str) -> None:
    data = bytes.fromhex(bits)[::-1]
    value = decode_value(ty, data)
    assert math.isnan(value)
    assert encode_value(ty, value) == data


def test_f32_quiet_nans_are_bit_exact_and_signalling_nans_stay_nan() -> None:
    for bits in ("7fc00000", "ffc00001", "7fc12345"):
        data = bytes.fromhex(bits)[::-1]
        assert encode_value(F32, decode_value(F32, data)) == data
    # Python 3.11 quiets a signalling f32 NaN when it converts it to a float; it stays NaN.
    value = decode_value(F32, bytes.fromhex("7f800001")[::-1])
    assert math.isnan(value)
    assert math.isnan(struct.unpack("<f", encode_value(F32, value))[0])


@settings(max_examples=60, deadline=None)
@given(st.floats(width=32, allow_nan=False), st.floats(allow_nan=False))
def test_floats_round_trip_exactly(f32: float, f64: float) -> None:
    ty = product(("x", F32), ("y", F64))
    assert round_trip(ty, (f32, f64)) == struct.pack("<fd", f32, f64)


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_strings_round_trip_including_non_ascii(text: str) -> None:
    data = round_trip(STRING, text)
    assert data[:4] == len(text.encode()).to_bytes(4, "little")


def test_non_ascii_strings() -> None:
    for text in ("", "héllo", "日本語", "🚀 emoji", "\x00nul", "a" * 1000):
        round_trip(STRING, text)


# ------------------------------------------------------------------- recursive types

RECURSIVE = Typespace(
    [
        product(("value", I32), ("children", ArrayType(RefType(0)))),  # 0 Tree
        sum_type(("Nil", UNIT), ("Cons", product(("head", STRING), ("tail", RefType(1))))),  # 1
        sum_type(
            ("Lit", I64),
            ("Add", product((None, RefType(2)), (None, RefType(2)))),
            ("Neg", RefType(2)),
        ),
        product(("b", option(RefType(4)))),  # 3 A -> B
        product(("a", ArrayType(RefType(3))), ("label", STRING)),  # 4 B -> A
    ],
    {0: "Tree", 1: "List", 2: "Expr", 3: "A", 4: "B"},
)


@pytest.mark.parametrize("index", range(5))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_recursive_types_round_trip(index: int, data: st.DataObject) -> None:
    ty = RefType(index)
    round_trip(ty, data.draw(values_for(ty, RECURSIVE)), RECURSIVE)
    assert static_size(ty, RECURSIVE) is None


def test_recursive_values_by_hand() -> None:
    tree_cls = RECURSIVE.product_class(0)
    assert tree_cls is not None
    tree = tree_cls(1, (tree_cls(2, ()), tree_cls(3, (tree_cls(4, ()),))))
    round_trip(RefType(0), tree, RECURSIVE)
    lst = Variant("Cons", ("x", Variant("Cons", ("y", Variant("Nil")))))
    assert (
        round_trip(RefType(1), lst, RECURSIVE) == b"\x01\x01\x00\x00\x00x\x01\x01\x00\x00\x00y\x00"
    )
    expr = Variant("Add", (Variant("Lit", 1), Variant("Neg", Variant("Lit", 2))))
    round_trip(RefType(2), expr, RECURSIVE)


def test_deeply_nested_input_is_a_decode_error_not_a_recursion_error() -> None:
    depth = 100_000
    data = b"\x01\x00\x00\x00\x00" * depth + b"\x00"
    with pytest.raises(DecodeError, match="nested too deeply"):
        decode_value(RefType(1), data, RECURSIVE)


def test_deeply_nested_value_is_an_encode_error() -> None:
    value: Any = Variant("Nil")
    for _ in range(100_000):
        value = Variant("Cons", ("", value))
    with pytest.raises(EncodeError, match="nested too deeply"):
        encode_value(RefType(1), value, RECURSIVE)


# ---------------------------------------------------------------------- golden bytes


@pytest.mark.parametrize(
    ("ty", "value", "hex_bytes"),
    [
        (BOOL, True, "01"),
        (BOOL, False, "00"),
        (U8, 255, "ff"),
        (I8, -1, "ff"),
        (I16, -2, "feff"),
        (U32, 0x01020304, "04030201"),
        (I32, -(2**31), "00000080"),
        (U64, 2**64 - 1, "ff" * 8),
        (I64, 1, "01" + "00" * 7),
        (U128, 1, "01" + "00" * 15),
        (I128, -1, "ff" * 16),
        (U256, 2**255, "00" * 31 + "80"),
        (I256, -(2**255), "00" * 31 + "80"),
        (F32, 1.0, "0000803f"),
        (F64, -2.5, "00000000000004c0"),
        (STRING, "hé", "03000000" + "68c3a9"),
        (STRING, "", "00000000"),
        (array(U8), b"ab", "02000000" + "6162"),
        (array(U16), (1, 2), "02000000" + "0100" + "0200"),
        (array(STRING), ("a",), "01000000" + "01000000" + "61"),
        (array(BOOL), (True, False), "02000000" + "0100"),
        (option(U8), 5, "00" + "05"),
        (option(U8), None, "01"),
        (option(STRING), "", "00" + "00000000"),
        (option(UNIT), (), "00"),
        (option(option(U8)), Variant("some", None), "00" + "01"),
        (option(option(U8)), Variant("some", 7), "00" + "00" + "07"),
        (option(option(U8)), Variant("none"), "01"),
        (sum_type(("A", UNIT), ("B", U8)), Variant("B", 7), "01" + "07"),
        (sum_type(("A", UNIT), ("B", U8)), Variant("A"), "00"),
        (product(("x", U8), ("s", STRING)), (1, "z"), "01" + "01000000" + "7a"),
        (UNIT, (), ""),
        (IDENTITY, Identity(0xC200 << 240), "00" * 30 + "00c2"),
        (CONNECTION_ID, ConnectionId(1), "01" + "00" * 15),
        (TIMESTAMP, Timestamp(1), "01" + "00" * 7),
        (TIME_DURATION, TimeDuration(-1), "ff" * 8),
        (SCHEDULE_AT, ScheduleAt.every(TimeDuration(2)), "00" + "02" + "00" * 7),
        (SCHEDULE_AT, ScheduleAt.at(Timestamp(3)), "01" + "03" + "00" * 7),
    ],
)
def test_golden_encodings(ty: AlgebraicType, value: Any, hex_bytes: str) -> None:
    assert encode_value(ty, value).hex() == hex_bytes
    assert same(decode_value(ty, bytes.fromhex(hex_bytes)), value)


def test_encoding_conveniences() -> None:
    import datetime as dt

    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert encode_value(TIMESTAMP, when) == encode_value(TIMESTAMP, Timestamp.from_datetime(when))
    span = dt.timedelta(seconds=2)
    assert encode_value(TIME_DURATION, span) == encode_value(TIME_DURATION, TimeDuration(2_000_000))
    assert encode_value(SCHEDULE_AT, TimeDuration(5)) == encode_value(
        SCHEDULE_AT, ScheduleAt.every(TimeDuration(5))
    )
    assert encode_value(SCHEDULE_AT, Timestamp(5)) == encode_value(
        SCHEDULE_AT, ScheduleAt.at(Timestamp(5))
    )
    assert encode_value(array(U8), bytearray(b"ab")) == encode_value(array(U8), b"ab")
    assert encode_value(array(U16), [1, 2]) == encode_value(array(U16), (1, 2))
    status = sum_type(("Idle", UNIT), ("Busy", U32))
    assert encode_value(status, "Idle") == b"\x00"
    pair = product(("x", U8), ("y", U8))
    assert encode_value(pair, {"x": 1, "y": 2}) == encode_value(pair, [1, 2]) == b"\x01\x02"
    assert encode_value(UNIT, None) == b""

    class Point:
        x = 3
        y = 4

    assert encode_value(pair, Point()) == b"\x03\x04"


# ---------------------------------------------------------------------- named products


def test_named_products_decode_to_frozen_hashable_dataclasses() -> None:
    ts = Typespace(
        [
            product(
                ("id", U64), ("from", IDENTITY), ("tags", array(STRING)), ("inner", RefType(1))
            ),
            product(("version", U64)),
        ],
        {0: "Agent", 1: "Inner"},
    )
    agent_cls = ts.product_class(0)
    inner_cls = ts.product_class(1)
    assert agent_cls is not None and inner_cls is not None
    assert agent_cls.__name__ == "Agent"
    assert [f.name for f in dataclasses.fields(agent_cls)] == ["id", "from_", "tags", "inner"]
    row = agent_cls(1, Identity(2), ("x",), inner_cls(3))
    data = round_trip(RefType(0), row, ts)
    again = decode_value(RefType(0), data, ts)
    assert type(again) is agent_cls and again == row and hash(again) == hash(row)
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.id = 5  # type: ignore[attr-defined]
    assert ts.product_class(0) is agent_cls  # one class per typespace entry


def test_an_alias_decodes_like_its_target() -> None:
    ts = Typespace([RefType(1), product(("x", U8))], {0: "Alias", 1: "Point"})
    point = ts.product_class(1)
    assert point is not None and ts.product_class(0) is point
    assert decode_value(RefType(0), b"\x07", ts) == point(7)
    assert encode_value(RefType(0), point(7), ts) == b"\x07"


def test_encode_error_names_the_field_path() -> None:
    ts = Typespace(
        [
            product(("id", U64), ("agent", RefType(1)), ("tags", array(STRING))),
            product(("version", U64)),
        ],
        {0: "Task", 1: "Agent"},
    )
    task = ts.product_class(0)
    agent = ts.product_class(1)
    assert task is not None and agent is not None
    with pytest.raises(EncodeError, match=r"^agent\.version: -1 does not fit in u64"):
        encode_value(RefType(0), task(1, agent(-1), ()), ts)
    with pytest.raises(EncodeError, match=r"^tags\[1\]: string expects a str, got int"):
        encode_value(RefType(0), task(1, agent(1), ("a", 2)), ts)
    nested = array(product(("xs", array(option(U8)))))
    with pytest.raises(EncodeError, match=r"^\[0\]\.xs\[0\]: 300 does not fit in u8"):
        encode_value(nested, [([300],)])
    status = sum_type(("Failed", STRING))
    with pytest.raises(EncodeError, match=r"^Failed: string expects a str"):
        encode_value(status, Variant("Failed", 3))


# ---------------------------------------------------------------------- encode errors


@pytest.mark.parametrize(
    ("ty", "value", "message"),
    [
        (U32, "1", "u32 expects an int, got str"),
        (U32, 1.0, "u32 expects an int, got float"),
        (U8, True, "u8 expects an int, got bool"),
        (BOOL, 1, "bool expects a bool, got int"),
        (F64, "1.0", "f64 expects a float, got str"),
        (F32, 1e39, "out of range for f32"),
        pytest.param(F64, 10**400, "out of range for f64", id="huge-int-f64"),
        pytest.param(U64, 10**5000, "an int of 16610 bits does not fit in u64", id="huge-int"),
        (STRING, b"x", "string expects a str, got bytes"),
        (STRING, "\ud800", "not encodable as UTF-8"),
        (array(U8), "abc", "bytes expects bytes, got str"),
        (array(U32), 5, "expected a list or tuple, got int"),
        (array(U32), {1, 2}, "expected a list or tuple, got set"),
        (IDENTITY, 5, "expected Identity, got int"),
        (CONNECTION_ID, Identity(1), "expected ConnectionId, got Identity"),
        (TIMESTAMP, 5, "expected Timestamp or an aware datetime, got int"),
        (TIMESTAMP, Timestamp(2**63), "does not fit in i64"),
        (TIME_DURATION, 5, "expected TimeDuration or timedelta, got int"),
        (SCHEDULE_AT, 5, "expected ScheduleAt, TimeDuration or Timestamp, got int"),
        (option(U8), "x", "u8 expects an int, got str"),
        (product(("x", U8)), (1, 2), r"expected a product with fields \(x\), got a sequence of 2"),
        (product(("x", U8)), {"y": 1}, "missing x; unexpected 'y'"),
        (product(("x", U8)), 5, r"expected a product with fields \(x\), got int"),
        (
            sum_type(("A", UNIT), ("B", U8)),
            Variant("C", 1),
            "unknown variant 'C'; expected one of A, B",
        ),
        (sum_type(("A", UNIT), ("B", U8)), "B", r"expected a Variant of \(A, B\), got str"),
        (sum_type(("A", UNIT), ("B", U8)), 0, r"expected a Variant of \(A, B\), got int"),
    ],
)
def test_encode_errors(ty: AlgebraicType, value: Any, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode_value(ty, value)


def test_naive_datetime_is_an_encode_error() -> None:
    import datetime as dt

    with pytest.raises(EncodeError, match="timezone-aware"):
        encode_value(TIMESTAMP, dt.datetime(2024, 1, 1))


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(INT_TYPES), st.data())
def test_out_of_range_ints_are_encode_errors(ty: PrimitiveType, data: st.DataObject) -> None:
    lo, hi = INT_RANGES[ty.kind]
    value = data.draw(st.integers(max_value=lo - 1) | st.integers(min_value=hi + 1))
    with pytest.raises(EncodeError, match="does not fit"):
        encode_value(ty, value)


def test_encode_error_is_a_plain_encode_error_at_the_top() -> None:
    with pytest.raises(EncodeError) as info:
        encode_value(product(("x", U8)), (300,))
    assert type(info.value) is EncodeError
    assert str(info.value).startswith("x: 300 does not fit in u8")


# ------------------------------------------------------------------- malformed input


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_strict_prefix_is_a_decode_error(data: st.DataObject) -> None:
    ty, ts = data.draw(typespaces())
    encoded = encode_value(ty, data.draw(values_for(ty, ts)), ts)
    decode = compile_decoder(ty, ts)
    for end in range(min(len(encoded), 64)):
        reader = BsatnReader(encoded[:end])
        with pytest.raises(DecodeError):
            decode(reader)
            reader.expect_end()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_bytes_decode_or_raise_decode_error(data: st.DataObject) -> None:
    ty, ts = data.draw(typespaces())
    junk = data.draw(st.binary(max_size=48))
    with contextlib.suppress(DecodeError):
        decode_value(ty, junk, ts)


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(DecodeError, match="1 unexpected trailing byte"):
        decode_value(U32, b"\x01\x00\x00\x00\x00")


@pytest.mark.parametrize(
    ("ty", "hex_bytes", "message"),
    [
        (BOOL, "02", "invalid bool byte 2"),
        (array(BOOL), "0200000001" + "07", "invalid bool byte"),
        (product(("ok", BOOL), ("n", U8)), "0300", "invalid bool byte 3"),
        (option(U8), "02", "invalid option tag 2"),
        (sum_type(("A", UNIT), ("B", UNIT)), "02", "invalid sum tag 2"),
        (sum_type(("A", UNIT)), "ff", "invalid sum tag 255"),
        (SCHEDULE_AT, "02" + "00" * 8, "invalid ScheduleAt tag 2"),
        (STRING, "02000000" + "fffe", "not valid UTF-8"),
        (STRING, "03000000" + "eda080", "not valid UTF-8"),  # an encoded surrogate
        (STRING, "ffffff7f" + "616263", "truncated"),
        (array(U8), "ffffffff", "truncated"),
        (array(U8), "00000080" + "00", "truncated"),
        (array(U64), "00000080", "truncated"),
        (array(STRING), "ffffff7f" + "00" * 8, "claims 2147483647 item"),
        (array(array(U8)), "00000010", "claims 268435456 item"),
        (array(product(("a", U8), ("b", STRING))), "00000001" + "00" * 8, "at least 5 byte"),
        (array(UNIT), "01000001", "zero-sized items claims 16777217 items"),
        (array(option(U8)), "ffffff7f", "claims 2147483647 item"),
    ],
)
def test_malformed_input(ty: AlgebraicType, hex_bytes: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(DecodeError, match=message):
        decode_value(ty, bytes.fromhex(hex_bytes))
    assert time.perf_counter() - start < 1.0  # refused up front, nothing huge allocated


def test_small_zero_sized_arrays_decode() -> None:
    assert decode_value(array(UNIT), b"\x03\x00\x00\x00") == ((), (), ())


# ------------------------------------------------------------------ fixed-size layouts


def test_fixed_layout_matches_the_general_decoder() -> None:
    ty = product(
        ("ok", BOOL),
        ("b", I8),
        ("h", I16),
        ("big", U128),
        ("neg", I256),
        ("who", IDENTITY),
        ("conn", CONNECTION_ID),
        ("at", TIMESTAMP),
        ("span", TIME_DURATION),
        ("f", F32),
        ("d", F64),
    )
    ts = Typespace([ty], {0: "Fixed"})
    layout = fixed_layout(RefType(0), ts)
    assert layout is not None
    assert layout.struct.size == static_size(ty) == 1 + 1 + 2 + 16 + 32 + 32 + 16 + 8 + 8 + 4 + 8
    cls = ts.product_class(0)
    assert cls is not None
    row = cls(
        True,
        -1,
        -2,
        2**128 - 1,
        -(2**255),
        Identity(7),
        ConnectionId(8),
        Timestamp(-9),
        TimeDuration(10),
        1.5,
        -0.25,
    )
    data = round_trip(RefType(0), row, ts)
    assert layout.build(layout.struct.unpack(data)) == row
    assert fixed_layout(ty) is not None and fixed_layout(ty).build(
        layout.struct.unpack(data)
    ) == tuple(  # type: ignore[union-attr]
        getattr(row, f.name) for f in dataclasses.fields(row)
    )


@pytest.mark.parametrize(
    "ty",
    [
        product(("s", STRING)),
        product(("o", option(U8))),
        product(),
        product(("p", product(("x", U8)))),
        U32,
    ],
    ids=repr,
)
def test_no_fixed_layout(ty: AlgebraicType) -> None:
    assert fixed_layout(ty) is None


# ------------------------------------------------------------------------ static size


@pytest.mark.parametrize(
    ("ty", "size"),
    [
        (BOOL, 1),
        (U8, 1),
        (I16, 2),
        (U32, 4),
        (F32, 4),
        (I64, 8),
        (F64, 8),
        (U128, 16),
        (I256, 32),
        (STRING, None),
        (array(U8), None),
        (UNIT, 0),
        (IDENTITY, 32),
        (CONNECTION_ID, 16),
        (TIMESTAMP, 8),
        (TIME_DURATION, 8),
        (SCHEDULE_AT, 9),
        (option(U8), None),
        (sum_type(("A", U32), ("B", I32)), 5),
        (sum_type(("A", UNIT), ("B", UNIT)), 1),
        (sum_type(), None),
        (product(("a", U8), ("b", IDENTITY)), 33),
    ],
    ids=repr,
)
def test_static_size(ty: AlgebraicType, size: int | None) -> None:
    assert static_size(ty) == size


def test_sizes_of_deep_shared_references_are_computed_quickly() -> None:
    # Entry i holds entry i+1 twice: a naive walk would visit 2**40 nodes.
    entries = [product(("l", RefType(i + 1)), ("r", RefType(i + 1))) for i in range(40)]
    ts = Typespace([*entries, product(("x", U8))], {i: f"T{i}" for i in range(41)})
    assert static_size(RefType(0), ts) == 2**40
    assert decode_value(array(RefType(39)), b"\x00\x00\x00\x00", ts) == ()
    with pytest.raises(DecodeError, match="at least 2 byte"):
        decode_value(array(RefType(39)), b"\x01\x00\x00\x00\x00", ts)


# --------------------------------------------------------------------- special types


def test_special_kinds() -> None:
    assert special_kind(IDENTITY) == "identity"
    assert special_kind(CONNECTION_ID) == "connection_id"
    assert special_kind(TIMESTAMP) == "timestamp"
    assert special_kind(TIME_DURATION) == "time_duration"
    assert special_kind(SCHEDULE_AT) == "schedule_at"
    assert special_kind(option(U8)) == "option"
    assert special_kind(option(option(U8))) is None  # outer one decodes as a Variant
    assert special_kind(product(("__identity__", U128))) is None  # wrong payload type
    assert special_kind(sum_type(("none", UNIT), ("some", U8))) is None  # wrong order
    assert special_kind(sum_type(("some", U8), ("none", U8))) is None
    assert special_kind(sum_type(("Interval", U64), ("Time", U64))) is None
    ts = Typespace([IDENTITY, RefType(0)])
    assert special_kind(RefType(1), ts) == "identity"
    assert decode_value(RefType(1), b"\x01" + b"\x00" * 31, ts) == Identity(1)


def test_recursive_option_is_a_variant() -> None:
    ts = Typespace([sum_type(("some", RefType(0)), ("none", UNIT))])
    assert special_kind(RefType(0), ts) is None
    round_trip(RefType(0), Variant("some", Variant("some", Variant("none"))), ts)


# ---------------------------------------------------------------------- SATS-JSON


@settings(max_examples=100, deadline=None)
@given(types(refs=(0, 1)))
def test_type_json_round_trip(ty: AlgebraicType) -> None:
    assert parse_type(type_to_json(ty)) == ty


def test_parse_type_forms() -> None:
    assert parse_type({"U8": []}) == U8
    assert parse_type({"Array": {"U8": []}}) == array(U8)
    assert parse_type({"Array": {"elem_ty": {"String": []}}}) == array(STRING)
    assert parse_type({"Builtin": {"Bool": []}}) == BOOL
    assert parse_type({"Ref": 3}) == RefType(3)
    assert parse_type(
        {
            "Product": {
                "elements": [
                    {"name": {"some": "x"}, "algebraic_type": {"I32": []}},
                    {"name": {"none": []}, "algebraic_type": {"F64": []}},
                ]
            }
        }
    ) == product(("x", I32), (None, F64))
    assert parse_type(
        {
            "Sum": {
                "variants": [
                    {"name": {"some": "some"}, "algebraic_type": {"U64": []}},
                    {"name": {"some": "none"}, "algebraic_type": {"Product": {"elements": []}}},
                ]
            }
        }
    ) == option(U64)
    assert parse_type(type_to_json(IDENTITY)) == IDENTITY


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        "U8",
        {"U8": [], "U16": []},
        {"Map": {}},
        {"Ref": -1},
        {"Ref": "1"},
        {"Ref": True},
        {"Product": {}},
        {"Product": {"elements": [{"name": {"some": "x"}}]}},
        {"Sum": {"variants": None}},
        {"Sum": {"variants": [{"name": {"some": 3}, "algebraic_type": {"U8": []}}]}},
        {"Sum": {"variants": [{"name": {"x": 1, "y": 2}, "algebraic_type": {"U8": []}}]}},
        {"Sum": {"variants": [{"name": None, "algebraic_type": {"U8": []}}] * 257}},
    ],
    ids=repr,
)
def test_parse_type_rejects(obj: Any) -> None:
    with pytest.raises(SchemaError):
        parse_type(obj)


def test_typespace_checks() -> None:
    with pytest.raises(SchemaError, match="outside the typespace"):
        Typespace([product(("x", RefType(5)))])
    with pytest.raises(SchemaError, match="cycle"):
        Typespace([RefType(1), RefType(0)])
    with pytest.raises(SchemaError, match="types"):
        Typespace.from_json({"typez": []})
    ts = Typespace.from_json({"types": [{"U8": []}]})
    assert ts.resolve(RefType(0)) == U8 and len(ts) == 1
    with pytest.raises(SchemaError):
        ts[3]
    with pytest.raises(SchemaError, match="cannot use"):
        Typespace([product(("x y", U8))], {0: "Bad"}).product_class(0)


def test_compiled_codecs_are_cached_per_typespace() -> None:
    ts = Typespace([product(("x", U8))], {0: "P"})
    assert compile_decoder(RefType(0), ts) is compile_decoder(RefType(0), ts)
    w = BsatnWriter()
    compile_encoder(RefType(0), ts)(w, (5,))
    assert w.getvalue() == b"\x05"
