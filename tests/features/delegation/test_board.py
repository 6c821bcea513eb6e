"""What a task board replicates, against the real server: unfinished tasks and its own.

A board used to hold whole tables, so every worker received every finished task
ever stored (and a subscription over the SDK's 64 MiB message limit failed).
Here one identity piles up finished tasks; a worker and a stranger never see
them, the worker keeps taking new work, and the submitter still sees its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from inner_universe.features.delegation import (
    TaskBoard,
    TaskContext,
    Worker,
    cancel,
    delegate,
    submit,
)
from inner_universe.features.delegation.tasks import CANCELLED, FINISHED
from inner_universe.spacetime.connection import DbConnection, connect
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration

PILE = 300
"""Finished tasks of one identity left in the table."""


async def echo(task: TaskContext) -> Any:
    return task.payload


async def stored(conn: DbConnection, capability: str) -> list[Any]:
    """Every task for ``capability`` in the table, whoever submitted it (one query)."""
    found = await conn.one_off_query(f"SELECT * FROM task WHERE capability = '{capability}'")
    return found.get("task", [])


def held(conn: DbConnection, capability: str) -> list[Any]:
    """The tasks for ``capability`` in this connection's replica."""
    return [t for t in conn.db.task.iter() if t.capability == capability]


async def offered(where: tuple[str, str], name: str, capability: str) -> None:
    """An agent ``name`` offers ``capability`` (so tasks may be submitted to it), taking none."""
    async with connect(*where) as conn, Worker(conn, name, [capability], echo, history=False):
        pass


async def pile_of_finished_tasks(owner: DbConnection, capability: str) -> list[int]:
    """``PILE`` tasks of ``owner``'s, each cancelled before anyone took it."""
    ids = await asyncio.gather(*(submit(owner, capability, n) for n in range(PILE)))
    await asyncio.gather(*(cancel(owner, i, "history") for i in ids))
    return list(ids)


async def test_finished_tasks_of_another_identity_never_reach_a_worker(
    universe_db: PublishedDatabase,
) -> None:
    where = (universe_db.uri, universe_db.name)
    async with connect(*where) as owner, connect(*where) as stranger:
        await offered(where, "hoarder", "hoard")
        ids = await pile_of_finished_tasks(owner, "hoard")
        assert len(await stored(owner, "hoard")) == PILE

        async with connect(*where) as worker_conn:
            async with Worker(worker_conn, "board-echo", ["board-echo"], echo, history=False):
                assert held(worker_conn, "hoard") == []  # not in its first rows either
                # It keeps working: a task submitted now is taken and its result delivered.
                assert await delegate(owner, "board-echo", "on", timeout=15) == "on"
                assert await delegate(stranger, "board-echo", [1, 2], timeout=15) == [1, 2]
            # Once its runs are over the worker holds no finished task it did not submit.
            assert [t for t in worker_conn.db.task.iter() if t.status in FINISHED] == []

        stranger_board = await TaskBoard.of(stranger)
        assert held(stranger, "hoard") == []
        # The submitter's own board holds its history: what it waits for, and forgets.
        mine = held(owner, "hoard")
        assert sorted(t.id for t in mine) == sorted(ids)
        assert {t.status for t in mine} == {CANCELLED}

        # An unfinished task is on every board (workers claim from there) until it ends.
        queued = await submit(owner, "hoard", "wait")
        await stranger_board.until(lambda: stranger.db.task.find("id", queued), timeout=15)
        await cancel(owner, queued, "done waiting")
        await stranger_board.until(lambda: stranger.db.task.find("id", queued) is None, timeout=15)
        assert owner.db.task.find("id", queued).status == CANCELLED


async def test_a_followed_task_stays_until_let_go(universe_db: PublishedDatabase) -> None:
    where = (universe_db.uri, universe_db.name)
    async with connect(*where) as owner, connect(*where) as watcher:
        await offered(where, "follow-offerer", "follow-me")
        task_id = await submit(owner, "follow-me", None)
        board = await TaskBoard.of(watcher)
        following = board.follow_task(task_id)
        await following
        await cancel(owner, task_id, "seen")
        # Finished, and another identity's: on this board only because it is followed.
        await board.until(lambda: watcher.db.task.find("id", task_id).status == CANCELLED, 15)
        await following.unsubscribe()
        assert watcher.db.task.find("id", task_id) is None
