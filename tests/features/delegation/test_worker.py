"""Workers in separate processes against the real server: contention and crashes."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from inner_universe.features.delegation import StaleEpoch, TaskBoard, result_of, submit
from inner_universe.features.delegation.processes import WorkerProcess
from inner_universe.features.delegation.tasks import RUNNING, SUCCEEDED, pack, unpack
from inner_universe.spacetime.connection import connect
from inner_universe.spacetime.events import EventContext, ReducerEvent
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration

HANDLERS = "tests.features.delegation.handlers"
TASKS = 1000


async def test_each_task_goes_to_one_claimant_and_completes_once_under_contention(
    universe_db: PublishedDatabase,
) -> None:
    async with connect(universe_db.uri, universe_db.name) as conn:
        board = await TaskBoard.of(conn)
        completions: Counter[int] = Counter()
        succeeded: set[int] = set()

        def on_complete(_ctx: EventContext, event: ReducerEvent) -> None:
            if event.committed:
                completions[event.args["task_id"]] += 1

        def on_update(_ctx: EventContext, _old: Any, new: Any) -> None:
            if new.status == SUCCEEDED:
                succeeded.add(new.id)

        conn.on_reducer("complete_task", on_complete)
        conn.db.task.on_update(on_update)
        workers = await asyncio.gather(
            *(
                WorkerProcess.start(
                    universe_db.uri,
                    universe_db.name,
                    f"racer-{i}",
                    ["race"],
                    f"{HANDLERS}:echo",
                    concurrency=4,
                    history=False,
                )
                for i in range(3)
            )
        )
        try:
            ids = await asyncio.gather(*(submit(conn, "race", n) for n in range(TASKS)))
            await board.until(lambda: len(succeeded) == TASKS, timeout=120)
        finally:
            reports = [await worker.stop() for worker in workers]

    rows = [board.task(task_id) for task_id in ids]
    # One claim per task (epoch and attempts count claims), and the right result.
    assert {(row.epoch, row.attempts) for row in rows} == {(1, 1)}
    assert [unpack(row.result)["payload"] for row in rows] == list(range(TASKS))
    # Each completed once: by one worker's own account, and by the committed reducer calls.
    completed = [task_id for report in reports for task_id in report["completed"]]
    assert sorted(completed) == sorted(ids)
    assert completions == Counter(ids)
    # All three processes took part, each with its own identity's claims.
    assert {row.claimed_by for row in rows} == {worker.agent_id for worker in workers}


async def test_a_killed_workers_task_is_retaken_after_its_lease_and_its_late_report_refused(
    universe_db: PublishedDatabase,
) -> None:
    async with connect(universe_db.uri, universe_db.name) as conn:
        board = await TaskBoard.of(conn)
        started = await asyncio.gather(
            *(
                WorkerProcess.start(
                    universe_db.uri,
                    universe_db.name,
                    f"fragile-{i}",
                    ["fragile"],
                    f"{HANDLERS}:hang_on_first_attempt",
                )
                for i in range(2)
            )
        )
        workers = {worker.agent_id: worker for worker in started}
        try:
            task_id = await submit(conn, "fragile", "x", lease=2.0, backoff=0.1)

            def running() -> Any:
                row = board.task(task_id)
                return row if row is not None and row.status == RUNNING else None

            first = await board.until(running, timeout=30)
            victim = workers[first.claimed_by]
            await victim.kill()
            result = await result_of(conn, task_id, timeout=30)
            row = board.task(task_id)
            assert (row.status, row.epoch, row.attempts) == (SUCCEEDED, 2, 2)
            assert row.claimed_by != victim.agent_id
            assert result["attempt"] == 2 and result["pid"] != victim.pid

            # The killed worker's identity reports late, with the epoch it had: refused.
            async with connect(universe_db.uri, universe_db.name, token=victim.token) as late:
                late_board = await TaskBoard.of(late)
                with pytest.raises(StaleEpoch, match="epoch 1 no longer holds it"):
                    await late_board.call("complete_task", task_id, first.epoch, pack("late"))
                with pytest.raises(StaleEpoch):
                    await late_board.call("heartbeat_task", task_id, first.epoch)
            assert board.task(task_id) == row
        finally:
            for worker in started:
                await worker.stop()
