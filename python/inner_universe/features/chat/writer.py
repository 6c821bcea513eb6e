"""The stream writer: tokens in, committed chunks out, one batch in flight at a time.

It owns a :class:`TokenBuffer` and a task that takes batches from it (per the
:class:`FlushPolicy`) and appends each as the stream's next chunk, waiting for
the commit before taking the next. So when the database is slower than the
model, batches grow up to ``max_chars``, then the buffer fills and
:meth:`StreamWriter.put` waits: memory stays bounded by the policy's capacity.
"""

from __future__ import annotations

import asyncio
import contextlib

from ...spacetime.connection import DbConnection
from .buffer import FlushPolicy, TokenBuffer

__all__ = ["StreamWriter"]


class StreamWriter:
    """Persists one stream's text as ``stream_chunk`` rows through ``append_chunk``."""

    def __init__(self, conn: DbConnection, message_id: int, policy: FlushPolicy) -> None:
        self.message_id = message_id
        self.policy = policy
        self.buffer = TokenBuffer(policy.capacity)
        self.sequence = 0
        """The last chunk committed."""
        self.persisted = ""
        """Every committed chunk's text, in order."""
        self._conn = conn
        self._writing = False
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"stream-writer-{message_id}"
        )

    @property
    def task(self) -> asyncio.Task[None]:
        """Ends when everything is written, or with the error that stopped the writing."""
        return self._task

    async def put(self, text: str) -> None:
        """Queue text; waits while the buffer is full."""
        await self.buffer.put(text)

    async def _run(self) -> None:
        policy = self.policy
        while (batch := await self.buffer.take(policy.max_chars, policy.max_delay)) is not None:
            self._writing = True
            try:
                await self._conn.reducers.append_chunk(self.message_id, self.sequence + 1, batch)
            finally:
                self._writing = False
            self.sequence += 1
            self.persisted += batch
            self._changed.set()

    async def drain(self) -> None:
        """Write everything queued so far now (not waiting for the policy); raises
        what stopped the writing, if anything."""
        self.buffer.flush()
        while (len(self.buffer) or self._writing) and not self._task.done():
            self._changed.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait([self._task, changed], return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()
        if self._task.done() and not self._task.cancelled():
            self._task.result()

    async def close(self) -> None:
        """Write what is left, then stop; raises what stopped the writing, if anything."""
        self.buffer.close()
        await self._task

    async def abort(self) -> None:
        """Stop at once and drop what is not written (the stream was cancelled)."""
        self.buffer.discard()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task  # its error, if any, is the cancel's: nothing more to report
