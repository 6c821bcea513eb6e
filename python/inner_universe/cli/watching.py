"""Live changes of a table, as they commit: what ``watch`` prints and the TUI's activity shows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..app import Universe
from ..errors import ConnectionClosedError
from ..spacetime.connection import DbConnection, TransactionCallback
from ..spacetime.events import EventContext, SubscribeAppliedEvent
from .actions import db_connection
from .render import change_line, jsonable, who

__all__ = ["Change", "follow", "watch_rows", "watch_table"]


@dataclass(frozen=True)
class Change:
    """One row change: ``kind`` is insert, delete or update (``old`` set for updates)."""

    kind: str
    table: str
    row: Any
    by: str
    old: Any = None
    at: float = field(default_factory=time.monotonic)
    initial: bool = False
    """The row arrived with a subscription, not with a new transaction."""

    def line(self, since: float | None = None) -> str:
        """``[  0.19s] c200d493.register_agent  + agent #1 name='researcher' ...``."""
        stamp = f"[{self.at - since:6.2f}s] " if since is not None else ""
        return f"  {stamp}{self.by:28} {change_line(self.kind, self.table, self.row, self.old)}"

    def to_json(self, since: float | None = None) -> dict[str, Any]:
        record: dict[str, Any] = {} if since is None else {"t": round(self.at - since, 3)}
        record |= {"kind": self.kind, "table": self.table, "by": self.by, "row": jsonable(self.row)}
        if self.old is not None:
            record["old"] = jsonable(self.old)
        return record


def follow(
    conn: DbConnection, tables: Sequence[str], on_change: Callable[[Change], object]
) -> TransactionCallback:
    """Call ``on_change`` for every delete, update and insert of ``tables`` in ``conn``'s cache.

    Once per transaction, in the order of ``tables`` (deletes, updates, inserts of the
    first table, then the next), so a transaction always reads the same way. Returns the
    callback (for ``conn.remove_on_transaction``). An unknown table raises SchemaError
    naming the known ones.
    """
    for table in tables:
        conn.schema.table(table)
    wanted = list(tables)

    def on_transaction(ctx: EventContext) -> None:
        initial = isinstance(ctx.event, SubscribeAppliedEvent)
        by = who(ctx)
        for table in wanted:
            diff = ctx.diff[table]
            for row in diff.deletes:
                on_change(Change("delete", table, row, by, initial=initial))
            for old, new in diff.updates:
                on_change(Change("update", table, new, by, old, initial=initial))
            for row in diff.inserts:
                on_change(Change("insert", table, row, by, initial=initial))

    return conn.on_transaction(on_transaction)


async def watch_table(
    universe: Universe,
    table: str,
    where: str | None,
    on_change: Callable[[Change], object],
    count: int | None = None,
    ready: Callable[[str, int], object] | None = None,
    keep: Callable[[Change], bool] | None = None,
) -> None:
    """Report ``table``'s new changes until ``count`` of them (forever if None).

    ``keep`` chooses which changes to report and count (all of them if None).

    Raises SchemaError for an unknown table, SubscriptionRejectedError for a bad ``where``,
    ConnectionClosedError if the connection closes for good (a server that restarts
    where it was is reconnected to, and the watch goes on).
    """
    await watch_rows(universe, table, [table_query(table, where)], on_change, count, ready, keep)


def table_query(table: str, where: str | None = None) -> str:
    """The subscription to ``table``'s rows, all or those matching ``where``."""
    return f"SELECT * FROM {table}" + (f" WHERE {where}" if where else "")


async def watch_rows(
    universe: Universe,
    table: str,
    queries: Sequence[str],
    on_change: Callable[[Change], object],
    count: int | None = None,
    ready: Callable[[str, int], object] | None = None,
    keep: Callable[[Change], bool] | None = None,
) -> None:
    """:func:`watch_table` over the rows of ``table`` that ``queries`` select.

    A row that an update moves out of every query arrives as a delete.
    """
    conn = db_connection(universe)
    seen = 0
    enough = asyncio.Event()

    def on_row(change: Change) -> None:
        nonlocal seen
        if change.initial or enough.is_set() or (keep is not None and not keep(change)):
            return
        on_change(change)
        seen += 1
        if count is not None and seen >= count:
            enough.set()

    follow(conn, [table], on_row)
    await conn.subscribe(*queries)
    if ready is not None:
        ready("; ".join(queries), conn.db[table].count())
    closed = asyncio.ensure_future(conn.wait_closed())
    done = asyncio.ensure_future(enough.wait())
    try:
        await asyncio.wait({closed, done}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        done.cancel()
        closed.cancel()
    if not enough.is_set():
        raise ConnectionClosedError("the connection to the server closed")
