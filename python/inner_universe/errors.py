"""Every error Inner Universe raises, in one tree.

    InnerUniverseError
    ├── DecodeError            bytes from the network or server did not decode
    │   └── MessageTooLargeError   a server message exceeds the client's size limits
    ├── EncodeError            a value does not fit the type it is encoded as
    │   └── ArgumentError      reducer arguments rejected before anything was sent
    ├── SchemaError            a module schema we cannot interpret, or an unknown name
    ├── ProtocolError          the server broke the protocol (remote's fault)
    ├── InvalidStateError      the API was used out of order (caller's fault)
    ├── UsageError             an API was given a value it cannot take (caller's fault)
    ├── ConnectError           a connection could not be opened
    ├── ConnectionClosedError  the connection went away while something waited on it
    ├── ReducerError           a reducer ran and failed; carries the server's message
    ├── SubscriptionError      the server rejected a subscription query
    ├── QueryError             the server rejected a one-off SQL query
    ├── ServerError            the local SpacetimeDB server failed to start or publish
    └── SetupError             something the setup command provides is missing

Errors are split by blame as in h11: ``ProtocolError`` means the peer sent
something wrong, ``InvalidStateError`` means this process misused the API.
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "ConnectError",
    "ConnectionClosedError",
    "DecodeError",
    "EncodeError",
    "InnerUniverseError",
    "InvalidStateError",
    "MessageTooLargeError",
    "ProtocolError",
    "QueryError",
    "ReducerError",
    "SchemaError",
    "ServerError",
    "SetupError",
    "SubscriptionError",
    "UsageError",
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


class ProtocolError(InnerUniverseError):
    """The server sent something the v1 protocol does not allow here."""


class InvalidStateError(InnerUniverseError):
    """The API was used in the wrong state (for example, calling before connecting)."""


class UsageError(InnerUniverseError, ValueError):
    """An API was given a value it cannot take (an empty query list, a bad URI, ...)."""


class ConnectError(InnerUniverseError):
    """A connection to the database could not be established."""


class ConnectionClosedError(InnerUniverseError):
    """The connection closed while an operation was waiting for it."""


class ReducerError(InnerUniverseError):
    """A reducer call failed on the server; ``message`` is the server's own text."""

    def __init__(self, reducer: str, message: str) -> None:
        super().__init__(f"reducer {reducer!r} failed: {message}")
        self.reducer = reducer
        self.message = message


class SubscriptionError(InnerUniverseError):
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


class SetupError(InnerUniverseError):
    """Something the setup script provides is missing; the message names the command."""
