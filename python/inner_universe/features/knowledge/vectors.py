"""Exact cosine search over the chunk vectors, updated in place as chunks come and go.

Vectors live in one growable float32 matrix, unit length, so a query is one
matrix-vector product and a partial sort. Adding appends a row; removing moves
the last row into the hole: no change ever rebuilds the matrix. Exact search is
enough at this scale (50k x 256 in a few milliseconds per query, see
docs/knowledge.md), so there is no approximate index to keep in step.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import numpy.typing as npt

from .embedding import Vectors, normalized

__all__ = ["VectorStore"]


class VectorStore:
    """Chunk id -> unit vector, with exact top-k cosine search and a document filter."""

    def __init__(self, dimension: int, capacity: int = 1024) -> None:
        self.dimension = dimension
        self._vectors: Vectors = np.zeros((capacity, dimension), dtype=np.float32)
        self._chunk_ids: npt.NDArray[np.int64] = np.zeros(capacity, dtype=np.int64)
        self._document_ids: npt.NDArray[np.int64] = np.zeros(capacity, dtype=np.int64)
        self._slot: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, chunk_id: int) -> bool:
        return chunk_id in self._slot

    def add(self, chunk_id: int, document_id: int, vector: Vectors) -> None:
        """Add (or replace) a chunk's vector."""
        if chunk_id in self._slot:
            self.remove(chunk_id)
        slot = len(self._slot)
        if slot == len(self._chunk_ids):
            self._grow()
        self._vectors[slot] = normalized(vector.reshape(1, self.dimension))[0]
        self._chunk_ids[slot] = chunk_id
        self._document_ids[slot] = document_id
        self._slot[chunk_id] = slot

    def remove(self, chunk_id: int) -> None:
        """Forget a chunk (no-op if unknown): the last row moves into its slot."""
        slot = self._slot.pop(chunk_id, None)
        if slot is None:
            return
        last = len(self._slot)
        if slot != last:
            self._vectors[slot] = self._vectors[last]
            self._chunk_ids[slot] = self._chunk_ids[last]
            self._document_ids[slot] = self._document_ids[last]
            self._slot[int(self._chunk_ids[slot])] = slot

    def search(
        self, query: Vectors, k: int, documents: Collection[int] | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` most similar chunks as (chunk id, cosine), best first.

        ``documents``, when given, limits the search to chunks of those documents.
        """
        n = len(self._slot)
        if n == 0 or k <= 0:
            return []
        q = normalized(query.reshape(1, self.dimension))[0]
        scores = self._vectors[:n] @ q
        if documents is not None:
            allowed = np.isin(self._document_ids[:n], np.fromiter(documents, dtype=np.int64))
            scores = np.where(allowed, scores, -np.inf)
        k = min(k, n)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self._chunk_ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def _grow(self) -> None:
        capacity = 2 * len(self._chunk_ids)
        vectors = np.zeros((capacity, self.dimension), dtype=np.float32)
        vectors[: len(self._vectors)] = self._vectors
        self._vectors = vectors
        self._chunk_ids = np.resize(self._chunk_ids, capacity)
        self._document_ids = np.resize(self._document_ids, capacity)
