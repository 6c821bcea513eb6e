"""Delegation and workflows on one connection, as one object (``universe.tasks``).

The functions of :mod:`.delegate` and :mod:`..workflow.remote` take the
connection first; :class:`Tasks` binds it, so a program holding a Universe
writes ``await universe.tasks.delegate("summarise", {...})``. The task tables
are subscribed on first use (one :class:`TaskBoard` per connection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...spacetime.connection import DbConnection
from .board import TaskBoard
from .delegate import allow_delegation, cancel, delegate, forget, result_of, submit
from .retention import FORGET_BATCH, forget_finished

if TYPE_CHECKING:
    from ..workflow import Workflow, WorkflowRun

__all__ = ["Tasks"]


class Tasks:
    """Submit tasks, wait for their results, cancel them, run and follow workflows."""

    def __init__(self, conn: DbConnection) -> None:
        self.conn = conn

    async def board(self) -> TaskBoard:
        """The connection's live replica of the delegation tables (subscribed once)."""
        return await TaskBoard.of(self.conn)

    async def list(self) -> list[Any]:
        """Every task this identity may see, oldest first (one query; the board holds fewer)."""
        rows = (await self.conn.one_off_query("SELECT * FROM task")).get("task", [])
        return sorted(rows, key=lambda row: row.id)

    async def submit(self, to: str, payload: Any, **options: Any) -> int:
        """Submit a task for ``to`` (a capability, or ``@name``); see :func:`.submit`."""
        return await submit(self.conn, to, payload, **options)

    async def delegate(
        self, to: str, payload: Any, *, timeout: float | None = None, **options: Any
    ) -> Any:
        """Submit a task and return its result (raises TaskFailed if it failed)."""
        return await delegate(self.conn, to, payload, timeout=timeout, **options)

    async def result(self, task_id: int, timeout: float | None = None) -> Any:
        """Wait for a task to finish and return its result."""
        return await result_of(self.conn, task_id, timeout)

    async def cancel(self, task_id: int, reason: str = "cancelled") -> None:
        await cancel(self.conn, task_id, reason)

    async def forget(self, task_id: int) -> None:
        """Delete a finished task you submitted (see :func:`.forget`)."""
        await forget(self.conn, task_id)

    async def forget_workflow(self, workflow_id: int) -> None:
        """Delete a finished workflow you submitted, with its steps and their tasks."""
        from ..workflow import forget_workflow

        await forget_workflow(self.conn, workflow_id)

    async def forget_finished(
        self, *, batch: int = FORGET_BATCH, progress: Callable[[int, int], object] | None = None
    ) -> int:
        """Forget all your finished tasks and workflows; how many (see :func:`.forget_finished`)."""
        return await forget_finished(self.conn, batch=batch, progress=progress)

    async def allow_delegation(self, agent: str | int, to: str) -> None:
        """Let one of your agents delegate to ``to`` (see :func:`.allow_delegation`)."""
        await allow_delegation(self.conn, agent, to)

    async def run_workflow(
        self, workflow: Workflow, *, from_agent: str | int | None = None
    ) -> WorkflowRun:
        """Store ``workflow`` and start it; follow it with the returned run."""
        from ..workflow import submit_workflow

        return await submit_workflow(self.conn, workflow, from_agent=from_agent)

    async def workflow(self, workflow_id: int) -> WorkflowRun:
        """Follow a stored workflow (submitted by any process)."""
        from ..workflow import WorkflowRun

        return await WorkflowRun.attach(self.conn, workflow_id)
