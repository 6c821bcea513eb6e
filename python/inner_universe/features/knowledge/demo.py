"""The demo's knowledge act: one identity ingests, another searches its live replica.

The *librarian* ingests three of the project's own pages (one of them private)
with the bundled embedding model; the *reader*, another identity on its own
connection, has a LiveIndex that picks the chunks up as they commit. It searches
three ways, builds a cited context for a question, and the private page never
reaches it. Called from ``inner_universe.demo`` after the agents' act.
"""

from __future__ import annotations

from ...spacetime.connection import connect
from .. import knowledge as kn
from .evaluation import EVALSET

PAGES = (("readme.md", False), ("event-bus.md", False), ("temporal-store.md", True))
QUESTION = "How do I wait for async receivers to finish from another thread?"


async def act(uri: str, database: str) -> bool:
    """Run the act, printing as it goes; True when the private page stayed private."""
    print("\n== knowledge: ingest in one identity, search live in another ==\n")
    embedder = kn.WordLlamaEmbedder()
    async with connect(uri, database) as librarian, connect(uri, database) as reader:
        index = kn.LiveIndex(embedder).attach(reader)
        await reader.subscribe(*kn.SEARCH_QUERIES)
        ingester = kn.Ingester(librarian, embedder)
        await ingester.subscribe()
        secret = 0
        for name, private in PAGES:
            path = EVALSET / "corpus" / name
            result = await ingester.ingest_file(path, title=name, private=private)
            note = " (private)" if private else ""
            print(f"  librarian ingested {name}{note}: {result.chunks} chunks")
            secret = result.document_id if private else secret
        again = await ingester.ingest_file(EVALSET / "corpus" / "readme.md", title="readme.md")
        print(f"  librarian ingests readme.md again: changed={again.changed} (nothing sent)")

        # Transactions reach the reader in commit order: once the chunks of a public
        # page written last are there, everything before it that it may see is too.
        fence = await ingester.ingest("fence", "# Fence\n\nThe last public page.")
        await index.wait_for(lambda ix: len(ix.chunks_of(fence.document_id)) == fence.chunks)
        print(f"  reader's index: {len(index)} chunks of {len(index.documents)} documents\n")
        for mode in ("vector", "lexical", "hybrid"):
            [hit] = index.search(QUESTION, 1, mode=mode)
            words = " ".join(hit.text.split())[:60]
            where = f"{hit.title} chunk {hit.position} [{hit.start_char}:{hit.end_char}]"
            print(f"  {mode:>7}: {where} {words!r}")
        context = kn.build_context(index, QUESTION, reader=reader.identity, budget=600, k=4)
        print(f"\n  context for a model: {len(context.citations)} passages, "
              f"{context.tokens} tokens ({context.tokenizer}), e.g. {context.citations[0].label} "
              f"-> chunk {context.citations[0].hit.chunk_id}")  # fmt: skip
        private_stayed_private = secret not in index.documents and all(
            chunk.document_id != secret for chunk in index.chunks.values()
        )
        print(f"  the private page reached the reader: {not private_stayed_private}")
        return private_stayed_private
