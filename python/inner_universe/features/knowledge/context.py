"""Context for a model call: the best passages for a question, within a token budget.

:func:`build_context` searches the live index, renders each hit through the
``prompt`` perspective (so a reader never gets a passage they may not read) and
adds passages best first while the whole context stays within ``budget`` tokens,
counted by :func:`tokens.token_counter` (LiteLLM's own counter when installed).
Each passage carries a label such as ``[2]``; ``Context.citations`` maps the
labels back to chunks, so an answer's citations can be resolved to documents
and character offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...spacetime.types import Identity
from .embedding import WordLlamaEmbedder
from .index import LiveIndex
from .perspectives import PerspectiveAware, can_read
from .search import SearchFilter, SearchHit, SearchMode
from .tokens import TokenCounter, token_counter

__all__ = ["Citation", "Context", "build_context"]

HEADER = "Sources (cite them by their [number]):"


@dataclass(frozen=True, slots=True)
class Citation:
    """A label in the context text and the chunk it stands for."""

    label: str
    hit: SearchHit


@dataclass(frozen=True, slots=True)
class Context:
    """The context text, what it cites, and how it was counted."""

    text: str
    citations: tuple[Citation, ...]
    tokens: int
    budget: int
    tokenizer: str
    left_out: int
    """Passages found but not included: over the budget."""

    def cited(self, label: str) -> SearchHit:
        """The hit behind a label such as ``[2]``."""
        for citation in self.citations:
            if citation.label == label:
                return citation.hit
        raise KeyError(f"no citation {label}; the context has {len(self.citations)}")


def build_context(
    index: LiveIndex,
    question: str,
    *,
    reader: Identity | None,
    budget: int = 1500,
    k: int = 8,
    mode: SearchMode = "hybrid",
    where: SearchFilter | None = None,
    counter: TokenCounter | None = None,
    perspectives: PerspectiveAware | None = None,
) -> Context:
    """The best passages for ``question`` that ``reader`` may read, within ``budget`` tokens.

    Raises:
        EmptyQueryError: the question has no text.
        ValueError: the budget is not positive.
    """
    if budget < 1:
        raise ValueError(f"token budget is {budget}; it must be at least 1")
    if counter is None:
        embedder = index.embedder
        counter = token_counter(
            embedder=embedder if isinstance(embedder, WordLlamaEmbedder) else None
        )
    hits = index.search(question, k, mode=mode, where=where)
    visible = [hit for hit in hits if can_read(reader, hit)]
    rendered = (perspectives or PerspectiveAware()).render(visible, "prompt", reader)
    citations: list[Citation] = []
    text = HEADER
    tokens = counter(text)
    for view, hit in zip(rendered, visible, strict=True):
        label = f"[{len(citations) + 1}]"
        block = f"\n\n{label} {view['source']}\n{view['text']}"
        candidate = text + block
        candidate_tokens = counter(candidate)
        if candidate_tokens <= budget:
            text, tokens = candidate, candidate_tokens
            citations.append(Citation(label, hit))
    if not citations:
        text, tokens = "", 0
    return Context(
        text=text,
        citations=tuple(citations),
        tokens=tokens,
        budget=budget,
        tokenizer=counter.name,
        left_out=len(visible) - len(citations),
    )
