"""The module's rows (its generated row classes), to fill a :class:`LiveIndex` without a server.

The evaluation set and the benchmarks measure the search code on a known corpus;
they build the same document and chunk rows that ingestion would store (same
splitter, same embedding input) and hand them to :meth:`LiveIndex.apply`.
"""

from __future__ import annotations

import msgpack

from ...spacetime.types import Identity, Timestamp
from ...universe.bindings import Chunk, Document
from .chunking import ChunkerConfig, split
from .embedding import Embedder, passage_text, vector_to_bytes
from .formats import MARKDOWN

__all__ = ["document_rows"]

EPOCH = Timestamp(0)


def document_rows(
    embedder: Embedder,
    document_id: int,
    title: str,
    text: str,
    *,
    owner: Identity,
    first_chunk_id: int,
    chunking: ChunkerConfig | None = None,
    fmt: str = MARKDOWN,
    private: bool = False,
    metadata: dict[str, object] | None = None,
    created_at: Timestamp = EPOCH,
) -> tuple[Document, list[Chunk]]:
    """A document row and its chunk rows (ids from ``first_chunk_id``), as ingestion makes them."""
    passages = split(text, fmt, chunking)
    vectors = embedder.embed([passage_text(title, p.heading, p.text) for p in passages])
    document = Document(
        document_id,
        owner,
        title,
        text,
        msgpack.packb(metadata or {}),
        private,
        created_at,
        created_at,
    )
    chunks = [
        Chunk(
            id=first_chunk_id + p.position,
            document_id=document_id,
            position=p.position,
            text=p.text,
            start_char=p.start,
            end_char=p.end,
            embedding=vector_to_bytes(vector),
            model=embedder.name,
            dimension=embedder.dimension,
            private=private,
            owner=owner,
            ingested_by=owner,
            created_at=created_at,
        )
        for p, vector in zip(passages, vectors, strict=True)
    ]
    return document, chunks
