"""Following a streamed message live from any process: the backlog, then each batch as it commits.

:class:`StreamWatcher` subscribes to one message's ``stream`` row and its
``stream_chunk`` rows (those after ``after``, for a watcher resuming where it
left off, say after a reconnect). Iterating it yields the chunks in sequence
order, each exactly once, with no gaps: rows that arrive out of order wait
for the missing ones, repeats are dropped. Iteration ends when the stream has
ended and every chunk up to its last has been yielded; :attr:`stream` then
says how it ended.

    async with StreamWatcher(conn, message_id) as watcher:
        async for chunk in watcher:
            print(chunk.text, end="", flush=True)
        print(watcher.stream.status)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from ...spacetime.connection import DbConnection, SubscriptionHandle
from ...spacetime.events import EventContext
from .errors import UnknownStreamError

__all__ = ["ENDED", "StreamWatcher"]

ENDED = frozenset({"done", "cancelled", "failed"})
"""The statuses of a stream that receives no more chunks."""
CONNECTION_CHECK = 0.5
"""Seconds between checks that the connection is still there, while no chunk comes."""


class StreamWatcher:
    """Yields one message's chunks in order, live, until its stream ends."""

    def __init__(self, conn: DbConnection, message_id: int, *, after: int = 0) -> None:
        self.conn = conn
        self.message_id = int(message_id)
        self.last_sequence = int(after)
        """The last chunk yielded: pass it as ``after`` to resume from a new connection."""
        self.text = ""
        """The text of the chunks yielded so far."""
        self.stream: Any = None
        """The ``stream`` row as last seen."""
        self.backlog = 0
        """How many chunks were already committed when the watcher joined."""
        self._pending: dict[int, Any] = {}
        self._changed = asyncio.Event()
        self._handle: SubscriptionHandle | None = None

    async def __aenter__(self) -> StreamWatcher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Subscribe; returns once the backlog is here. Raises UnknownStreamError."""
        self.conn.db.stream_chunk.on_insert(self._on_chunk)
        self.conn.db.stream.on_insert(self._on_stream)
        self.conn.db.stream.on_update(self._on_stream_update)
        m, after = self.message_id, self.last_sequence
        self._handle = await self.conn.subscribe(
            f"SELECT * FROM stream WHERE message_id = {m}",
            f"SELECT * FROM stream_chunk WHERE message_id = {m} AND sequence > {after}",
        )
        # Rows another subscription of this connection already held fire no inserts.
        self.stream = self.stream or self.conn.db.stream.find("message_id", m)
        for row in self.conn.db.stream_chunk.filter("message_id", m):
            self._on_chunk(None, row)
        self.backlog = len(self._pending)
        if self.stream is None:
            await self.stop()
            raise UnknownStreamError(m)

    async def stop(self) -> None:
        """Unsubscribe and stop listening (the iteration ends)."""
        self.conn.db.stream_chunk.remove_on_insert(self._on_chunk)
        self.conn.db.stream.remove_on_insert(self._on_stream)
        self.conn.db.stream.remove_on_update(self._on_stream_update)
        handle, self._handle = self._handle, None
        if handle is not None and self.conn.is_connected:
            await handle.unsubscribe()
        self._changed.set()

    @property
    def ended(self) -> bool:
        """The stream has ended and every chunk of it was yielded."""
        return (
            self.stream is not None
            and self.stream.status in ENDED
            and self.last_sequence >= self.stream.last_sequence
        )

    async def __aiter__(self) -> AsyncIterator[Any]:
        while not self.ended:
            following = self.last_sequence + 1
            if following in self._pending:
                chunk = self._pending.pop(following)
                self.last_sequence = following
                self.text += chunk.text
                yield chunk
                continue
            if self._handle is None or not self.conn.is_connected:
                return  # stopped, or the connection is gone: resume with ``after``
            self._changed.clear()
            # Wake on a chunk, or now and then to notice a connection that went away.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), CONNECTION_CHECK)

    def _on_chunk(self, _ctx: EventContext | None, row: Any) -> None:
        if row.message_id == self.message_id and row.sequence > self.last_sequence:
            self._pending[row.sequence] = row
            self._changed.set()

    def _on_stream(self, _ctx: EventContext, row: Any) -> None:
        if row.message_id == self.message_id:
            self.stream = row
            self._changed.set()

    def _on_stream_update(self, ctx: EventContext, _old: Any, new: Any) -> None:
        self._on_stream(ctx, new)
