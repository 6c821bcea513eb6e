"""Shared pieces for the knowledge tests: one bundled embedder per session, a filled index."""

from __future__ import annotations

import pytest

from inner_universe.features.knowledge import ChunkerConfig, LiveIndex, WordLlamaEmbedder
from inner_universe.features.knowledge.rows import document_rows as rows
from inner_universe.spacetime.types import Identity, Timestamp
from inner_universe.universe.bindings import Chunk, Document

ALICE = Identity(0xA11CE)
BOB = Identity(0xB0B)
NOV_2023 = Timestamp(1_700_000_000_000_000)


@pytest.fixture(scope="session")
def embedder() -> WordLlamaEmbedder:
    return WordLlamaEmbedder()


def document_rows(
    embedder: WordLlamaEmbedder,
    document_id: int,
    title: str,
    text: str,
    *,
    owner: Identity = ALICE,
    private: bool = False,
    metadata: dict[str, object] | None = None,
    first_chunk_id: int = 1,
) -> tuple[Document, list[Chunk]]:
    """Small chunks (200 characters), so short test texts have several."""
    return rows(
        embedder,
        document_id,
        title,
        text,
        owner=owner,
        first_chunk_id=first_chunk_id,
        chunking=ChunkerConfig(200, 30),
        private=private,
        metadata=metadata,
        created_at=NOV_2023,
    )


def filled_index(
    embedder: WordLlamaEmbedder, documents: list[tuple[Document, list[Chunk]]]
) -> LiveIndex:
    index = LiveIndex(embedder)
    for document, chunks in documents:
        index.apply(document_inserts=[document], chunk_inserts=chunks)
    return index
