"""Ingesting and searching on one connection, as one object (``universe.knowledge``).

An :class:`Ingester` and a :class:`LiveIndex` sharing one embedder. Building a
:class:`Knowledge` costs nothing: the embedding model loads, and the tables are
subscribed, the first time a method needs them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ...spacetime.connection import DbConnection
from .embedding import Embedder, WordLlamaEmbedder
from .index import SEARCH_QUERIES, LiveIndex
from .ingestion import Ingester, IngestResult
from .search import SearchFilter, SearchHit, SearchMode

__all__ = ["Knowledge"]


class Knowledge:
    """Add documents and search every chunk this identity may read, live."""

    def __init__(self, conn: DbConnection, embedder: Embedder | None = None) -> None:
        self.conn = conn
        self._embedder = embedder
        self._ingester: asyncio.Future[Ingester] | None = None
        self._index: asyncio.Future[LiveIndex] | None = None

    @property
    def embedder(self) -> Embedder:
        """The embedder given, else the bundled offline one (loaded on first use)."""
        if self._embedder is None:
            self._embedder = WordLlamaEmbedder()
        return self._embedder

    async def ingester(self) -> Ingester:
        """The ingester, its tables subscribed (``progress`` may be set on it)."""
        if self._ingester is None:
            self._ingester = asyncio.ensure_future(self._open_ingester())
        return await self._ingester

    async def index(self) -> LiveIndex:
        """The live index, following every document and chunk this identity may read."""
        if self._index is None:
            self._index = asyncio.ensure_future(self._open_index())
        return await self._index

    async def add(self, path: str | Path, **options: Any) -> IngestResult:
        """Ingest a text or Markdown file (see :meth:`Ingester.ingest_file` for options)."""
        return await (await self.ingester()).ingest_file(path, **options)

    async def add_text(self, title: str, text: str, **options: Any) -> IngestResult:
        """Ingest text (see :meth:`Ingester.ingest` for options)."""
        return await (await self.ingester()).ingest(title, text, **options)

    async def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: SearchMode = "hybrid",
        where: SearchFilter | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best chunks for ``query``, best first (see :meth:`LiveIndex.search`)."""
        return (await self.index()).search(query, k, mode=mode, where=where)

    async def _open_ingester(self) -> Ingester:
        ingester = Ingester(self.conn, self.embedder)
        await ingester.subscribe()
        return ingester

    async def _open_index(self) -> LiveIndex:
        index = LiveIndex(self.embedder).attach(self.conn)
        await self.conn.subscribe(*SEARCH_QUERIES)
        return index
