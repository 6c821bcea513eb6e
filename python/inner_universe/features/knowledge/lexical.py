"""BM25 over the chunk texts with tantivy, updated incrementally as chunks come and go.

tantivy keeps an in-memory index that takes additions and deletions and makes
them visible at a commit; the live index commits once per applied transaction,
so the lexical side never rebuilds from scratch (the failure users of other
stores meet: a full-text index that misses rows added after it was built).
English stemming, so "running" finds "runs".
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from .embedding import import_extra

__all__ = ["LexicalIndex"]

_NOT_A_WORD = re.compile(r"[^\w]+")


class LexicalIndex:
    """Chunk id -> text, with BM25 top-k search and a document filter."""

    def __init__(self, heap_bytes: int = 50_000_000) -> None:
        self._tantivy: Any = import_extra("tantivy")
        builder = self._tantivy.SchemaBuilder()
        builder.add_unsigned_field("chunk_id", stored=True, indexed=True, fast=True)
        builder.add_unsigned_field("document_id", stored=False, indexed=True, fast=True)
        builder.add_text_field("text", stored=False, tokenizer_name="en_stem")
        self._schema: Any = builder.build()
        self._index: Any = self._tantivy.Index(self._schema)
        self._writer: Any = self._index.writer(heap_size=heap_bytes, num_threads=1)
        self._count = 0
        self._pending = False

    def __len__(self) -> int:
        return self._count

    def add(self, chunk_id: int, document_id: int, text: str) -> None:
        """Index a chunk's text; visible after :meth:`commit`."""
        row = {"chunk_id": chunk_id, "document_id": document_id, "text": text}
        self._writer.add_document(self._tantivy.Document.from_dict(row, self._schema))
        self._count += 1
        self._pending = True

    def remove(self, chunk_id: int) -> None:
        """Drop a chunk; gone after :meth:`commit`."""
        query = self._tantivy.Query.term_query(self._schema, "chunk_id", chunk_id)
        self._writer.delete_documents_by_query(query)
        self._count -= 1
        self._pending = True

    def commit(self) -> None:
        """Make every change since the last commit visible to searches."""
        if self._pending:
            self._writer.commit()
            self._index.reload()
            self._pending = False

    def search(
        self, text: str, k: int, documents: Collection[int] | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` best BM25 matches as (chunk id, score), best first.

        Query syntax is not interpreted: punctuation is dropped and any word may match.
        """
        words = _NOT_A_WORD.sub(" ", text).strip().lower()
        if not words or k <= 0 or self._count == 0:
            return []
        query = self._index.parse_query(words, ["text"])
        if documents is not None:
            only = self._tantivy.Query.term_set_query(self._schema, "document_id", list(documents))
            occur = self._tantivy.Occur.Must
            query = self._tantivy.Query.boolean_query(
                [(occur, query), (occur, self._tantivy.Query.const_score_query(only, 0.0))]
            )
        searcher = self._index.searcher()
        return [
            (int(searcher.doc(address)["chunk_id"][0]), float(score))
            for score, address in searcher.search(query, k).hits
        ]
