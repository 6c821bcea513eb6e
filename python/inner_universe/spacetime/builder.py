"""Configuring and opening a connection: :class:`ConnectionBuilder` and :func:`connect`."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConnectError, InnerUniverseError, InvalidStateError, UsageError
from .driver import DbConnection
from .outbox import DurableOutbox, MemoryOutbox
from .schema import ModuleSchema
from .schema_fetch import fetch_schema
from .settings import (
    ConnectCallback,
    ConnectionSettings,
    DisconnectCallback,
    KeepAlive,
    ReconnectedCallback,
    ReconnectingCallback,
    ReconnectPolicy,
    TransportFactory,
)
from .tables import run_callback
from .transport import CompressionName

if TYPE_CHECKING:
    from .threaded import ThreadedConnection

__all__ = ["ConnectionBuilder", "connect"]


class ConnectionBuilder:
    """Configure and open a :class:`DbConnection` (the shape of the official SDKs' builders).

    Defaults: reconnect forever with jittered backoff (0.1 s doubling to 5 s),
    ping every 2 s and give up on a pong after 3 s, calls time out after 30 s,
    acknowledged calls are remembered for 30 s, the outbox is in memory.
    """

    def __init__(self) -> None:
        self._settings = ConnectionSettings(uri="", database="")
        self._schema: ModuleSchema | None = None

    def with_uri(self, uri: str) -> ConnectionBuilder:
        self._settings.uri = uri
        return self

    def with_database(self, name_or_identity: str) -> ConnectionBuilder:
        self._settings.database = name_or_identity
        return self

    def with_token(self, token: str | None) -> ConnectionBuilder:
        """Connect as the identity this token proves; None asks the server for a new identity."""
        self._settings.token = token
        return self

    def with_compression(self, compression: CompressionName) -> ConnectionBuilder:
        if compression not in ("None", "Gzip", "Brotli"):
            raise UsageError(f"compression is 'None', 'Gzip' or 'Brotli', not {compression!r}")
        self._settings.compression = compression
        return self

    def with_light_mode(self, light: bool = True) -> ConnectionBuilder:
        """Receive other clients' transactions without reducer details (less traffic)."""
        self._settings.light = light
        return self

    def with_schema(self, schema: ModuleSchema) -> ConnectionBuilder:
        """Use this schema instead of downloading it (for example, from generated bindings)."""
        self._schema = schema
        return self

    def with_transport(self, factory: TransportFactory) -> ConnectionBuilder:
        """Open links with ``await factory(url, token)`` instead of a WebSocket (tests)."""
        self._settings.transport_factory = factory
        return self

    def with_reconnect(self, policy: ReconnectPolicy | bool) -> ConnectionBuilder:
        """How lost connections are reopened; False closes the connection on the first loss."""
        if isinstance(policy, bool):
            policy = ReconnectPolicy(enabled=policy)
        self._settings.reconnect = policy
        return self

    def with_keepalive(
        self, interval: float, timeout: float, open_timeout: float = 10.0
    ) -> ConnectionBuilder:
        """Ping every ``interval`` s; a pong later than ``timeout`` s ends the socket."""
        self._settings.keepalive = KeepAlive(interval, timeout, open_timeout)
        return self

    def with_ack_window(self, seconds: float) -> ConnectionBuilder:
        """How long acknowledged calls are kept to be resent if a crashed server lost them."""
        if not seconds >= 0:
            raise UsageError(f"the ack window is a number of seconds >= 0, not {seconds!r}")
        self._settings.ack_window = seconds
        return self

    def with_durable_outbox(self, path: Path | str) -> ConnectionBuilder:
        """Keep unsettled calls (and the token) in this SQLite file, to survive a restart."""
        self._settings.outbox_path = Path(path)
        return self

    def record_messages_to(self, directory: Path) -> ConnectionBuilder:
        """Save every received server message under ``directory`` (for protocol tests).

        The directory is created 0700, files are 0600, and the IdentityToken's token is redacted.
        """
        self._settings.record_to = directory
        return self

    def with_limits(
        self, *, max_frame_size: int | None = None, max_message_size: int | None = None
    ) -> ConnectionBuilder:
        """Cap what the server can make this client allocate for one message (64 MiB each).

        ``max_frame_size`` bounds a message as it arrives; ``max_message_size`` what it
        decompresses to (nested compressed updates included). Past either, the
        connection closes with :class:`~inner_universe.errors.MessageTooLargeError`.
        """
        for name, value in (
            ("max_frame_size", max_frame_size),
            ("max_message_size", max_message_size),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(f"{name} must be a positive number of bytes, not {value!r}")
        self._settings.max_frame_size = max_frame_size or self._settings.max_frame_size
        self._settings.max_message_size = max_message_size or self._settings.max_message_size
        return self

    def on_connect(self, callback: ConnectCallback) -> ConnectionBuilder:
        self._settings.on_connect.append(callback)
        return self

    def on_connect_error(self, callback: Callable[[Exception], object]) -> ConnectionBuilder:
        self._settings.on_connect_error.append(callback)
        return self

    def on_disconnect(self, callback: DisconnectCallback) -> ConnectionBuilder:
        """Called once, when the connection ends for good (not on each lost socket)."""
        self._settings.on_disconnect.append(callback)
        return self

    def on_reconnecting(self, callback: ReconnectingCallback) -> ConnectionBuilder:
        """Called as ``cb(conn, attempt, error)`` before each attempt to reopen a lost socket."""
        self._settings.on_reconnecting.append(callback)
        return self

    def on_reconnected(self, callback: ReconnectedCallback) -> ConnectionBuilder:
        """Called as ``cb(conn)`` once a socket is reopened and resynced."""
        self._settings.on_reconnected.append(callback)
        return self

    def settings(self) -> ConnectionSettings:
        """A copy of what was configured (callback lists included)."""
        if not self._settings.uri or not self._settings.database:
            raise InvalidStateError("a connection needs with_uri(...) and with_database(...)")
        copy = dataclasses.replace(self._settings)
        for name in (
            "on_connect",
            "on_connect_error",
            "on_disconnect",
            "on_reconnecting",
            "on_reconnected",
        ):
            setattr(copy, name, list(getattr(copy, name)))
        return copy

    async def connect(self, timeout: float = 30.0) -> DbConnection:
        """Open the connection; returns once the server has identified this client."""
        settings = self.settings()
        outbox = (
            DurableOutbox(settings.outbox_path, settings.ack_window)
            if settings.outbox_path is not None
            else MemoryOutbox()
        )
        try:
            schema = self._schema
            if schema is None:
                schema = await asyncio.to_thread(fetch_schema, settings.uri, settings.database)
            conn = DbConnection(schema, settings, outbox)
            await conn._start(timeout)
        except InnerUniverseError as exc:
            outbox.close()
            error = exc if isinstance(exc, ConnectError) else ConnectError(str(exc))
            for cb in settings.on_connect_error:
                run_callback("on_connect_error", cb, error)
            if error is exc:
                raise
            raise error from None
        assert conn.identity is not None and conn.token is not None
        for on_connect in settings.on_connect:
            run_callback("on_connect", on_connect, conn, conn.identity, conn.token)
        return conn

    def connect_threaded(self, timeout: float = 30.0) -> ThreadedConnection:
        """Open the connection on a background event loop, for synchronous code."""
        from .threaded import ThreadedConnection

        return ThreadedConnection(self, timeout)


class _Connecting:
    """What :func:`connect` returns: await it, or use it as ``async with``."""

    def __init__(self, builder: ConnectionBuilder) -> None:
        self._builder = builder
        self._conn: DbConnection | None = None

    def __await__(self) -> Generator[Any, None, DbConnection]:
        return self._builder.connect().__await__()

    async def __aenter__(self) -> DbConnection:
        self._conn = await self._builder.connect()
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.disconnect()


def connect(
    uri: str,
    database: str,
    *,
    token: str | None = None,
    compression: CompressionName = "Gzip",
    light: bool = False,
    schema: ModuleSchema | None = None,
) -> _Connecting:
    """Connect to ``database`` on the server at ``uri`` (``http://127.0.0.1:3000`` style).

    ``async with connect(uri, db) as conn: ...`` or ``conn = await connect(uri, db)``.
    Without a token the server mints a new identity; keep ``conn.token`` to come back as it.
    Use :class:`ConnectionBuilder` for reconnect, keepalive and outbox settings.
    """
    builder = (
        ConnectionBuilder()
        .with_uri(uri)
        .with_database(database)
        .with_token(token)
        .with_compression(compression)
        .with_light_mode(light)
    )
    if schema is not None:
        builder.with_schema(schema)
    return _Connecting(builder)
