"""Context for a model call: within the token budget, with citations back to chunks."""

from __future__ import annotations

import importlib.util

import pytest

from inner_universe.features.knowledge import (
    EmptyQueryError,
    LiveIndex,
    WordLlamaEmbedder,
    build_context,
    token_counter,
)
from inner_universe.features.knowledge.tokens import WordLlamaTokenCounter

from .conftest import ALICE, BOB, document_rows, filled_index

DOC = "\n\n".join(
    f"## Step {i}\n\nStep {i} of the deployment checks the {w} service and its logs."
    for i, w in enumerate(["database", "cache", "queue", "mailer", "search", "billing"] * 3)
)


@pytest.fixture
def index(embedder: WordLlamaEmbedder) -> LiveIndex:
    return filled_index(
        embedder,
        [
            document_rows(embedder, 1, "runbook", "# Runbook\n\n" + DOC),
            document_rows(
                embedder,
                2,
                "private notes",
                "# Notes\n\nThe deployment password is hunter2.",
                private=True,
                first_chunk_id=500,
            ),
        ],
    )


def test_the_context_fits_the_budget_and_cites_chunks(
    index: LiveIndex, embedder: WordLlamaEmbedder
) -> None:
    counter = WordLlamaTokenCounter(embedder)
    small = build_context(
        index,
        "which step checks the queue service?",
        reader=ALICE,
        budget=120,
        k=10,
        counter=counter,
    )
    large = build_context(
        index,
        "which step checks the queue service?",
        reader=ALICE,
        budget=2000,
        k=10,
        counter=counter,
    )
    assert 0 < small.tokens <= 120 and counter(small.text) == small.tokens
    assert len(small.citations) < len(large.citations) == 10
    assert small.left_out == 10 - len(small.citations)
    for citation in large.citations:
        hit = large.cited(citation.label)
        assert f"{citation.label} {hit.title}, chunk {hit.position}" in large.text
        assert " ".join(hit.text.split()) in large.text
    assert "queue" in large.cited("[1]").text
    with pytest.raises(KeyError):
        large.cited("[99]")


def test_a_reader_gets_no_passage_they_may_not_read(
    index: LiveIndex, embedder: WordLlamaEmbedder
) -> None:
    counter = WordLlamaTokenCounter(embedder)
    owner = build_context(index, "deployment password", reader=ALICE, budget=500, counter=counter)
    stranger = build_context(index, "deployment password", reader=BOB, budget=500, counter=counter)
    assert "hunter2" in owner.text
    assert "hunter2" not in stranger.text and stranger.citations


def test_bad_requests(index: LiveIndex, embedder: WordLlamaEmbedder) -> None:
    counter = WordLlamaTokenCounter(embedder)
    with pytest.raises(EmptyQueryError):
        build_context(index, " ", reader=ALICE, counter=counter)
    with pytest.raises(ValueError, match="budget"):
        build_context(index, "queue", reader=ALICE, budget=0, counter=counter)
    tiny = build_context(index, "queue", reader=ALICE, budget=5, counter=counter)
    assert (tiny.text, tiny.citations, tiny.tokens) == ("", (), 0)


def test_the_counter_is_litellms_when_installed_else_the_bundled_tokenizer(
    embedder: WordLlamaEmbedder,
) -> None:
    counter = token_counter(embedder=embedder)
    if importlib.util.find_spec("litellm") is None:
        assert counter.name == "wordllama:llama-2"
        assert counter("hello world") == 2
    else:
        import litellm

        assert counter.name == "litellm:gpt-4o-mini"
        text = "Counting tokens the way the model call will."
        assert counter(text) == litellm.token_counter(model="gpt-4o-mini", text=text)
