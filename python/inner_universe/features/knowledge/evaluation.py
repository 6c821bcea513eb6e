"""The labelled evaluation set, and recall@k and MRR for each search mode.

``evalset/corpus/`` holds frozen copies of the project's own README, docs pages
and module docstrings; ``evalset/queries.json`` has questions written for them,
each labelled with the passage that answers it (a file and a phrase from it). A
chunk answers a query when it comes from that file and contains that phrase
(whitespace aside), so the labels do not depend on chunk ids or sizes.

- recall@k: the share of queries with an answering chunk among the first k results.
- MRR: the mean of 1 / (rank of the first answering chunk), counting ranks up to 10
  (0 when none is in the first 10).

The index is filled through :meth:`LiveIndex.apply` with rows shaped like the
module's (:mod:`.rows`), so the figures measure the search code that serves live replicas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...spacetime.types import Identity
from .chunking import ChunkerConfig
from .embedding import Embedder
from .index import LiveIndex
from .rows import document_rows
from .search import SearchMode

__all__ = ["EVALSET", "EvalQuery", "EvalScores", "EvalSet", "build_index", "evaluate", "load"]

EVALSET = Path(__file__).parent / "evalset"
MRR_DEPTH = 10


@dataclass(frozen=True, slots=True)
class EvalQuery:
    query: str
    file: str
    answer: str


@dataclass(frozen=True, slots=True)
class EvalSet:
    corpus: dict[str, str]
    """File name -> text."""
    queries: tuple[EvalQuery, ...]
    chunking: ChunkerConfig


@dataclass(frozen=True, slots=True)
class EvalScores:
    mode: SearchMode
    recall_at_k: float
    mrr: float
    k: int
    queries: int


def load(folder: Path = EVALSET) -> EvalSet:
    """The corpus and labelled queries in ``folder``."""
    spec: dict[str, Any] = json.loads((folder / "queries.json").read_text(encoding="utf-8"))
    corpus = {
        p.name: p.read_text(encoding="utf-8") for p in sorted((folder / "corpus").glob("*.md"))
    }
    queries = tuple(EvalQuery(q["query"], q["file"], q["answer"]) for q in spec["queries"])
    return EvalSet(corpus, queries, ChunkerConfig(**spec["chunking"]))


def build_index(evalset: EvalSet, embedder: Embedder) -> LiveIndex:
    """A live index holding the chunked, embedded corpus (one document per file)."""
    index = LiveIndex(embedder)
    next_chunk = 1
    for document_id, (name, text) in enumerate(evalset.corpus.items(), start=1):
        document, chunks = document_rows(
            embedder,
            document_id,
            name,
            text,
            owner=Identity(1),
            first_chunk_id=next_chunk,
            chunking=evalset.chunking,
            metadata={"source": name, "format": "markdown"},
        )
        index.apply(document_inserts=[document], chunk_inserts=chunks)
        next_chunk += len(chunks)
    return index


def evaluate(index: LiveIndex, evalset: EvalSet, mode: SearchMode, k: int = 5) -> EvalScores:
    """recall@k and MRR of ``mode`` over the labelled queries."""
    found, reciprocal = 0, 0.0
    for item in evalset.queries:
        answer = _words(item.answer)
        hits = index.search(item.query, max(k, MRR_DEPTH), mode=mode)
        ranks = [
            rank
            for rank, hit in enumerate(hits, start=1)
            if hit.title == item.file and answer in _words(hit.text)
        ]
        if ranks and ranks[0] <= k:
            found += 1
        if ranks:
            reciprocal += 1.0 / ranks[0]
    n = len(evalset.queries)
    return EvalScores(mode, found / n, reciprocal / n, k, n)


def _words(text: str) -> str:
    return " ".join(text.split())
