"""Stored workflows: submit a DAG of tasks to the module, and follow it live.

The module holds the readiness: completing a step's task starts the steps that
needed it in the same transaction, so any worker process takes them at once and
independent steps run in parallel. A :class:`WorkflowRun` is the live view of one
workflow on a connection; any process can follow any workflow with
:meth:`WorkflowRun.attach` (which subscribes to that workflow's rows: a board
holds only its own identity's workflows). A finished workflow stays stored, with
its steps and their tasks, until its submitter forgets it (:func:`forget_workflow`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...spacetime.connection import DbConnection
from ...spacetime.events import EventContext
from ..delegation.board import RUNNING_WORKFLOW as RUNNING
from ..delegation.board import Following, TaskBoard, new_ticket
from ..delegation.tasks import SUCCEEDED, agent_id, task_spec, unpack
from .dag import Workflow
from .errors import WorkflowFailed

__all__ = ["StepProgress", "WorkflowRun", "forget_workflow", "submit_workflow"]


@dataclass(frozen=True, slots=True)
class StepProgress:
    """Where one step is: its status, and its task's status once it has one."""

    name: str
    status: str
    task_id: int
    task_status: str
    error: str


async def submit_workflow(
    conn: DbConnection, workflow: Workflow, *, from_agent: str | int | None = None
) -> WorkflowRun:
    """Store ``workflow`` and start it; a cycle is refused before anything is sent."""
    steps = workflow.ordered()
    board = await TaskBoard.of(conn)
    position = {step.name: i for i, step in enumerate(steps)}
    new_steps = [
        {
            "name": step.name,
            "spec": task_spec(
                board,
                step.to,
                step.payload,
                kind=step.kind,
                max_attempts=step.max_attempts,
                lease=step.lease,
                backoff=step.backoff,
            ),
            "needs": [position[need] for need in step.needs],
        }
        for step in steps
    ]
    ticket = new_ticket()
    sender = agent_id(board, from_agent)
    await board.call("submit_workflow", ticket, workflow.name, sender, new_steps)
    return WorkflowRun(board, int(board.by_ticket("workflow", ticket).id))


async def forget_workflow(conn: DbConnection, workflow_id: int) -> None:
    """Delete a finished workflow of yours, with its steps and their tasks.

    Raises :class:`~inner_universe.features.delegation.TaskRefused` for a running
    workflow, someone else's, or an unknown id (nothing changes).
    """
    board = await TaskBoard.of(conn)
    await board.call("forget_workflow", workflow_id)


class WorkflowRun:
    """A stored workflow, followed live."""

    def __init__(
        self, board: TaskBoard, workflow_id: int, following: Following | None = None
    ) -> None:
        self.board = board
        self.id = workflow_id
        self.following = following

    @classmethod
    async def attach(cls, conn: DbConnection, workflow_id: int) -> WorkflowRun:
        """Follow a workflow (submitted by any process) from this connection.

        Subscribes to its rows until :meth:`close`.
        """
        board = await TaskBoard.of(conn)
        return cls(board, workflow_id, await board.follow_workflow(workflow_id))

    async def close(self) -> None:
        """Stop following an attached workflow (a no-op for one you submitted here)."""
        if self.following is not None:
            await self.following.close()
            self.following = None

    @property
    def row(self) -> Any:
        return self.board.conn.db.workflow.find("id", self.id)

    def progress(self) -> list[StepProgress]:
        """Every step's state now, in submission order."""
        rows = sorted(
            self.board.conn.db.workflow_step.filter("workflow_id", self.id),
            key=lambda s: s.position,
        )
        result = []
        for step in rows:
            task = self.board.task(step.task_id) if step.task_id else None
            result.append(
                StepProgress(
                    step.name,
                    step.status,
                    step.task_id,
                    task.status if task is not None else "",
                    step.error,
                )
            )
        return result

    def watch(self, callback: Callable[[list[StepProgress]], object]) -> Callable[[], None]:
        """Call ``callback(progress)`` after every transaction that touches this workflow.

        Returns a function that stops watching.
        """
        db = self.board.conn.db

        def on_transaction(ctx: EventContext) -> None:
            steps = ctx.diff["workflow_step"]
            changed = [*steps.inserts, *(new for _, new in steps.updates)]
            mine = {s.task_id for s in db.workflow_step.filter("workflow_id", self.id)}
            tasks = ctx.diff["task"]
            if any(s.workflow_id == self.id for s in changed) or any(
                new.id in mine for _, new in tasks.updates
            ):
                callback(self.progress())

        self.board.conn.on_transaction(on_transaction)
        return lambda: self.board.conn.remove_on_transaction(on_transaction)

    async def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """The steps' results by name once the workflow succeeds; :class:`WorkflowFailed` if not."""

        def finished() -> Any | None:
            row = self.row
            return row if row is not None and row.status != RUNNING else None

        row = await self.board.until(finished, timeout)
        steps = self.progress()
        if row.status != SUCCEEDED:
            raise WorkflowFailed(self.id, row.status, row.error, {s.name: s.status for s in steps})
        results = {}
        for step in steps:
            task = self.board.task(step.task_id)
            results[step.name] = unpack(task.result) if task is not None else None
        return results

    async def cancel(self, reason: str = "cancelled") -> None:
        """Cancel the workflow (submitter only): its running tasks stop, waiting steps end."""
        await self.board.call("cancel_workflow", self.id, reason)
