"""The WebSocket transport: size limits on real frames, and tokens kept out of logs and files."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from inner_universe.errors import ConnectionClosedError, MessageTooLargeError, UsageError
from inner_universe.spacetime import messages as m
from inner_universe.spacetime.connection import ConnectionBuilder, connect
from inner_universe.spacetime.transport import (
    HOLD_LIMIT,
    REDACTED,
    WebSocketTransport,
    redact_tokens,
)
from inner_universe.spacetime.types import ConnectionId, Identity
from tests.conftest import PublishedDatabase

JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJoZXhfaWRlbnRpdHkiOiJjMjAwIn0.c2lnbmF0dXJlLWJ5dGVz"
MiB = 1024 * 1024


# --------------------------------------------------------------------------- unit


@pytest.mark.parametrize(
    "line",
    [
        f"> Authorization: Bearer {JWT}",
        f"< spacetime-identity-token: {JWT}",
        f"< BINARY 00 03 ... '{JWT[:40]}...' [412 bytes]",  # an elided frame shows a prefix
        "> Authorization: Bearer opaque-non-jwt-token",
    ],
)
def test_redact_tokens(line: str) -> None:
    redacted = redact_tokens(line)
    assert REDACTED in redacted
    assert "eyJ0eXAi" not in redacted and "opaque-non-jwt-token" not in redacted


def test_redact_tokens_leaves_other_text_alone() -> None:
    line = "> GET /v1/database/x/subscribe?compression=Gzip&light=false HTTP/1.1"
    assert redact_tokens(line) == line


def test_builder_limits_must_be_positive() -> None:
    builder = ConnectionBuilder()
    for bad in (0, -1, 1.5, "64"):
        with pytest.raises(UsageError, match="positive number of bytes"):
            builder.with_limits(max_frame_size=bad)
        with pytest.raises(UsageError, match="positive number of bytes"):
            builder.with_limits(max_message_size=bad)
    assert builder.with_limits(max_frame_size=1, max_message_size=2) is builder


# --------------------------------------------------------------------------- live

DOCUMENTS = 8
DOCUMENT_CHARS = 512 * 1024  # 8 x 512 KiB: a subscription several times websockets' 1 MiB default


@pytest.fixture(scope="module")
def large_db(universe_db: PublishedDatabase) -> PublishedDatabase:
    async def fill() -> None:
        async with connect(universe_db.uri, universe_db.name) as conn:
            for i in range(DOCUMENTS):
                content = os.urandom(DOCUMENT_CHARS // 2).hex()  # hex: gzip halves it at best
                await conn.reducers.create_document(f"large-{i}", content, b"")

    asyncio.run(fill())
    return universe_db


@pytest.mark.integration
@pytest.mark.parametrize("compression", ["None", "Gzip"])
async def test_a_large_subscription_arrives_whole_within_the_default_limits(
    large_db: PublishedDatabase, compression: str
) -> None:
    async with connect(large_db.uri, large_db.name, compression=compression) as conn:
        await conn.subscribe("SELECT * FROM document")
        rows = [row for row in conn.db.document.iter() if row.title.startswith("large-")]
        assert len(rows) == DOCUMENTS
        assert sum(len(row.content) for row in rows) == DOCUMENTS * DOCUMENT_CHARS


@pytest.mark.integration
@pytest.mark.parametrize(
    ("compression", "limit"),
    [("None", "max_frame_size"), ("Gzip", "max_message_size")],
    ids=["frame over the limit", "message decompressing over the limit"],
)
async def test_a_message_over_a_limit_closes_the_connection_typed(
    large_db: PublishedDatabase, compression: str, limit: str
) -> None:
    conn = await (
        ConnectionBuilder()
        .with_uri(large_db.uri)
        .with_database(large_db.name)
        .with_compression(compression)
        .with_limits(**{limit: 1 * MiB})
        .connect()
    )
    with pytest.raises(ConnectionClosedError):
        await conn.subscribe("SELECT * FROM document")
    error = await conn.wait_closed()
    assert isinstance(error, MessageTooLargeError)
    assert error.limit == 1 * MiB
    assert f"with_limits({limit}=" in str(error)


@pytest.mark.integration
async def test_no_token_in_debug_logs(
    universe_db: PublishedDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """websockets logs the handshake headers at DEBUG: ours must show no token."""
    caplog.set_level(logging.DEBUG)  # every logger, websockets' included
    caplog.set_level(logging.DEBUG, logger="websockets")
    tokens = []
    async with connect(universe_db.uri, universe_db.name) as anonymous:  # token in the response
        assert anonymous.token is not None
        tokens.append(anonymous.token)
    async with connect(universe_db.uri, universe_db.name, token=tokens[0]) as known:
        assert known.token is not None
        tokens.append(known.token)  # sent as Authorization: Bearer ...
        await known.subscribe("SELECT * FROM agent")
    logged = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    assert "> GET /v1/database/" in logged  # websockets' DEBUG lines were captured
    assert "Authorization: Bearer " + REDACTED in logged
    for token in tokens:
        assert token not in logged
        assert token[:24] not in logged


@pytest.mark.integration
async def test_recorded_messages_are_private_and_carry_no_token(
    universe_db: PublishedDatabase, tmp_path: Path
) -> None:
    record_to = tmp_path / "recorded"
    conn = await (
        ConnectionBuilder()
        .with_uri(universe_db.uri)
        .with_database(universe_db.name)
        .record_messages_to(record_to)
        .connect()
    )
    async with conn:
        assert conn.token is not None
        await conn.subscribe("SELECT * FROM agent")
    assert stat.S_IMODE(record_to.stat().st_mode) == 0o700
    files = sorted(record_to.iterdir())
    assert len(files) >= 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert conn.token.encode() not in path.read_bytes()
    first = m.decode_server_frame(files[0].read_bytes())
    assert isinstance(first, m.IdentityToken)
    assert first.token == REDACTED
    assert first.identity == conn.identity
    assert isinstance(first.connection_id, ConnectionId)
    assert isinstance(first.identity, Identity)


@pytest.mark.integration
async def test_answered_keepalive_pings_keep_the_connection(
    universe_db: PublishedDatabase,
) -> None:
    """Many ping intervals and timeouts pass while pongs come back: nothing reconnects."""
    losses: list[object] = []
    conn = await (
        ConnectionBuilder()
        .with_uri(universe_db.uri)
        .with_database(universe_db.name)
        .with_keepalive(0.02, 0.1)
        .on_reconnecting(lambda _conn, _attempt, error: losses.append(error))
        .connect()
    )
    async with conn:
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.0  # 50 ping intervals, 10 pong timeouts
        calls = 0
        while loop.time() < end:
            await conn.reducers.create_conversation(f"keepalive {calls}")
            calls += 1
        assert losses == []
        assert conn.is_connected
        assert calls > 0


# --------------------------------------------------------------------------- unit, framing


class _RecordingSocket(asyncio.Transport):
    """Stands in for the TCP socket under a WebSocketTransport: records writes and closing."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def _open_link() -> tuple[WebSocketTransport, _RecordingSocket, list[bytes], list[Exception]]:
    """A transport past its handshake on a recording socket, delivering to two lists."""
    link = WebSocketTransport(ClientProtocol(parse_uri("ws://127.0.0.1:1/"), state=State.OPEN))
    socket = _RecordingSocket()
    link.connection_made(socket)
    messages: list[bytes] = []
    lost: list[Exception] = []
    link.start(messages.append, lost.append)
    return link, socket, messages, lost


def _server_bytes(send: Callable[[ServerProtocol], None]) -> bytes:
    server = ServerProtocol(state=State.OPEN)
    send(server)
    return b"".join(server.data_to_send())


async def test_a_fragmented_message_is_delivered_whole_and_in_order() -> None:
    link, _socket, messages, lost = _open_link()

    def fragments(server: ServerProtocol) -> None:
        server.send_binary(b"one")
        server.send_binary(b"tw", fin=False)
        server.send_continuation(b"o-", fin=False)
        server.send_continuation(b"parts", fin=True)
        server.send_binary(b"three")

    data = _server_bytes(fragments)
    for i in range(len(data)):  # byte by byte: every split point of the stream
        link.data_received(data[i : i + 1])
    assert messages == [b"one", b"two-parts", b"three"]
    assert lost == []


async def test_a_text_frame_ends_the_link_with_a_typed_error() -> None:
    link, socket, messages, lost = _open_link()
    link.data_received(_server_bytes(lambda server: server.send_text(b"hello")))
    assert messages == []
    assert socket.writes and socket.closed  # a close frame went out, then the socket closed
    link.connection_lost(None)
    assert len(lost) == 1
    assert isinstance(lost[0], ConnectionClosedError)
    assert "text frame" in str(lost[0])
    assert not link.send_now(b"after")


def _client_messages(writes: list[bytes]) -> list[bytes]:
    """What a server reads from the client's writes (their frames unmasked, in order)."""
    server = ServerProtocol(state=State.OPEN)
    for data in writes:
        server.receive_data(data)
    return [bytes(frame.data) for frame in server.events_received() if isinstance(frame, Frame)]


async def test_a_burst_of_messages_goes_out_in_two_writes() -> None:
    link, socket, _messages, _lost = _open_link()
    burst = [f"call {i}".encode() for i in range(50)]
    for data in burst:
        assert link.send_now(data)
    assert len(socket.writes) == 1  # the first message: at once
    assert _client_messages(socket.writes) == burst[:1]
    await asyncio.sleep(0)  # the turn ends
    assert len(socket.writes) == 2  # the other 49 together
    assert _client_messages(socket.writes) == burst


async def test_a_message_after_a_reply_goes_out_at_once() -> None:
    link, socket, messages, _lost = _open_link()
    for i in range(3):  # the pace of sequential calls: a call, its reply, the next call
        assert link.send_now(f"call {i}".encode())
        assert len(socket.writes) == i + 1
        link.data_received(_server_bytes(lambda server, i=i: server.send_binary(b"reply %d" % i)))
    assert messages == [b"reply 0", b"reply 1", b"reply 2"]
    # A message with nothing received since the one before waits for the turn's end only.
    assert link.send_now(b"call 3") and link.send_now(b"call 4")
    assert len(socket.writes) == 4
    await asyncio.sleep(0)
    assert len(socket.writes) == 5
    assert _client_messages(socket.writes) == [b"call %d" % i for i in range(5)]


async def test_a_burst_is_written_whenever_its_held_bytes_reach_the_limit() -> None:
    link, socket, _messages, _lost = _open_link()
    big = bytes(HOLD_LIMIT // 4)
    burst = [big] * 10
    for data in burst:
        assert link.send_now(data)
    assert len(socket.writes) == 3  # the first at once, then each time 64 KiB were held
    await asyncio.sleep(0)
    assert len(socket.writes) == 4
    assert _client_messages(socket.writes) == burst


async def test_held_messages_go_out_ahead_of_a_pong_in_one_write() -> None:
    link, socket, _messages, _lost = _open_link()
    for data in (b"one", b"two", b"three"):
        assert link.send_now(data)
    link.data_received(_server_bytes(lambda server: server.send_ping(b"are you there")))
    assert len(socket.writes) == 2  # "one" at once; then "two", "three" and the pong
    server = ServerProtocol(state=State.OPEN)
    server.receive_data(socket.writes[1])
    frames = [frame for frame in server.events_received() if isinstance(frame, Frame)]
    assert [(frame.opcode, bytes(frame.data)) for frame in frames] == [
        (Opcode.BINARY, b"two"),
        (Opcode.BINARY, b"three"),
        (Opcode.PONG, b"are you there"),
    ]
    await asyncio.sleep(0)
    assert len(socket.writes) == 2  # the turn's end found nothing left to write


# --------------------------------------------------------------------------- unit, frame cutting

# What a server may send: whole binary messages (every length class of the frame
# header), fragmented ones, and pings, in any order; the stream is then cut anywhere.
_messages = st.binary(max_size=70_000) | st.sampled_from(
    [b"", bytes(125), bytes(126), bytes(65_536)]
)
_cuts = st.lists(st.floats(min_value=0, max_value=1), max_size=20)
_actions = st.lists(
    st.tuples(st.sampled_from(["whole", "fragments", "ping"]), _messages), max_size=12
)


def _serve(actions: list[tuple[str, bytes]], server: ServerProtocol) -> list[bytes]:
    """Frame ``actions`` as a server would; returns the messages a client must get."""
    expected = []
    for kind, data in actions:
        if kind == "ping":
            server.send_ping(data[:125])
        elif kind == "fragments":
            third = len(data) // 3
            server.send_binary(data[:third], fin=False)
            server.send_ping(b"between")
            server.send_continuation(data[third : 2 * third], fin=False)
            server.send_continuation(data[2 * third :], fin=True)
            expected.append(data)
        else:
            server.send_binary(data)
            expected.append(data)
    return expected


def _cut(data: bytes, cuts: list[float]) -> list[bytes]:
    """``data`` in pieces, cut at these fractions of its length."""
    points = sorted({int(c * len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=60, deadline=None)
@given(_actions, _cuts)
def test_frames_cut_anywhere_arrive_as_websockets_would_deliver_them(
    actions: list[tuple[str, bytes]], cuts: list[float]
) -> None:
    async def run() -> None:
        link, socket, messages, lost = _open_link()
        server = ServerProtocol(state=State.OPEN)
        expected = _serve(actions, server)
        for piece in _cut(b"".join(server.data_to_send()), cuts):
            link.data_received(piece)
        assert messages == expected
        assert lost == []
        pings = [a[1][:125] for a in actions if a[0] == "ping"]
        pings += [b"between" for a in actions if a[0] == "fragments"]
        server.receive_data(b"".join(socket.writes))
        pongs = [bytes(f.data) for f in server.events_received() if isinstance(f, Frame)]
        assert sorted(pongs) == sorted(pings)  # each ping answered

    asyncio.run(run())


@settings(max_examples=30, deadline=None)
@given(_actions, _cuts)
def test_frames_right_after_the_handshake_response_are_not_lost(
    actions: list[tuple[str, bytes]], cuts: list[float]
) -> None:
    async def run() -> None:
        ws = ClientProtocol(parse_uri("ws://127.0.0.1:1/"))
        link = WebSocketTransport(ws)
        socket = _RecordingSocket()
        link.connection_made(socket)
        ws.send_request(ws.connect())
        server = ServerProtocol()
        for data in ws.data_to_send():
            server.receive_data(data)
        [request] = server.events_received()
        server.send_response(server.accept(request))
        expected = _serve(actions, server)
        for piece in _cut(b"".join(server.data_to_send()), cuts):
            link.data_received(piece)
        await asyncio.wait_for(link._handshake, 1)
        messages: list[bytes] = []
        link.start(messages.append, lambda error: None)
        assert messages == expected

    asyncio.run(run())


def test_a_masked_frame_from_the_server_ends_the_link() -> None:
    async def run() -> None:
        link, socket, messages, lost = _open_link()
        client = ClientProtocol(parse_uri("ws://127.0.0.1:1/"), state=State.OPEN)
        client.send_binary(b"masked, as only a client may send")
        link.data_received(b"".join(client.data_to_send()))
        assert messages == []
        server = ServerProtocol(state=State.OPEN)  # websockets failed the link: it says why
        server.receive_data(b"".join(socket.writes))
        [close] = [f for f in server.events_received() if isinstance(f, Frame)]
        assert close.opcode is Opcode.CLOSE
        assert int.from_bytes(close.data[:2]) == CloseCode.PROTOCOL_ERROR
        link.connection_lost(None)
        assert len(lost) == 1 and isinstance(lost[0], ConnectionClosedError)

    asyncio.run(run())


@settings(max_examples=40, deadline=None)
@given(st.lists(_messages, min_size=1, max_size=8))
def test_messages_sent_are_frames_a_server_reads_back(burst: list[bytes]) -> None:
    async def run() -> None:
        link, socket, _messages, _lost = _open_link()
        for data in burst:
            assert link.send_now(data)
        await asyncio.sleep(0)
        assert _client_messages(socket.writes) == burst  # masked, as a server requires

    asyncio.run(run())


async def test_each_frame_sent_has_a_mask_of_its_own() -> None:
    link, socket, _messages, _lost = _open_link()
    for _ in range(2000):  # past one draw of random bytes for the masks
        assert link.send_now(b"\0\0\0\0")
    await asyncio.sleep(0)
    data = b"".join(socket.writes)
    masks = {data[i + 2 : i + 6] for i in range(0, len(data), 10)}  # 2 + 4 + 4 bytes a frame
    assert len(masks) > 1900  # random 32-bit masks: a few repeats at most
    assert _client_messages(socket.writes) == [b"\0\0\0\0"] * 2000


@pytest.mark.parametrize("split", [False, True])
async def test_a_refusal_whose_body_arrives_apart_is_read_whole(split: bool) -> None:
    ws = ClientProtocol(parse_uri("ws://127.0.0.1:1/"))
    link = WebSocketTransport(ws)
    link.connection_made(_RecordingSocket())
    ws.send_request(ws.connect())
    server = ServerProtocol()
    for data in ws.data_to_send():
        server.receive_data(data)
    server.events_received()
    server.send_response(server.reject(404, "no such database"))
    response = b"".join(server.data_to_send())
    head_end = response.index(b"\r\n\r\n") + 4
    pieces = [response[:head_end], response[head_end:]] if split else [response]
    for piece in pieces:
        link.data_received(piece)
    with pytest.raises(InvalidStatus) as refused:
        await asyncio.wait_for(link._handshake, 1)
    assert refused.value.response.status_code == 404
    assert bytes(refused.value.response.body or b"") == b"no such database"
