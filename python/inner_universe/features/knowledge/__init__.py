"""Knowledge retrieval: documents chunked and embedded into the Inner Universe, searched live.

- :class:`Ingester` splits text and Markdown into chunks, embeds them with a
  pluggable :class:`Embedder` (by default :class:`WordLlamaEmbedder`, bundled and
  offline) and stores them through the module's reducers, in batches.
- :class:`LiveIndex` follows a connection's replica: vector (exact cosine), lexical
  (BM25) and hybrid (reciprocal rank fusion) search over every chunk the moment
  this process applies its transaction, with filters and provenance.
- :func:`build_context` packs the best passages for a question into a token budget,
  with citations; :class:`PerspectiveAware` renders hits for a model, a person or an
  auditor, and never shows a reader what they may not read.

The heavy dependencies (``wordllama``, ``tantivy``) are imported when first used;
install them with ``pip install 'inner-universe[knowledge]'``. See docs/knowledge.md.
"""

from __future__ import annotations

from .chunking import ChunkerConfig, Passage, split
from .context import Citation, Context, build_context
from .embedding import Embedder, WordLlamaEmbedder
from .errors import (
    DocumentTooLargeError,
    EmbeddingError,
    EmptyDocumentError,
    EmptyQueryError,
    KnowledgeError,
    MissingExtraError,
    UnknownFormatError,
)
from .index import SEARCH_QUERIES, DocumentInfo, LiveIndex
from .ingestion import INGEST_QUERIES, Ingester, IngestProgress, IngestResult
from .perspectives import PerspectiveAware, can_read
from .search import SearchFilter, SearchHit, fuse
from .service import Knowledge
from .tokens import TokenCounter, token_counter

__all__ = [
    "INGEST_QUERIES",
    "SEARCH_QUERIES",
    "ChunkerConfig",
    "Citation",
    "Context",
    "DocumentInfo",
    "DocumentTooLargeError",
    "Embedder",
    "EmbeddingError",
    "EmptyDocumentError",
    "EmptyQueryError",
    "IngestProgress",
    "IngestResult",
    "Ingester",
    "Knowledge",
    "KnowledgeError",
    "LiveIndex",
    "MissingExtraError",
    "Passage",
    "PerspectiveAware",
    "SearchFilter",
    "SearchHit",
    "TokenCounter",
    "UnknownFormatError",
    "WordLlamaEmbedder",
    "build_context",
    "can_read",
    "fuse",
    "split",
    "token_counter",
]
