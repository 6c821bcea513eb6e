"""``chat`` through typer's test runner, against a real server, with the offline provider."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import time
from pathlib import Path

import pytest

from tests.cli.runner import assert_one_line_error, on
from tests.cli.test_processes import COMMAND
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


def test_a_person_typing_in_a_terminal(universe_db: PublishedDatabase, user_home: Path) -> None:
    """A real process on a pseudo-terminal: a prompt, the reply, Ctrl-D ends it with status 0."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the command, as a shell would start it
        os.execv(COMMAND, [str(COMMAND), "--uri", universe_db.uri, "-d", universe_db.name, "chat"])
    seen = b""

    def read_until(fragment: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while fragment not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([terminal], [], [], 1)[0]:
                seen += os.read(terminal, 4096)

    status = None
    try:
        read_until(b"> ")
        assert b"with offline/echo; Ctrl-D ends it" in seen
        os.write(terminal, b"hello from a terminal\n")
        read_until(b"You said: hello from a terminal\r\n> ")
        os.write(terminal, b"\x04")  # Ctrl-D: end of input
        deadline = time.monotonic() + 30
        while status is None and time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.5)[0]:
                with contextlib.suppress(OSError):  # the terminal closes as the process ends
                    seen += os.read(terminal, 4096)
            done, code = os.waitpid(pid, os.WNOHANG)
            status = code if done else None
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(terminal)
    assert status is not None and os.waitstatus_to_exitcode(status) == 0, seen
    assert b"Traceback" not in seen
