"""Exact cosine search: the same answers as brute force, through adds and removes."""

from __future__ import annotations

import numpy as np
import pytest

from inner_universe.features.knowledge.embedding import (
    normalized,
    vector_from_bytes,
    vector_to_bytes,
)
from inner_universe.features.knowledge.vectors import VectorStore


def brute_force(vectors: dict[int, np.ndarray], query: np.ndarray, k: int) -> list[int]:
    ids = sorted(vectors)
    matrix = normalized(np.stack([vectors[i] for i in ids]).astype(np.float32))
    scores = matrix @ normalized(query.reshape(1, -1).astype(np.float32))[0]
    order = sorted(range(len(ids)), key=lambda j: -scores[j])
    return [ids[j] for j in order[:k]]


def test_search_matches_brute_force_through_adds_and_removes() -> None:
    rng = np.random.default_rng(7)
    store = VectorStore(16, capacity=4)  # small, so it grows several times
    kept: dict[int, np.ndarray] = {}
    for chunk_id in range(1, 301):
        vector = rng.normal(size=16).astype(np.float32)
        store.add(chunk_id, chunk_id % 5, vector)
        kept[chunk_id] = vector
    for chunk_id in range(1, 301, 3):
        store.remove(chunk_id)
        del kept[chunk_id]
    store.remove(10_000)  # unknown: nothing happens
    assert len(store) == len(kept)
    for _ in range(20):
        query = rng.normal(size=16).astype(np.float32)
        found = [chunk_id for chunk_id, _ in store.search(query, 10)]
        assert found == brute_force(kept, query, 10)


def test_the_document_filter_limits_results() -> None:
    rng = np.random.default_rng(1)
    store = VectorStore(8)
    for chunk_id in range(1, 41):
        store.add(chunk_id, chunk_id % 4, rng.normal(size=8).astype(np.float32))
    hits = store.search(rng.normal(size=8).astype(np.float32), 40, documents={1, 3})
    assert len(hits) == 20
    assert all(chunk_id % 4 in (1, 3) for chunk_id, _ in hits)
    assert store.search(np.ones(8, dtype=np.float32), 5, documents=set()) == []


def test_scores_are_cosines() -> None:
    store = VectorStore(2)
    store.add(1, 1, np.array([3.0, 0.0], dtype=np.float32))
    store.add(2, 1, np.array([1.0, 1.0], dtype=np.float32))
    [(first, s1), (second, s2)] = store.search(np.array([2.0, 0.0], dtype=np.float32), 2)
    assert (first, second) == (1, 2)
    assert s1 == pytest.approx(1.0, abs=1e-6)
    assert s2 == pytest.approx(2**-0.5, abs=1e-6)


def test_bytes_round_trip_is_little_endian_float32() -> None:
    vector = np.array([1.5, -2.0, 0.25], dtype=np.float32)
    data = vector_to_bytes(vector)
    assert data == b"\x00\x00\xc0?\x00\x00\x00\xc0\x00\x00\x80>"
    assert np.array_equal(vector_from_bytes(data, 3), vector)
