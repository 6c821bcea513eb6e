"""Size limits on server messages: decompression bombs fail early, in bounded memory.

Each hostile frame here is small on the wire and expands to about 200 MB. The
decoder must stop near its limit (64 MiB by default) with MessageTooLargeError, and
the memory it allocates while doing so (traced with tracemalloc) stays under twice
the limit. The frames are built with streaming compressors, so building them does
not allocate the 200 MB either.
"""

from __future__ import annotations

import gzip
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import pytest

from inner_universe.errors import DecodeError, InnerUniverseError, MessageTooLargeError
from inner_universe.spacetime import messages as m
from inner_universe.spacetime import protocol as p
from inner_universe.spacetime.messages import DEFAULT_MAX_MESSAGE_SIZE

EXPANDED = 200_000_000  # what each bomb expands to
MiB = 1024 * 1024


def u32le(n: int) -> bytes:
    return struct.pack("<I", n)


def light_update_prefix(compression: m.Compression) -> bytes:
    """A TransactionUpdateLight with one table update, up to its query update's payload."""
    return (
        b"\x02"  # ServerMessage::TransactionUpdateLight
        + u32le(7)  # request id
        + u32le(1)  # one table
        + u32le(1)  # table id
        + u32le(1)
        + b"t"  # table name
        + struct.pack("<Q", 1)  # num_rows
        + u32le(1)  # one query update
        + bytes([compression])
    )


def one_row_query_update_prefix(row_size: int) -> bytes:
    """A QueryUpdate: no deletes, one inserted row of ``row_size`` bytes (which follow)."""
    no_rows = b"\x01" + u32le(0) + u32le(0)  # RowOffsets([]), no data
    return no_rows + b"\x01" + u32le(1) + struct.pack("<Q", 0) + u32le(row_size)


def gzip_stream(prefix: bytes, zeros: int, level: int = 1) -> bytes:
    """gzip of ``prefix`` followed by ``zeros`` zero bytes, compressed 1 MiB at a time."""
    stream = zlib.compressobj(level, zlib.DEFLATED, 31)
    out = [stream.compress(prefix)]
    chunk = bytes(MiB)
    for _ in range(zeros // MiB):
        out.append(stream.compress(chunk))
    out.append(stream.compress(bytes(zeros % MiB)))
    out.append(stream.flush())
    return b"".join(out)


def brotli_bomb() -> bytes:
    brotli = pytest.importorskip("brotli")
    stream = brotli.Compressor(quality=5, lgwin=24)
    chunk = bytes(MiB)
    out = [stream.process(chunk) for _ in range(EXPANDED // MiB)]
    return b"\x01" + b"".join(out) + stream.finish()


def nested_gzip_bomb() -> bytes:
    """A gzip frame whose message holds a gzip query update expanding to 200 MB."""
    inner = gzip_stream(one_row_query_update_prefix(EXPANDED), EXPANDED)
    message = light_update_prefix(m.Compression.GZIP) + u32le(len(inner)) + inner
    return b"\x02" + gzip.compress(message, 9)


def valid_huge_row_frame() -> bytes:
    """A well-formed message carrying one 200 MB row, gzip-compressed as a whole frame."""
    prefix = light_update_prefix(m.Compression.NONE) + one_row_query_update_prefix(EXPANDED)
    return b"\x02" + gzip_stream(prefix, EXPANDED)


def peak_bytes_while(action: Callable[[], object]) -> tuple[BaseException | None, int]:
    """Run ``action``; return what it raised and the peak of memory it allocated."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    error: BaseException | None = None
    try:
        action()
    except InnerUniverseError as exc:
        error = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return error, peak - before


def lying_trailer(size: int) -> Callable[[], bytes]:
    """The 200 MB row frame with a gzip trailer that announces ``size`` bytes.

    The decoder uses the announced size as a hint for decompressing in one call.
    """

    def build() -> bytes:
        return valid_huge_row_frame()[:-4] + u32le(size)

    return build


BOMBS = {
    "brotli bomb": brotli_bomb,
    "nested gzip bomb": nested_gzip_bomb,
    "valid 200 MB row in a small gzip frame": valid_huge_row_frame,
    "gzip bomb whose trailer announces 1 KB": lying_trailer(1000),
    "gzip bomb whose trailer announces just under the limit": lying_trailer(
        DEFAULT_MAX_MESSAGE_SIZE - 2 * MiB
    ),
}


@pytest.mark.parametrize("build", BOMBS.values(), ids=BOMBS.keys())
def test_a_bomb_fails_within_twice_the_limit(build: Callable[[], bytes]) -> None:
    frame = build()
    assert len(frame) < 1 * MiB  # small on the wire
    error, peak = peak_bytes_while(lambda: m.decode_server_frame(frame))
    assert isinstance(error, MessageTooLargeError), error
    assert isinstance(error, DecodeError)
    assert error.limit == DEFAULT_MAX_MESSAGE_SIZE
    assert "with_limits(max_message_size=" in str(error)
    print(f"{len(frame)}-byte frame: peak {peak / MiB:.1f} MiB for a 64 MiB limit")
    assert peak < 2 * DEFAULT_MAX_MESSAGE_SIZE


def test_the_protocol_applies_its_limit_and_closes() -> None:
    """The sans-I/O path: a frame over the protocol's limit fails it, typed, and closes it."""
    protocol = p.ClientProtocol(max_message_size=4 * MiB)
    frame = b"\x02" + gzip_stream(light_update_prefix(m.Compression.NONE), 5 * MiB)
    error, peak = peak_bytes_while(lambda: protocol.receive_message(frame))
    assert isinstance(error, MessageTooLargeError)
    assert error.limit == 4 * MiB
    assert peak < 8 * MiB
    assert protocol.state is p.State.CLOSED
    assert protocol.failure is error


IDENTITY = m.IdentityToken(m.Identity(1), "t", m.ConnectionId(2))


def frames_of(msg: m.ServerMessage) -> dict[str, bytes]:
    frames = {
        "none": m.encode_server_frame(msg, m.Compression.NONE),
        "gzip": m.encode_server_frame(msg, m.Compression.GZIP),
    }
    if pytest.importorskip("brotli"):
        frames["brotli"] = m.encode_server_frame(msg, m.Compression.BROTLI)
    return frames


@pytest.mark.parametrize("compression", ["none", "gzip", "brotli"])
def test_a_message_exactly_at_the_limit_decodes_and_one_byte_less_fails(compression: str) -> None:
    frame = frames_of(IDENTITY)[compression]
    size = len(m.encode_server_message(IDENTITY))
    assert m.decode_server_frame(frame, max_message_size=size) == IDENTITY
    with pytest.raises(MessageTooLargeError):
        m.decode_server_frame(frame, max_message_size=size - 1)


def test_nested_compressed_updates_share_the_message_budget() -> None:
    """Two gzip query updates of ~1 KB each: one fits a 1.5 KB budget, both together do not."""
    rows = m.BsatnRowList.from_rows([bytes(1000)])
    update = m.CompressableQueryUpdate(m.QueryUpdate(inserts=rows), m.Compression.GZIP)

    def body(updates: int) -> bytes:
        table = m.TableUpdate(1, "t", updates, (update,) * updates)
        return m.encode_server_message(m.TransactionUpdateLight(1, m.DatabaseUpdate((table,))))

    limit = len(body(2)) + 1500
    assert m.decode_server_message(body(1), max_message_size=limit)
    with pytest.raises(MessageTooLargeError):
        m.decode_server_message(body(2), max_message_size=limit)


def test_concatenated_gzip_members_decode_like_gzip_decompress() -> None:
    body = m.encode_server_message(IDENTITY)
    frame = b"\x02" + gzip.compress(body[:10]) + gzip.compress(body[10:])
    assert m.decode_server_frame(frame) == IDENTITY


@pytest.mark.parametrize(
    "frame",
    [
        b"\x02" + gzip.compress(m.encode_server_message(IDENTITY))[:-12],
        b"\x02" + gzip.compress(m.encode_server_message(IDENTITY)) + b"junk",
    ],
    ids=["truncated gzip", "gzip with trailing junk"],
)
def test_bad_gzip_is_a_decode_error(frame: bytes) -> None:
    with pytest.raises(DecodeError, match="gzip") as info:
        m.decode_server_frame(frame)
    assert not isinstance(info.value, MessageTooLargeError)


def test_truncated_brotli_is_a_decode_error() -> None:
    frame = frames_of(IDENTITY)["brotli"]
    with pytest.raises(DecodeError, match="brotli"):
        m.decode_server_frame(frame[:-3])


class _BrotliWithoutOutputLimit:
    """The shape of brotli < 1.2's Decompressor: process(data) and nothing to bound it."""

    def process(self, data: bytes) -> bytes:
        raise AssertionError("must not be called without an output limit")


def test_brotli_older_than_1_2_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    old_brotli = type("brotli", (), {"Decompressor": _BrotliWithoutOutputLimit})
    monkeypatch.setattr(m, "_brotli", lambda: old_brotli)
    with pytest.raises(DecodeError, match=r"brotli>=1\.2"):
        m.decode_server_frame(b"\x01" + bytes(10))
