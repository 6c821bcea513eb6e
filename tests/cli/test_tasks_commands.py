"""``tasks submit``, ``tasks list`` and ``tasks watch`` against a real server and a real worker."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from inner_universe.cli.tasks import is_status_change, status_line, watch_tasks
from inner_universe.cli.watching import Change
from inner_universe.features.delegation import TaskBoard, TaskContext, Worker, result_of, submit
from inner_universe.features.workflow import Workflow, submit_workflow
from inner_universe.spacetime.connection import connect
from tests.cli.runner import assert_one_line_error, on
from tests.cli.test_processes import Lines, running
from tests.conftest import PublishedDatabase, until

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
    with running(*where, "tasks", "watch", "--count", "4", "--json") as watch:
        Lines(watch.stderr).wait_for("watching tasks")  # type: ignore[arg-type]
        with doubler(universe_db):
            submitted = on(universe_db, "tasks", "submit", "double", '{"x": 21}', "--json")
            assert submitted.exit_code == 0, submitted.output
            task_id = json.loads(submitted.stdout)["task"]
            stdout, _ = watch.communicate(timeout=60)
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


async def test_watch_sees_anothers_task_until_it_finishes(
    fresh_db: PublishedDatabase, user_home: Path
) -> None:
    async with connect(fresh_db.uri, fresh_db.name) as other:
        await other.subscribe("SELECT * FROM agent")  # an agent offering `double`, not working
        await other.reducers.register_agent("idle doubler", "worker", b"")
        idle = next(a for a in other.db.agent.iter() if a.name == "idle doubler")
        await other.reducers.set_agent_capabilities(idle.id, ["double"])
        with doubler(fresh_db):
            assert await result_of(other, await submit(other, "double", {"x": 1})) == 2
        queued = await submit(other, "double", {"x": 21})  # waits: nobody works on it
        changes: list[Change] = []
        rows_at_start: list[int] = []
        async with fresh_db.universe() as universe:  # another identity than the submitter
            watching = asyncio.ensure_future(
                watch_tasks(universe, changes.append, 3, lambda _, rows: rows_at_start.append(rows))
            )
            await until(lambda: rows_at_start or watching.done())
            with doubler(fresh_db):
                await asyncio.wait_for(watching, 30)
    assert rows_at_start == [1]  # the queued task; the finished one never reached the watch
    assert [(c.kind, c.row.id, c.row.status) for c in changes] == [
        ("update", queued, "claimed"),
        ("update", queued, "running"),
        ("delete", queued, "running"),  # it finished, and left
    ]
    assert status_line(changes[-1], changes[-1].at).endswith(
        f"task #{queued} double: running -> finished; not yours, so no longer watched (attempt 1)"
    )


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


def test_a_workflow_dag_followed_to_its_end(
    universe_db: PublishedDatabase, user_home: Path
) -> None:
    with doubler(universe_db):
        pass  # its agent now offers `double`: the workflow may name it, and waits for a worker

    async def submit_two_steps() -> int:
        wf = Workflow("twice")
        first = wf.step("first", "double", {"x": 1})
        wf.step("second", "double", {"x": 2}, needs=[first])
        async with connect(universe_db.uri, universe_db.name) as conn:
            return (await submit_workflow(conn, wf)).id

    workflow_id = asyncio.run(submit_two_steps())
    shown = on(universe_db, "tasks", "workflow", str(workflow_id))
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == f"workflow {workflow_id} 'twice': running, 2 open steps"
    assert "queued" in lines[1] and "needs first" in lines[2] and "no task yet" in lines[2]

    where = ("--uri", universe_db.uri, "-d", universe_db.name)
    with running(*where, "tasks", "workflow", str(workflow_id), "--follow") as follow:
        lines = Lines(follow.stdout)  # type: ignore[arg-type]
        lines.wait_for("needs first")
        with doubler(universe_db):
            live = lines.wait_for("] second: ")  # a step change, printed as it commits
            end = lines.wait_for("succeeded: ")
            assert follow.wait(timeout=60) == 0, follow.stderr.read()  # type: ignore[union-attr]

    assert "-> " in live
    assert end == f'workflow {workflow_id} succeeded: {{"first": 2, "second": 4}}'

    done = on(universe_db, "tasks", "workflow", str(workflow_id), "--json")
    state = json.loads(done.stdout.splitlines()[0])
    assert state["workflow"]["status"] == "succeeded"
    assert [(s["name"], s["task_status"]) for s in state["steps"]] == [
        ("first", "succeeded"),
        ("second", "succeeded"),
    ]
    assert_one_line_error(on(universe_db, "tasks", "workflow", "999999"), "no workflow")


def test_a_failed_workflow_is_a_one_line_error(
    universe_db: PublishedDatabase, user_home: Path
) -> None:
    async def submit_a_bad_step() -> int:
        wf = Workflow("doomed")
        wf.step("bad", "double", {"x": "not a number"}, max_attempts=1)
        async with connect(universe_db.uri, universe_db.name) as conn:
            return (await submit_workflow(conn, wf)).id

    with doubler(universe_db):
        workflow_id = asyncio.run(submit_a_bad_step())
        followed = on(universe_db, "tasks", "workflow", str(workflow_id), "--follow")
    assert_one_line_error(followed, f"workflow {workflow_id} failed")
    # The step's end: a live change line, or the DAG if it ended before the command attached.
    last = followed.stdout.splitlines()[-1]
    assert "bad" in last and "failed" in last, followed.stdout


async def all_succeeded(db: PublishedDatabase, ids: list[int]) -> None:
    """Wait until these tasks (another identity's: followed by id) have succeeded."""
    async with connect(db.uri, db.name) as conn:
        board = await TaskBoard.of(conn)
        for task_id in ids:
            await board.follow_task(task_id)

        def done() -> bool:
            rows = [conn.db.task.find("id", i) for i in ids]
            return all(row is not None and row.status == "succeeded" for row in rows)

        await board.until(done, timeout=30)


def test_forget_and_prune_finished_tasks(universe_db: PublishedDatabase, user_home: Path) -> None:
    with doubler(universe_db):
        submitted = [
            on(universe_db, "tasks", "submit", "double", f'{{"x": {n}}}', "--json")
            for n in range(3)
        ]
        ids = [json.loads(result.stdout)["task"] for result in submitted]
        asyncio.run(all_succeeded(universe_db, ids))

    forgot = on(universe_db, "tasks", "forget", str(ids[0]))
    assert forgot.exit_code == 0, forgot.output
    assert forgot.stdout.strip() == "forgot 1 task"
    # All or nothing: one id that may not be forgotten, and the others stay too.
    assert_one_line_error(
        on(universe_db, "tasks", "forget", str(ids[1]), str(ids[0])),
        f"task {ids[0]} is not one you submitted",
    )
    assert_one_line_error(on(universe_db, "tasks", "forget", "--workflow", "999999"), "workflow")
    assert_one_line_error(on(universe_db, "tasks", "prune"), "--finished")

    pruned = on(universe_db, "tasks", "prune", "--finished", "--batch", "1")
    assert pruned.exit_code == 0, pruned.output
    assert pruned.stdout.strip() == "forgot 2 finished tasks and workflows"
    assert [line.strip() for line in pruned.stderr.splitlines()] == ["forgot 1/2", "forgot 2/2"]
    listed = on(universe_db, "tasks", "list", "--json")
    assert not {json.loads(line)["id"] for line in listed.stdout.splitlines()} & set(ids)
    again = on(universe_db, "tasks", "prune", "--finished")
    assert again.stdout.strip() == "forgot 0 finished tasks and workflows"
