"""What knowledge retrieval raises: every error names what was wrong, and nothing is stored.

KnowledgeError (an InnerUniverseError)
├── EmptyDocumentError      a document with no text to index
├── DocumentTooLargeError   a document over the module's size limit
├── UnknownFormatError      a format (or file suffix) no reader handles
├── EmptyQueryError         a search or context request with no query text
├── EmbeddingError          an embedder returned the wrong shape or failed
└── MissingExtraError       the `knowledge` extra is not installed
"""

from __future__ import annotations

from ...errors import InnerUniverseError

__all__ = [
    "DocumentTooLargeError",
    "EmbeddingError",
    "EmptyDocumentError",
    "EmptyQueryError",
    "KnowledgeError",
    "MissingExtraError",
    "UnknownFormatError",
]


class KnowledgeError(InnerUniverseError):
    """Base of the knowledge slice's errors."""


class EmptyDocumentError(KnowledgeError, ValueError):
    """The document has no text (empty or only whitespace)."""


class DocumentTooLargeError(KnowledgeError, ValueError):
    """The document is larger than the module accepts."""


class UnknownFormatError(KnowledgeError, ValueError):
    """No reader handles this format or file suffix."""


class EmptyQueryError(KnowledgeError, ValueError):
    """A query must have text to search for."""


class EmbeddingError(KnowledgeError):
    """The embedder failed or returned vectors of the wrong shape."""


class MissingExtraError(KnowledgeError, ImportError):
    """A dependency of the `knowledge` extra is missing: pip install 'inner-universe[knowledge]'."""
