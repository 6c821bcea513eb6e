"""The token buffer between a model and the database, and the policy that flushes it.

The model's tokens go in with :meth:`TokenBuffer.put`; the writer takes them out
in batches with :meth:`TokenBuffer.take`. The buffer holds at most ``capacity``
characters: when the database is slower than the model, ``put`` waits (and so
the producer stops reading the model) instead of memory growing. A batch is
released when it reaches ``max_chars`` or when its oldest token has waited
``max_delay`` seconds, whichever comes first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from .errors import ChatInputError

__all__ = ["FlushPolicy", "TokenBuffer"]


@dataclass(frozen=True)
class FlushPolicy:
    """When to write a batch, and how much may wait in memory.

    The defaults (50 ms or 128 characters) come from docs/chat.md's measurements:
    at them, persistence costs a stream little and a watcher sees text every 50 ms.
    """

    max_chars: int = 128
    """Write once this many characters are waiting."""
    max_delay: float = 0.05
    """Write once the oldest waiting token is this many seconds old."""
    capacity: int = 4096
    """The most characters held in memory; the producer waits beyond it."""

    def __post_init__(self) -> None:
        if self.max_chars < 1 or self.capacity < 1:
            raise ChatInputError("max_chars and capacity must be at least 1")
        if self.max_delay < 0:
            raise ChatInputError("max_delay must not be negative")


class TokenBuffer:
    """A bounded FIFO of text pieces, for one producer and one consumer on one event loop."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._pieces: deque[tuple[float, str]] = deque()  # (arrival time, text)
        self._chars = 0
        self._closed = False
        self._urgent = False  # flush(): release what is waiting without waiting for the policy
        self._data = asyncio.Event()
        self._space = asyncio.Event()
        self.full_waits = 0
        """How many times ``put`` found the buffer full and had to wait."""
        self.peak_chars = 0
        """The most characters ever held at once."""

    def __len__(self) -> int:
        """Characters waiting."""
        return self._chars

    @property
    def closed(self) -> bool:
        return self._closed

    async def put(self, text: str) -> None:
        """Add a piece; waits while the buffer is full. Ignored once closed."""
        if self._chars >= self.capacity and not self._closed:
            self.full_waits += 1
            while self._chars >= self.capacity and not self._closed:
                self._space.clear()
                await self._space.wait()
        if self._closed or not text:
            return
        self._pieces.append((asyncio.get_running_loop().time(), text))
        self._chars += len(text)
        self.peak_chars = max(self.peak_chars, self._chars)
        self._data.set()

    async def take(self, max_chars: int, max_delay: float) -> str | None:
        """The next batch: at most ``max_chars`` (at least one piece), once it is due.

        Returns None when the buffer is closed and empty.
        """
        loop = asyncio.get_running_loop()
        while True:
            while not self._pieces:
                if self._closed:
                    return None
                self._data.clear()
                await self._data.wait()
            deadline = self._pieces[0][0] + max_delay
            while self._pieces and self._chars < max_chars and not (self._closed or self._urgent):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._data.clear()
                try:
                    await asyncio.wait_for(self._data.wait(), remaining)
                except TimeoutError:
                    break
            if self._pieces:  # (discard() may have emptied it meanwhile)
                return self._pop(max_chars)

    def flush(self) -> None:
        """Release what is waiting now, whatever the policy says."""
        self._urgent = True
        self._data.set()

    def close(self) -> None:
        """No more pieces: ``take`` drains what is left, then returns None."""
        self._closed = True
        self._data.set()
        self._space.set()

    def discard(self) -> None:
        """Close and drop everything waiting (the stream was cancelled)."""
        self._pieces.clear()
        self._chars = 0
        self.close()

    def _pop(self, max_chars: int) -> str:
        parts: list[str] = []
        size = 0
        while self._pieces and (not parts or size + len(self._pieces[0][1]) <= max_chars):
            text = self._pieces.popleft()[1]
            parts.append(text)
            size += len(text)
        self._chars -= size
        if not self._pieces:
            self._urgent = False
        self._space.set()
        return "".join(parts)
