"""Run as a separate OS process by the live tests: ingest one file, print the result.

python -m tests.features.knowledge.ingest_process URI DATABASE PATH
"""

from __future__ import annotations

import asyncio
import sys

from inner_universe.features.knowledge import Ingester, WordLlamaEmbedder
from inner_universe.spacetime import connect


async def main(uri: str, database: str, path: str) -> None:
    async with connect(uri, database) as conn:
        ingester = Ingester(conn, WordLlamaEmbedder(), batch_size=8)
        await ingester.subscribe()
        result = await ingester.ingest_file(path)
        print(result.document_id, result.chunks, result.changed, flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
