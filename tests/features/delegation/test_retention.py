"""Forgetting finished tasks, workflows and messages from Python, against the real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from inner_universe.errors import UsageError
from inner_universe.features.delegation import (
    Inbox,
    TaskContext,
    TaskRefused,
    Tasks,
    Worker,
    forget_finished,
)
from inner_universe.features.delegation.retention import forget_each
from inner_universe.features.workflow import Workflow
from inner_universe.spacetime.connection import DbConnection, connect
from tests.conftest import PublishedDatabase, until
from tests.features.delegation.test_board import offered

pytestmark = pytest.mark.integration


async def echo(task: TaskContext) -> Any:
    return task.payload


async def stored(conn: DbConnection, table: str, row_id: int) -> list[Any]:
    """The row in the table itself, whoever may see it on a board (one query)."""
    found = await conn.one_off_query(f"SELECT * FROM {table} WHERE id = {row_id}")
    return found.get(table, [])


async def test_forget_a_task_a_workflow_and_a_message(universe_db: PublishedDatabase) -> None:
    where = (universe_db.uri, universe_db.name)
    async with (
        connect(*where) as conn,
        connect(*where) as other,
        connect(*where) as worker_conn,
        Worker(worker_conn, "keeper", ["keep"], echo, history=False),
    ):
        tasks, theirs = Tasks(conn), Tasks(other)
        done = await tasks.submit("keep", 1)
        assert await tasks.result(done, timeout=15) == 1

        with pytest.raises(TaskRefused, match="belongs to another identity"):
            await theirs.forget(done)
        await tasks.forget(done)
        assert await stored(conn, "task", done) == []
        assert conn.db.task.find("id", done) is None
        with pytest.raises(TaskRefused, match=f"{done}"):
            await tasks.forget(done)  # already gone

        wf = Workflow("kept")
        wf.step("only", "keep", "x")
        run = await tasks.run_workflow(wf)
        step_task = run.progress()[0].task_id
        with pytest.raises(TaskRefused, match="forget the workflow instead"):
            await tasks.forget(step_task)
        assert await run.wait(timeout=15) == {"only": "x"}
        await tasks.forget_workflow(run.id)
        assert await stored(conn, "workflow", run.id) == []
        assert await stored(conn, "task", step_task) == []

        await conn.call_reducer("register_agent", "forgetful", "planning", b"")
        await other.call_reducer("register_agent", "listener", "research", b"")
        sender, listener = await Inbox.of(conn, "forgetful"), await Inbox.of(other, "listener")
        await until(lambda: sender.board.agent("listener") is not None)  # other's commit
        sent = await sender.send("listener", "hello")
        with pytest.raises(TaskRefused, match="belongs to another identity"):
            await listener.forget(sent)  # only its sender forgets it
        await sender.forget(sent)
        assert await stored(conn, "inbox_message", sent) == []


async def test_an_unfinished_task_is_refused_and_nothing_changes(
    universe_db: PublishedDatabase,
) -> None:
    where = (universe_db.uri, universe_db.name)
    async with connect(*where) as conn:
        await offered(where, "absent", "absent-work")  # nobody takes its tasks
        tasks = Tasks(conn)
        queued = await tasks.submit("absent-work", None)
        finished = await tasks.submit("absent-work", None)
        await tasks.cancel(finished, "not needed")
        with pytest.raises(TaskRefused, match="only a finished task can be forgotten"):
            await tasks.forget(queued)
        # Several at once: all or none, and the refusal names each id that may not go.
        with pytest.raises(TaskRefused, match=f"task {queued} is queued") as refused:
            await forget_each(conn, [finished, queued, 999_999_999])
        assert "task 999999999 is not one you submitted" in refused.value.message
        assert conn.db.task.find("id", finished) is not None
        with pytest.raises(UsageError, match="batch"):
            await forget_each(conn, [finished], batch=0)
        await tasks.cancel(queued, "cleanup")


async def test_forget_finished_goes_in_batches_and_leaves_the_rest(
    fresh_db: PublishedDatabase,
) -> None:
    where = (fresh_db.uri, fresh_db.name)
    async with connect(*where) as conn, connect(*where) as other:
        await offered(where, "later", "later")
        ids = await asyncio.gather(*(Tasks(conn).submit("later", n) for n in range(25)))
        await asyncio.gather(*(Tasks(conn).cancel(i) for i in ids[:20]))
        theirs = await Tasks(other).submit("later", "theirs")
        await Tasks(other).cancel(theirs)

        seen: list[tuple[int, int]] = []
        count = await forget_finished(conn, batch=8, progress=lambda *p: seen.append(p))
        assert count == 20
        assert seen == [(8, 20), (16, 20), (20, 20)]
        left = sorted(t.id for t in (await conn.one_off_query("SELECT * FROM task"))["task"])
        assert left == sorted([*ids[20:], theirs])  # the unfinished, and another's
        assert await forget_finished(conn) == 0
        await asyncio.gather(*(Tasks(conn).cancel(i) for i in ids[20:]))
