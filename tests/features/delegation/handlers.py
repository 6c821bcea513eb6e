"""Task handlers the tests run in worker processes (``tests.features.delegation.handlers:x``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from inner_universe.features.delegation import TaskContext
from inner_universe.features.delegation.tasks import RUNNING, SUCCEEDED


async def echo(task: TaskContext) -> dict[str, Any]:
    return {"payload": task.payload, "pid": os.getpid(), "task": task.id}


async def hang_on_first_attempt(task: TaskContext) -> dict[str, Any]:
    """Never finishes its first attempt (the test kills it); later attempts succeed."""
    if task.attempt == 1:
        await asyncio.Event().wait()
    return {"pid": os.getpid(), "attempt": task.attempt}


async def diamond(task: TaskContext) -> dict[str, Any]:
    """Steps of kind "meet" finish only once every "meet" step of the workflow is running
    (or has finished, which it could only do after seeing this one running).

    So the workflow can only succeed if those steps run at the same time; with one
    task at a time per worker, that means in different processes.
    """
    if task.kind == "meet":
        db = task.board.conn.db
        step = db.workflow_step.find("id", task.row.step_id)
        siblings = [
            s
            for s in db.workflow_step.filter("workflow_id", step.workflow_id)
            if s.spec.kind == "meet"
        ]

        def all_running() -> bool:
            tasks = [task.board.task(s.task_id) for s in siblings]
            return all(t is not None and t.status in (RUNNING, SUCCEEDED) for t in tasks)

        await task.until(all_running, timeout=30)
    return {"step": task.kind, "inputs": sorted(task.inputs), "pid": os.getpid()}
