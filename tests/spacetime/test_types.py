"""The special value types and how they sit on the wire: big-endian hex, little-endian BSATN."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inner_universe.errors import DecodeError
from inner_universe.spacetime.sats import (
    CONNECTION_ID,
    IDENTITY,
    SCHEDULE_AT,
    TIME_DURATION,
    TIMESTAMP,
    decode_value,
    encode_value,
)
from inner_universe.spacetime.types import (
    ConnectionId,
    Identity,
    ScheduleAt,
    TimeDuration,
    Timestamp,
)

IDENTITY_HEX = "c200" + "0123456789abcdef" * 3 + "0123456789ab"


def test_identity_hex_is_big_endian_and_wire_is_little_endian() -> None:
    ident = Identity.from_hex(IDENTITY_HEX)
    assert ident.to_hex() == IDENTITY_HEX
    assert Identity.from_hex("0x" + IDENTITY_HEX) == ident
    wire = encode_value(IDENTITY, ident)
    assert wire == bytes.fromhex(IDENTITY_HEX)[::-1] == ident.to_bytes()
    assert wire[-1] == 0xC2
    assert decode_value(IDENTITY, wire) == ident == Identity.from_bytes(wire)
    assert str(ident) == IDENTITY_HEX and repr(ident).startswith("Identity(c200")


def test_connection_id_hex_and_wire() -> None:
    conn = ConnectionId.from_hex("00" * 15 + "ff")
    assert conn.value == 255 and not conn.is_zero() and ConnectionId(0).is_zero()
    assert encode_value(CONNECTION_ID, conn) == b"\xff" + b"\x00" * 15
    assert decode_value(CONNECTION_ID, b"\xff" + b"\x00" * 15) == conn


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Identity(-1),
        lambda: Identity(1 << 256),
        lambda: Identity.from_hex("c2"),
        lambda: Identity.from_bytes(b"\x00"),
        lambda: ConnectionId(1 << 128),
        lambda: ConnectionId.from_hex("00"),
        lambda: ScheduleAt(),
        lambda: ScheduleAt(interval=TimeDuration(1), time=Timestamp(1)),
        lambda: Timestamp.from_datetime(dt.datetime(2024, 1, 1)),
    ],
)
def test_invalid_values_are_value_errors(bad: object) -> None:
    with pytest.raises(ValueError):
        bad()  # type: ignore[operator]


def test_timestamp_is_microseconds_since_the_epoch() -> None:
    when = dt.datetime(2025, 6, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    stamp = Timestamp.from_datetime(when)
    assert stamp.to_datetime() == when
    assert Timestamp(0).to_datetime() == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert Timestamp.from_datetime(
        dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    ) == Timestamp(-1_000_000)
    assert encode_value(TIMESTAMP, stamp) == stamp.micros_since_epoch.to_bytes(8, "little")
    assert abs(Timestamp.now().micros_since_epoch - stamp.micros_since_epoch) < 10**16
    assert Timestamp(1) < Timestamp(2)


def test_time_duration() -> None:
    span = TimeDuration.from_timedelta(dt.timedelta(days=1, microseconds=5))
    assert span.micros == 86_400_000_005
    assert span.to_timedelta() == dt.timedelta(days=1, microseconds=5)
    assert encode_value(TIME_DURATION, TimeDuration(-1)) == b"\xff" * 8
    assert str(TimeDuration(3)) == "3µs"


@settings(max_examples=50, deadline=None)
@given(st.integers(-(2**63), 2**63 - 1), st.booleans())
def test_schedule_at_round_trip(micros: int, interval: bool) -> None:
    value = ScheduleAt.every(TimeDuration(micros)) if interval else ScheduleAt.at(Timestamp(micros))
    data = encode_value(SCHEDULE_AT, value)
    assert data == (b"\x00" if interval else b"\x01") + micros.to_bytes(8, "little", signed=True)
    assert decode_value(SCHEDULE_AT, data) == value


def test_truncated_special_values() -> None:
    with pytest.raises(DecodeError, match="truncated"):
        decode_value(IDENTITY, b"\x00" * 31)
    with pytest.raises(DecodeError, match="truncated"):
        decode_value(SCHEDULE_AT, b"\x00\x01")
