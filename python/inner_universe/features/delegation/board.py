"""The task board: one connection's live replica of the delegation tables.

Workers, delegators, inboxes and workflow runs on the same connection share one
board, so the tables are subscribed once. Everything that waits (a delegated
task's outcome, a workflow's end, a handler waiting for a condition) waits on
:meth:`TaskBoard.until`, which re-checks its condition after every applied
transaction: no polling, and nothing is missed between a check and the wait.
"""

from __future__ import annotations

import asyncio
import secrets
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from ...errors import ConnectionClosedError, ReducerError
from ...spacetime.connection import DbConnection
from ...spacetime.events import EventContext, ReducerEvent
from .errors import refusal

__all__ = ["TABLES", "TaskBoard", "new_ticket"]

TABLES = (
    "agent",
    "agent_capability",
    "delegation_rule",
    "task",
    "workflow",
    "workflow_step",
    "inbox_message",
)
"""The tables a board replicates (whole: delegation needs to see every queued task)."""

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
        self._subscription = conn.subscribe(*(f"SELECT * FROM {t}" for t in TABLES))
        self._watching = asyncio.get_running_loop().create_task(self._fail_waiters_on_close())

    @classmethod
    async def of(cls, conn: DbConnection) -> TaskBoard:
        """The connection's board, subscribed to :data:`TABLES` (once per connection)."""
        board = _boards.get(conn)
        if board is None:
            board = _boards[conn] = cls(conn)
        await board._subscription
        return board

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
