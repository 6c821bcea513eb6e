"""Search over a live index: modes, fusion, filters, provenance, bad queries."""

from __future__ import annotations

import asyncio

import pytest

from inner_universe.features.knowledge import (
    EmptyQueryError,
    LiveIndex,
    SearchFilter,
    WordLlamaEmbedder,
    fuse,
)

from .conftest import ALICE, BOB, document_rows, filled_index

GARDEN = """# Garden

Tomatoes need full sun and deep watering twice a week. Prune the side shoots.

Basil grows well next to tomatoes and keeps some pests away.
"""
KITCHEN = """# Kitchen

A sharp knife is safer than a dull one. Hone it before each use.

Store olive oil away from light and heat so it does not turn rancid.
"""
TRAINS = """# Trains

The night train leaves at ten and arrives in the capital at dawn.
"""


@pytest.fixture
def index(embedder: WordLlamaEmbedder) -> LiveIndex:
    return filled_index(
        embedder,
        [
            document_rows(embedder, 1, "garden", GARDEN, metadata={"topic": "home"}),
            document_rows(
                embedder, 2, "kitchen", KITCHEN, metadata={"topic": "home"}, first_chunk_id=100
            ),
            document_rows(embedder, 3, "trains", TRAINS, owner=BOB, first_chunk_id=200),
        ],
    )


@pytest.mark.parametrize("mode", ["vector", "lexical", "hybrid"])
def test_each_mode_finds_the_passage(index: LiveIndex, mode: str) -> None:
    [hit] = index.search("how often should I water tomato plants", 1, mode=mode)  # type: ignore[arg-type]
    assert hit.title == "garden" and "watering" in hit.text


def test_hits_carry_provenance_and_the_score_of_each_part(index: LiveIndex) -> None:
    [hit] = index.search("keep olive oil from going rancid", 1)
    assert (hit.document_id, hit.title) == (2, "kitchen")
    assert hit.chunk_id == hit.chunk.id and hit.position == hit.chunk.position
    assert KITCHEN[hit.start_char : hit.end_char] == hit.text
    assert hit.vector_rank is not None and hit.vector_score is not None
    assert hit.lexical_rank is not None and hit.lexical_score is not None
    expected = 1 / (60 + hit.vector_rank) + 1 / (60 + hit.lexical_rank)
    assert hit.score == pytest.approx(expected)


def test_filters_on_owner_documents_and_metadata(index: LiveIndex) -> None:
    def docs(where: SearchFilter) -> set[int]:
        return {h.document_id for h in index.search("the", 50, where=where)}

    assert docs(SearchFilter(owner=BOB)) == {3}
    assert docs(SearchFilter(owner=ALICE)) == {1, 2}
    assert docs(SearchFilter(metadata={"topic": "home"})) == {1, 2}
    assert docs(SearchFilter(documents={2, 3}, owner=ALICE)) == {2}
    assert docs(SearchFilter(where=lambda d: d.title.startswith("t"))) == {3}
    assert index.search("tomatoes", 5, where=SearchFilter(metadata={"topic": "none"})) == []


def test_deletes_leave_every_part_of_the_index(index: LiveIndex) -> None:
    gone = [row for row in index.chunks.values() if row.document_id == 1]
    index.apply(chunk_deletes=gone)
    for mode in ("vector", "lexical", "hybrid"):
        hits = index.search("tomatoes basil watering", 10, mode=mode)  # type: ignore[arg-type]
        assert all(h.document_id != 1 for h in hits)
    assert len(index.vectors) == len(index.chunks) == len(index.lexical)


def test_empty_queries_and_bad_arguments_are_refused(index: LiveIndex) -> None:
    for query in ("", "   \n"):
        with pytest.raises(EmptyQueryError):
            index.search(query)
    with pytest.raises(ValueError, match="k is 0"):
        index.search("tomatoes", 0)
    with pytest.raises(ValueError, match="mode"):
        index.search("tomatoes", mode="fuzzy")  # type: ignore[arg-type]


def test_reciprocal_rank_fusion() -> None:
    fused = fuse([1, 2, 3], [3, 1, 4])
    assert [item for item, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[-1][1] == pytest.approx(1 / 63)


async def test_wait_for_wakes_when_a_change_makes_the_predicate_true(
    index: LiveIndex, embedder: WordLlamaEmbedder
) -> None:
    document, chunks = document_rows(
        embedder, 9, "late", "# Late\n\nArrives later.", first_chunk_id=900
    )
    asyncio.get_running_loop().call_soon(
        lambda: index.apply(document_inserts=[document], chunk_inserts=chunks)
    )
    await index.wait_for(lambda ix: 900 in ix.chunks, timeout=5)
    assert index.search("arrives later", 1)[0].title == "late"
    with pytest.raises(TimeoutError):
        await index.wait_for(lambda ix: False, timeout=0.05)
    assert index._waiters == []
