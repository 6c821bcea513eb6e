"""How rows and changes read in the terminal."""

from __future__ import annotations

from dataclasses import dataclass

from inner_universe.cli.render import change_line, jsonable, row_text, value_text
from inner_universe.spacetime.types import Identity, Timestamp

EPOCH = Timestamp(0)


@dataclass(frozen=True)
class Message:
    id: int
    role: str
    content: str
    embedding: bytes
    author: Identity
    updated_at: Timestamp = EPOCH


AUTHOR = Identity.from_hex("c2" * 32)
LATER = Timestamp(1_500_000)


def test_a_row_reads_with_its_id_first_and_without_timestamps() -> None:
    row = Message(3, "user", "hello", b"\x00\x01", AUTHOR)
    assert row_text("message", row) == (
        "message #3 role='user' content='hello' embedding=<2 bytes> author=c2c2c2c2"
    )
    assert value_text(LATER) == "1970-01-01 00:00:01.500"


def test_long_text_is_cut() -> None:
    text = row_text("message", Message(1, "user", "x" * 500, b"", AUTHOR))
    assert "x" * 59 + "…'" in text and "x" * 60 not in text


def test_changes_are_signed_and_appends_show_the_delta() -> None:
    old = Message(3, "assistant", "The ", b"", AUTHOR)
    new = Message(3, "assistant", "The SDK ", b"", AUTHOR, LATER)
    assert change_line("insert", "message", old).startswith("+ message #3 ")
    assert change_line("delete", "message", old).startswith("- message #3 ")
    assert change_line("update", "message", new, old) == "~ message #3 content += 'SDK '"
    moved = Message(3, "tool", "The SDK ", b"", AUTHOR, LATER)
    assert change_line("update", "message", moved, new) == (
        "~ message #3 role: 'assistant' -> 'tool'"
    )
    touched = Message(3, "tool", "The SDK ", b"", AUTHOR, Timestamp(2_500_000))
    assert change_line("update", "message", touched, moved) == (
        "~ message #3 updated_at: 1970-01-01 00:00:01.500 -> 1970-01-01 00:00:02.500"
    )


def test_json_keeps_identities_as_text_and_bytes_as_hex() -> None:
    row = Message(3, "user", "hi", b"\xff", AUTHOR)
    assert jsonable(row) == {
        "id": 3,
        "role": "user",
        "content": "hi",
        "embedding": "ff",
        "author": str(AUTHOR),
        "updated_at": str(Timestamp(0)),
    }
