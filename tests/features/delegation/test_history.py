"""Agent state transitions recorded in the TemporalStore, readable at any past version."""

from __future__ import annotations

import asyncio

import pytest

from inner_universe.features.delegation import (
    AgentHistory,
    TaskContext,
    Worker,
    result_of,
    submit,
)
from inner_universe.spacetime.connection import connect
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration


async def shout(task: TaskContext) -> str:
    return str(task.payload).upper()


async def test_a_workers_transitions_are_recorded_and_readable_at_past_versions(
    universe_db: PublishedDatabase,
) -> None:
    async with (
        connect(universe_db.uri, universe_db.name) as worker_conn,
        connect(universe_db.uri, universe_db.name) as conn,
    ):
        assert conn.identity is not None
        worker = Worker(
            worker_conn,
            "shouter",
            ["shout"],
            shout,
            history_readers=[conn.identity],  # the store is its owner's and members'
            uri=universe_db.uri,
            database=universe_db.name,
        )
        async with worker:
            task_id = await submit(conn, "shout", "hi")
            assert await result_of(conn, task_id, timeout=15) == "HI"

        # Read back from a separate TemporalStore client, as the identity it was shared with.
        history = await asyncio.to_thread(
            AgentHistory.open, universe_db.uri, universe_db.name, worker.agent_id, conn.token
        )
        try:
            transitions = await asyncio.to_thread(history.transitions)
            assert [(t.status, t.task_id) for t in transitions] == [
                ("idle", 0),  # registered
                ("idle", 0),  # started
                ("running", task_id),
                ("idle", task_id),
                ("stopped", 0),
            ]
            running = next(t for t in transitions if t.status == "running")
            past = await asyncio.to_thread(history.at, running.version)
            assert (past.status, past.task_id, past.name) == ("running", task_id, "shouter")
        finally:
            await asyncio.to_thread(history.close)


async def test_an_agents_history_is_not_visible_to_identities_it_was_not_shared_with(
    universe_db: PublishedDatabase,
) -> None:
    async with connect(universe_db.uri, universe_db.name) as worker_conn:
        worker = Worker(
            worker_conn,
            "private",
            ["private"],
            shout,
            uri=universe_db.uri,
            database=universe_db.name,
        )
        async with worker:
            pass
    stranger = await asyncio.to_thread(
        AgentHistory.open, universe_db.uri, universe_db.name, worker.agent_id
    )
    try:
        assert await asyncio.to_thread(stranger.transitions) == []
    finally:
        await asyncio.to_thread(stranger.close)
