"""Transports move whole binary messages between the protocol and a server; nothing more.

:class:`WebSocketTransport` speaks to a real server with ``websockets``. SpacetimeDB
sends a large subscription as one message, so the cap on an incoming message is
generous (:data:`DEFAULT_MAX_FRAME_SIZE`, 64 MiB, set with
``ConnectionBuilder.with_limits``); a larger one closes the connection with
:class:`~inner_universe.errors.MessageTooLargeError`.

Tokens stay out of logs: ``websockets`` logs the handshake's headers at DEBUG
(``Authorization: Bearer ...`` going out, ``spacetime-identity-token`` coming
back), so our connections log through a child of the ``websockets.client``
logger whose filter redacts anything that looks like a token. Recorded messages
(``record_to``) are written 0600 with the ``IdentityToken``'s token replaced.

:class:`MemoryTransport` is an in-process pipe for unit tests of the driver,
fed with server bytes captured from the real server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import CloseCode
from websockets.protocol import State

from ..errors import (
    ConnectError,
    ConnectionClosedError,
    ConnectRefusedError,
    DecodeError,
    MessageTooLargeError,
    UsageError,
)
from . import messages as m

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "REDACTED",
    "SUBPROTOCOL",
    "CompressionName",
    "MemoryTransport",
    "Transport",
    "WebSocketTransport",
    "redact_tokens",
    "subscribe_url",
]

SUBPROTOCOL = "v1.bsatn.spacetimedb"
#: The ``compression=`` the server is asked for (messages.Compression is the frame tag).
CompressionName = Literal["None", "Gzip", "Brotli"]
#: The default cap on one incoming WebSocket message, as it arrives (compressed or not).
DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024
#: What a token is replaced with in logs and recordings.
REDACTED = "<redacted>"

# A bearer credential, or a JWT (SpacetimeDB tokens are JWTs; their header starts "eyJ"),
# also when a log line shows only its beginning.
_TOKEN_PATTERN = re.compile(r"(?<=Bearer )\S+|eyJ[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*){0,2}")


def redact_tokens(text: str) -> str:
    """``text`` with every bearer token and JWT replaced by :data:`REDACTED`."""
    return _TOKEN_PATTERN.sub(REDACTED, text)


class _RedactTokens(logging.Filter):
    """Rewrites a record whose message contains a token; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


# websockets logs through the logger it is given; ours propagates to "websockets.client"
# (so enabling websockets' logging still shows our connections), with tokens redacted.
_WS_LOGGER = logging.getLogger("websockets.client.inner_universe")
_WS_LOGGER.addFilter(_RedactTokens())


class Transport(Protocol):
    """What the connection driver needs from a link to the server."""

    async def send(self, data: bytes) -> None: ...

    def send_now(self, data: bytes) -> bool:
        """Write ``data`` in the caller's turn if that cannot wait; False: use :meth:`send`."""
        ...

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
            this directory (``0001.bin``, ...; created 0700, files 0600, the
            identity token redacted): how protocol tests get real server bytes.
    """

    def __init__(
        self,
        ws: ClientConnection,
        record_to: Path | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self._ws = ws
        self._record_to = record_to
        self._max_frame_size = max_frame_size
        self._recorded = 0
        # The synchronous write path uses websockets' sans-I/O protocol under the asyncio
        # connection, as its own send() does; a websockets without these keeps send() only.
        self._writes_now = all(
            hasattr(ws, name) for name in ("protocol", "send_data", "paused", "send_in_progress")
        )

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
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> WebSocketTransport:
        """Open the socket; pings every ``ping_interval`` s close it when a pong is late.

        ``max_frame_size`` caps one incoming message as it arrives on the wire.
        """
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if record_to is not None:
            record_to.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            ws = await ws_connect(
                url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers=headers,
                max_size=max_frame_size,
                compression=None,
                logger=_WS_LOGGER,
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
        return cls(ws, record_to, max_frame_size)

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise ConnectionClosedError(f"connection closed: {exc}") from None

    def send_now(self, data: bytes) -> bool:
        """Write ``data`` now unless :meth:`send` would have to wait or fail.

        What ``ClientConnection.send`` does when it need not wait: frame the message
        and hand it to the socket. It declines (False) while the connection is not
        open (send() then raises the closing error), while the write buffer is above
        its high-water mark (send() then waits for it to drain), and during a
        fragmented send; the caller then uses send(), after anything already queued.
        """
        ws = self._ws
        if (
            not self._writes_now
            or ws.protocol.state is not State.OPEN
            or ws.paused
            or ws.send_in_progress is not None
        ):
            return False
        ws.protocol.send_binary(data)
        ws.send_data()
        return True

    async def recv(self) -> bytes:
        try:
            message = await self._ws.recv()
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                raise MessageTooLargeError(
                    f"the server sent a message larger than the limit of "
                    f"{self._max_frame_size} bytes (raise it with "
                    "ConnectionBuilder.with_limits(max_frame_size=...))",
                    self._max_frame_size,
                ) from None
            raise ConnectionClosedError(f"connection closed: {exc}") from None
        if isinstance(message, str):
            raise ConnectionClosedError("the server sent a text frame on a binary protocol")
        if self._record_to is not None:
            self._recorded += 1
            _write_private(self._record_to / f"{self._recorded:04d}.bin", _without_token(message))
        return message

    async def close(self) -> None:
        await self._ws.close()


def _without_token(frame: bytes) -> bytes:
    """The frame, with an ``IdentityToken``'s token replaced (re-encoded the way it came)."""
    try:
        msg = m.decode_server_frame(frame)
    except DecodeError:  # recorded as it came: a malformed frame is what a test wants to keep
        return frame
    if not isinstance(msg, m.IdentityToken):
        return frame
    return m.encode_server_frame(dataclasses.replace(msg, token=REDACTED), m.Compression(frame[0]))


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file only its owner can read (0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file already existed with a wider mode
    with os.fdopen(fd, "wb") as file:
        file.write(data)


class MemoryTransport:
    """An in-memory link: the test plays the server with :meth:`feed` and reads :attr:`sent`."""

    def __init__(self, on_send: Callable[[bytes], None] | None = None) -> None:
        self.sent: list[bytes] = []
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._on_send = on_send
        self.closed = False
        #: Make :meth:`send_now` decline, as a socket with a full write buffer does.
        self.hold_writes = False

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

    def send_now(self, data: bytes) -> bool:
        """Like :meth:`send` in the caller's turn, unless :attr:`hold_writes` is set."""
        if self.closed or self.hold_writes:
            return False
        self.sent.append(data)
        if self._on_send is not None:
            self._on_send(data)
        return True

    async def recv(self) -> bytes:
        message = await self._incoming.get()
        if message is None:
            self.closed = True
            raise ConnectionClosedError("memory transport closed by the server side")
        return message

    async def close(self) -> None:
        self.closed = True
        self._incoming.put_nowait(None)
