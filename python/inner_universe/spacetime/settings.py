"""How a connection behaves: reconnect policy, keepalive, and everything the builder gathers."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from .messages import DEFAULT_MAX_MESSAGE_SIZE
from .transport import DEFAULT_MAX_FRAME_SIZE, CompressionName, Transport

if TYPE_CHECKING:
    from .driver import DbConnection
    from .types import Identity

__all__ = [
    "DEFAULT_ACK_WINDOW",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_PING_TIMEOUT",
    "ConnectionSettings",
    "KeepAlive",
    "ReconnectPolicy",
    "TransportFactory",
]

#: Seconds between WebSocket pings. With the timeout below (and 1 s for the
#: closing handshake a dead peer never answers), a frozen server is noticed at
#: most 5 s after it stops answering, and handled like a crash.
DEFAULT_PING_INTERVAL = 2.0
#: Seconds a ping may wait for its pong before the link is declared dead.
DEFAULT_PING_TIMEOUT = 2.0
#: Seconds an acknowledged call is remembered, to resend it if a crashed server lost it.
DEFAULT_ACK_WINDOW = 30.0

#: Opens a link: ``await factory(url, token)``; raises ConnectError when it cannot.
TransportFactory = Callable[[str, "str | None"], Awaitable[Transport]]


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """When and how often a lost connection is reopened.

    The n-th attempt (from 0) waits ``min(max_delay, initial_delay * multiplier**n)``
    seconds, scaled by a random factor in ``[1 - jitter, 1]`` so that many clients
    of one restarted server do not come back in step. ``max_attempts`` None means
    forever; after that many failed attempts in a row the connection closes.
    """

    enabled: bool = True
    initial_delay: float = 0.1
    max_delay: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise UsageError(f"delays must be >= 0 and the multiplier >= 1: {self!r}")
        if not 0 <= self.jitter <= 1:
            raise UsageError(f"jitter is a fraction in [0, 1], not {self.jitter!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise UsageError(f"max_attempts must be >= 1 or None, not {self.max_attempts!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number ``attempt`` (0 is the first)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** min(attempt, 64))
        return base * (1 - self.jitter * (rng or random).random())


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """WebSocket ping settings: how fast a silent (frozen) server is detected."""

    interval: float = DEFAULT_PING_INTERVAL
    timeout: float = DEFAULT_PING_TIMEOUT
    open_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not (self.interval > 0 and self.timeout > 0 and self.open_timeout > 0):
            raise UsageError(f"keepalive times must be positive: {self!r}")


ConnectCallback = Callable[["DbConnection", "Identity", str], object]
DisconnectCallback = Callable[["DbConnection", "Exception | None"], object]
ReconnectingCallback = Callable[["DbConnection", int, "Exception | None"], object]
ReconnectedCallback = Callable[["DbConnection"], object]


@dataclass(slots=True)
class ConnectionSettings:
    """Everything a :class:`ConnectionBuilder` gathered, as the driver reads it."""

    uri: str
    database: str
    token: str | None = None
    compression: CompressionName = "Gzip"
    light: bool = False
    record_to: Path | None = None
    transport_factory: TransportFactory | None = None
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    keepalive: KeepAlive = field(default_factory=KeepAlive)
    ack_window: float = DEFAULT_ACK_WINDOW
    outbox_path: Path | None = None
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    on_connect: list[ConnectCallback] = field(default_factory=list)
    on_connect_error: list[Callable[[Exception], object]] = field(default_factory=list)
    on_disconnect: list[DisconnectCallback] = field(default_factory=list)
    on_reconnecting: list[ReconnectingCallback] = field(default_factory=list)
    on_reconnected: list[ReconnectedCallback] = field(default_factory=list)
