"""The splitter: exact offsets, bounded sizes, structure first, overlap within a section."""

from __future__ import annotations

import itertools

import pytest

from inner_universe.features.knowledge import (
    ChunkerConfig,
    EmptyDocumentError,
    UnknownFormatError,
    split,
)
from inner_universe.features.knowledge.formats import format_of

MARKDOWN = """# Guide

Intro paragraph. It has two sentences.

## Install

Run the setup command. It builds the server. It takes a while the first time, so
go and make tea while it prints numbered progress lines.

```bash
./scripts/setup
./scripts/test
```

## Use

Connect, subscribe, call reducers. Every callback sees whole transactions.
"""


def test_every_chunk_is_exactly_the_text_at_its_offsets() -> None:
    text = MARKDOWN * 5
    passages = split(text, "markdown", ChunkerConfig(120, 30))
    assert [p.position for p in passages] == list(range(len(passages)))
    for p in passages:
        assert text[p.start : p.end] == p.text
        assert p.text == p.text.strip()


def test_chunks_stay_within_the_size() -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(400))
    passages = split(text, "text", ChunkerConfig(200, 40))
    assert len(passages) > 10
    assert max(len(p.text) for p in passages) <= 200


def test_a_heading_starts_a_chunk_and_names_the_chunks_under_it() -> None:
    passages = split(MARKDOWN, "markdown", ChunkerConfig(150, 0))
    starts = [p.text.splitlines()[0] for p in passages]
    assert "## Install" in starts and "## Use" in starts
    use = next(p for p in passages if p.text.startswith("## Use"))
    assert use.heading == "Use"
    install_body = [p for p in passages if p.heading == "Install"]
    assert any("./scripts/setup" in p.text for p in install_body)


def test_a_code_block_that_fits_stays_whole() -> None:
    passages = split(MARKDOWN, "markdown", ChunkerConfig(150, 0))
    assert any("./scripts/setup\n./scripts/test" in p.text for p in passages)


def test_consecutive_chunks_share_whole_sentences_within_the_overlap() -> None:
    text = " ".join(f"This is sentence {i}." for i in range(60))
    passages = split(text, "text", ChunkerConfig(100, 45))
    for before, after in itertools.pairwise(passages):
        assert after.start < before.end  # they overlap
        assert before.end - after.start <= 45
        assert after.text.startswith("This is sentence")


def test_a_sentence_longer_than_the_size_is_cut_at_spaces() -> None:
    text = "word " * 300
    passages = split(text, "text", ChunkerConfig(100, 0))
    assert all(len(p.text) <= 100 for p in passages)
    assert " ".join(p.text for p in passages).split() == text.split()


def test_empty_text_and_unknown_format_are_refused() -> None:
    with pytest.raises(EmptyDocumentError):
        split(" \n\t ", "text")
    with pytest.raises(UnknownFormatError, match="pdf"):
        split("hello", "pdf")
    with pytest.raises(UnknownFormatError, match=r"\.docx"):
        format_of("report.docx")
    assert format_of("README.md") == "markdown" and format_of("notes.TXT") == "text"


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="size"):
        ChunkerConfig(size=10)
    with pytest.raises(ValueError, match="overlap"):
        ChunkerConfig(size=100, overlap=60)
