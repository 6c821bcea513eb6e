"""Handing work to other agents: submit a task, await its result.

``await delegate(conn, "summarise", {"text": ...})`` returns the result once
another process (any worker offering ``summarise``) completes the task, or raises
:class:`TaskFailed` with the task's error. A refused submission (unknown
capability, a payload over the limit, a delegation the rules do not allow, a
chain over its hop limit) raises a :class:`TaskRefused` subclass at once and
stores nothing.

A finished task stays stored (its result, for whoever waits) until its submitter
forgets it (:func:`forget`, or all at once with
:func:`~inner_universe.features.delegation.retention.forget_finished`), which gives
its quota back.
"""

from __future__ import annotations

from typing import Any

from ...spacetime.connection import DbConnection
from .board import TaskBoard, new_ticket
from .errors import TaskCancelled, TaskFailed
from .tasks import CANCELLED, FINISHED, SUCCEEDED, agent_id, target, task_spec, unpack

__all__ = ["allow_delegation", "cancel", "delegate", "forget", "result_of", "submit"]


async def submit(
    conn: DbConnection,
    to: str,
    payload: Any,
    *,
    kind: str = "task",
    from_agent: str | int | None = None,
    parent: int = 0,
    max_attempts: int = 3,
    lease: float = 30.0,
    backoff: float = 1.0,
    max_hops: int = 0,
) -> int:
    """Submit a task for ``to`` (a capability, or ``@name``); returns its id.

    ``from_agent`` names the caller's agent the task is delegated from (its
    delegation rules apply); ``parent`` is the task being run that this one
    is delegated from (one hop further down its chain).
    """
    board = await TaskBoard.of(conn)
    spec = task_spec(
        board,
        to,
        payload,
        kind=kind,
        max_attempts=max_attempts,
        lease=lease,
        backoff=backoff,
        max_hops=max_hops,
    )
    ticket = new_ticket()
    await board.call("submit_task", ticket, spec, agent_id(board, from_agent), parent)
    return int(board.by_ticket("task", ticket).id)


async def result_of(conn: DbConnection, task_id: int, timeout: float | None = None) -> Any:
    """Wait for a task to finish: its result, or :class:`TaskFailed` with its error."""
    board = await TaskBoard.of(conn)

    def finished() -> Any | None:
        row = board.task(task_id)
        return row if row is not None and row.status in FINISHED else None

    row = await board.until(finished, timeout)
    if row.status == SUCCEEDED:
        return unpack(row.result)
    if row.status == CANCELLED:
        raise TaskCancelled(task_id, row.status, row.error)
    raise TaskFailed(task_id, row.status, row.error)


async def delegate(
    conn: DbConnection,
    to: str,
    payload: Any,
    *,
    timeout: float | None = None,
    **options: Any,
) -> Any:
    """Submit a task and return its result (see :func:`submit` for ``options``)."""
    task_id = await submit(conn, to, payload, **options)
    return await result_of(conn, task_id, timeout)


async def cancel(conn: DbConnection, task_id: int, reason: str = "cancelled") -> None:
    """Cancel a task you submitted; its worker sees the cancellation and stops."""
    board = await TaskBoard.of(conn)
    await board.call("cancel_task", task_id, reason)


async def forget(conn: DbConnection, task_id: int) -> None:
    """Delete a finished task you submitted (its quota comes back).

    Raises :class:`TaskRefused` for an unfinished task, someone else's, a
    workflow's step (forget its workflow), or an unknown id; nothing changes.
    """
    board = await TaskBoard.of(conn)
    await board.call("forget_task", task_id)


async def allow_delegation(conn: DbConnection, agent: str | int, to: str) -> None:
    """Let one of your agents delegate to ``to`` (a capability, or ``@name``).

    An agent with at least one such rule may delegate only to what its rules name.
    """
    board = await TaskBoard.of(conn)
    capability, target_agent = target(board, to)
    await board.call("allow_delegation", agent_id(board, agent), capability, target_agent)
