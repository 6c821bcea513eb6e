"""``chat`` through typer's test runner, against a real server, with the offline provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.runner import assert_one_line_error, on
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration


def test_lines_from_stdin_get_streamed_replies(
    universe_db: PublishedDatabase, user_home: Path
) -> None:
    result = on(universe_db, "chat", input="hello there\n\nwhat next?\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["You said: hello there", "You said: what next?"]

    rows = on(universe_db, "sql", "SELECT * FROM message", "--json").stdout.splitlines()
    messages = [json.loads(line)["row"] for line in rows]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "hello there"),
        ("assistant", "You said: hello there"),
        ("user", "what next?"),
        ("assistant", "You said: what next?"),
    ]

    # --conversation continues it: the offline model answers the newest user line.
    conversation = str(messages[0]["conversation_id"])
    again = on(universe_db, "chat", "--conversation", conversation, input="and then?\n")
    assert again.exit_code == 0, again.output
    assert again.stdout == "You said: and then?\n"


def test_bad_input(universe_db: PublishedDatabase, user_home: Path) -> None:
    assert_one_line_error(on(universe_db, "chat", "-c", "999999", input="hi\n"), "999999")
    unknown = on(universe_db, "chat", "--model", "nowhere/none", input="hi\n")
    assert_one_line_error(unknown, "unknown model 'nowhere/none'")
