"""``tasks submit``, ``tasks list`` and ``tasks watch`` against a real server and a real worker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from inner_universe.cli.tasks import is_status_change, status_line
from inner_universe.cli.watching import Change
from inner_universe.features.delegation import TaskContext, Worker
from inner_universe.spacetime.connection import connect
from tests.cli.runner import assert_one_line_error, on
from tests.cli.test_processes import COMMAND, Lines
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration


async def double(task: TaskContext) -> int:
    return int(task.payload["x"]) * 2


@contextmanager
def doubler(db: PublishedDatabase) -> Iterator[None]:
    """A worker offering ``double``, on its own thread and event loop, for the test's duration."""
    started, stop = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    async def main() -> None:
        async with connect(db.uri, db.name) as conn:
            worker = Worker(conn, "doubler", ["double"], double, history=False)
            async with worker:
                started.set()
                await asyncio.to_thread(stop.wait)

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            failed.append(exc)
            started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30) and not failed, failed
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def test_submit_watch_and_list(universe_db: PublishedDatabase, user_home: Path) -> None:
    where = ("--uri", universe_db.uri, "-d", universe_db.name)
    watch = subprocess.Popen(
        [str(COMMAND), *where, "tasks", "watch", "--count", "4", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        Lines(watch.stderr).wait_for("watching tasks")  # type: ignore[arg-type]
        with doubler(universe_db):
            submitted = on(universe_db, "tasks", "submit", "double", '{"x": 21}', "--json")
            assert submitted.exit_code == 0, submitted.output
            task_id = json.loads(submitted.stdout)["task"]
            stdout, _ = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0
    changes = [json.loads(line) for line in stdout.splitlines()]
    assert [(c["kind"], c["row"]["id"], c["row"]["status"]) for c in changes] == [
        ("insert", task_id, "queued"),
        ("update", task_id, "claimed"),
        ("update", task_id, "running"),
        ("update", task_id, "succeeded"),
    ]
    assert changes[-1]["row"]["result"] == 42 and changes[0]["row"]["payload"] == {"x": 21}

    listed = on(universe_db, "tasks", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["id"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert rows[task_id]["status"] == "succeeded" and rows[task_id]["result"] == 42
    table = on(universe_db, "tasks", "list").stdout
    assert "double" in table and "succeeded" in table and "1/3" in table


def test_bad_input(universe_db: PublishedDatabase, user_home: Path) -> None:
    assert_one_line_error(on(universe_db, "tasks", "submit", "double", "{x"), "not JSON")
    assert_one_line_error(on(universe_db, "tasks", "submit", "@nobody-here", "{}"), "nobody-here")


def test_a_status_change_reads_as_one_line() -> None:
    old = SimpleNamespace(id=3, status="queued", attempts=0)
    new = SimpleNamespace(id=3, status="claimed", attempts=1, error="", step_id=0,
                          capability="double", agent_id=0)  # fmt: skip
    change = Change("update", "task", new, "c200d493.claim_task", old, at=10.5)
    assert is_status_change(change)
    assert status_line(change, 10.0) == (
        f"  [  0.50s] {'c200d493.claim_task':28} task #3 double: queued -> claimed (attempt 1)"
    )
    heartbeat = Change("update", "task", new, "c200d493.heartbeat_task", new, at=11.0)
    assert not is_status_change(heartbeat)
