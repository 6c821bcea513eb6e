"""The demo's delegation act: a planner splits work between two worker processes.

The planner (this process) delegates six pieces of work to the ``summarise``
capability. Two workers, each in its own process, take pieces in parallel. While
``worker-a`` is in the middle of a piece, the act kills it by its pid (SIGKILL: no
goodbye). Its claim's lease runs out, the module puts the piece back in the queue,
and ``worker-b`` takes it with a new epoch. The planner gets every result exactly
once, and the TemporalStore still tells what ``worker-a`` was doing when it died.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from typing import Any

from ...spacetime.connection import connect
from ...spacetime.events import EventContext, ReducerEvent
from .board import TaskBoard
from .delegate import allow_delegation, result_of, submit
from .history import AgentHistory
from .processes import WorkerProcess
from .tasks import CLAIMED, RETRYING, SUCCEEDED, agent_id, unpack
from .worker import TaskContext

PIECES = {
    "protocol": "the SDK speaks the v1 protocol of SpacetimeDB",
    "validation": "the module validates every reducer call",
    "fencing": "leases and epochs fence off a lost worker",
    "workflows": "workflows keep step readiness in the module",
    "inboxes": "inboxes confirm delivery by acknowledgement",
    "history": "agent history is event-sourced",
}
LEASE = 1.5
"""Seconds a claim lasts without a heartbeat: short, so the act is quick."""
WORK = 0.8
"""Seconds of (simulated) work per piece."""


async def summarise(task: TaskContext) -> str:
    """The workers' handler: a piece of simulated work."""
    topic, text = task.payload
    print(f"      [pid {os.getpid()}] working on {topic!r}", file=sys.stderr, flush=True)
    await asyncio.sleep(WORK)
    return f"{topic}: {len(text.split())} words"


async def delegation_act(uri: str, database: str) -> int:
    """Run the act against a database with the module; 0 when every check held."""
    print("\n--- delegation: a planner splits work, two worker processes take the pieces ---\n")
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"  [{time.monotonic() - started:6.2f}s] {text}", flush=True)

    conn = await connect(uri, database)
    assert conn.identity is not None and conn.token is not None
    planner_token = conn.token
    handler = f"{__name__}:summarise"
    workers = await asyncio.gather(
        *(  # each shares its history with the planner's identity
            WorkerProcess.start(
                uri,
                database,
                name,
                ["summarise"],
                handler,
                history_readers=[conn.identity.to_hex()],
            )
            for name in ("worker-a", "worker-b")
        )
    )
    victim, survivor = workers
    names = {w.agent_id: w.name for w in workers}
    say(", ".join(f"{w.name} ready (pid {w.pid})" for w in workers))
    try:
        async with conn:
            board = await TaskBoard.of(conn)
            completions: Counter[int] = Counter()
            killed: list[int] = []
            victim_claims = 0

            def on_complete(_ctx: EventContext, event: ReducerEvent) -> None:
                completions[event.args["task_id"]] += 1

            def on_update(_ctx: EventContext, old: Any, new: Any) -> None:
                nonlocal victim_claims
                who = names.get(new.claimed_by, "")
                if new.status == CLAIMED:
                    say(f"task {new.id} -> {who} (attempt {new.attempts}, epoch {new.epoch})")
                    victim_claims += who == victim.name
                    if who == victim.name and victim_claims == 2:  # its second piece
                        killed.append(new.id)
                        asyncio.get_running_loop().create_task(kill_mid_task(new.id))
                elif new.status == RETRYING and old.status != RETRYING:
                    say(f"task {new.id}: {new.error}; back in the queue after a backoff")
                elif new.status == SUCCEEDED:
                    say(f"task {new.id} done by {who}: {unpack(new.result)!r}")

            async def kill_mid_task(task_id: int) -> None:
                await board.until(lambda: board.known_task(task_id).status == "running")
                await asyncio.sleep(WORK / 2)  # let it get well into the piece
                await victim.kill()
                say(f"killed {victim.name} (pid {victim.pid}) in the middle of task {task_id}")

            conn.on_reducer("complete_task", on_complete)
            conn.db.task.on_update(on_update)
            await conn.call_reducer("register_agent", "chief-planner", "planning", b"")
            planner = agent_id(board, "chief-planner")
            await allow_delegation(conn, planner, "summarise")
            ids = [
                await submit(conn, "summarise", piece, from_agent=planner, lease=LEASE, backoff=0.2)
                for piece in PIECES.items()
            ]
            say(f"chief-planner delegated {len(ids)} pieces to 'summarise': tasks {ids}")
            results = await asyncio.gather(*(result_of(conn, i, timeout=60) for i in ids))
            by_worker = Counter(names[board.known_task(i).claimed_by] for i in ids)
            say(
                f"chief-planner got {len(results)} results "
                f"({', '.join(f'{n} by {w}' for w, n in sorted(by_worker.items()))})"
            )
    finally:
        report = await survivor.stop()
        await victim.kill()

    history = await asyncio.to_thread(
        AgentHistory.open, uri, database, victim.agent_id, planner_token
    )
    try:
        transitions = await asyncio.to_thread(history.transitions)
    finally:
        await asyncio.to_thread(history.close)
    last = transitions[-1]
    print(f"\n  {victim.name}'s history in the TemporalStore (it died mid-task):")
    for t in transitions:
        task = f" task {t.task_id}" if t.task_id else ""
        note = f" ({t.note})" if t.status == "idle" else ""
        print(f"    v{t.version}: {t.status}{task}{note}")
    retaken = killed[0] if killed else 0
    checks = {
        "every piece has a result": len(results) == len(PIECES),
        "each result was committed exactly once": completions == Counter(ids),
        f"the killed worker's task {retaken} was retaken by {survivor.name}": bool(killed)
        and board.known_task(retaken).epoch == 2
        and board.known_task(retaken).claimed_by == survivor.agent_id,
        f"{victim.name}'s last recorded state is 'running #{retaken}'": (last.status, last.task_id)
        == ("running", retaken),
        f"{survivor.name} completed {len(report.get('completed', []))} tasks": bool(
            report.get("completed")
        ),
    }
    print()
    for check, held in checks.items():
        print(f"  {'ok ' if held else 'FAILED'} {check}")
    if not all(checks.values()):
        return 1
    print("\nthe planner got every result once, though a worker died mid-task")
    return 0
