"""The command as a person runs it: real processes, a real server, Ctrl-C at the end."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from inner_universe.home import data_home, ping
from inner_universe.spacetime.connection import ConnectionBuilder
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration

COMMAND = Path(sys.executable).with_name("inner-universe")
"""The console script pip installed: running it proves the entry point resolves."""


class Lines:
    """Reads a process's output on a thread, so a test can wait for a line with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, fragment: str, timeout: float = 60.0) -> str:
        while True:
            line = self._queue.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"output ended without {fragment!r}: {self.seen}")
            self.seen.append(line)
            if fragment in line:
                return line


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMMAND), *args], capture_output=True, text=True, timeout=60, check=False
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextmanager
def running(
    *args: str, stderr: int = subprocess.PIPE, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``inner-universe *args`` as its own process, killed at the end if it is still running."""
    proc = subprocess.Popen(
        [str(COMMAND), *args], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextmanager
def started_up() -> Iterator[tuple[subprocess.Popen[str], Lines, str]]:
    """``inner-universe up`` in the foreground of its own process, with its URI once it is up."""
    assert COMMAND.is_file(), f"{COMMAND} is missing: run scripts/setup"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with running("up", stderr=subprocess.STDOUT, env=env) as proc:
        lines = Lines(proc.stdout)  # type: ignore[arg-type]
        yield proc, lines, lines.wait_for("http://").split()[0]


def test_up_status_down_up_again_then_ctrl_c(user_home: Path) -> None:
    with started_up() as (proc, _, uri):
        status = run("status", "--json")
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert info["uri"] == uri and info["local"] is True and info["pid"] == proc.pid
        assert info["module"] == info["module_of_this_checkout"]
        assert set(info["tables"]) >= {"agent", "conversation", "message", "session"}

        again = run("up")
        assert again.returncode == 0 and "already running" in again.stdout

        builder = ConnectionBuilder().with_uri(uri).with_database("inner-universe")
        with builder.connect_threaded() as conn:
            conn.reducers.register_agent("survivor", "testing", b"")
        down = run("down")
        assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
        assert proc.wait(timeout=30) == 0
        assert run("status").returncode == 3

    with started_up() as (proc, lines, uri):  # the same data directory: the agent is still there
        rows = run("sql", "SELECT * FROM agent", "--json")
        assert rows.returncode == 0, rows.stderr
        names = [json.loads(line)["row"]["name"] for line in rows.stdout.splitlines()]
        assert names == ["survivor"]
        server_pid = json.loads((data_home() / "server.json").read_text())["server_pid"]

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=30) == 0
        lines.wait_for("stopped")
    assert not alive(server_pid), "the server outlived `up`"
    assert not ping(uri)
    assert not (data_home() / "server.json").exists()


WATCH_MESSAGES = ("watch", "message", "--count", "3")


def test_watch_prints_changes_as_they_commit(universe_db: PublishedDatabase) -> None:
    where = ("--uri", universe_db.uri, "-d", universe_db.name)
    with running(*where, *WATCH_MESSAGES) as proc:
        Lines(proc.stderr).wait_for("watching SELECT * FROM message")  # type: ignore[arg-type]
        builder = ConnectionBuilder().with_uri(universe_db.uri).with_database(universe_db.name)
        with builder.connect_threaded() as conn:
            conn.subscribe("SELECT * FROM conversation", "SELECT * FROM message")
            conn.reducers.create_conversation("watched")
            convo = next(c for c in conn.db.conversation.iter() if c.title == "watched")
            conn.reducers.post_message(convo.id, "assistant", "The ")
            (message,) = conn.db.message.filter("conversation_id", convo.id)
            conn.reducers.append_message(message.id, "SDK ")
            conn.reducers.append_message(message.id, "first.")
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    # "  [  0.12s] c200d493.post_message    + message #1 ...": who, then the change
    lines = [re.fullmatch(r"\s*\[[ \d.]+s\] (\S+)\s+(.*)", line) for line in out.splitlines()]
    assert all(lines), out
    assert [m.group(1).split(".")[1] for m in lines if m] == [
        "post_message",
        "append_message",
        "append_message",
    ]
    changes = [m.group(2) for m in lines if m]
    assert changes[0].startswith("+ message #")
    assert "content='The '" in changes[0]
    assert changes[1].endswith("content += 'SDK '")
    assert changes[2].endswith("content += 'first.'")


def test_ctrl_c_ends_watch_quietly(universe_db: PublishedDatabase) -> None:
    with running("--uri", universe_db.uri, "-d", universe_db.name, "watch", "agent") as proc:
        assert "watching SELECT * FROM agent" in proc.stderr.readline()  # type: ignore[union-attr]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out == "" and err == ""
