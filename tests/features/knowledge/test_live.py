"""Knowledge retrieval against the real server: processes, deletes, no-ops, bad input.

Each test gets a fresh database. Writers and readers are separate connections
(separate identities); one test ingests from a separate OS process.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from inner_universe.errors import ReducerError
from inner_universe.features.knowledge import (
    INGEST_QUERIES,
    SEARCH_QUERIES,
    ChunkerConfig,
    DocumentTooLargeError,
    EmptyDocumentError,
    EmptyQueryError,
    Ingester,
    IngestProgress,
    LiveIndex,
    PerspectiveAware,
    SearchFilter,
    UnknownFormatError,
    WordLlamaEmbedder,
)
from inner_universe.features.knowledge.embedding import vector_to_bytes
from inner_universe.spacetime import DbConnection, EventContext, connect
from tests.conftest import PublishedDatabase, until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]

NOTES = """# Field notes

## Lighthouse

The lighthouse keeper winds the clockwork lens every four hours through the night.

## Harbour

Fishing boats unload at the north quay before sunrise; the fish market opens at six.

## Weather

Fog rolls in from the west most evenings. The ferry waits when it is thick.
Storms come in autumn. The harbour master raises a red flag before they arrive.
"""


async def reader(
    db: PublishedDatabase, embedder: WordLlamaEmbedder
) -> tuple[DbConnection, LiveIndex]:
    conn = await connect(db.uri, db.name)
    index = LiveIndex(embedder).attach(conn)
    await conn.subscribe(*SEARCH_QUERIES)
    return conn, index


async def writer(
    db: PublishedDatabase, embedder: WordLlamaEmbedder, **kw: Any
) -> tuple[DbConnection, Ingester]:
    conn = await connect(db.uri, db.name)
    ingester = Ingester(conn, embedder, chunking=ChunkerConfig(120, 20), **kw)
    await ingester.subscribe()
    return conn, ingester


def titles(index: LiveIndex, query: str, mode: str = "hybrid") -> list[str]:
    return [hit.title for hit in index.search(query, 5, mode=mode)]  # type: ignore[arg-type]


async def test_a_chunk_ingested_by_another_process_is_found_here_without_a_rebuild(
    fresh_db: PublishedDatabase, embedder: WordLlamaEmbedder, tmp_path: Path
) -> None:
    conn, index = await reader(fresh_db, embedder)
    lexical, vectors = index.lexical, index.vectors
    path = tmp_path / "notes.md"
    path.write_text(NOTES, encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.features.knowledge.ingest_process",
        fresh_db.uri, fresh_db.name, str(path),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    document_id, chunks, changed = out.decode().split()
    assert changed == "True"

    # The other process has finished: its transactions reach this replica and index.
    await until(lambda: len(index) == int(chunks))
    for mode in ("vector", "lexical", "hybrid"):
        [hit, *_] = index.search("when does the fish market open", 3, mode=mode)  # type: ignore[arg-type]
        assert (hit.document_id, hit.title) == (int(document_id), "notes.md")
        assert NOTES[hit.start_char : hit.end_char] == hit.text
    assert index.lexical is lexical and index.vectors is vectors  # updated in place
    await conn.disconnect()


async def test_delete_and_replace_remove_chunks_everywhere_in_the_same_transaction(
    fresh_db: PublishedDatabase, embedder: WordLlamaEmbedder
) -> None:
    conn, index = await reader(fresh_db, embedder)
    owner, ingester = await writer(fresh_db, embedder)
    own_index = LiveIndex(embedder).attach(owner)
    await owner.subscribe("SELECT * FROM chunk")
    result = await ingester.ingest("notes", NOTES)
    await until(lambda: len(index) == result.chunks)
    assert titles(index, "lighthouse lens")[0] == "notes"
    assert titles(own_index, "lighthouse lens")[0] == "notes"

    seen: list[Any] = []
    conn.on_transaction(lambda ctx: seen.append(ctx.diff))
    replaced = await ingester.ingest("notes", NOTES.replace("clockwork", "brass"))
    assert replaced.changed and replaced.document_id == result.document_id
    await until(lambda: "brass" in " ".join(c.text for c in index.chunks.values()))
    # The replacement came as one transaction: the document's new content and the
    # removal of all its old chunks, before the new chunks arrived.
    [update] = [d for d in seen if d["document"].updates]
    assert len(update["chunk"].deletes) == result.chunks
    assert titles(index, "clockwork", "lexical") == []

    await ingester.delete(result.document_id)
    await until(lambda: len(index) == 0 and len(own_index) == 0)
    for searched in (index, own_index):
        for mode in ("vector", "lexical", "hybrid"):
            assert titles(searched, "brass lighthouse lens", mode) == []
    assert len(index.vectors) == len(index.lexical) == 0
    await asyncio.gather(conn.disconnect(), owner.disconnect())


async def test_reingesting_an_unchanged_document_does_nothing(
    fresh_db: PublishedDatabase, embedder: WordLlamaEmbedder
) -> None:
    progress: list[IngestProgress] = []
    owner, ingester = await writer(fresh_db, embedder, batch_size=2, progress=progress.append)
    first = await ingester.ingest("notes", NOTES, metadata={"topic": "sea"})
    assert first.changed and first.chunks > 2
    stages = [(p.stage, p.done) for p in progress]
    assert stages[-1] == ("storing", first.chunks)
    assert ("embedding", first.chunks) in stages and ("storing", 2) in stages

    transactions: list[EventContext] = []
    owner.on_transaction(transactions.append)
    again = await ingester.ingest("notes", NOTES, metadata={"topic": "sea"})
    assert (again.document_id, again.chunks, again.changed) == (
        first.document_id,
        first.chunks,
        False,
    )
    assert transactions == []  # not one reducer call

    retitled = await ingester.ingest("notes", NOTES, metadata={"topic": "harbour"})
    assert retitled.changed and retitled.document_id == first.document_id
    assert len(list(owner.db.document.iter())) == 1
    await owner.disconnect()


async def test_bad_input_gets_a_typed_error_and_stores_nothing(
    fresh_db: PublishedDatabase, embedder: WordLlamaEmbedder, tmp_path: Path
) -> None:
    conn, index = await reader(fresh_db, embedder)
    owner, ingester = await writer(fresh_db, embedder)
    with pytest.raises(EmptyDocumentError, match="empty"):
        await ingester.ingest("blank", " \n\t")
    with pytest.raises(DocumentTooLargeError, match="1048577 bytes; the limit is 1048576"):
        await ingester.ingest("huge", "x" * (1024 * 1024 + 1))
    with pytest.raises(UnknownFormatError, match="'pdf'"):
        await ingester.ingest("paper", "text", fmt="pdf")
    (tmp_path / "slides.pptx").write_bytes(b"PK\x03\x04")
    with pytest.raises(UnknownFormatError, match="pptx"):
        await ingester.ingest_file(tmp_path / "slides.pptx")
    with pytest.raises(ReducerError, match="document title must not be empty"):
        await ingester.ingest("", "a title is needed")
    assert list(owner.db.document.iter()) == [] and list(owner.db.chunk_set.iter()) == []
    for query in ("", "  "):
        with pytest.raises(EmptyQueryError):
            index.search(query)
    assert len(index) == 0
    await asyncio.gather(conn.disconnect(), owner.disconnect())


async def test_the_module_checks_chunks_and_who_writes_them(
    fresh_db: PublishedDatabase, embedder: WordLlamaEmbedder
) -> None:
    owner, _ = await writer(fresh_db, embedder)
    stranger = await connect(fresh_db.uri, fresh_db.name)
    await stranger.subscribe(*INGEST_QUERIES)
    content = "Alpha beta gamma. Delta epsilon."
    await owner.reducers.create_document("greek", content, b"")
    [document] = list(owner.db.document.iter())
    vector = vector_to_bytes(embedder.embed(["Alpha beta gamma."])[0])

    def chunk(
        position: int, start: int, end: int, text: str, emb: bytes = vector
    ) -> dict[str, Any]:
        return {
            "position": position,
            "text": text,
            "start_char": start,
            "end_char": end,
            "embedding": emb,
        }

    begin = owner.reducers.begin_chunks
    with pytest.raises(ReducerError, match="belongs to another identity"):
        await stranger.reducers.begin_chunks(document.id, embedder.name, 256, "fp", 2)
    with pytest.raises(ReducerError, match="dimension is 0"):
        await begin(document.id, embedder.name, 0, "fp", 2)
    with pytest.raises(ReducerError, match="1 to 8192 chunks; 9000 were announced"):
        await begin(document.id, embedder.name, 256, "fp", 9000)
    with pytest.raises(ReducerError, match="bytes; the limit per document is 16777216"):
        await begin(document.id, embedder.name, 4096, "fp", 8192)
    with pytest.raises(ReducerError, match="no chunk set"):
        await owner.reducers.add_chunks(document.id, [chunk(0, 0, 17, "Alpha beta gamma.")])
    await begin(document.id, embedder.name, 256, "fp", 2)

    add = owner.reducers.add_chunks
    with pytest.raises(ReducerError, match=r"not the document's text at characters 0\.\.17"):
        await add(document.id, [chunk(0, 0, 17, "Alpha beta GAMMA.")])
    with pytest.raises(ReducerError, match="outside the document"):
        await add(document.id, [chunk(0, 18, 99, "Delta epsilon.")])
    with pytest.raises(ReducerError, match="out of order; the next position is 0"):
        await add(document.id, [chunk(1, 18, 32, "Delta epsilon.")])
    with pytest.raises(ReducerError, match="embedding is 4 bytes; 256 float32 values are 1024"):
        await add(document.id, [chunk(0, 0, 17, "Alpha beta gamma.", b"\0" * 4)])
    with pytest.raises(ReducerError, match="belongs to another identity"):
        await stranger.reducers.add_chunks(document.id, [chunk(0, 0, 17, "Alpha beta gamma.")])
    with pytest.raises(ReducerError, match="expects 2 more chunks; the batch has 3"):
        await add(document.id, [chunk(i, 0, 17, "Alpha beta gamma.") for i in range(3)])
    assert next(iter(owner.db.chunk_set.iter())).stored == 0

    # Overlapping chunks may repeat text, up to twice the content (32 bytes here).
    await begin(document.id, embedder.name, 256, "fp", 8)
    with pytest.raises(
        ReducerError, match=r"68 bytes of text; the limit is 2 times its content \(64\)"
    ):
        await add(document.id, [chunk(i, 0, 17, "Alpha beta gamma.") for i in range(4)])
    await begin(document.id, embedder.name, 256, "fp", 2)

    await add(
        document.id, [chunk(0, 0, 17, "Alpha beta gamma."), chunk(1, 18, 32, "Delta epsilon.")]
    )
    [chunk_set] = list(owner.db.chunk_set.iter())
    assert (chunk_set.stored, chunk_set.expected, chunk_set.ingested_by) == (2, 2, owner.identity)
    await asyncio.gather(stranger.disconnect(), owner.disconnect())


async def test_search_filters_by_owner_and_metadata_on_live_rows(
    fresh_db: PublishedDatabase, embedder: WordLlamaEmbedder
) -> None:
    conn, index = await reader(fresh_db, embedder)
    (a, alice), (b, bob) = await asyncio.gather(
        writer(fresh_db, embedder), writer(fresh_db, embedder)
    )
    await alice.ingest("alice notes", NOTES, metadata={"team": "sea"})
    # Offsets count characters, as Python does: non-ASCII text must agree with the module.
    bobs = NOTES.replace("Field notes", "Bob's café ☕ notes — naïve 🪐")
    await bob.ingest("bob notes", bobs, metadata={"team": "land"})
    await until(lambda: len(index.documents) == 2 and len(index) > 4)
    only_bob = SearchFilter(owner=b.identity)
    assert {h.title for h in index.search("lighthouse", 5, where=only_bob)} == {"bob notes"}
    for hit in index.search("café notes", 5, where=only_bob):
        assert bobs[hit.start_char : hit.end_char] == hit.text
    sea = SearchFilter(metadata={"team": "sea"})
    assert {h.title for h in index.search("lighthouse", 5, where=sea)} == {"alice notes"}
    await asyncio.gather(conn.disconnect(), a.disconnect(), b.disconnect())


async def test_private_documents_stay_out_of_a_strangers_results(
    fresh_db: PublishedDatabase, embedder: WordLlamaEmbedder
) -> None:
    owner, ingester = await writer(fresh_db, embedder)
    owners_index = LiveIndex(embedder).attach(owner)
    await owner.subscribe("SELECT * FROM chunk")
    stranger, strangers_index = await reader(fresh_db, embedder)
    public = await ingester.ingest("harbour notes", NOTES)
    secret = await ingester.ingest(
        "salaries", "# Salaries\n\nThe lighthouse keeper earns a secret bonus.", private=True
    )
    await until(lambda: len(strangers_index) == public.chunks)
    await until(lambda: len(owners_index) == public.chunks + secret.chunks)

    query = "lighthouse keeper bonus"
    assert "salaries" in titles(owners_index, query)
    for mode in ("vector", "lexical", "hybrid"):
        assert "salaries" not in titles(strangers_index, query, mode)
    assert secret.document_id not in strangers_index.documents
    # Not in the stranger's replica, nor in what it can ask the server for.
    rows = await stranger.one_off_query("SELECT * FROM chunk")
    assert {row.document_id for row in rows.get("chunk", [])} == {public.document_id}
    rows = await stranger.one_off_query("SELECT * FROM chunk_set")
    assert {row.document_id for row in rows.get("chunk_set", [])} == {public.document_id}
    # The owner's process renders for the stranger: no perspective shows the secret.
    hits = owners_index.search(query, 10)
    for perspective in ("prompt", "ui", "audit"):
        shown = PerspectiveAware().render(hits, perspective, stranger.identity)
        assert shown and "secret bonus" not in repr(shown) and "salaries" not in repr(shown)
    assert "salaries" in repr(PerspectiveAware().render(hits, "audit", owner.identity))
    # Later chunks of a private document stay invisible too (live, not only initially).
    await ingester.ingest("salaries", "# Salaries\n\nRevised: the bonus doubles.", private=True)
    # A public document ingested after it is a fence: transactions reach the stranger in
    # commit order, so once the fence is there, anything visible of the revision would be.
    fence = await ingester.ingest("fence", "# Fence\n\nCommitted after the revision.")
    await until(lambda: fence.document_id in strangers_index.documents)
    await until(lambda: len(strangers_index) == public.chunks + fence.chunks)
    assert "Revised" in " ".join(c.text for c in owners_index.chunks.values())
    assert all("Revised" not in c.text for c in strangers_index.chunks.values())
    await asyncio.gather(owner.disconnect(), stranger.disconnect())


async def test_making_a_document_private_replaces_it(
    fresh_db: PublishedDatabase, embedder: WordLlamaEmbedder
) -> None:
    owner, ingester = await writer(fresh_db, embedder)
    stranger, strangers_index = await reader(fresh_db, embedder)
    public = await ingester.ingest("notes", NOTES)
    await strangers_index.wait_for(lambda ix: len(ix) == public.chunks)
    private = await ingester.ingest("notes", NOTES, private=True)
    assert private.changed and private.document_id != public.document_id
    await strangers_index.wait_for(lambda ix: len(ix) == 0 and not ix.documents)
    [row] = list(owner.db.document.iter())
    assert (row.id, row.private) == (private.document_id, True)
    await asyncio.gather(owner.disconnect(), stranger.disconnect())
