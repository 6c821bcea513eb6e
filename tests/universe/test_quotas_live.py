"""Quotas on the rows nothing else deletes: tasks, workflows, inbox messages, model calls,
provider health rows.

Each kind counts against the identity that wrote it, is refused with a clear error
once the identity's quota is full, and has a ``forget_*`` reducer that deletes a
finished row and gives its quota back. Tried with two identities on a real server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from inner_universe.errors import ReducerError
from inner_universe.features.delegation import (
    TaskBoard,
    TaskContext,
    TaskRefused,
    Worker,
    cancel,
    submit,
)
from inner_universe.features.workflow import Workflow, submit_workflow
from inner_universe.spacetime.connection import DbConnection
from inner_universe.universe.bindings import TaskSpec
from tests.conftest import until

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
TASK_BYTES = 256 * 1024
"""The largest task payload (tasks.rs MAX_TASK_BYTES); the tasks quota is 32 MiB of them."""
QUOTA = 32 * MIB


async def usage(conn: DbConnection) -> dict[str, tuple[int, int]]:
    """The caller's quota usage: kind -> (rows, bytes)."""
    rows = (await conn.one_off_query("SELECT * FROM quota_usage"))["quota_usage"]
    assert all(u.owner == conn.identity for u in rows)  # no one else's usage is readable
    return {u.kind: (u.rows, u.bytes) for u in rows}


async def offer(conn: DbConnection, capability: str) -> None:
    """Register an agent of ``conn``'s that offers ``capability`` (no worker runs it)."""
    await conn.subscribe("SELECT * FROM agent")
    await conn.reducers.register_agent(f"offers-{capability}", "worker", b"")
    agent = next(x for x in conn.db.agent.iter() if x.name == f"offers-{capability}")
    await conn.reducers.set_agent_capabilities(agent.id, [capability])


async def test_tasks_count_against_their_submitter_until_forgotten(
    ab: tuple[DbConnection, DbConnection],
) -> None:
    a, b = ab
    await offer(b, "later")
    payload = bytes(TASK_BYTES - 5)  # msgpack adds a 5-byte header: 256 KiB stored
    ids = await asyncio.gather(*(submit(a, "later", payload) for _ in range(QUOTA // TASK_BYTES)))
    assert (await usage(a))["tasks"] == (QUOTA // TASK_BYTES, QUOTA)
    with pytest.raises(TaskRefused, match=r"quota reached: .*tasks would take \d+ bytes"):
        await submit(a, "later", payload)
    spec = a.db.task.find("id", ids[0])  # b's quota is its own (b submits without a task board)
    await b.reducers.submit_task(
        1, TaskSpec("task", spec.payload, "later", 0, 3, 30_000, 1000, 0), 0, 0
    )

    with pytest.raises(ReducerError, match="only a finished task can be forgotten"):
        await a.reducers.forget_task(ids[0])
    await cancel(a, ids[0])
    with pytest.raises(ReducerError, match=r"task \d+ belongs to another identity"):
        await b.reducers.forget_task(ids[0])
    await a.reducers.forget_task(ids[0])
    assert (await usage(a))["tasks"] == (QUOTA // TASK_BYTES - 1, QUOTA - TASK_BYTES)
    await submit(a, "later", payload)  # room again
    assert a.db.task.find("id", ids[0]) is None


async def test_a_result_counts_against_the_worker_that_wrote_it(
    ab: tuple[DbConnection, DbConnection],
) -> None:
    a, b = ab

    async def handler(ctx: TaskContext) -> bytes:
        return bytes(1000)

    async with Worker(b, "b-worker", ["sum"], handler, history=False):
        task_id = await submit(a, "sum", [1, 2])
        board = await TaskBoard.of(a)
        await board.until(lambda: a.db.task.find("id", task_id).status == "succeeded", timeout=15)
    result_bytes = len(a.db.task.find("id", task_id).result)
    assert result_bytes > 1000
    assert (await usage(b))["tasks"] == (0, result_bytes)
    await a.reducers.forget_task(task_id)
    assert (await usage(a))["tasks"] == (0, 0)
    assert (await usage(b))["tasks"] == (0, 0)


async def test_a_workflow_s_later_steps_are_its_submitter_s_and_go_with_it(
    ab: tuple[DbConnection, DbConnection],
) -> None:
    a, b = ab

    async def handler(ctx: TaskContext) -> str:
        return "done"

    wf = Workflow("two steps")
    first = wf.step("first", "step")
    wf.step("second", "step", needs=[first])
    async with Worker(b, "b-steps", ["step"], handler, history=False):
        run = await submit_workflow(a, wf)
        await run.wait(timeout=30)
    tasks = [t for t in a.db.task.iter() if t.step_id != 0]
    # The second step's task was created when b completed the first: it is still a's.
    assert [t.submitter for t in tasks] == [a.identity, a.identity]
    with pytest.raises(ReducerError, match="forget the workflow instead"):
        await a.reducers.forget_task(tasks[0].id)
    assert (await usage(a))["workflows"][0] == 1
    assert (await usage(a))["tasks"][0] == 2

    await a.reducers.forget_workflow(run.id)
    assert (await usage(a))["workflows"] == (0, 0)
    assert (await usage(a))["tasks"] == (0, 0)
    for table in ("workflow", "workflow_step", "task"):
        assert (await a.one_off_query(f"SELECT * FROM {table}"))[table] == []


async def test_inbox_messages_and_model_calls_are_counted_and_forgotten(
    ab: tuple[DbConnection, DbConnection],
) -> None:
    a, b = ab
    await a.subscribe("SELECT * FROM agent", "SELECT * FROM model_call")
    await a.reducers.register_agent("sender", "r", b"")
    await b.reducers.register_agent("recipient", "r", b"")
    await until(lambda: any(x.name == "recipient" for x in a.db.agent.iter()))  # b's commit
    sender = next(x for x in a.db.agent.iter() if x.name == "sender")
    recipient = next(x for x in a.db.agent.iter() if x.name == "recipient")

    await a.reducers.send_agent_message(1, sender.id, recipient.id, b"hello", 0)
    assert (await usage(a))["agent messages"] == (1, 5)
    [message] = (await a.one_off_query("SELECT * FROM inbox_message"))["inbox_message"]
    with pytest.raises(ReducerError):
        await b.reducers.forget_agent_message(message.id)  # only its sender forgets it
    await a.reducers.forget_agent_message(message.id)
    assert (await usage(a))["agent messages"] == (0, 0)

    await a.reducers.begin_model_call(0, 0, "offline", "echo", 3, 0, 0)
    [call] = list(a.db.model_call.iter())
    assert (await usage(a))["model calls"] == (1, len("offline") + len("echo"))
    # The caller's health row of the provider counts the most its texts can hold.
    assert (await usage(a))["providers"] == (1, len("offline") + 256 + 1024)
    with pytest.raises(ReducerError, match="only an ended call can be forgotten"):
        await a.reducers.forget_model_call(call.id)
    await a.reducers.end_model_call(call.id, "failed", 3, 0, 0, None, 5, "boom", 0)
    assert (await usage(a))["model calls"] == (1, len("offline") + len("echo") + len("boom"))
    await a.reducers.forget_model_call(call.id)
    assert (await usage(a))["model calls"] == (0, 0)
    spend: Any = (await a.one_off_query("SELECT * FROM spend"))["spend"]
    assert [s.calls for s in spend] == [1]  # what it cost stays counted
    with pytest.raises(ReducerError, match="no provider 'offline' in the caller's health rows"):
        await b.reducers.forget_provider("offline")  # only a's row exists: b has none to forget
    await a.reducers.forget_provider("offline")
    assert (await usage(a))["providers"] == (0, 0)
    assert (await a.one_off_query("SELECT * FROM provider"))["provider"] == []
