"""Perspectives: one set of hits, three readers' views, and no private passage leaks."""

from __future__ import annotations

import pytest

from inner_universe.features.knowledge import LiveIndex, PerspectiveAware, WordLlamaEmbedder
from inner_universe.features.knowledge.perspectives import highlight

from .conftest import ALICE, BOB, document_rows, filled_index

PUBLIC = "# Launch plan\n\nThe launch happens on Friday after the final review of the rocket."
SECRET = "# Salaries\n\nThe launch bonus for the rocket team is kept private in this file."


@pytest.fixture
def index(embedder: WordLlamaEmbedder) -> LiveIndex:
    return filled_index(
        embedder,
        [
            document_rows(embedder, 1, "plan", PUBLIC, metadata={"team": "ops"}),
            document_rows(embedder, 2, "salaries", SECRET, private=True, first_chunk_id=50),
        ],
    )


def test_prompt_ui_and_audit_views_of_the_same_hits(index: LiveIndex) -> None:
    hits = index.search("rocket launch", 5)
    views = PerspectiveAware()
    prompt = views.render(hits, "prompt", ALICE)
    assert [p["cite"] for p in prompt] == ["[1]", "[2]"]
    assert set(prompt[0]) == {"cite", "source", "text"}
    assert "chunk 0 (characters" in prompt[0]["source"] and "\n" not in prompt[0]["text"]

    ui = views.render(hits, "ui", ALICE)
    assert set(ui[0]) == {"title", "document_id", "chunk_id", "score", "snippet"}
    assert "<mark>rocket</mark>" in ui[0]["snippet"] and "<mark>launch</mark>" in ui[0]["snippet"]

    audit = views.render(hits, "audit", ALICE)
    first = audit[0]
    assert first["owner"] == ALICE.to_hex() and first["ingested_by"] == ALICE.to_hex()
    assert first["model"] == "wordllama/l2_supercat-256" and first["dimension"] == 256
    assert first["ingested_at"].startswith("2023-11-14")
    assert first["lexical_rank"] is not None and first["vector_rank"] is not None
    assert first["reader"] == ALICE.to_hex()
    assert {a["title"] for a in audit} == {"plan", "salaries"}


@pytest.mark.parametrize("perspective", ["prompt", "ui", "audit"])
def test_a_stranger_never_sees_a_private_document(index: LiveIndex, perspective: str) -> None:
    hits = index.search("rocket launch", 5)
    assert {h.title for h in hits} == {"plan", "salaries"}  # the owner's replica holds both
    for reader in (BOB, None):
        rendered = PerspectiveAware().render(hits, perspective, reader)
        assert len(rendered) == 1
        assert "salaries" not in repr(rendered) and "bonus" not in repr(rendered)


def test_unknown_perspective_is_refused(index: LiveIndex) -> None:
    with pytest.raises(ValueError, match="unknown perspective 'admin'; known: prompt, ui, audit"):
        PerspectiveAware().render([], "admin", ALICE)


def test_highlight_escapes_and_marks_stems() -> None:
    text = "<b>Running</b> tests: the runner runs every test & reports."
    marked = highlight(text, "running test", 200, ("[", "]"))
    assert (
        marked
        == "&lt;b&gt;[Running]&lt;/b&gt; [tests]: the runner runs every [test] &amp; reports."
    )
    long = "filler " * 100 + "needle here " + "filler " * 100
    snippet = highlight(long, "needle", 60, ("*", "*"))
    assert snippet.startswith("…") and snippet.endswith("…") and "*needle*" in snippet
