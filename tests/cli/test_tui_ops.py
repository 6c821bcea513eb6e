"""The terminal UI's tasks and providers panes, headless, against a real server and worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from inner_universe.cli.tui import ProvidersPane, TasksPane, UniverseApp
from inner_universe.features.delegation import TaskBoard, result_of, submit
from inner_universe.features.workflow import Workflow, submit_workflow
from inner_universe.features.workflow.remote import RUNNING
from inner_universe.spacetime.connection import DbConnection, connect
from tests.cli.test_tasks_commands import doubler
from tests.cli.test_tui import SIZE, activity, command, new_token
from tests.conftest import PublishedDatabase, until

pytestmark = pytest.mark.integration


def cell(table: DataTable[object], key: str, column: int) -> str:
    """One cell's text, or "" while the row is not there."""
    return str(table.get_row(key)[column]) if key in table.rows else ""


def shown_calls(table: DataTable[object]) -> int:
    return sum(str(key.value).startswith("model_call:") for key in table.rows)


async def queue_work(conn: DbConnection) -> tuple[int, int]:
    """A task and a two-step workflow for ``double``, which an agent offers but does not
    work on yet (they wait, queued): their ids."""
    await conn.subscribe("SELECT * FROM agent")
    await conn.reducers.register_agent("idle doubler", "worker", b"")
    idle = next(a for a in conn.db.agent.iter() if a.name == "idle doubler")
    await conn.reducers.set_agent_capabilities(idle.id, ["double"])
    task_id = await submit(conn, "double", {"x": 21})
    wf = Workflow("twice")
    first = wf.step("first", "double", {"x": 1})
    wf.step("second", "double", {"x": 2}, needs=[first])
    return task_id, (await submit_workflow(conn, wf)).id


def finished_workflow(conn: DbConnection, workflow_id: int) -> Any | None:
    row = conn.db.workflow.find("id", workflow_id)
    return row if row is not None and row.status != RUNNING else None


async def test_tasks_go_from_queued_to_succeeded(
    fresh_db: PublishedDatabase, user_home: Path
) -> None:
    token = await new_token(fresh_db.uri, fresh_db.name)
    app = UniverseApp(fresh_db.universe(token=token))
    async with app.run_test(size=SIZE) as pilot:
        await until(app.connected.is_set)
        table = app.query_one(TasksPane).table
        async with connect(fresh_db.uri, fresh_db.name, token=token) as mine:
            task_id, workflow_id = await queue_work(mine)
        await until(lambda: cell(table, f"task:{task_id}", 2) == "queued")
        assert cell(table, f"task:{task_id}", 1) == "double"
        await until(lambda: cell(table, f"workflow:{workflow_id}", 5) == "first· second· ")
        await command(app, pilot, 'tasks submit double {"x": 2}')  # the plain command, inside
        await until(lambda: "submitted task" in activity(app))
        with doubler(fresh_db):
            await until(lambda: cell(table, f"task:{task_id}", 2) == "succeeded")
            await until(lambda: cell(table, f"workflow:{workflow_id}", 2) == "succeeded")
            await until(
                lambda: all(cell(table, str(key.value), 2) == "succeeded" for key in table.rows),
                timeout=10,
            )
        assert cell(table, f"task:{task_id}", 3) == "1/3"
        assert cell(table, f"task:{task_id}", 4) == "1"  # the epoch of its one claim
        assert cell(table, f"task:{task_id}", 5).startswith("agent ")  # the worker held it
        assert cell(table, f"workflow:{workflow_id}", 5) == "first✓ second✓ "
        await command(app, pilot, "tasks submit double not-json")
        await until(lambda: "error: the payload is not JSON" in activity(app))
        await command(app, pilot, "tasks list")
        await until(lambda: "task: 4 rows" in activity(app))


async def test_a_model_call_shows_in_the_providers_pane(
    fresh_db: PublishedDatabase, user_home: Path
) -> None:
    token = await new_token(fresh_db.uri, fresh_db.name)
    app = UniverseApp(fresh_db.universe(token=token))
    async with app.run_test(size=SIZE):
        await until(app.connected.is_set)
        table = app.query_one(ProvidersPane).table
        async with connect(fresh_db.uri, fresh_db.name, token=token) as mine:
            await mine.subscribe("SELECT * FROM model_call", "SELECT * FROM provider")
            await mine.reducers.begin_model_call(0, 0, "offline", "echo", 3, 0, 0)
            call = next(iter(mine.db.model_call.iter()))
            await until(lambda: cell(table, f"model_call:{call.id}", 1) == "running")
            await mine.reducers.end_model_call(call.id, "done", 3, 5, 1500, 12, 40, "", 0)
            (health,) = list(mine.db.provider.iter())
        key = f"model_call:{call.id}"
        await until(lambda: cell(table, key, 1) == "done 40ms")
        assert cell(table, key, 3) == "$0.0000" and cell(table, key, 4) == "3>5"
        await until(lambda: cell(table, f"provider:{health.id}", 2) == "1")
        assert cell(table, f"provider:{health.id}", 1) == "ok"
        # Another identity's failure on the same provider: its own health row, shown
        # next to ours by its reporter; its model call is its own and not shown.
        async with connect(fresh_db.uri, fresh_db.name) as other:
            await other.subscribe("SELECT * FROM model_call", "SELECT * FROM provider")
            await other.reducers.begin_model_call(0, 0, "offline", "echo", 3, 0, 0)
            theirs = next(iter(other.db.model_call.iter()))
            await other.reducers.end_model_call(theirs.id, "failed", 3, 0, 0, None, 1, "x", 60_000)
            (their_health,) = [p for p in other.db.provider.iter() if p.owner == other.identity]
            who = str(other.identity)[:8]
        their_key = f"provider:{their_health.id}"
        await until(lambda: cell(table, their_key, 1).startswith("cool to"))
        assert cell(table, their_key, 0) == f"offline echo by {who}"
        assert cell(table, f"provider:{health.id}", 1) == "ok"  # ours is unchanged
        assert f"model_call:{theirs.id}" not in table.rows
        async with connect(fresh_db.uri, fresh_db.name, token=token) as mine:
            for _ in range(ProvidersPane.LATEST_CALLS):
                await mine.reducers.begin_model_call(0, 0, "offline", "echo", 1, 0, 0)
        await until(lambda: shown_calls(table) == ProvidersPane.LATEST_CALLS)
        assert key not in table.rows  # the oldest call made room for the newest


async def test_another_identitys_tasks_show_until_they_finish(
    fresh_db: PublishedDatabase, user_home: Path
) -> None:
    async with connect(fresh_db.uri, fresh_db.name) as other:
        with doubler(fresh_db):
            finished_before = await submit(other, "double", {"x": 1})
            await result_of(other, finished_before)
        task_id, workflow_id = await queue_work(other)
        app = UniverseApp(fresh_db.universe())
        async with app.run_test(size=SIZE) as pilot:
            await until(app.connected.is_set)
            table = app.query_one(TasksPane).table
            await until(lambda: cell(table, f"workflow:{workflow_id}", 5) == "first· second· ")
            assert cell(table, f"task:{task_id}", 2) == "queued"
            assert f"task:{finished_before}" not in table.rows  # finished: never sent
            with doubler(fresh_db):
                await until(lambda: not table.rows)  # each left the pane as it finished
            assert await result_of(other, task_id) == 42
            board = await TaskBoard.of(other)
            workflow = await board.until(lambda: finished_workflow(other, workflow_id))
            assert workflow.status == "succeeded"
            await command(app, pilot, "tasks list")
            await until(lambda: "task: 0 rows" in activity(app))
