"""Forgetting what is finished: the caller's finished tasks and workflows, in batches.

Finished rows stay stored until their submitter forgets them, and count against
its quota (docs/security.md, "Limits and quotas"). :func:`forget_finished` finds
them on the board (which holds everything this identity submitted) and forgets
them a batch of calls at a time. A workflow's step tasks go with their workflow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...errors import UsageError
from ...spacetime.connection import DbConnection
from .board import RUNNING_WORKFLOW, TaskBoard
from .errors import TaskRefused
from .tasks import FINISHED

__all__ = [
    "FORGET_BATCH",
    "Finished",
    "finished",
    "forget_each",
    "forget_finished",
    "why_not_forgotten",
]

FORGET_BATCH = 100
"""Forget calls sent together before waiting for their outcomes."""


@dataclass(frozen=True, slots=True)
class Finished:
    """The ids of the caller's finished tasks (not workflow steps) and workflows."""

    tasks: list[int]
    workflows: list[int]

    def __len__(self) -> int:
        return len(self.tasks) + len(self.workflows)


async def finished(conn: DbConnection) -> Finished:
    """What :func:`forget_finished` would forget now, oldest first."""
    await TaskBoard.of(conn)
    me = conn.identity
    tasks = sorted(
        row.id
        for row in conn.db.task.iter()
        if row.submitter == me and row.status in FINISHED and not row.step_id
    )
    workflows = sorted(
        row.id
        for row in conn.db.workflow.iter()
        if row.submitter == me and row.status != RUNNING_WORKFLOW
    )
    return Finished(tasks, workflows)


def why_not_forgotten(conn: DbConnection, table: str, row_id: int) -> str | None:
    """Why the caller may not forget this task (or workflow) now; None if it may."""
    kind = "workflow" if table == "workflow" else "task"
    row = conn.db[table].find("id", row_id)
    if row is None or row.submitter != conn.identity:
        return f"{kind} {row_id} is not one you submitted (or there is no such {kind})"
    if kind == "task" and row.step_id:
        return f"task {row_id} is a workflow's step; forget the workflow instead"
    unfinished = (
        row.status == RUNNING_WORKFLOW if kind == "workflow" else row.status not in FINISHED
    )
    if unfinished:
        return f"{kind} {row_id} is {row.status}; only a finished {kind} can be forgotten"
    return None


async def forget_each(
    conn: DbConnection,
    ids: Sequence[int],
    *,
    workflows: bool = False,
    batch: int = FORGET_BATCH,
    progress: Callable[[int, int], object] | None = None,
) -> int:
    """Forget these finished tasks (or workflows) of the caller's; all of them or none.

    Every id is checked on the board first: if one may not be forgotten,
    :class:`~inner_universe.features.delegation.TaskRefused` names each such id
    and nothing is forgotten.
    """
    table, reducer = ("workflow", "forget_workflow") if workflows else ("task", "forget_task")
    board = await TaskBoard.of(conn)
    problems = [p for i in dict.fromkeys(ids) if (p := why_not_forgotten(conn, table, i))]
    if problems:
        raise TaskRefused(reducer, "; ".join(problems))
    return await _in_batches(board, [(reducer, i) for i in dict.fromkeys(ids)], batch, progress)


async def forget_finished(
    conn: DbConnection,
    *,
    batch: int = FORGET_BATCH,
    progress: Callable[[int, int], object] | None = None,
) -> int:
    """Forget every finished task and workflow the caller submitted; returns how many.

    Calls go ``batch`` at a time; ``progress(done, total)`` runs after each batch.
    A refusal (say, another process forgot one first) raises
    :class:`~inner_universe.features.delegation.TaskRefused` after its batch.
    """
    board = await TaskBoard.of(conn)
    found = await finished(conn)
    calls = [("forget_task", i) for i in found.tasks]
    calls += [("forget_workflow", i) for i in found.workflows]
    return await _in_batches(board, calls, batch, progress)


async def _in_batches(
    board: TaskBoard,
    calls: list[tuple[str, int]],
    batch: int,
    progress: Callable[[int, int], object] | None,
) -> int:
    """Send the forget calls ``batch`` at a time, waiting for each batch's outcomes."""
    if batch < 1:
        raise UsageError(f"batch must be at least 1, not {batch}")
    for start in range(0, len(calls), batch):
        chunk = calls[start : start + batch]
        await asyncio.gather(*(board.call(reducer, row_id) for reducer, row_id in chunk))
        if progress is not None:
            progress(start + len(chunk), len(calls))
    return len(calls)
