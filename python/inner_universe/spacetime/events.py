"""What a callback is told about the change it sees: the event context.

Every row callback gets an :class:`EventContext` first. Its ``event`` says why
the rows changed: a reducer transaction (:class:`ReducerEvent`, with who called
what and with which arguments), a subscription being applied or removed, a
transaction whose reducer is unknown to this client (light mode), or the cache
being reconciled after a reconnect (what changed while the connection was away).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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


@dataclass(frozen=True, slots=True)
class ReducerEvent:
    """A reducer ran: by whom, with what, and whether it committed."""

    reducer: str
    args: dict[str, Any]
    caller_identity: Identity
    caller_connection_id: ConnectionId | None
    timestamp: Timestamp
    committed: bool
    error: str | None
    energy_used: int
    duration: TimeDuration
    request_id: int


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
