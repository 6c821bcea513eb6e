"""The live index: search structures kept in step with the replicated chunk table.

A :class:`LiveIndex` attached to a connection applies every transaction's chunk
inserts and deletes (and document changes, for titles, owners and metadata) as
the connection applies it: vectors to a :class:`VectorStore`, texts to a
:class:`LexicalIndex`, one lexical commit per transaction. Nothing is rebuilt on
a change, and a chunk another process commits is searchable here as soon as this
process has applied that transaction.

The connection must subscribe to :data:`SEARCH_QUERIES` (before or after
attaching). The server decides what the rows are: a private document's chunks
never reach a stranger's replica, so they cannot reach its index either.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgpack

from ...spacetime.events import EventContext
from ...spacetime.types import Identity
from .embedding import Embedder, vector_from_bytes
from .lexical import LexicalIndex
from .vectors import VectorStore

if TYPE_CHECKING:
    from .search import SearchFilter, SearchHit, SearchMode

__all__ = ["SEARCH_QUERIES", "DocumentInfo", "LiveIndex"]

SEARCH_QUERIES = ("SELECT * FROM document", "SELECT * FROM chunk")
"""What a searching process subscribes to (the server filters out what it may not read)."""


class _Connection(Protocol):
    """What attaching needs: a DbConnection or a ThreadedConnection."""

    @property
    def db(self) -> Any: ...

    def on_transaction(self, callback: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """What the index knows of a document: the row, with its metadata decoded."""

    id: int
    owner: Identity
    title: str
    metadata: dict[str, Any]
    private: bool
    row: Any = field(repr=False)

    @classmethod
    def from_row(cls, row: Any) -> DocumentInfo:
        return cls(
            id=row.id,
            owner=row.owner,
            title=row.title,
            metadata=decode_metadata(row.metadata),
            private=row.private,
            row=row,
        )


def decode_metadata(data: bytes) -> dict[str, Any]:
    """A document's msgpack metadata as a dict ({} when it is not a msgpack map)."""
    try:
        value = msgpack.unpackb(data, raw=False) if data else {}
    except (ValueError, msgpack.UnpackException):
        return {}
    return value if isinstance(value, dict) else {}


class LiveIndex:
    """Vector and lexical search over the chunks a connection replicates."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.vectors = VectorStore(embedder.dimension)
        self.lexical = LexicalIndex()
        self.chunks: dict[int, Any] = {}
        """Chunk id -> the chunk row (text, offsets, provenance)."""
        self.documents: dict[int, DocumentInfo] = {}
        self.other_models = 0
        """Chunks embedded by another model: searchable lexically, not by vector."""
        self.version = 0
        """Increases once per applied transaction that changed the index."""
        self._lock = threading.RLock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def attach(self, conn: _Connection) -> LiveIndex:
        """Follow ``conn``: index what its replica holds now, then every transaction.

        For a ThreadedConnection this runs on the connection's thread, so no
        transaction can slip between the snapshot and the first callback.
        """

        def hook() -> None:
            conn.on_transaction(self._on_transaction)
            self.apply(
                document_inserts=list(conn.db.document.iter()),
                chunk_inserts=list(conn.db.chunk.iter()),
            )

        run_on_connection_thread = getattr(conn, "run_on_connection_thread", None)
        if run_on_connection_thread is None:
            hook()
        else:
            run_on_connection_thread(hook)
        return self

    def _on_transaction(self, ctx: EventContext) -> None:
        documents, chunks = ctx.diff["document"], ctx.diff["chunk"]
        if documents.is_empty() and chunks.is_empty():
            return
        self.apply(
            document_inserts=[*documents.inserts, *(new for _, new in documents.updates)],
            document_deletes=documents.deletes,
            chunk_inserts=[*chunks.inserts, *(new for _, new in chunks.updates)],
            chunk_deletes=[*chunks.deletes, *(old for old, _ in chunks.updates)],
        )

    def apply(
        self,
        *,
        document_inserts: Iterable[Any] = (),
        document_deletes: Iterable[Any] = (),
        chunk_inserts: Iterable[Any] = (),
        chunk_deletes: Iterable[Any] = (),
    ) -> None:
        """Apply one transaction's changes (deletes first), then commit the lexical side."""
        with self._lock:
            for row in document_deletes:
                self.documents.pop(row.id, None)
            for row in document_inserts:
                self.documents[row.id] = DocumentInfo.from_row(row)
            for row in chunk_deletes:
                if self.chunks.pop(row.id, None) is not None:
                    self.vectors.remove(row.id)
                    self.lexical.remove(row.id)
            for row in chunk_inserts:
                self._add_chunk(row)
            self.lexical.commit()
            self.version += 1
            for loop, changed in list(self._waiters):
                loop.call_soon_threadsafe(changed.set)

    async def wait_for(
        self, predicate: Callable[[LiveIndex], object], timeout: float = 30.0
    ) -> None:
        """Wait until ``predicate(index)`` holds, re-checking after each applied change.

        Raises TimeoutError if it does not hold within ``timeout`` seconds.
        """
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self):
                    await waiter[1].wait()
                    waiter[1].clear()
        finally:
            self._waiters.remove(waiter)

    def _add_chunk(self, row: Any) -> None:
        if row.id in self.chunks:
            return
        self.chunks[row.id] = row
        self.lexical.add(row.id, row.document_id, row.text)
        if row.model == self.embedder.name and row.dimension == self.embedder.dimension:
            self.vectors.add(
                row.id, row.document_id, vector_from_bytes(row.embedding, row.dimension)
            )
        else:
            self.other_models += 1

    def __len__(self) -> int:
        return len(self.chunks)

    def chunks_of(self, document_id: int) -> list[Any]:
        """The chunk rows of one document held here, in position order."""
        with self._lock:
            rows = [row for row in self.chunks.values() if row.document_id == document_id]
        return sorted(rows, key=lambda row: row.position)

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: SearchMode = "hybrid",
        where: SearchFilter | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best chunks for ``query``; see :func:`search.search`."""
        from .search import search

        with self._lock:
            return search(self, query, k, mode=mode, where=where)
