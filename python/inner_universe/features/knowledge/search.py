"""Searching the live index: vector, lexical, or both fused, with filters and provenance.

Hybrid search takes the best ``candidates`` of each side and fuses them with
reciprocal rank fusion (each list adds ``1 / (60 + rank)``), which needs no
score calibration between cosine and BM25. Every hit says where it came from:
document, chunk, character offsets, and the rank and score it had on each side.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ...spacetime.types import Identity
from .errors import EmptyQueryError

if TYPE_CHECKING:
    from .index import DocumentInfo, LiveIndex

__all__ = ["RRF_K", "SearchFilter", "SearchHit", "SearchMode", "fuse", "search"]

SearchMode = Literal["vector", "lexical", "hybrid"]
RRF_K = 60
"""The reciprocal rank fusion constant (the value from the original paper)."""


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Which documents a search may return; every given condition must hold."""

    owner: Identity | None = None
    documents: Collection[int] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Each key must be in the document's metadata with an equal value."""
    where: Callable[[DocumentInfo], bool] | None = None
    """Any other test on the document."""

    def allows(self, document: DocumentInfo) -> bool:
        if self.owner is not None and document.owner != self.owner:
            return False
        if self.documents is not None and document.id not in self.documents:
            return False
        if any(document.metadata.get(k, _MISSING) != v for k, v in self.metadata.items()):
            return False
        return self.where is None or self.where(document)


_MISSING = object()


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One chunk found, with its provenance and the score of each part of the search."""

    chunk_id: int
    document_id: int
    title: str
    position: int
    start_char: int
    end_char: int
    text: str
    score: float
    """The fused score in hybrid mode, else the cosine or the BM25 score."""
    vector_rank: int | None = None
    vector_score: float | None = None
    lexical_rank: int | None = None
    lexical_score: float | None = None
    query: str = ""
    chunk: Any = field(default=None, repr=False, compare=False)
    document: DocumentInfo | None = field(default=None, repr=False, compare=False)


def fuse(*rankings: list[int], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of best-first id lists: (id, score), best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def search(
    index: LiveIndex,
    query: str,
    k: int = 5,
    *,
    mode: SearchMode = "hybrid",
    where: SearchFilter | None = None,
    candidates: int = 50,
) -> list[SearchHit]:
    """The ``k`` best chunks of ``index`` for ``query``.

    Raises:
        EmptyQueryError: the query has no text.
        ValueError: ``k`` is not positive or ``mode`` is unknown.
    """
    if not query.strip():
        raise EmptyQueryError("the search query is empty")
    if k < 1:
        raise ValueError(f"k is {k}; it must be at least 1")
    if mode not in ("vector", "lexical", "hybrid"):
        raise ValueError(f"unknown search mode {mode!r}; use vector, lexical or hybrid")
    documents = _allowed_documents(index, where)
    if documents is not None and not documents:
        return []
    depth = k if mode != "hybrid" else max(candidates, k)
    vector: list[tuple[int, float]] = []
    lexical: list[tuple[int, float]] = []
    if mode in ("vector", "hybrid"):
        query_vector = index.embedder.embed([query])[0]
        vector = index.vectors.search(query_vector, depth, documents)
    if mode in ("lexical", "hybrid"):
        lexical = index.lexical.search(query, depth, documents)
    if mode == "vector":
        ranked = vector
    elif mode == "lexical":
        ranked = lexical
    else:
        ranked = fuse([c for c, _ in vector], [c for c, _ in lexical])
    parts = {"vector": _ranks(vector), "lexical": _ranks(lexical)}
    return [_hit(index, chunk_id, score, query, parts) for chunk_id, score in ranked[:k]]


def _allowed_documents(index: LiveIndex, where: SearchFilter | None) -> set[int] | None:
    if where is None:
        return None
    return {doc.id for doc in index.documents.values() if where.allows(doc)}


def _ranks(ranking: list[tuple[int, float]]) -> dict[int, tuple[int, float]]:
    return {chunk_id: (rank, score) for rank, (chunk_id, score) in enumerate(ranking, start=1)}


def _hit(
    index: LiveIndex,
    chunk_id: int,
    score: float,
    query: str,
    parts: dict[str, dict[int, tuple[int, float]]],
) -> SearchHit:
    chunk = index.chunks[chunk_id]
    document = index.documents.get(chunk.document_id)
    vector = parts["vector"].get(chunk_id)
    lexical = parts["lexical"].get(chunk_id)
    return SearchHit(
        chunk_id=chunk_id,
        document_id=chunk.document_id,
        title=document.title if document else "",
        position=chunk.position,
        start_char=chunk.start_char,
        end_char=chunk.end_char,
        text=chunk.text,
        score=score,
        vector_rank=vector[0] if vector else None,
        vector_score=vector[1] if vector else None,
        lexical_rank=lexical[0] if lexical else None,
        lexical_score=lexical[1] if lexical else None,
        query=query,
        chunk=chunk,
        document=document,
    )
