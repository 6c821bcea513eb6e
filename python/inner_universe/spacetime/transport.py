"""Transports move whole binary messages between the protocol and a server; nothing more.

:class:`WebSocketTransport` speaks to a real server with ``websockets`` (no cap
on incoming message size: SpacetimeDB sends a large subscription as one frame).
:class:`MemoryTransport` is an in-process pipe for unit tests of the driver,
fed with server bytes captured from the real server.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ..errors import ConnectError, ConnectionClosedError, ConnectRefusedError, UsageError

__all__ = [
    "SUBPROTOCOL",
    "CompressionName",
    "MemoryTransport",
    "Transport",
    "WebSocketTransport",
    "subscribe_url",
]

SUBPROTOCOL = "v1.bsatn.spacetimedb"
#: The ``compression=`` the server is asked for (messages.Compression is the frame tag).
CompressionName = Literal["None", "Gzip", "Brotli"]


class Transport(Protocol):
    """What the connection driver needs from a link to the server."""

    async def send(self, data: bytes) -> None: ...

    async def recv(self) -> bytes:
        """The next whole server message; raises ConnectionClosedError when the link ends."""
        ...

    async def close(self) -> None: ...


def subscribe_url(
    uri: str,
    database: str,
    *,
    compression: CompressionName = "Gzip",
    light: bool = False,
    connection_id: str | None = None,
) -> str:
    """The WebSocket URL of ``database``'s subscribe endpoint on the server at ``uri``.

    ``connection_id`` (32 hex digits) asks to come back as that connection, as
    the official SDKs do on reconnect; the 1.2 server honours it.
    """
    parts = urllib.parse.urlsplit(uri)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise UsageError(f"unsupported URI scheme {parts.scheme!r} in {uri!r}")
    if parts.query:
        raise UsageError(f"the server URI must not carry a query string: {uri!r}")
    path = parts.path.rstrip("/") + f"/v1/database/{urllib.parse.quote(database)}/subscribe"
    params = {"compression": compression, "light": "true" if light else "false"}
    if connection_id is not None:
        params["connection_id"] = connection_id
    query = urllib.parse.urlencode(params)
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, query, ""))


class WebSocketTransport:
    """A ``websockets`` client connection speaking ``v1.bsatn.spacetimedb``.

    Args:
        record_to: if given, every message received is also appended to files in
            this directory (``0001.bin``, ...): how protocol tests get real server bytes.
    """

    def __init__(self, ws: ClientConnection, record_to: Path | None = None) -> None:
        self._ws = ws
        self._record_to = record_to
        self._recorded = 0

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        token: str | None = None,
        open_timeout: float = 10.0,
        ping_interval: float = 2.0,
        ping_timeout: float = 2.0,
        record_to: Path | None = None,
    ) -> WebSocketTransport:
        """Open the socket; pings every ``ping_interval`` s close it when a pong is late."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            ws = await ws_connect(
                url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers=headers,
                max_size=None,
                compression=None,
                open_timeout=open_timeout,
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
                # A dead peer never answers the closing handshake either: do not wait 10 s.
                close_timeout=min(1.0, ping_timeout),
            )
        except InvalidStatus as exc:
            body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
            raise ConnectRefusedError(
                f"the server refused the connection to {url}: HTTP "
                f"{exc.response.status_code} {body}".rstrip(),
                exc.response.status_code,
            ) from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise ConnectError(f"could not connect to {url}: {exc}") from None
        if ws.subprotocol != SUBPROTOCOL:
            await ws.close()
            raise ConnectError(f"the server did not accept the {SUBPROTOCOL} subprotocol")
        return cls(ws, record_to)

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise ConnectionClosedError(f"connection closed: {exc}") from None

    async def recv(self) -> bytes:
        try:
            message = await self._ws.recv()
        except ConnectionClosed as exc:
            raise ConnectionClosedError(f"connection closed: {exc}") from None
        if isinstance(message, str):
            raise ConnectionClosedError("the server sent a text frame on a binary protocol")
        if self._record_to is not None:
            self._recorded += 1
            (self._record_to / f"{self._recorded:04d}.bin").write_bytes(message)
        return message

    async def close(self) -> None:
        await self._ws.close()


class MemoryTransport:
    """An in-memory link: the test plays the server with :meth:`feed` and reads :attr:`sent`."""

    def __init__(self, on_send: Callable[[bytes], None] | None = None) -> None:
        self.sent: list[bytes] = []
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._on_send = on_send
        self.closed = False

    def feed(self, data: bytes) -> None:
        """Deliver one server message to the client."""
        self._incoming.put_nowait(data)

    def feed_close(self) -> None:
        """Make the server end the link."""
        self._incoming.put_nowait(None)

    async def send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionClosedError("memory transport is closed")
        self.sent.append(data)
        if self._on_send is not None:
            self._on_send(data)

    async def recv(self) -> bytes:
        message = await self._incoming.get()
        if message is None:
            self.closed = True
            raise ConnectionClosedError("memory transport closed by the server side")
        return message

    async def close(self) -> None:
        self.closed = True
        self._incoming.put_nowait(None)
