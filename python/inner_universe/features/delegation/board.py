"""The task board: one connection's live replica of the delegation rows it needs.

Workers, delegators, inboxes and workflow runs on the same connection share one
board, so the tables are subscribed once. Everything that waits (a delegated
task's outcome, a workflow's end, a handler waiting for a condition) waits on
:meth:`TaskBoard.until`, which re-checks its condition after every applied
transaction: no polling, and nothing is missed between a check and the wait.

A board does not replicate whole tables: finished tasks pile up (history, or
other identities' work), and a subscription's first rows arrive in one server
message, which the SDK refuses over 64 MiB. It holds the unfinished tasks (what
workers may claim), everything this identity submitted (what it waits for), and
the ready workflow steps (what running step tasks belong to); see
:func:`board_queries`. What needs more follows it for as long as it needs it:
one task by id (:meth:`TaskBoard.follow_task`; a worker, for a task it runs that
ended elsewhere), or one workflow whole (:meth:`TaskBoard.follow_workflow`).
"""

from __future__ import annotations

import asyncio
import secrets
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from ...errors import ConnectionClosedError, ReducerError
from ...spacetime.connection import DbConnection, SubscriptionHandle
from ...spacetime.events import EventContext, ReducerEvent
from ...spacetime.types import Identity
from .errors import refusal
from .tasks import UNFINISHED

__all__ = [
    "TABLES",
    "Following",
    "TaskBoard",
    "board_queries",
    "new_ticket",
    "own_workflow_queries",
    "running_workflow_queries",
    "task_queries",
]

TABLES = (
    "agent",
    "agent_capability",
    "delegation_rule",
    "task",
    "workflow",
    "workflow_step",
    "inbox_message",
)
"""The tables a board replicates rows of (see :func:`board_queries` for which rows)."""

READY_STEP = "ready"
"""A workflow step whose task exists and is not finished (server-module/src/workflows.rs)."""

RUNNING_WORKFLOW = "running"
"""A workflow with steps still open (server-module/src/workflows.rs)."""


def board_queries(me: Identity) -> tuple[str, ...]:
    """What a board subscribes to, for the identity ``me``.

    Agents, capabilities and rules are small and wholly needed (names, targets).
    Tasks: :func:`task_queries`. Workflows: ``me``'s, with their steps
    (:func:`own_workflow_queries`), and the ready steps of anyone's (a step task's
    worker finds its workflow there).
    Inbox messages: the module already shows only those ``me`` sent or received.
    """
    return (
        "SELECT * FROM agent",
        "SELECT * FROM agent_capability",
        "SELECT * FROM delegation_rule",
        *task_queries(me),
        *own_workflow_queries(me),
        f"SELECT * FROM workflow_step WHERE status = '{READY_STEP}'",
        "SELECT * FROM inbox_message",
    )


def task_queries(me: Identity) -> tuple[str, str]:
    """The tasks worth holding for ``me``: the unfinished ones of others, and all of ``me``'s.

    The two do not overlap, and a task never moves between them, so each change
    arrives once. Another identity's task leaves when it finishes (a delete of its
    last unfinished row). Also what the TUI's tasks pane and ``tasks watch`` show.
    """
    who = _literal(me)
    unfinished = " OR ".join(f"status = '{status}'" for status in UNFINISHED)
    return (
        f"SELECT * FROM task WHERE ({unfinished}) AND submitter != {who}",
        f"SELECT * FROM task WHERE submitter = {who}",
    )


def own_workflow_queries(me: Identity) -> tuple[str, str]:
    """``me``'s workflows (finished too) and their steps."""
    who = _literal(me)
    return (
        f"SELECT * FROM workflow WHERE submitter = {who}",
        "SELECT workflow_step.* FROM workflow_step JOIN workflow"
        f" ON workflow_step.workflow_id = workflow.id WHERE workflow.submitter = {who}",
    )


def running_workflow_queries(me: Identity) -> tuple[str, str]:
    """The running workflows of others and their steps (they leave when the workflow ends)."""
    who = _literal(me)
    return (
        f"SELECT * FROM workflow WHERE status = '{RUNNING_WORKFLOW}' AND submitter != {who}",
        "SELECT workflow_step.* FROM workflow_step JOIN workflow"
        " ON workflow_step.workflow_id = workflow.id"
        f" WHERE workflow.status = '{RUNNING_WORKFLOW}' AND workflow.submitter != {who}",
    )


def _literal(identity: Identity) -> str:
    """An identity as a SQL literal (``0x<hex>``)."""
    return f"0x{identity.to_hex()}"


class Following:
    """Extra rows a board follows for a while (one task, or one workflow); :meth:`close` ends it."""

    def __init__(self, handles: list[SubscriptionHandle]) -> None:
        self.handles = handles

    async def close(self) -> None:
        """Stop following: rows nothing else on the board holds leave the replica."""
        for handle in self.handles:
            await handle.unsubscribe()  # on a closed connection: ends it, nothing sent


T = TypeVar("T")

_boards: weakref.WeakKeyDictionary[DbConnection, TaskBoard] = weakref.WeakKeyDictionary()


def new_ticket() -> int:
    """A random u128 a submitter stores with its new row, to find it after the call."""
    return secrets.randbits(127) + 1


class TaskBoard:
    """The delegation tables of one connection, and waiting on them.

    Get it with ``await TaskBoard.of(conn)``; the first call subscribes.
    """

    def __init__(self, conn: DbConnection) -> None:
        self.conn = conn
        self._waiters: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        conn.on_transaction(self._on_transaction)
        if conn.identity is None:
            raise ConnectionClosedError("the connection has no identity yet (not connected)")
        self._subscription = conn.subscribe(*board_queries(conn.identity))
        self._watching = asyncio.get_running_loop().create_task(self._fail_waiters_on_close())

    @classmethod
    async def of(cls, conn: DbConnection) -> TaskBoard:
        """The connection's board, subscribed to :func:`board_queries` (once per connection)."""
        board = _boards.get(conn)
        if board is None:
            board = _boards[conn] = cls(conn)
        await board._subscription
        return board

    # --- following more rows --------------------------------------------------------------------

    def follow_task(self, task_id: int) -> SubscriptionHandle:
        """Keep one task in the replica, finished or not (await the handle for its row)."""
        return self.conn.subscribe(f"SELECT * FROM task WHERE id = {int(task_id)}")

    async def follow_workflow(self, workflow_id: int) -> Following:
        """Keep one workflow in the replica (anyone's): its row, its steps and their tasks.

        Steps are stored with the workflow, so their ids are known now; each step's
        task, made when the step becomes ready, arrives through its ``step_id``.
        """
        workflow_id = int(workflow_id)
        rows = await self.conn.subscribe(
            f"SELECT * FROM workflow WHERE id = {workflow_id}",
            f"SELECT * FROM workflow_step WHERE workflow_id = {workflow_id}",
        )
        steps = self.conn.db.workflow_step.filter("workflow_id", workflow_id)
        if not steps:
            return Following([rows])
        tasks = await self.conn.subscribe(
            *(f"SELECT * FROM task WHERE step_id = {step.id}" for step in steps)
        )
        return Following([rows, tasks])

    # --- reading ---------------------------------------------------------------------------

    def task(self, task_id: int) -> Any | None:
        return self.conn.db.task.find("id", task_id)

    def known_task(self, task_id: int) -> Any:
        """A task that must be in the replica (one this connection has seen)."""
        row = self.task(task_id)
        if row is None:
            raise LookupError(f"task {task_id} is not in the replica")
        return row

    def agent(self, name: str) -> Any | None:
        """The agent called ``name``: the caller's own if it has one, else the only one.

        Names are unique per owner; a name that several other identities use is
        ambiguous and raises :class:`LookupError` (name such an agent by its id).
        """
        named = self.conn.db.agent.filter("name", name)
        mine = [a for a in named if a.owner == self.conn.identity]
        if mine:
            return mine[0]
        if len(named) > 1:
            raise LookupError(
                f"{len(named)} agents are named {name!r} (one per owner); use the agent's id"
            )
        return named[0] if named else None

    def by_ticket(self, table: str, ticket: int) -> Any:
        """The row of ``table`` the caller submitted with ``ticket`` (present after the call)."""
        rows = self.conn.db[table].filter("ticket", ticket)
        if not rows:
            raise LookupError(f"no {table} row with ticket {ticket} in the replica")
        return rows[0]

    # --- writing -------------------------------------------------------------------------------

    async def call(self, reducer: str, *args: Any) -> ReducerEvent:
        """Call a delegation reducer; a refusal raises the typed :class:`TaskRefused`."""
        try:
            event: ReducerEvent = await self.conn.call_reducer(reducer, *args)
        except ReducerError as exc:
            raise refusal(exc) from None
        return event

    # --- waiting -------------------------------------------------------------------------------

    async def until(self, condition: Callable[[], T | None], timeout: float | None = None) -> T:
        """Wait until ``condition()`` returns something other than None/False, and return it.

        Checked now and after every transaction this connection applies.
        """
        value = condition()
        if value is not None and value is not False:
            return value
        if self._watching.done():
            raise ConnectionClosedError("the connection is closed; nothing more will arrive")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        entry = (condition, future)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def _fail_waiters_on_close(self) -> None:
        """Nothing waits forever: when the connection ends, every wait fails."""
        error = await self.conn.wait_closed()
        closed = ConnectionClosedError(f"the connection closed while waiting ({error or 'closed'})")
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(closed)

    def _on_transaction(self, _ctx: EventContext) -> None:
        for condition, future in list(self._waiters):
            if future.done():
                continue
            try:
                value = condition()
            except Exception as exc:
                future.set_exception(exc)
                continue
            if value is not None and value is not False:
                future.set_result(value)
