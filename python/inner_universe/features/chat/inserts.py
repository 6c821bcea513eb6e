"""Learning the ids the module gave to rows one's own reducer call inserted.

Reducers return no values, and ids are ``auto_inc``: after ``post_message`` or
``begin_model_call`` the caller must find its new row. This watches the
connection's reducer events and keeps, for each of this connection's own calls,
the rows it inserted into the subscribed tables; :meth:`OwnInserts.call` makes
a call and returns them. The table must be subscribed for its rows to show.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ...spacetime.connection import DbConnection
from ...spacetime.events import EventContext, ReducerEvent
from .errors import ChatError

__all__ = ["OwnInserts"]


class OwnInserts:
    """Per connection: the rows each of its own reducer calls inserted, by request id."""

    def __init__(self, conn: DbConnection) -> None:
        self._conn = conn
        self._inserted: dict[int, dict[str, list[Any]]] = {}
        self._waiting: Counter[str] = Counter()  # reducer -> calls of ours in flight
        conn.on_reducer(None, self._on_reducer)

    def _on_reducer(self, ctx: EventContext, event: ReducerEvent) -> None:
        mine = event.caller_connection_id == self._conn.connection_id
        if not (mine and event.committed and self._waiting[event.reducer]):
            return
        self._inserted[event.request_id] = {
            name: list(diff.inserts) for name, diff in ctx.diff.tables.items() if diff.inserts
        }

    async def call(self, reducer: str, table: str, *args: Any) -> Any:
        """Call ``reducer`` and return the one row it inserted into ``table``."""
        self._waiting[reducer] += 1
        try:
            event = await self._conn.call_reducer(reducer, *args)
        finally:
            self._waiting[reducer] -= 1
        rows = self._inserted.pop(event.request_id, {}).get(table, [])
        if len(rows) != 1:
            raise ChatError(
                f"{reducer} inserted {len(rows)} rows into {table}, not one "
                f"(is {table} subscribed?)"
            )
        return rows[0]
