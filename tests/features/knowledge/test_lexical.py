"""BM25 with tantivy: stemming, incremental changes, the document filter, safe query text."""

from __future__ import annotations

from inner_universe.features.knowledge.lexical import LexicalIndex


def test_changes_are_visible_after_each_commit_without_a_rebuild() -> None:
    index = LexicalIndex()
    index.add(1, 10, "The planner runs the launch checklist")
    index.add(2, 10, "Researchers collect sources about SpacetimeDB")
    index.commit()
    assert [c for c, _ in index.search("running checklists", 5)] == [1]  # stemmed
    index.add(3, 11, "A second checklist for the release")
    index.remove(1)
    index.commit()
    assert [c for c, _ in index.search("checklist", 5)] == [3]
    assert len(index) == 2


def test_the_document_filter_and_odd_query_text() -> None:
    index = LexicalIndex()
    for chunk_id in range(1, 7):
        index.add(chunk_id, chunk_id % 2, f"shared words and item{chunk_id}")
    index.commit()
    found = [c for c, _ in index.search("shared", 10, documents={1})]
    assert sorted(found) == [1, 3, 5]
    # Query syntax is not interpreted: quotes, colons and operators are just words.
    assert index.search('text:"shared AND (item2', 10)
    assert index.search("?!", 10) == []
