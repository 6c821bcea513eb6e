"""Ingestion: a document's text into a stored document with chunks and embeddings.

Everything that can fail on the client (format, emptiness, size, splitting,
embedding) happens before the first reducer call, so bad input stores nothing.
Then the document is created (or replaced, which drops its old chunks in the
same transaction), and its chunks go to the module in batches, pipelined.

A document is known by its ``source`` (by default its title) among the caller's
own documents: ingesting a source again with the same text, title, metadata,
splitter settings and embedder does nothing at all; with a change, the document
is replaced and re-chunked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgpack
import numpy as np

from ...spacetime.connection import DbConnection
from .chunking import ChunkerConfig, Passage, split
from .embedding import (
    PASSAGE_TEXT_VERSION,
    Embedder,
    Vectors,
    check_vectors,
    passage_text,
    vector_to_bytes,
)
from .errors import DocumentTooLargeError, EmptyDocumentError
from .formats import MARKDOWN, check_format, read_file
from .index import decode_metadata

__all__ = [
    "INGEST_QUERIES",
    "MAX_DOCUMENT_BYTES",
    "IngestProgress",
    "IngestResult",
    "Ingester",
]

MAX_DOCUMENT_BYTES = 1024 * 1024
"""The module's limit on a document's content (UTF-8 bytes)."""

INGEST_QUERIES = ("SELECT * FROM document", "SELECT * FROM chunk_set")
"""What an ingesting process subscribes to: documents and their chunk sets, not chunks."""


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """Where a long ingest is: ``stage`` is "embedding" or "storing"; ``done`` of ``total``."""

    title: str
    stage: Literal["embedding", "storing"]
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What an ingest did: ``changed`` is False when the document was already as given."""

    document_id: int
    chunks: int
    changed: bool
    fingerprint: str


class Ingester:
    """Chunks, embeds and stores documents through one connection.

    The connection must be subscribed to :data:`INGEST_QUERIES` (``await
    ingester.subscribe()`` does it). ``progress`` is called as batches are
    embedded and stored.
    """

    def __init__(
        self,
        conn: DbConnection,
        embedder: Embedder,
        *,
        chunking: ChunkerConfig | None = None,
        batch_size: int = 128,
        in_flight: int = 4,
        progress: Callable[[IngestProgress], object] | None = None,
    ) -> None:
        if not 1 <= batch_size <= 512:
            raise ValueError(f"batch size is {batch_size}; it must be 1 to 512")
        self.conn = conn
        self.embedder = embedder
        self.chunking = chunking or ChunkerConfig()
        self.batch_size = batch_size
        self.in_flight = in_flight
        self.progress = progress

    async def subscribe(self) -> None:
        """Subscribe the connection to what ingesting reads."""
        await self.conn.subscribe(*INGEST_QUERIES)

    async def ingest_file(
        self,
        path: str | Path,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        private: bool = False,
    ) -> IngestResult:
        """Ingest a text or Markdown file; its path is its source, its name the default title."""
        text, fmt = read_file(path)
        name = title or Path(path).name
        return await self.ingest(
            name, text, fmt=fmt, metadata=metadata, source=str(path), private=private
        )

    async def ingest(
        self,
        title: str,
        text: str,
        *,
        fmt: str = MARKDOWN,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        private: bool = False,
    ) -> IngestResult:
        """Store ``text`` as a document with its chunks; a no-op if it is already stored so.

        A ``private`` document, and so its chunks, is read by its owner only.

        Raises:
            UnknownFormatError, EmptyDocumentError, DocumentTooLargeError: before anything
                is stored.
            EmbeddingError: the embedder failed; nothing is stored.
            ReducerError: the module refused (e.g. a blank title); see its message.
        """
        check_format(fmt)
        source = source or title
        if not text.strip():
            raise EmptyDocumentError(f"document {title!r} is empty (no text besides whitespace)")
        size = len(text.encode("utf-8"))
        if size > MAX_DOCUMENT_BYTES:
            raise DocumentTooLargeError(
                f"document {title!r} is {size} bytes; the limit is {MAX_DOCUMENT_BYTES}"
            )
        payload = msgpack.packb({**(metadata or {}), "source": source, "format": fmt})
        fingerprint = self._fingerprint(text, fmt)
        existing = self._find(source)
        if existing is not None and existing.private == private:
            stored = self._stored_chunks(existing, title, text, payload, fingerprint)
            if stored is not None:
                return IngestResult(existing.id, stored, False, fingerprint)

        passages = split(text, fmt, self.chunking)
        vectors = self._embed(title, passages)
        if existing is not None and existing.private != private:
            # Privacy is fixed when a document is created: a change makes a new one.
            await self.delete(existing.id)
            existing = None
        if existing is None:
            document_id = await self._create(title, text, payload, source, private)
        else:
            document_id = existing.id
            if (existing.title, existing.content, existing.metadata) != (title, text, payload):
                await self.conn.reducers.update_document(document_id, title, text, payload)
        await self._store(document_id, title, passages, vectors, fingerprint)
        return IngestResult(document_id, len(passages), True, fingerprint)

    async def delete(self, document_id: int) -> None:
        """Delete a document; the module removes its chunks in the same transaction."""
        await self.conn.reducers.delete_document(document_id)

    def _fingerprint(self, text: str, fmt: str) -> str:
        recipe = json.dumps(
            [
                fmt,
                self.chunking.size,
                self.chunking.overlap,
                self.embedder.name,
                PASSAGE_TEXT_VERSION,
            ],
            sort_keys=True,
        )
        digest = hashlib.sha256(recipe.encode() + b"\0" + text.encode("utf-8"))
        return digest.hexdigest()[:32]

    def _mine(self) -> list[Any]:
        me = self.conn.identity
        return [row for row in self.conn.db.document.iter() if row.owner == me]

    def _find(self, source: str) -> Any | None:
        """The caller's newest document with this source, if any."""
        matches = [
            row for row in self._mine() if decode_metadata(row.metadata).get("source") == source
        ]
        return max(matches, key=lambda row: row.id, default=None)

    async def _create(
        self, title: str, text: str, payload: bytes, source: str, private: bool
    ) -> int:
        """Create the document; its id, read from the replica the call has updated."""
        reducers = self.conn.reducers
        create = reducers.create_private_document if private else reducers.create_document
        await create(title, text, payload)
        row = self._find(source)
        if row is None:
            raise RuntimeError(
                "the new document is not in the replica: subscribe with ingester.subscribe()"
            )
        return int(row.id)

    def _stored_chunks(
        self, row: Any, title: str, text: str, payload: bytes, fingerprint: str
    ) -> int | None:
        """How many chunks ``row`` has if it is stored exactly so and complete, else None."""
        chunk_set = self.conn.db.chunk_set.find("document_id", row.id)
        if (
            chunk_set is None
            or chunk_set.fingerprint != fingerprint
            or chunk_set.stored != chunk_set.expected
            or (row.title, row.content, row.metadata) != (title, text, payload)
        ):
            return None
        return int(chunk_set.expected)

    def _embed(self, title: str, passages: Sequence[Passage]) -> Vectors:
        parts: list[Vectors] = []
        for start in range(0, len(passages), self.batch_size):
            texts = [
                passage_text(title, p.heading, p.text)
                for p in passages[start : start + self.batch_size]
            ]
            parts.append(check_vectors(self.embedder, texts, self.embedder.embed(texts)))
            self._report(title, "embedding", start + len(texts), len(passages))
        return np.concatenate(parts)

    async def _store(
        self,
        document_id: int,
        title: str,
        passages: Sequence[Passage],
        vectors: Vectors,
        fingerprint: str,
    ) -> None:
        reducers = self.conn.reducers
        await reducers.begin_chunks(
            document_id, self.embedder.name, self.embedder.dimension, fingerprint, len(passages)
        )
        window: list[tuple[int, asyncio.Future[Any]]] = []
        try:
            for start in range(0, len(passages), self.batch_size):
                batch = [
                    {
                        "position": p.position,
                        "text": p.text,
                        "start_char": p.start,
                        "end_char": p.end,
                        "embedding": vector_to_bytes(vectors[p.position]),
                    }
                    for p in passages[start : start + self.batch_size]
                ]
                window.append((start + len(batch), reducers.add_chunks(document_id, batch)))
                if len(window) >= self.in_flight:
                    await self._settle(window.pop(0), title, len(passages))
            while window:
                await self._settle(window.pop(0), title, len(passages))
        finally:
            # After a refused batch the later ones fail too (positions out of order):
            # collect them so no failure goes unretrieved; the first one is raised.
            await asyncio.gather(*(future for _, future in window), return_exceptions=True)

    async def _settle(
        self, pending: tuple[int, asyncio.Future[Any]], title: str, total: int
    ) -> None:
        done, future = pending
        await future
        self._report(title, "storing", done, total)

    def _report(
        self, title: str, stage: Literal["embedding", "storing"], done: int, total: int
    ) -> None:
        if self.progress is not None:
            self.progress(IngestProgress(title, stage, done, total))
