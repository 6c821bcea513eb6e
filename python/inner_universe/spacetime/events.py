"""What a callback is told about the change it sees: the event context.

Every row callback gets an :class:`EventContext` first. Its ``event`` says why
the rows changed: a reducer transaction (:class:`ReducerEvent`, with who called
what and with which arguments), a subscription being applied or removed, a
transaction whose reducer is unknown to this client (light mode), or the cache
being reconciled after a reconnect (what changed while the connection was away).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass
from typing import TYPE_CHECKING, Any, cast

from .types import ConnectionId, Identity, TimeDuration, Timestamp

if TYPE_CHECKING:
    from .cache import TransactionDiff
    from .driver import DbConnection

__all__ = [
    "ContextEvent",
    "EventContext",
    "ReconnectedEvent",
    "ReducerEvent",
    "SubscribeAppliedEvent",
    "UnknownTransactionEvent",
    "UnsubscribeAppliedEvent",
]


class ReducerEvent:
    """A reducer ran: by whom, with what, and whether it committed.

    Immutable, compared and shown like a frozen dataclass of these fields. ``args``
    may be given as a function that decodes them: they are then decoded when first
    read (most callers never read them, and a batch call's are costly to decode).
    One is built per reply, so the other fields are kept in one tuple behind
    read-only properties: one slot to set, not nine.
    """

    __slots__ = ("_args", "_decoder", "_fields")
    __match_args__ = (
        "reducer",
        "args",
        "caller_identity",
        "caller_connection_id",
        "timestamp",
        "committed",
        "error",
        "energy_used",
        "duration",
        "request_id",
    )

    _args: dict[str, Any] | Callable[[], dict[str, Any]] | bytes
    _decoder: Callable[[str, bytes], dict[str, Any]] | None  # set while _args are wire bytes
    _fields: tuple[
        str, Identity, ConnectionId | None, Timestamp, bool, str | None, int, TimeDuration, int
    ]

    def __init__(
        self,
        reducer: str,
        args: dict[str, Any] | Callable[[], dict[str, Any]],
        caller_identity: Identity,
        caller_connection_id: ConnectionId | None,
        timestamp: Timestamp,
        committed: bool,
        error: str | None,
        energy_used: int,
        duration: TimeDuration,
        request_id: int,
    ) -> None:
        fields = (
            reducer,
            caller_identity,
            caller_connection_id,
            timestamp,
            committed,
            error,
            energy_used,
            duration,
            request_id,
        )
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_args", args)
        object.__setattr__(self, "_decoder", None)

    @classmethod
    def with_wire_args(
        cls,
        decoder: Callable[[str, bytes], dict[str, Any]],
        args: bytes,
        fields: tuple[
            str, Identity, ConnectionId | None, Timestamp, bool, str | None, int, TimeDuration, int
        ],
    ) -> ReducerEvent:
        """The event of a reply as the connection reads it: the fields in ``__init__``'s
        order without ``args``, which stay wire bytes until read (``decoder(reducer, args)``).
        Built once per reply, so it makes no closure for the arguments, and its slots
        are set through their own setters (three ``object.__setattr__`` calls cost
        0.19 us more)."""
        event = cls.__new__(cls)
        _set_fields(event, fields)
        _set_args(event, args)
        _set_decoder(event, decoder)
        return event

    @property
    def reducer(self) -> str:
        return self._fields[0]

    @property
    def caller_identity(self) -> Identity:
        return self._fields[1]

    @property
    def caller_connection_id(self) -> ConnectionId | None:
        return self._fields[2]

    @property
    def timestamp(self) -> Timestamp:
        return self._fields[3]

    @property
    def committed(self) -> bool:
        return self._fields[4]

    @property
    def error(self) -> str | None:
        return self._fields[5]

    @property
    def energy_used(self) -> int:
        return self._fields[6]

    @property
    def duration(self) -> TimeDuration:
        return self._fields[7]

    @property
    def request_id(self) -> int:
        return self._fields[8]

    @property
    def args(self) -> dict[str, Any]:
        """The call's arguments by parameter name (decoded on first access)."""
        args = self._args
        decoder = self._decoder
        if decoder is not None:
            assert isinstance(args, bytes)
            args = decoder(self._fields[0], args)
            object.__setattr__(self, "_args", args)
            object.__setattr__(self, "_decoder", None)
        elif callable(args):
            args = args()
            object.__setattr__(self, "_args", args)
        return cast(dict[str, Any], args)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, ReducerEvent)
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # args is a dict, as with the dataclass

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"ReducerEvent({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type[ReducerEvent], tuple[Any, ...]]:
        return (ReducerEvent, self._values())


# The setters of ReducerEvent's slots, past its frozen __setattr__ (for with_wire_args).
_set_fields = ReducerEvent.__dict__["_fields"].__set__
_set_args = ReducerEvent.__dict__["_args"].__set__
_set_decoder = ReducerEvent.__dict__["_decoder"].__set__


@dataclass(frozen=True, slots=True)
class SubscribeAppliedEvent:
    """Rows arrived because a subscription was applied."""

    query_id: int


@dataclass(frozen=True, slots=True)
class UnsubscribeAppliedEvent:
    """Rows left because a subscription was removed."""

    query_id: int


@dataclass(frozen=True, slots=True)
class UnknownTransactionEvent:
    """A transaction without reducer information (the connection is in light mode)."""


@dataclass(frozen=True, slots=True)
class ReconnectedEvent:
    """Rows changed while the connection was away; found by comparing with fresh rows."""


ContextEvent = (
    ReducerEvent
    | SubscribeAppliedEvent
    | UnsubscribeAppliedEvent
    | UnknownTransactionEvent
    | ReconnectedEvent
)


@dataclass(frozen=True, slots=True)
class EventContext:
    """Passed to every callback: the connection, the event, and the transaction's whole diff."""

    connection: DbConnection
    event: ContextEvent
    diff: TransactionDiff
    sequence: int
    """Increases by one per applied transaction on this connection: commit order."""
