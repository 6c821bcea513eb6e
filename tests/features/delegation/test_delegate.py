"""Delegation rules, hop limits, cancellation and bad input, against the real server.

Workers run in this process here (each on its own connection, so with its own
identity); the cross-process behaviour is in test_worker.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from inner_universe.errors import ConnectionClosedError
from inner_universe.features.delegation import (
    DelegationNotAllowed,
    StaleEpoch,
    TaskBoard,
    TaskCancelled,
    TaskContext,
    TaskFailed,
    TaskRefused,
    Worker,
    allow_delegation,
    cancel,
    delegate,
    result_of,
    submit,
)
from inner_universe.features.delegation.tasks import CANCELLED, RUNNING, pack
from inner_universe.spacetime.connection import DbConnection, connect
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration


@asynccontextmanager
async def worker(
    db: PublishedDatabase,
    name: str,
    capabilities: list[str],
    handler: Callable[[TaskContext], Awaitable[Any]],
    concurrency: int = 1,
) -> AsyncIterator[Worker]:
    async with (
        connect(db.uri, db.name) as conn,
        Worker(conn, name, capabilities, handler, concurrency=concurrency, history=False) as w,
    ):
        yield w


def until_cancelled() -> tuple[
    asyncio.Event, asyncio.Event, Callable[[TaskContext], Awaitable[None]]
]:
    """A handler that runs until cancelled, and the events it sets when it starts and stops."""
    started, stopped = asyncio.Event(), asyncio.Event()

    async def handler(task: TaskContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise

    return started, stopped, handler


async def echo(task: TaskContext) -> Any:
    return task.payload


async def running(board: TaskBoard, task_id: int) -> Any:
    def check() -> Any:
        row = board.task(task_id)
        return row if row is not None and row.status == RUNNING else None

    return await board.until(check, timeout=15)


async def test_delegate_returns_the_result_from_another_connection(
    universe_db: PublishedDatabase,
) -> None:
    async with (
        worker(universe_db, "doubler", ["double"], lambda t: _double(t)),
        connect(universe_db.uri, universe_db.name) as conn,
    ):
        assert await delegate(conn, "double", 21, timeout=15) == 42
        assert await delegate(conn, "@doubler", 5, timeout=15) == 10


async def _double(task: TaskContext) -> int:
    return int(task.payload) * 2


async def test_a_failing_handler_is_retried_then_its_error_raised(
    universe_db: PublishedDatabase,
) -> None:
    async def broken(task: TaskContext) -> None:
        raise ValueError(f"attempt {task.attempt} broke")

    async with (
        worker(universe_db, "breaker", ["break"], broken),
        connect(universe_db.uri, universe_db.name) as conn,
    ):
        task_id = await submit(conn, "break", None, max_attempts=2, backoff=0.1)
        with pytest.raises(TaskFailed, match="ValueError: attempt 2 broke") as failed:
            await result_of(conn, task_id, timeout=15)
        assert failed.value.status == "failed"
        row = (await TaskBoard.of(conn)).task(task_id)
        assert (row.attempts, row.epoch) == (2, 2)


async def test_a_delegation_loop_is_stopped_at_the_hop_limit(
    universe_db: PublishedDatabase,
) -> None:
    async def bounce(task: TaskContext) -> Any:
        # Delegates to its own capability: a loop, which the hop limit must stop.
        return await task.delegate("bounce", task.payload + 1, max_attempts=1, timeout=15)

    async with (
        worker(universe_db, "bouncer", ["bounce"], bounce, concurrency=8),
        connect(universe_db.uri, universe_db.name) as conn,
    ):
        with pytest.raises(TaskFailed, match="hop limit: task would be hop 4 of at most 3"):
            await delegate(conn, "bounce", 0, max_hops=3, max_attempts=1, timeout=30)
        # The hops were submitted by the worker's identity: not on this board, so ask.
        found = await conn.one_off_query("SELECT * FROM task WHERE capability = 'bounce'")
        bounces = sorted(found["task"], key=lambda t: t.id)
        assert [t.hops for t in bounces] == [0, 1, 2, 3]
        assert all(t.status == "failed" for t in bounces)
        # The refusal named the chain, down to the root task.
        assert f"task {bounces[0].id}" in bounces[-1].error
        assert "HopLimitExceeded" in bounces[-1].error


async def test_a_delegation_the_rules_do_not_allow_is_refused(
    universe_db: PublishedDatabase,
) -> None:
    async with (
        worker(universe_db, "helper", ["help"], echo),
        worker(universe_db, "secret-keeper", ["secrets"], echo),
        connect(universe_db.uri, universe_db.name) as conn,
    ):
        board = await TaskBoard.of(conn)
        await conn.call_reducer("register_agent", "ruled-planner", "planning", b"")
        planner = board.agent("ruled-planner").id
        await allow_delegation(conn, planner, "help")
        assert await delegate(conn, "help", "ok", from_agent=planner, timeout=15) == "ok"
        before = conn.db.task.count()
        with pytest.raises(DelegationNotAllowed, match="may not delegate to capability 'secrets'"):
            await submit(conn, "secrets", "x", from_agent=planner)
        assert conn.db.task.count() == before
        # Without rules an agent is unrestricted; speaking for another's agent is refused.
        async with connect(universe_db.uri, universe_db.name) as stranger:
            with pytest.raises(TaskRefused, match="belongs to another identity"):
                await submit(stranger, "help", "x", from_agent=planner)


async def test_cancelling_a_running_task_reaches_its_worker(
    universe_db: PublishedDatabase,
) -> None:
    started, stopped, wait_forever = until_cancelled()
    async with (
        worker(universe_db, "sleeper", ["sleep"], wait_forever) as w,
        connect(universe_db.uri, universe_db.name) as conn,
    ):
        board = await TaskBoard.of(conn)
        task_id = await submit(conn, "sleep", None)
        row = await running(board, task_id)
        await asyncio.wait_for(started.wait(), 15)  # the handler is under way
        await cancel(conn, task_id, "no longer needed")
        await asyncio.wait_for(stopped.wait(), 15)
        with pytest.raises(TaskCancelled, match="no longer needed"):
            await result_of(conn, task_id, timeout=15)
        assert w.stats.stopped == [(task_id, "cancelled: no longer needed")]
        # The worker's report after the cancellation would be refused.
        with pytest.raises(StaleEpoch, match="is cancelled"):
            await w.board.call("complete_task", task_id, row.epoch, pack("late"))
        assert board.task(task_id).status == CANCELLED


async def test_bad_input_gets_a_clear_typed_error_and_changes_nothing(
    universe_db: PublishedDatabase,
) -> None:
    started = asyncio.Event()

    async def hold(task: TaskContext) -> None:
        started.set()
        await asyncio.Event().wait()

    async with (
        worker(universe_db, "holder", ["hold"], hold),
        connect(universe_db.uri, universe_db.name) as conn,
        connect(universe_db.uri, universe_db.name) as stranger,
    ):
        board = await TaskBoard.of(conn)
        snapshot = _tasks(conn)
        with pytest.raises(TaskRefused, match="unknown capability 'teleport': no agent offers it"):
            await submit(conn, "teleport", None)
        with pytest.raises(TaskRefused, match=r"task payload is \d+ bytes; the limit is 262144"):
            await submit(conn, "hold", b"x" * 300_000)
        with pytest.raises(TaskRefused, match="lease is 10 ms"):
            await submit(conn, "hold", None, lease=0.01)
        with pytest.raises(TaskRefused, match="no agent named 'nobody'"):
            await submit(conn, "@nobody", None)
        assert _tasks(conn) == snapshot

        task_id = await submit(conn, "hold", None, lease=60)  # no heartbeat during the test
        row = await running(board, task_id)
        snapshot = _tasks(conn)
        stranger_board = await TaskBoard.of(stranger)
        with pytest.raises(TaskRefused, match="held by another identity") as other:
            await stranger_board.call("complete_task", task_id, row.epoch, pack("mine"))
        assert not isinstance(other.value, StaleEpoch)
        with pytest.raises(TaskRefused, match="belongs to another identity"):
            await cancel(stranger, task_id)
        with pytest.raises(TaskRefused, match="no task with id 999999"):
            await cancel(conn, 999_999)
        assert _tasks(conn) == snapshot
        await cancel(conn, task_id)


def _tasks(conn: DbConnection) -> list[Any]:
    return sorted(conn.db.task.iter(), key=lambda t: t.id)


async def test_heartbeats_keep_a_task_longer_than_its_lease(
    universe_db: PublishedDatabase,
) -> None:
    async def long_work(task: TaskContext) -> str:
        await asyncio.sleep(2.2)  # the work itself: over two leases long
        return "done"

    async with (
        worker(universe_db, "plodder", ["plod"], long_work),
        connect(universe_db.uri, universe_db.name) as conn,
    ):
        task_id = await submit(conn, "plod", None, lease=1.0)
        assert await result_of(conn, task_id, timeout=15) == "done"
        row = (await TaskBoard.of(conn)).known_task(task_id)
        assert (row.epoch, row.attempts) == (1, 1)  # the lease never expired


async def test_a_task_whose_last_lease_expires_is_dead(universe_db: PublishedDatabase) -> None:
    async with connect(universe_db.uri, universe_db.name) as conn:
        board = await TaskBoard.of(conn)
        # A worker by hand that claims and then goes silent.
        await conn.call_reducer("register_agent", "mute", "worker", b"")
        mute = board.agent("mute").id
        await board.call("set_agent_capabilities", mute, ["mute"])
        task_id = await submit(conn, "mute", None, lease=0.2, max_attempts=1)
        await board.call("claim_task", mute)
        assert board.known_task(task_id).claimed_by == mute
        with pytest.raises(TaskFailed, match="dead: lease expired: agent 'mute' sent no heartbeat"):
            await result_of(conn, task_id, timeout=15)


async def test_waiting_for_a_result_ends_when_the_connection_does(
    universe_db: PublishedDatabase,
) -> None:
    async with worker(universe_db, "idler", ["idle"], echo) as idler:
        conn = await connect(universe_db.uri, universe_db.name)
        await idler.stop()  # nobody will take the task
        task_id = await submit(conn, "idle", None)
        waiting = asyncio.create_task(result_of(conn, task_id))
        await conn.disconnect()
        with pytest.raises(ConnectionClosedError):
            await waiting


async def test_cancelling_a_task_cancels_what_it_delegated(
    universe_db: PublishedDatabase,
) -> None:
    inner_started, inner_stopped, inner = until_cancelled()

    async def outer(task: TaskContext) -> Any:
        return await task.delegate("inner-work", None)

    async with (
        worker(universe_db, "outer", ["outer-work"], outer),
        worker(universe_db, "inner", ["inner-work"], inner),
        connect(universe_db.uri, universe_db.name) as conn,
    ):
        board = await TaskBoard.of(conn)
        parent = await submit(conn, "outer-work", None)
        await asyncio.wait_for(inner_started.wait(), 15)  # the delegated task is under way
        child = await board.until(
            lambda: next(iter(conn.db.task.filter("parent_id", parent)), None), timeout=15
        )
        # Another identity's task: the board holds it while unfinished, so follow it.
        await board.follow_task(child.id)
        await cancel(conn, parent, "changed plans")
        await asyncio.wait_for(inner_stopped.wait(), 15)
        row = board.known_task(child.id)
        assert row.status == CANCELLED
        assert row.error == f"task {parent}, which it was delegated from, was cancelled"
