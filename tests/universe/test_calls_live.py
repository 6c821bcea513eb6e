"""The module's exactly-once contract, against the real server: a call key applies once.

Every mutating reducer takes a CallKey first; the module records it with the
call's writes and turns a repeat into a no-op. Counts come from SQL run as the
database owner, whom visibility filters do not restrict.
"""

from __future__ import annotations

import pytest

from inner_universe.errors import ReducerError
from inner_universe.spacetime.connection import connect
from inner_universe.spacetime.schema import CallKey
from inner_universe.spacetime.types import ScheduleAt, TimeDuration
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration


def _count(db: PublishedDatabase, sql: str) -> int:
    [result] = db.server.sql(db.name, sql)
    return len(result["rows"])


async def test_the_same_call_key_twice_applies_once(fresh_db: PublishedDatabase) -> None:
    key = CallKey(client=0xC0FFEE << 100, seq=1)
    async with connect(fresh_db.uri, fresh_db.name) as a:
        first = await a.call_reducer("create_conversation", "once", call_key=key)
        repeat = await a.call_reducer("create_conversation", "once", call_key=key)
        assert first.committed and repeat.committed  # the repeat succeeds, doing nothing
        assert first.args == repeat.args == {"title": "once"}  # the key is not an argument
        assert _count(fresh_db, "SELECT * FROM conversation WHERE title = 'once'") == 1
        # A new sequence number is a new call.
        await a.call_reducer("create_conversation", "once", call_key=CallKey(key.client, 2))
        assert _count(fresh_db, "SELECT * FROM conversation WHERE title = 'once'") == 2


async def test_a_failed_call_leaves_no_receipt_so_its_retry_runs(
    fresh_db: PublishedDatabase,
) -> None:
    key = CallKey(client=77, seq=1)
    async with connect(fresh_db.uri, fresh_db.name) as a:
        with pytest.raises(ReducerError, match="must not be empty"):
            await a.call_reducer("create_conversation", "", call_key=key)
        await a.call_reducer("create_conversation", "retried", call_key=key)
        assert _count(fresh_db, "SELECT * FROM conversation WHERE title = 'retried'") == 1


async def test_keys_are_per_identity(fresh_db: PublishedDatabase) -> None:
    key = CallKey(client=5, seq=9)
    async with (
        connect(fresh_db.uri, fresh_db.name) as a,
        connect(fresh_db.uri, fresh_db.name) as b,
    ):
        await a.call_reducer("create_conversation", "shared key", call_key=key)
        await b.call_reducer("create_conversation", "shared key", call_key=key)
        assert _count(fresh_db, "SELECT * FROM conversation WHERE title = 'shared key'") == 2


async def test_the_sdk_keys_every_call_and_no_key_means_no_deduplication(
    fresh_db: PublishedDatabase,
) -> None:
    async with connect(fresh_db.uri, fresh_db.name) as a:
        for _ in range(3):
            await a.reducers.create_conversation("keyed")
        for _ in range(2):
            await a.call_reducer("create_conversation", "unkeyed", call_key=CallKey(0, 0))
        receipts = await a.one_off_query(f"SELECT * FROM call_receipt WHERE client = {a.client_id}")
        assert sorted(r.seq for r in receipts["call_receipt"]) == [1, 2, 3]
        assert _count(fresh_db, "SELECT * FROM conversation WHERE title = 'keyed'") == 3
        assert _count(fresh_db, "SELECT * FROM conversation WHERE title = 'unkeyed'") == 2
        assert _count(fresh_db, "SELECT * FROM call_receipt") == 3


async def test_a_stranger_cannot_read_anothers_receipts(fresh_db: PublishedDatabase) -> None:
    async with (
        connect(fresh_db.uri, fresh_db.name) as a,
        connect(fresh_db.uri, fresh_db.name) as b,
    ):
        await a.reducers.create_conversation("a's call")
        await b.reducers.create_conversation("b's call")
        assert _count(fresh_db, "SELECT * FROM call_receipt") == 2
        for conn in (a, b):
            rows = (await conn.one_off_query("SELECT * FROM call_receipt"))["call_receipt"]
            assert [r.caller for r in rows] == [conn.identity]
            await conn.subscribe("SELECT * FROM call_receipt")
            assert [r.caller for r in conn.db.call_receipt] == [conn.identity]
        # A stranger who knows a's client id still sees nothing of a's.
        query = f"SELECT * FROM call_receipt WHERE client = {a.client_id}"
        assert (await b.one_off_query(query))["call_receipt"] == []


async def test_receipts_are_pruned_on_the_modules_schedule_only(
    fresh_db: PublishedDatabase,
) -> None:
    # init started the pruning schedule (every 10 s; receipts are kept 15 minutes).
    [result] = fresh_db.server.sql(fresh_db.name, "SELECT * FROM call_receipt_pruning")
    assert len(result["rows"]) == 1
    async with connect(fresh_db.uri, fresh_db.name) as a:
        at = ScheduleAt.every(TimeDuration(10_000_000))
        with pytest.raises(ReducerError, match="runs on the module's schedule only"):
            await a.reducers.prune_call_receipts({"scheduled_id": 1, "scheduled_at": at})
        cleanup = {"scheduled_id": 1, "scheduled_at": at, "conversation_id": 1}
        with pytest.raises(ReducerError, match="runs on the module's schedule only"):
            await a.reducers.delete_orphaned_messages(cleanup)
