"""Transports move whole binary messages between the protocol and a server; nothing more.

:class:`WebSocketTransport` speaks to a real server with ``websockets``' sans-I/O
protocol, writing and reading the common frame (a whole binary message) itself. SpacetimeDB
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
import ssl
import struct
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol, TypeAlias

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import WebSocketURI, parse_uri

try:  # websockets' C masking, when it was built with it
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - its pure-Python twin
    from websockets.utils import apply_mask

from ..errors import (
    ConnectError,
    ConnectionClosedError,
    ConnectRefusedError,
    DecodeError,
    InnerUniverseError,
    MessageTooLargeError,
    UsageError,
)
from . import messages as m

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "HOLD_LIMIT",
    "REDACTED",
    "SUBPROTOCOL",
    "CompressionName",
    "LostHandler",
    "MemoryTransport",
    "MessageHandler",
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
#: The first byte of an unfragmented binary frame: FIN, no reserved bits, opcode 2.
_WHOLE_BINARY = 0x82
#: Random bytes drawn at once for the masks of the frames sent.
_MASK_BYTES = 4096
_HEAD_16 = struct.Struct("!BBH")  # a frame's first bytes, with a 16-bit length
_HEAD_64 = struct.Struct("!BBQ")  # ... with a 64-bit length
#: The longest handshake response head read before handing it to websockets as it is.
_MAX_RESPONSE_HEAD = 64 * 1024
#: Messages sent in a row (a pipelined burst) are held and written together when the
#: loop's turn ends, or as soon as this many bytes are held (see ``send_now``).
HOLD_LIMIT = 64 * 1024
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


#: Takes each whole server message, in the event-loop turn its last bytes arrived.
MessageHandler: TypeAlias = Callable[[bytes], None]
#: Told once why the link ended (ConnectionClosedError, MessageTooLargeError).
LostHandler: TypeAlias = Callable[[InnerUniverseError], None]


class Transport(Protocol):
    """What the connection driver needs from a link to the server.

    Incoming messages are pushed, not pulled: after :meth:`start` the transport hands
    each whole server message to ``on_message`` in the turn its bytes arrive (no task
    in between), and calls ``on_lost`` once when the link ends.
    """

    def start(self, on_message: MessageHandler, on_lost: LostHandler) -> None:
        """Begin delivering; what arrived before is delivered first, in order."""
        ...

    async def send(self, data: bytes) -> None:
        """Write ``data``, waiting while the link is full; ConnectionClosedError once closed."""
        ...

    def send_now(self, data: bytes) -> bool:
        """Write ``data`` in the caller's turn if that cannot wait; False: use :meth:`send`."""
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


class WebSocketTransport(asyncio.Protocol):
    """A WebSocket client speaking ``v1.bsatn.spacetimedb`` on an asyncio socket.

    websockets' sans-I/O :class:`~websockets.client.ClientProtocol` does the framing,
    the handshake's HTTP and the closing handshake; this class does the I/O it leaves
    to its user: the socket (ws:// or wss://), the opening and closing timeouts,
    keepalive pings, flow control. Each message reaches the driver in the turn its
    bytes arrive, and each message sent goes to the socket in the sender's turn (a
    burst's together, as the turn ends): no task, queue, future or lock per message.

    Args:
        record_to: if given, every message received is also appended to files in
            this directory (``0001.bin``, ...; created 0700, files 0600, the
            identity token redacted): how protocol tests get real server bytes.
    """

    def __init__(
        self,
        ws: ClientProtocol,
        *,
        record_to: Path | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        ping_interval: float = 2.0,
        ping_timeout: float = 2.0,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._ws = ws
        self._record_to = record_to
        self._recorded = 0
        self._max_frame_size = max_frame_size
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        # A dead peer never answers the closing handshake either: do not wait long.
        self._close_timeout = min(1.0, ping_timeout)
        self._socket: asyncio.Transport | None = None
        self._handshake: asyncio.Future[None] = self._loop.create_future()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._error: InnerUniverseError | None = None  # why the link ended, once it has
        self._failure: InnerUniverseError | None = None  # an end this side chose
        self._on_message: MessageHandler | None = None
        self._on_lost: LostHandler | None = None
        self._early: list[bytes] = []  # messages that arrived before start()
        self._fragments: list[bytes] = []  # a fragmented message so far
        # Past the handshake, whole frames are cut from the stream here (see _take_frames);
        # a protocol built already open (no handshake to read) starts that way.
        self._framing = ws.state is State.OPEN
        # The handshake response's head so far; None once websockets has it (or no handshake).
        self._head: bytes | None = None if self._framing else b""
        self._partial = bytearray()  # the start of a frame whose end has not arrived yet
        self._needed = 0  # the bytes that frame needs in all (0: its header is not whole)
        self._paused = False  # the socket's write buffer is above its high-water mark
        self._held: int | None = None  # bytes held until the turn ends; None: none held
        self._answered = True  # something arrived since the last write (see send_now)
        self._out: list[bytes] = []  # frames held until the turn ends (see send_now)
        self._masks = b""  # random bytes for the frames' masks, 4 a frame
        self._mask_at = _MASK_BYTES
        self._drained: asyncio.Future[None] | None = None
        self._ping_payload: bytes | None = None  # the ping waiting for its pong
        self._ping_timer: asyncio.TimerHandle | None = None  # next ping, or the pong's deadline
        self._close_timer: asyncio.TimerHandle | None = None

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
        if record_to is not None:
            record_to.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            uri = parse_uri(url)
        except InvalidURI as exc:
            raise UsageError(f"not a WebSocket URL: {exc}") from None
        ws = ClientProtocol(
            uri,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            max_size=max_frame_size,
            logger=_WS_LOGGER,
        )
        link = cls(
            ws,
            record_to=record_to,
            max_frame_size=max_frame_size,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )
        try:
            async with asyncio.timeout(open_timeout):
                await link._connect(uri, token)
        except InvalidStatus as exc:
            link._abort()
            body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
            raise ConnectRefusedError(
                f"the server refused the connection to {url}: HTTP "
                f"{exc.response.status_code} {body}".rstrip(),
                exc.response.status_code,
            ) from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            link._abort()
            raise ConnectError(f"could not connect to {url}: {exc}") from None
        if ws.subprotocol != SUBPROTOCOL:
            await link.close()
            raise ConnectError(f"the server did not accept the {SUBPROTOCOL} subprotocol")
        link._schedule_ping()
        return link

    async def _connect(self, uri: WebSocketURI, token: str | None) -> None:
        """Open the socket and complete the opening handshake."""
        context = ssl.create_default_context() if uri.secure else None
        await self._loop.create_connection(
            lambda: self,
            uri.host,
            uri.port,
            ssl=context,
            server_hostname=uri.host if context is not None else None,
        )
        request = self._ws.connect()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        self._ws.send_request(request)
        self._write_pending()
        await self._handshake

    # --- the driver's side ----------------------------------------------------------------

    def start(self, on_message: MessageHandler, on_lost: LostHandler) -> None:
        self._on_message, self._on_lost = on_message, on_lost
        early, self._early = self._early, []
        for data in early:
            on_message(data)
        if self._error is not None:
            on_lost(self._error)

    async def send(self, data: bytes) -> None:
        while self._paused and self._error is None:
            if self._drained is None:
                self._drained = self._loop.create_future()
            await asyncio.shield(self._drained)
        if not self.send_now(data):
            raise self._error or ConnectionClosedError("connection closed: the link is closing")

    def send_now(self, data: bytes) -> bool:
        """Write ``data`` in this loop turn unless :meth:`send` would have to wait or fail.

        A message goes to the socket at once when something has arrived since the last
        write: the request and reply pace of sequential calls, where nothing should
        wait. A message that follows another with nothing received between them, as
        the calls of a pipelined burst do, is held with those after it until the loop's
        turn ends (or :data:`HOLD_LIMIT` bytes are held), and they go out in one system
        call instead of one each.
        It declines (False) while the connection is not open (send() then raises the
        closing error) and while the write buffer is above its high-water mark (send()
        then waits for it to drain).
        """
        if self._paused or self._ws.state is not State.OPEN:
            return False
        frame = self._binary_frame(data)
        held = self._held
        if self._answered:
            self._answered = False
            if self._out:  # held ones not yet written go first
                self._out.append(frame)
                self._write_pending()
            else:  # (websockets' own output is written whenever it is made)
                assert self._socket is not None
                self._socket.write(frame)
        elif held is None:
            self._out.append(frame)
            self._held = len(frame)
            self._loop.call_soon(self._release)
        else:
            self._out.append(frame)
            self._held = held + len(frame)
            if self._held >= HOLD_LIMIT:
                self._write_pending()
                self._held = 0
        return True

    def _binary_frame(self, data: bytes) -> bytes:
        """``data`` as one masked binary frame, the form RFC 6455 has a client send.

        Framed here rather than by websockets (about 1.9 us a message, with a system
        call for each mask): the masks come from ``os.urandom`` like websockets' own,
        drawn :data:`_MASK_BYTES` at a time. websockets still frames everything else
        (pings, pongs, the closing handshake).
        """
        at = self._mask_at
        if at >= _MASK_BYTES:
            self._masks, at = os.urandom(_MASK_BYTES), 0
        self._mask_at = at + 4
        mask = self._masks[at : at + 4]
        size = len(data)
        if size < 126:
            head = bytes((_WHOLE_BINARY, 0x80 | size))
        elif size < 65536:
            head = _HEAD_16.pack(_WHOLE_BINARY, 0x80 | 126, size)
        else:
            head = _HEAD_64.pack(_WHOLE_BINARY, 0x80 | 127, size)
        return head + mask + apply_mask(data, mask)

    async def close(self) -> None:
        """The closing handshake, or an abort once ``close_timeout`` has passed."""
        if self._socket is None or self._lost.done():
            return
        if self._ws.state is State.OPEN:
            self._ws.send_close()
            self._write_pending()
        else:
            self._socket.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), self._close_timeout)
        except TimeoutError:
            self._abort()
            await self._lost

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._socket = transport

    def data_received(self, data: bytes) -> None:
        self._answered = True
        if self._framing:
            self._take_frames(data)
        elif self._head is not None:
            self._take_response(data)
        else:
            self._ws.receive_data(data)
            self._process()

    def eof_received(self) -> None:
        self._ws.receive_eof()
        self._process()  # returning None: asyncio closes the socket

    def connection_lost(self, exc: Exception | None) -> None:
        self._ws.receive_eof()  # idempotent; the protocol is CLOSED now
        for timer in (self._ping_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._error = error = self._failure or self._closing_error()
        if not self._handshake.done():
            self._handshake.set_exception(
                exc or ConnectionError("the server closed the connection during the handshake")
            )
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._lost.set_result(None)
        if self._on_lost is not None:
            self._on_lost(error)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None:
            self._drained.set_result(None)
            self._drained = None

    # --- inside ---------------------------------------------------------------------------

    def _process(self) -> None:
        """Act on what the sans-I/O protocol parsed: answers first, then the frames."""
        events = self._ws.events_received()
        self._write_pending()  # pongs, the closing handshake's echo
        for event in events:
            if isinstance(event, Frame):
                self._frame(event)
            elif not self._handshake.done():  # the handshake's response
                failure = self._ws.handshake_exc
                if failure is None:
                    self._handshake.set_result(None)
                else:
                    self._handshake.set_exception(failure)
        if self._ws.close_expected() and self._close_timer is None:
            self._close_timer = self._loop.call_later(self._close_timeout, self._abort)

    def _take_response(self, data: bytes) -> None:
        """Give websockets the handshake's response and nothing past it.

        What follows the response's blank line is the first frames; once the handshake
        has succeeded they go to :meth:`_take_frames`, so websockets' parser is always
        at a frame boundary when it is handed a frame. A refusal (its body) or a head
        longer than websockets accepts goes to websockets whole, which reports it.
        """
        assert self._head is not None
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0 and len(head) <= _MAX_RESPONSE_HEAD:
            self._head = head
            return
        self._head = None  # from here on, websockets or _take_frames reads what comes
        cut = end + 4 if end >= 0 else len(head)
        self._ws.receive_data(head[:cut])
        self._process()
        rest = head[cut:]
        if self._handshake.done() and self._ws.state is State.OPEN:
            self._framing = True
            if rest:
                self._take_frames(rest)
        elif rest:
            self._ws.receive_data(rest)
            self._process()

    def _take_frames(self, data: bytes) -> None:
        """Cut whole frames from the stream; a whole binary message goes straight to the driver.

        The common frame, an unfragmented binary message within the size limit, is
        read here in a few operations (websockets' parser costs several microseconds a
        frame). Every other frame, once whole, goes to websockets, which applies the
        protocol's rules to it: pings and pongs, the closing handshake, fragments, text,
        reserved bits. A masked frame or one over the limit hands websockets the rest of
        the stream, and it fails the link as it should.
        """
        partial = self._partial
        if partial:  # a large message arrives in many reads: gather, join once
            partial += data
            if len(partial) < self._needed:
                return
            buf, self._partial = bytes(partial), bytearray()
        else:
            buf = data
        pos, end, needed = 0, len(buf), 0
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            size, start = second & 0x7F, pos + 2
            if size == 126:
                if end - pos < 4:
                    break
                size, start = int.from_bytes(buf[pos + 2 : pos + 4]), pos + 4
            elif size == 127:
                if end - pos < 10:
                    break
                size, start = int.from_bytes(buf[pos + 2 : pos + 10]), pos + 10
            if second & 0x80 or size > self._max_frame_size:
                self._framing = False
                self._ws.receive_data(buf[pos:])
                self._process()
                return
            stop = start + size
            if stop > end:
                needed = stop - pos
                break
            # (Once this side fails the link, websockets is no longer OPEN: nothing is delivered.)
            if first == _WHOLE_BINARY and not self._fragments and self._ws.state is State.OPEN:
                self._deliver(buf[start:stop])
            else:
                self._ws.receive_data(buf[pos:stop])
                self._process()
            pos = stop
        if pos < end:
            self._partial, self._needed = bytearray(memoryview(buf)[pos:]), needed

    def _frame(self, frame: Frame) -> None:
        if self._failure is not None:
            return
        opcode = frame.opcode
        if opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(bytes(frame.data))
            else:
                self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), []
                self._deliver(data)
        elif opcode is Opcode.TEXT:
            error = ConnectionClosedError("the server sent a text frame on a binary protocol")
            self._fail(error, CloseCode.UNSUPPORTED_DATA)
        elif opcode is Opcode.PONG and frame.data == self._ping_payload:
            self._pong_received()

    def _deliver(self, data: bytes) -> None:
        if self._record_to is not None:
            self._recorded += 1
            _write_private(self._record_to / f"{self._recorded:04d}.bin", _without_token(data))
        if self._on_message is None:
            self._early.append(data)
        else:
            self._on_message(data)

    def _release(self) -> None:
        """The turn is over: write what ``send_now`` held."""
        self._held = None
        if not self._lost.done():
            self._write_pending()

    def _write_pending(self) -> None:
        """Write the held messages, then websockets' output, several frames in one write.

        The held ones go first: they were sent first, as websockets' output (pongs, the
        closing handshake) is written whenever it is made.
        """
        socket = self._socket
        assert socket is not None
        pending = self._ws.data_to_send()
        if self._out:
            pending, self._out = self._out + pending, []
        if len(pending) > 1 and all(pending):
            socket.write(b"".join(pending))
            return
        for data in pending:
            if data:
                socket.write(data)
            elif socket.can_write_eof():  # websockets' SEND_EOF: half-close
                socket.write_eof()
            else:
                socket.close()

    def _schedule_ping(self) -> None:
        self._ping_timer = self._loop.call_later(self._ping_interval, self._ping)

    def _ping(self) -> None:
        if self._ws.state is not State.OPEN:
            return
        self._ping_payload = os.urandom(4)
        self._ws.send_ping(self._ping_payload)
        self._write_pending()
        self._ping_timer = self._loop.call_later(self._ping_timeout, self._pong_late)

    def _pong_received(self) -> None:
        """The pong came in time: cancel its deadline, ping again an interval from now."""
        self._ping_payload = None
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        self._schedule_ping()

    def _pong_late(self) -> None:
        late = ConnectionClosedError(
            f"connection closed: keepalive ping timeout (no pong within {self._ping_timeout} s)"
        )
        self._fail(late, CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

    def _fail(self, error: InnerUniverseError, code: CloseCode, reason: str = "") -> None:
        """End the link for ``error``: a close frame if it can still go, then the socket."""
        if self._failure is not None or self._lost.done():
            return
        self._failure = error
        if self._ws.state is State.OPEN:
            self._ws.fail(code, reason)
            self._write_pending()
        assert self._socket is not None
        self._socket.close()  # after what is buffered; aborted if that does not drain
        self._close_timer = self._loop.call_later(self._close_timeout, self._abort)

    def _abort(self) -> None:
        if self._socket is not None:
            self._socket.abort()

    def _closing_error(self) -> InnerUniverseError:
        close = self._ws.close_exc
        sent = self._ws.close_sent
        if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
            return MessageTooLargeError(
                f"the server sent a message larger than the limit of "
                f"{self._max_frame_size} bytes (raise it with "
                "ConnectionBuilder.with_limits(max_frame_size=...))",
                self._max_frame_size,
            )
        return ConnectionClosedError(f"connection closed: {close}")


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
    """An in-memory link: the test plays the server with :meth:`feed` and reads :attr:`sent`.

    Messages fed are delivered in a later turn of the loop, in order, as a socket's are.
    """

    def __init__(self, on_send: Callable[[bytes], None] | None = None) -> None:
        self.sent: list[bytes] = []
        self._on_send = on_send
        self.closed = False
        #: Make :meth:`send_now` decline, as a socket with a full write buffer does.
        self.hold_writes = False
        self._pending: list[bytes | None] = []  # fed before start(); None: the end
        self._on_message: MessageHandler | None = None
        self._on_lost: LostHandler | None = None
        self._ended = False

    def feed(self, data: bytes) -> None:
        """Deliver one server message to the client."""
        self._push(data)

    def feed_close(self) -> None:
        """Make the server end the link."""
        self._push(None)

    def start(self, on_message: MessageHandler, on_lost: LostHandler) -> None:
        self._on_message, self._on_lost = on_message, on_lost
        pending, self._pending = self._pending, []
        for item in pending:
            self._push(item)

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

    async def close(self) -> None:
        self.closed = True
        self._push(None)

    def _push(self, item: bytes | None) -> None:
        if self._on_message is None:
            self._pending.append(item)
        else:
            asyncio.get_running_loop().call_soon(self._deliver, item)

    def _deliver(self, item: bytes | None) -> None:
        if self._ended:
            return
        if item is not None:
            assert self._on_message is not None
            self._on_message(item)
            return
        self.closed = self._ended = True
        assert self._on_lost is not None
        self._on_lost(ConnectionClosedError("memory transport closed by the server side"))
