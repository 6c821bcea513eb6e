"""The synchronous API against the real server: reads from any thread, no deadlocks."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from inner_universe.errors import WrongThreadError
from inner_universe.spacetime.connection import ConnectionBuilder
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration


def test_reads_from_another_thread_during_thousands_of_transactions(
    fresh_db: PublishedDatabase,
) -> None:
    builder = ConnectionBuilder().with_uri(fresh_db.uri).with_database(fresh_db.name)
    with builder.connect_threaded() as conn:
        conn.subscribe("SELECT * FROM conversation")
        stop = threading.Event()
        errors: list[BaseException] = []
        reads = [0]

        def hammer() -> None:
            table = conn.db.conversation
            while not stop.is_set():
                try:
                    rows = list(table)
                    for row in rows[-3:]:
                        table.find("id", row.id)
                    table.filter("title", "t-1")
                    len(table)
                    reads[0] += 1
                except BaseException as exc:  # any exception at all is the bug
                    errors.append(exc)
                    return

        readers = [threading.Thread(target=hammer)]
        for reader in readers:
            reader.start()
        try:
            futures = [
                conn.call_reducer_async("create_conversation", f"t-{i}") for i in range(2000)
            ]
            for future in futures:
                future.result(60)
            conn.flush(60)
        finally:
            stop.set()
            for reader in readers:
                reader.join()
        assert errors == []
        assert reads[0] > 0
        assert len(conn.db.conversation) == 2000


def test_a_blocking_call_from_the_connection_thread_raises_at_once(
    fresh_db: PublishedDatabase,
) -> None:
    builder = ConnectionBuilder().with_uri(fresh_db.uri).with_database(fresh_db.name)
    with builder.connect_threaded() as conn:
        raised: list[BaseException] = []
        done = threading.Event()

        def on_insert(ctx: Any, row: Any) -> None:
            try:
                conn.reducers.create_conversation("from a callback")
            except BaseException as exc:
                raised.append(exc)
            done.set()

        conn.subscribe("SELECT * FROM conversation")
        conn.run_on_connection_thread(lambda: conn.db.conversation.on_insert(on_insert))
        conn.reducers.create_conversation("trigger")
        assert done.wait(10)
        assert len(raised) == 1 and isinstance(raised[0], WrongThreadError)
        assert "callback" in str(raised[0])
        # The non-blocking form works from there, and the connection is fine.
        assert conn.reducers.create_conversation("after") is not None
