"""Stored workflows against the real server: parallel steps across processes, failures, cycles."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from inner_universe.features.delegation import (
    DelegationNotAllowed,
    TaskBoard,
    TaskContext,
    TaskRefused,
    Worker,
    allow_delegation,
)
from inner_universe.features.delegation.processes import WorkerProcess
from inner_universe.features.delegation.tasks import task_spec
from inner_universe.features.workflow import (
    StepProgress,
    Workflow,
    WorkflowCycleError,
    WorkflowFailed,
    WorkflowRun,
    submit_workflow,
)
from inner_universe.spacetime.connection import connect
from inner_universe.spacetime.events import EventContext
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration


async def test_a_diamonds_middle_steps_run_at_once_in_different_processes(
    universe_db: PublishedDatabase,
) -> None:
    workers = await asyncio.gather(
        *(
            WorkerProcess.start(
                universe_db.uri,
                universe_db.name,
                f"diamond-{i}",
                ["diamond"],
                "tests.features.delegation.handlers:diamond",
                history=False,
            )
            for i in range(2)
        )
    )
    try:
        async with (
            connect(universe_db.uri, universe_db.name) as conn,
            connect(universe_db.uri, universe_db.name) as observer,
        ):
            # Another connection watches every transaction, from before the submission.
            running_meets: list[set[int]] = []
            observer_board = await TaskBoard.of(observer)

            def record(_ctx: EventContext) -> None:
                meets = [t for t in observer.db.task.iter() if t.kind == "meet"]
                running_meets.append({t.id for t in meets if t.status == "running"})

            observer.on_transaction(record)

            wf = Workflow("diamond")
            a = wf.step("a", "diamond")
            b = wf.step("b", "diamond", kind="meet", needs=[a])
            c = wf.step("c", "diamond", kind="meet", needs=[a])
            wf.step("d", "diamond", needs=[b, c])
            run = await submit_workflow(conn, wf)
            results = await run.wait(timeout=60)

            # The observer follows the same workflow to its end.
            watched = await WorkflowRun.attach(observer, run.id)
            await observer_board.until(lambda: watched.row.status == "succeeded", timeout=15)
            assert [(s.name, s.status) for s in watched.progress()] == [
                ("a", "succeeded"),
                ("b", "succeeded"),
                ("c", "succeeded"),
                ("d", "succeeded"),
            ]
            board = await TaskBoard.of(conn)
            middle = [board.task(s.task_id) for s in run.progress() if s.name in ("b", "c")]
    finally:
        for worker in workers:
            await worker.stop()

    # b and c were taken by different processes, and d got both their results.
    assert len({t.claimed_by for t in middle}) == 2
    assert results["b"]["pid"] != results["c"]["pid"]
    assert results["d"]["inputs"] == ["b", "c"]
    assert results["b"]["inputs"] == ["a"]
    # The observer saw b and c running at the same moment.
    assert {t.id for t in middle} in running_meets


async def test_a_failed_step_fails_the_workflow_and_cancels_what_needs_it(
    universe_db: PublishedDatabase,
) -> None:
    async def handler(task: TaskContext) -> Any:
        if task.kind == "fragile":
            raise RuntimeError("no luck")
        return task.kind

    async with (
        connect(universe_db.uri, universe_db.name) as worker_conn,
        Worker(worker_conn, "wf-runner", ["steps"], handler, concurrency=2, history=False),
        connect(universe_db.uri, universe_db.name) as conn,
    ):
        wf = Workflow("partly broken")
        a = wf.step("a", "steps")
        b = wf.step("b", "steps", kind="fragile", needs=[a], max_attempts=2, backoff=0.1)
        wf.step("c", "steps", needs=[a])
        wf.step("d", "steps", needs=[b])
        wf.step("e", "steps", needs=["d"])
        run = await submit_workflow(conn, wf)
        with pytest.raises(
            WorkflowFailed, match="step 'b' failed: RuntimeError: no luck"
        ) as failed:
            await run.wait(timeout=30)
        assert failed.value.steps == {
            "a": "succeeded",
            "b": "failed",
            "c": "succeeded",  # an independent branch goes on
            "d": "cancelled",
            "e": "cancelled",
        }
        progress = {s.name: s for s in run.progress()}
        assert progress["d"].error == "needs step 'b', which did not succeed"
        assert progress["e"].task_id == 0  # never became a task
        assert (await TaskBoard.of(conn)).task(progress["b"].task_id).attempts == 2


async def test_a_cycle_is_rejected_before_anything_is_stored(
    universe_db: PublishedDatabase,
) -> None:
    async with (
        connect(universe_db.uri, universe_db.name) as worker_conn,
        Worker(worker_conn, "cycle-runner", ["cycle"], _noop, history=False),
        connect(universe_db.uri, universe_db.name) as conn,
    ):
        board = await TaskBoard.of(conn)
        before = (conn.db.workflow.count(), conn.db.task.count())
        wf = Workflow("circular")
        wf.step("a", "cycle", needs=["c"])
        wf.step("b", "cycle", needs=["a"])
        wf.step("c", "cycle", needs=["b"])
        with pytest.raises(WorkflowCycleError, match="workflow 'circular' has a cycle"):
            await submit_workflow(conn, wf)

        # The module refuses a cycle too, if a client skips the Python check.
        spec = task_spec(board, "cycle", None)
        steps = [
            {"name": "a", "spec": spec, "needs": [1]},
            {"name": "b", "spec": spec, "needs": [0]},
        ]
        with pytest.raises(TaskRefused, match="needs position 1, which is not before it"):
            await board.call("submit_workflow", 1, "circular", 0, steps)
        assert (conn.db.workflow.count(), conn.db.task.count()) == before


async def test_a_workflow_is_checked_against_the_delegation_rules_before_it_is_stored(
    universe_db: PublishedDatabase,
) -> None:
    async with (
        connect(universe_db.uri, universe_db.name) as worker_conn,
        Worker(worker_conn, "rules-runner", ["allowed", "forbidden"], _noop, history=False),
        connect(universe_db.uri, universe_db.name) as conn,
    ):
        board = await TaskBoard.of(conn)
        await conn.call_reducer("register_agent", "wf-planner", "planning", b"")
        planner = board.agent("wf-planner").id
        await allow_delegation(conn, "wf-planner", "allowed")
        wf = Workflow("mixed")
        first = wf.step("first", "allowed")
        wf.step("later", "forbidden", needs=[first])  # waits, but is checked now
        before = (conn.db.workflow.count(), conn.db.task.count())
        with pytest.raises(DelegationNotAllowed, match="capability 'forbidden'"):
            await submit_workflow(conn, wf, from_agent=planner)
        assert (conn.db.workflow.count(), conn.db.task.count()) == before


async def _noop(task: TaskContext) -> None:
    return None


async def test_progress_is_visible_live_to_another_connection(
    universe_db: PublishedDatabase,
) -> None:
    gate = asyncio.Event()

    async def handler(task: TaskContext) -> str:
        if task.kind == "gated":
            await gate.wait()  # nothing finishes until the watcher is in place
        return task.kind

    async with (
        connect(universe_db.uri, universe_db.name) as worker_conn,
        Worker(worker_conn, "gatekeeper", ["gates"], handler, history=False),
        connect(universe_db.uri, universe_db.name) as conn,
        connect(universe_db.uri, universe_db.name) as observer,
    ):
        wf = Workflow("gated")
        first = wf.step("first", "gates", kind="gated")
        wf.step("second", "gates", needs=[first])
        run = await submit_workflow(conn, wf)

        seen: list[list[StepProgress]] = []
        watched = await WorkflowRun.attach(observer, run.id)
        watched.watch(seen.append)
        gate.set()
        await run.wait(timeout=15)
        await watched.board.until(lambda: watched.row.status == "succeeded", timeout=15)

    states = [tuple((s.name, s.status, s.task_status) for s in progress) for progress in seen]
    assert (("first", "succeeded", "succeeded"), ("second", "ready", "queued")) in states
    assert states[-1] == (("first", "succeeded", "succeeded"), ("second", "succeeded", "succeeded"))
