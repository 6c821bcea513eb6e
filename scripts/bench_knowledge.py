"""Knowledge retrieval benchmark: ingestion, search latency, commit-to-searchable, a peer.

One run prints:

1. Ingestion through a real local SpacetimeDB: chunks split, embedded and stored
   per second (the evaluation corpus, ingested as many documents), next to the
   bundled model's embedding rate alone in the same run.
2. Search latency p50/p99 for vector, lexical and hybrid at 10k and 50k chunks
   (chunks made from the corpus's sentences, embedded with the bundled model, fed
   to a LiveIndex the way a replica feeds it), over the 80 evaluation queries.
   With it, the peer baseline: the same queries on the same vectors and texts in
   LanceDB (an embedded store; flat vector search, its full-text index, its hybrid
   query), when ``lancedb`` is installed (``pip install lancedb==0.40.0``).
3. Commit to searchable in another OS process: a reader process follows the
   database with a LiveIndex; for each chunk batch this process commits, the
   reader notes when a search first finds it, against the server's commit time.
4. Recall@5 and MRR of the three modes on the labelled evaluation set.

    .venv/bin/python scripts/bench_knowledge.py [--sizes 10000,50000] [--commits 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

import numpy as np
from bench_common import machine

from inner_universe.features.knowledge import (
    SEARCH_QUERIES,
    ChunkerConfig,
    Ingester,
    LiveIndex,
    WordLlamaEmbedder,
    evaluation,
    split,
)
from inner_universe.features.knowledge.embedding import passage_text, vector_to_bytes
from inner_universe.spacetime import EventContext, LocalServer, connect
from inner_universe.spacetime.types import Identity, Timestamp
from inner_universe.universe import publish
from inner_universe.universe.bindings import Chunk, Document

MODES = ("vector", "lexical", "hybrid")
OWNER = Identity(1)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


# --- 1. ingestion ---------------------------------------------------------------------


async def bench_ingest(server: LocalServer, embedder: WordLlamaEmbedder, copies: int) -> None:
    evalset = evaluation.load()
    texts = [
        (f"{name} #{copy}", f"{text}\n\nCopy {copy}.")
        for copy in range(copies)
        for name, text in evalset.corpus.items()
    ]
    chunking = ChunkerConfig(300, 50)
    database = publish(server)
    async with connect(server.uri, database) as conn:
        ingester = Ingester(conn, embedder, chunking=chunking)
        await ingester.subscribe()
        start = time.perf_counter()
        chunks = 0
        for title, text in texts:
            chunks += (await ingester.ingest(title, text)).chunks
        elapsed = time.perf_counter() - start
    # The floor: embedding exactly what ingestion embeds, in the same calls.
    inputs = [
        [passage_text(title, p.heading, p.text) for p in split(text, "markdown", chunking)]
        for title, text in texts
    ]
    embed_only = min(timed(lambda: [embedder.embed(batch) for batch in inputs], 3))
    print(f"\n1. Ingestion ({len(texts)} Markdown documents, {chunks} chunks of <= 300 characters)")
    print(f"   split + embed + store through the module: {chunks / elapsed:,.0f} chunks/s")
    print(f"   baseline, the same embedding calls alone:  {chunks / embed_only:,.0f} chunks/s")


# --- 2. search latency ---------------------------------------------------------------


def synthetic_chunks(
    n: int, embedder: WordLlamaEmbedder, seed: int = 7
) -> tuple[list[str], np.ndarray]:
    """``n`` chunk texts of 2-5 corpus sentences each, and their vectors."""
    corpus = " ".join(evaluation.load().corpus.values())
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", " ".join(corpus.split())) if len(s) > 20]
    rng = random.Random(seed)
    texts = [" ".join(rng.sample(sentences, rng.randint(2, 5))) for _ in range(n)]
    return texts, embedder.embed(texts)


def live_index(embedder: WordLlamaEmbedder, texts: list[str], vectors: np.ndarray) -> LiveIndex:
    index = LiveIndex(embedder)
    documents = [
        Document(d, OWNER, f"doc {d}", "", b"", False, Timestamp(0), Timestamp(0))
        for d in range(1, len(texts) // 50 + 2)
    ]
    rows = [
        Chunk(i + 1, i // 50 + 1, i % 50, text, 0, len(text), vector_to_bytes(vector),
              embedder.name, embedder.dimension, False, OWNER, OWNER, Timestamp(0))
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]  # fmt: skip
    for start in range(0, len(rows), 1000):  # as transactions of 1,000 chunks arrive
        index.apply(
            document_inserts=documents if start == 0 else (),
            chunk_inserts=rows[start : start + 1000],
        )
    return index


def bench_search(index: LiveIndex, queries: list[str]) -> dict[str, tuple[float, float]]:
    result = {}
    for mode in MODES:
        index.search(queries[0], 5, mode=mode)  # warm
        samples = [
            t for q in queries for t in timed(lambda q=q, m=mode: index.search(q, 5, mode=m), 1)
        ]
        result[mode] = percentiles(samples)
    return result


def bench_lancedb(
    texts: list[str], vectors: np.ndarray, queries: list[str], embedder: WordLlamaEmbedder
) -> dict[str, Any] | None:
    if find_spec("lancedb") is None:
        return None
    import lancedb
    import pyarrow as pa
    from lancedb.index import FTS

    query_vectors = embedder.embed(queries)
    with tempfile.TemporaryDirectory() as folder:
        db = lancedb.connect(folder)
        table = db.create_table("chunk", data=pa.table({
            "id": pa.array(range(len(texts)), pa.int64()),
            "text": texts,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 256),
        }))  # fmt: skip
        start = time.perf_counter()
        table.create_index("text", config=FTS())
        fts_build = time.perf_counter() - start

        def vector(i: int) -> object:
            return table.search(query_vectors[i]).metric("cosine").limit(5).to_list()

        def lexical(i: int) -> object:
            return table.search(queries[i], query_type="fts").limit(5).to_list()

        def hybrid(i: int) -> object:
            return (
                table.search(query_type="hybrid")
                .vector(query_vectors[i])
                .text(queries[i])
                .limit(5)
                .to_list()
            )

        result: dict[str, Any] = {"fts_build_s": fts_build}
        for mode, fn in (("vector", vector), ("lexical", lexical), ("hybrid", hybrid)):
            fn(0)
            samples = [t for i in range(len(queries)) for t in timed(lambda i=i, f=fn: f(i), 1)]
            result[mode] = percentiles(samples)
        # A row added after the full-text index was built: found before a rebuild?
        table.add(pa.table({
            "id": pa.array([len(texts)], pa.int64()),
            "text": ["zyzzyva quokka late arrival"],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors[0]), vectors.shape[1]),
        }))  # fmt: skip
        result["late_row_found"] = bool(
            table.search("zyzzyva", query_type="fts").limit(1).to_list()
        )
    return result


# --- 3. commit to searchable in another process --------------------------------------


async def reader_process(uri: str, database: str, expected: int) -> None:
    """Run in a separate process: follow the database, report when each marker is found."""
    embedder = WordLlamaEmbedder()
    async with connect(uri, database) as conn:
        index = LiveIndex(embedder).attach(conn)
        latencies: list[float] = []
        done = asyncio.get_running_loop().create_future()

        def on_transaction(ctx: EventContext) -> None:
            for row in ctx.diff["chunk"].inserts:
                hits = index.search(row.text.split()[0], 1, mode="lexical")
                if hits and hits[0].chunk_id == row.id:
                    committed = ctx.event.timestamp.micros_since_epoch / 1e6  # type: ignore[union-attr]
                    latencies.append(time.time() - committed)
            if len(latencies) >= expected and not done.done():
                done.set_result(None)

        conn.on_transaction(on_transaction)  # after the index's own callback
        await conn.subscribe(*SEARCH_QUERIES)
        print("ready", flush=True)
        await asyncio.wait_for(done, 120)
        print(json.dumps(latencies), flush=True)


async def bench_commit_to_search(
    server: LocalServer, embedder: WordLlamaEmbedder, commits: int
) -> list[float]:
    database = publish(server)
    reader = subprocess.Popen(
        [sys.executable, __file__, "--reader", server.uri, database, str(commits)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "ready"
    async with connect(server.uri, database) as conn:
        ingester = Ingester(conn, embedder)
        await ingester.subscribe()
        for i in range(commits):
            await ingester.ingest(
                f"note {i}", f"marker{i} arrives in a document of its own, number {i}."
            )
            await asyncio.sleep(0.05)  # spaced out: each commit measured on its own
    latencies: list[float] = json.loads(reader.stdout.readline())
    reader.wait(30)
    return latencies


# --- main ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--commits", type=int, default=30)
    parser.add_argument("--copies", type=int, default=8, help="copies of the corpus to ingest")
    parser.add_argument("--reader", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        uri, database, expected = args.reader
        asyncio.run(reader_process(uri, database, int(expected)))
        return

    print(machine("wordllama", "tantivy", "numpy"))
    embedder = WordLlamaEmbedder()
    evalset = evaluation.load()
    queries = [q.query for q in evalset.queries]
    with LocalServer() as server:
        asyncio.run(bench_ingest(server, embedder, args.copies))

        print("\n2. Search latency, k=5, one query at a time (ms, p50 / p99 over the 80 evaluation")
        print("   queries), with the peer baseline: LanceDB on the same texts and vectors")
        for size in (int(s) for s in args.sizes.split(",")):
            texts, vectors = synthetic_chunks(size, embedder)
            index = live_index(embedder, texts, vectors)
            ours = bench_search(index, queries)
            peer = bench_lancedb(texts, vectors, queries, embedder)
            for mode in MODES:
                p50, p99 = ours[mode]
                line = f"   {size:>6,} chunks  {mode:<8} LiveIndex {p50:6.2f} / {p99:6.2f}"
                if peer is not None:
                    line += f"   LanceDB {peer[mode][0]:6.2f} / {peer[mode][1]:6.2f}"
                print(line)
            if peer is None:
                print("   (LanceDB baseline skipped: pip install lancedb==0.40.0)")
            else:
                late = "found" if peer["late_row_found"] else "NOT found"
                built = peer["fts_build_s"]
                print(f"   LanceDB: full-text index built in {built:.2f} s; a row added after that")
                print(f"   is {late} by its full-text search")

        latencies = asyncio.run(bench_commit_to_search(server, embedder, args.commits))
        p50, p99 = percentiles(latencies)
        worst = max(latencies) * 1000
        print(f"\n3. Commit to searchable in another process ({len(latencies)} commits):")
        print(f"   p50 {p50:.1f} ms, p99 {p99:.1f} ms (max {worst:.1f} ms)")

    index = evaluation.build_index(evalset, embedder)
    print(f"\n4. Evaluation set ({len(index)} chunks, {len(evalset.queries)} labelled queries)")
    for mode in MODES:
        scores = evaluation.evaluate(index, evalset, mode)
        print(f"   {mode:<8} recall@5 {scores.recall_at_k:.3f}   MRR {scores.mrr:.3f}")


if __name__ == "__main__":
    main()
