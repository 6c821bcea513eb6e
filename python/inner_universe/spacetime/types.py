"""SpacetimeDB's special value types: Identity, ConnectionId, Timestamp, TimeDuration, ScheduleAt.

On the wire these are products with one magic field name (``__identity__`` and
so on) holding an integer; here they are small immutable value classes so a row
field reads as what it is. Identity and ConnectionId print as big-endian hex, as
SpacetimeDB prints them, while BSATN stores them little-endian.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["ConnectionId", "Identity", "ScheduleAt", "TimeDuration", "Timestamp"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


@dataclass(frozen=True, slots=True, order=True)
class Identity:
    """A 256-bit identity: who a client (or a database) is."""

    value: int
    BITS: ClassVar[int] = 256

    def __post_init__(self) -> None:
        if not isinstance(self.value, int) or not 0 <= self.value < 1 << 256:
            raise ValueError(f"Identity must be an int in [0, 2**256), got {self.value!r}")

    @classmethod
    def from_hex(cls, text: str) -> Identity:
        """Parse SpacetimeDB's 64-digit big-endian hex form (an optional ``0x`` is allowed)."""
        digits = text.removeprefix("0x")
        if len(digits) != 64:
            raise ValueError(f"an Identity is 64 hex digits, got {len(digits)}: {text!r}")
        return cls(int(digits, 16))

    @classmethod
    def from_bytes(cls, data: bytes) -> Identity:
        """From its 32 little-endian wire bytes."""
        if len(data) != 32:
            raise ValueError(f"an Identity is 32 bytes, got {len(data)}")
        return cls(int.from_bytes(data, "little"))

    def to_bytes(self) -> bytes:
        """Its 32 little-endian wire bytes."""
        return self.value.to_bytes(32, "little")

    def to_hex(self) -> str:
        return f"{self.value:064x}"

    def __str__(self) -> str:
        return self.to_hex()

    def __repr__(self) -> str:
        return f"Identity({self.to_hex()[:16]}…)"


@dataclass(frozen=True, slots=True, order=True)
class ConnectionId:
    """A 128-bit id of one connection; zero means "no connection" (for example an HTTP call)."""

    value: int

    def __post_init__(self) -> None:
        if not isinstance(self.value, int) or not 0 <= self.value < 1 << 128:
            raise ValueError(f"ConnectionId must be an int in [0, 2**128), got {self.value!r}")

    @classmethod
    def from_hex(cls, text: str) -> ConnectionId:
        digits = text.removeprefix("0x")
        if len(digits) != 32:
            raise ValueError(f"a ConnectionId is 32 hex digits, got {len(digits)}: {text!r}")
        return cls(int(digits, 16))

    def to_hex(self) -> str:
        return f"{self.value:032x}"

    def is_zero(self) -> bool:
        return self.value == 0

    def __str__(self) -> str:
        return self.to_hex()

    def __repr__(self) -> str:
        return f"ConnectionId({self.to_hex()})"


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """A point in time: signed microseconds since the Unix epoch (UTC)."""

    micros_since_epoch: int

    @classmethod
    def from_datetime(cls, when: _dt.datetime) -> Timestamp:
        if when.tzinfo is None:
            raise ValueError("Timestamp.from_datetime needs a timezone-aware datetime")
        delta = when - _EPOCH
        return cls((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)

    @classmethod
    def now(cls) -> Timestamp:
        return cls.from_datetime(_dt.datetime.now(_dt.UTC))

    def to_datetime(self) -> _dt.datetime:
        return _EPOCH + _dt.timedelta(microseconds=self.micros_since_epoch)

    def __str__(self) -> str:
        try:
            return self.to_datetime().isoformat()
        except OverflowError:  # beyond what datetime can show
            return f"{self.micros_since_epoch}µs since the Unix epoch"


@dataclass(frozen=True, slots=True, order=True)
class TimeDuration:
    """A signed span of time in microseconds."""

    micros: int

    @classmethod
    def from_timedelta(cls, span: _dt.timedelta) -> TimeDuration:
        return cls((span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds)

    def to_timedelta(self) -> _dt.timedelta:
        return _dt.timedelta(microseconds=self.micros)

    def __str__(self) -> str:
        return f"{self.micros}µs"


@dataclass(frozen=True, slots=True)
class ScheduleAt:
    """When a scheduled reducer runs: every ``interval``, or once at ``time``.

    Exactly one of the two is set; on the wire it is the sum
    ``Interval(TimeDuration) | Time(Timestamp)``.
    """

    interval: TimeDuration | None = None
    time: Timestamp | None = None

    def __post_init__(self) -> None:
        if (self.interval is None) == (self.time is None):
            raise ValueError("ScheduleAt needs exactly one of interval= or time=")

    @classmethod
    def every(cls, interval: TimeDuration) -> ScheduleAt:
        return cls(interval=interval)

    @classmethod
    def at(cls, time: Timestamp) -> ScheduleAt:
        return cls(time=time)
