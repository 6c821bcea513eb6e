"""Rows shaped like the module's, to fill a :class:`LiveIndex` without a server.

The evaluation set and the benchmarks measure the search code on a known corpus;
they build the same document and chunk rows that ingestion would store (same
splitter, same embedding input) and hand them to :meth:`LiveIndex.apply`.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from ...spacetime.types import Identity, Timestamp
from .chunking import ChunkerConfig, split
from .embedding import Embedder, passage_text, vector_to_bytes
from .formats import MARKDOWN

__all__ = ["ChunkRow", "DocumentRow", "document_rows"]

EPOCH = Timestamp(0)


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """The fields of the module's ``document`` row that the index reads."""

    id: int
    owner: Identity
    title: str
    content: str
    metadata: bytes
    private: bool = False


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """The fields of the module's ``chunk`` row."""

    id: int
    document_id: int
    position: int
    text: str
    start_char: int
    end_char: int
    embedding: bytes
    model: str
    dimension: int
    ingested_by: Identity
    created_at: Timestamp


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
) -> tuple[DocumentRow, list[ChunkRow]]:
    """A document row and its chunk rows (ids from ``first_chunk_id``), as ingestion makes them."""
    passages = split(text, fmt, chunking)
    vectors = embedder.embed([passage_text(title, p.heading, p.text) for p in passages])
    document = DocumentRow(document_id, owner, title, text, msgpack.packb(metadata or {}), private)
    chunks = [
        ChunkRow(
            id=first_chunk_id + p.position,
            document_id=document_id,
            position=p.position,
            text=p.text,
            start_char=p.start,
            end_char=p.end,
            embedding=vector_to_bytes(vector),
            model=embedder.name,
            dimension=embedder.dimension,
            ingested_by=owner,
            created_at=created_at,
        )
        for p, vector in zip(passages, vectors, strict=True)
    ]
    return document, chunks
