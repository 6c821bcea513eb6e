"""Perspectives: the same search results shown differently to different readers.

This is the founding documents' PerspectiveAware component, on marshmallow
schemas: each perspective is a schema that dumps a found chunk for one kind of
reader.

- ``prompt``: compact text with a citation label, for a model's context.
- ``ui``: title and a short snippet with the query's words highlighted.
- ``audit``: everything, with provenance: owner, who ingested it and when, the
  embedding model, offsets, and the rank and score from each side of the search.

Whatever the perspective, a reader who may not read a document sees none of its
chunks: :meth:`PerspectiveAware.render` drops them before any schema runs. A
document is readable by its owner, and by anyone when it is not private.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, fields

from ...spacetime.types import Identity
from .search import SearchHit

__all__ = [
    "AuditPerspective",
    "PerspectiveAware",
    "PromptPerspective",
    "Seen",
    "UIPerspective",
    "can_read",
]


@dataclass(frozen=True, slots=True)
class Seen:
    """A hit as a perspective sees it: numbered in its list, for one reader."""

    number: int
    hit: SearchHit
    reader: Identity | None


def can_read(reader: Identity | None, hit: SearchHit) -> bool:
    """Whether ``reader`` may see ``hit``: its document is known, and public or theirs."""
    document = hit.document
    if document is None:
        return False
    return not document.private or document.owner == reader


def _hex(identity: Identity | None) -> str | None:
    return None if identity is None else identity.to_hex()


def source_label(hit: SearchHit) -> str:
    """'Title, chunk 3 (characters 120-840)': where a cited passage is."""
    title = hit.title or f"document {hit.document_id}"
    return f"{title}, chunk {hit.position} (characters {hit.start_char}-{hit.end_char})"


class PromptPerspective(Schema):
    """For a model: ``[n]``, where the passage is, and its text with whitespace collapsed."""

    cite = fields.Function(lambda seen: f"[{seen.number}]")
    source = fields.Function(lambda seen: source_label(seen.hit))
    text = fields.Function(lambda seen: " ".join(seen.hit.text.split()))


class UIPerspective(Schema):
    """For a person: the title, and a snippet with the query's words marked."""

    def __init__(
        self, *, snippet_chars: int = 240, mark: tuple[str, str] = ("<mark>", "</mark>"), **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.snippet_chars = snippet_chars
        self.mark = mark

    title = fields.Function(lambda seen: seen.hit.title)
    document_id = fields.Function(lambda seen: seen.hit.document_id)
    chunk_id = fields.Function(lambda seen: seen.hit.chunk_id)
    score = fields.Function(lambda seen: round(seen.hit.score, 4))
    snippet = fields.Method("get_snippet")

    def get_snippet(self, seen: Seen) -> str:
        return highlight(seen.hit.text, seen.hit.query, self.snippet_chars, self.mark)


class AuditPerspective(Schema):
    """For an auditor: every field of the chunk, its document and the search."""

    chunk_id = fields.Function(lambda seen: seen.hit.chunk_id)
    document_id = fields.Function(lambda seen: seen.hit.document_id)
    title = fields.Function(lambda seen: seen.hit.title)
    owner = fields.Function(
        lambda seen: _hex(seen.hit.document.owner if seen.hit.document else None)
    )
    private = fields.Function(lambda seen: bool(seen.hit.document and seen.hit.document.private))
    metadata = fields.Function(
        lambda seen: dict(seen.hit.document.metadata) if seen.hit.document else {}
    )
    position = fields.Function(lambda seen: seen.hit.position)
    start_char = fields.Function(lambda seen: seen.hit.start_char)
    end_char = fields.Function(lambda seen: seen.hit.end_char)
    text = fields.Function(lambda seen: seen.hit.text)
    model = fields.Function(lambda seen: getattr(seen.hit.chunk, "model", None))
    dimension = fields.Function(lambda seen: getattr(seen.hit.chunk, "dimension", None))
    ingested_by = fields.Function(lambda seen: _hex(getattr(seen.hit.chunk, "ingested_by", None)))
    ingested_at = fields.Function(lambda seen: _iso(getattr(seen.hit.chunk, "created_at", None)))
    query = fields.Function(lambda seen: seen.hit.query)
    score = fields.Function(lambda seen: seen.hit.score)
    vector_rank = fields.Function(lambda seen: seen.hit.vector_rank)
    vector_score = fields.Function(lambda seen: seen.hit.vector_score)
    lexical_rank = fields.Function(lambda seen: seen.hit.lexical_rank)
    lexical_score = fields.Function(lambda seen: seen.hit.lexical_score)
    reader = fields.Function(lambda seen: _hex(seen.reader))


def _iso(timestamp: Any) -> str | None:
    return None if timestamp is None else timestamp.to_datetime().isoformat()


class PerspectiveAware:
    """Renders search hits for a reader through a named perspective (a marshmallow schema)."""

    def __init__(self, perspectives: Mapping[str, Schema] | None = None) -> None:
        self.perspectives: dict[str, Schema] = {
            "prompt": PromptPerspective(),
            "ui": UIPerspective(),
            "audit": AuditPerspective(),
        }
        self.perspectives.update(perspectives or {})

    def render(
        self, hits: Iterable[SearchHit], perspective: str, reader: Identity | None
    ) -> list[dict[str, Any]]:
        """The hits ``reader`` may read, numbered from 1, dumped by ``perspective``."""
        try:
            schema = self.perspectives[perspective]
        except KeyError:
            known = ", ".join(self.perspectives)
            raise ValueError(f"unknown perspective {perspective!r}; known: {known}") from None
        readable = [hit for hit in hits if can_read(reader, hit)]
        seen = [Seen(number, hit, reader) for number, hit in enumerate(readable, start=1)]
        dumped: list[dict[str, Any]] = schema.dump(seen, many=True)
        return dumped


_WORD = re.compile(r"\w+")


def highlight(text: str, query: str, width: int, mark: tuple[str, str]) -> str:
    """A ``width``-character window of ``text`` around the first query word, words marked.

    A text word matches a query word when they share a stem (crudely: without an
    -ing, -ed, -es or -s ending). The text is HTML-escaped, then the marks are
    added around matches.
    """
    stems = {_stem(word) for word in _WORD.findall(query.lower()) if len(word) > 1}
    matches = [m for m in _WORD.finditer(text) if _stem(m.group().lower()) in stems]
    begin = max(0, matches[0].start() - width // 3) if matches else 0
    end = min(len(text), begin + width)
    parts: list[str] = ["…" if begin > 0 else ""]
    at = begin
    for match in matches:
        if match.start() < begin or match.end() > end:
            continue
        parts += [
            html.escape(text[at : match.start()]),
            mark[0],
            html.escape(match.group()),
            mark[1],
        ]
        at = match.end()
    parts += [html.escape(text[at:end]), "…" if end < len(text) else ""]
    return " ".join("".join(parts).split())


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word
