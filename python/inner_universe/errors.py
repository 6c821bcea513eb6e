"""Every error Inner Universe raises, in one tree.

    InnerUniverseError
    ├── DecodeError            bytes from the network or server did not decode
    │   └── MessageTooLargeError   a server message exceeds the client's size limits
    ├── EncodeError            a value does not fit the type it is encoded as
    │   └── ArgumentError      reducer arguments rejected before anything was sent
    ├── SchemaError            a module schema we cannot interpret, or an unknown name
    │   └── NoSuchNameError    ``conn.db.x`` / ``conn.reducers.x`` with no such table or reducer
    ├── ProtocolError          the server broke the protocol (remote's fault)
    ├── InvalidStateError      the API was used out of order (caller's fault)
    │   └── WrongThreadError   a blocking call made from the connection's own thread
    ├── UsageError             an API was given a value it cannot take (caller's fault)
    ├── ConnectError           a connection could not be opened
    │   └── ConnectRefusedError  ...the server answered the upgrade with an HTTP error
    ├── ConnectionClosedError  the connection went away while something waited on it
    ├── CallTimeoutError       a call or request did not finish in time
    │   ├── NotSentError       ...and it was never sent: it will never take effect
    │   └── OutcomeUnknownError  ...after it was sent: it may yet take effect (once)
    ├── ReducerError           a reducer ran and failed; carries the server's message
    ├── SubscriptionRejectedError  the server rejected a subscription query
    ├── QueryError             the server rejected a one-off SQL query
    ├── ServerError            the local SpacetimeDB server failed to start or publish
    └── SetupError             something the setup command provides is missing

Errors are split by blame as in h11: ``ProtocolError`` means the peer sent
something wrong, ``InvalidStateError`` means this process misused the API.
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "CallTimeoutError",
    "ConnectError",
    "ConnectRefusedError",
    "ConnectionClosedError",
    "DecodeError",
    "EncodeError",
    "InnerUniverseError",
    "InvalidStateError",
    "MessageTooLargeError",
    "ModuleMigrationError",
    "NoSuchNameError",
    "NotSentError",
    "OutcomeUnknownError",
    "ProtocolError",
    "QueryError",
    "ReducerError",
    "SchemaError",
    "ServerError",
    "SetupError",
    "SubscriptionRejectedError",
    "UsageError",
    "WrongThreadError",
]


class InnerUniverseError(Exception):
    """Base of every error raised by this package."""


class DecodeError(InnerUniverseError):
    """Bytes did not decode: truncated, oversized, or an invalid value.

    ``offset`` is the position in the input where decoding failed, when known.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
        self.offset = offset


class MessageTooLargeError(DecodeError):
    """A server message (its frame, or what it decompresses to) exceeds the client's limit.

    Raised before much more than ``limit`` bytes are allocated, so a decompression
    bomb cannot exhaust memory; the connection closes. See
    ``ConnectionBuilder.with_limits``.
    """

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class EncodeError(InnerUniverseError, ValueError):
    """A Python value does not fit the SATS type it is being encoded as."""


class ArgumentError(EncodeError, TypeError):
    """Reducer arguments were rejected locally; nothing was sent."""


class SchemaError(InnerUniverseError):
    """A module schema could not be interpreted, or a table/reducer name is unknown."""


class NoSuchNameError(SchemaError, AttributeError):
    """An attribute names no table or reducer (an AttributeError too, so getattr() works)."""


class ProtocolError(InnerUniverseError):
    """The server sent something the v1 protocol does not allow here."""


class InvalidStateError(InnerUniverseError):
    """The API was used in the wrong state (for example, calling before connecting)."""


class WrongThreadError(InvalidStateError):
    """A blocking call was made on the connection's own thread, where it could only deadlock."""


class UsageError(InnerUniverseError, ValueError):
    """An API was given a value it cannot take (an empty query list, a bad URI, ...)."""


class ConnectError(InnerUniverseError):
    """A connection to the database could not be established."""


class ConnectRefusedError(ConnectError):
    """The server answered the WebSocket upgrade with an HTTP error (``status``)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ConnectionClosedError(InnerUniverseError):
    """The connection closed while an operation was waiting for it."""


class CallTimeoutError(InnerUniverseError, TimeoutError):
    """A call or request did not finish within its timeout."""


class NotSentError(CallTimeoutError):
    """The call timed out before it was sent; it was withdrawn and will never take effect."""


class OutcomeUnknownError(CallTimeoutError):
    """The call was sent but its outcome did not arrive in time: it may still take effect.

    It is never reported as failed: the connection keeps it and, after a
    reconnect, resends it under the same idempotency key, so it takes effect at
    most once (exactly once unless the reducer itself refuses it).
    """

    def __init__(self, message: str, reducer: str, key: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.reducer = reducer
        self.key = key


class ReducerError(InnerUniverseError):
    """A reducer call failed on the server; ``message`` is the server's own text."""

    def __init__(self, reducer: str, message: str) -> None:
        super().__init__(f"reducer {reducer!r} failed: {message}")
        self.reducer = reducer
        self.message = message


class SubscriptionRejectedError(InnerUniverseError):
    """The server rejected a subscription; ``message`` is the server's own text."""

    def __init__(self, message: str, queries: tuple[str, ...] = ()) -> None:
        detail = f" (queries: {list(queries)})" if queries else ""
        super().__init__(f"subscription failed: {message}{detail}")
        self.message = message
        self.queries = queries


class QueryError(InnerUniverseError):
    """The server rejected a one-off query; ``message`` is the server's own text."""

    def __init__(self, message: str) -> None:
        super().__init__(f"query failed: {message}")
        self.message = message


class ServerError(InnerUniverseError):
    """The local SpacetimeDB server failed to start, publish, or answer."""


class ModuleMigrationError(ServerError):
    """A database holds tables of an older module that SpacetimeDB cannot migrate by itself.

    SpacetimeDB 1.2 updates a module in place only when its tables change by adding
    tables, indexes or (at the end) columns; ``reasons`` are the server's own lines.
    """

    def __init__(self, message: str, reasons: tuple[str, ...]) -> None:
        super().__init__(message)
        self.reasons = reasons


class SetupError(InnerUniverseError):
    """Something the setup script provides is missing; the message names the command."""
