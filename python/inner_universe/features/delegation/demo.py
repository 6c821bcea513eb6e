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

from ...spacetime.connection import DbConnection, connect
from ...spacetime.events import EventContext, ReducerEvent
from .board import TaskBoard
from .delegate import allow_delegation, result_of, submit
from .history import AgentHistory, Transition
from .processes import WorkerProcess
from .tasks import CLAIMED, RETRYING, RUNNING, SUCCEEDED, agent_id, unpack
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


class _Act:
    """The act's state: the planner's connection, the two workers, what was seen."""

    def __init__(self, uri: str, database: str) -> None:
        self.uri = uri
        self.database = database
        self.started = time.monotonic()
        self.completions: Counter[int] = Counter()
        self.killed: list[int] = []
        self.victim_claims = 0

    def say(self, text: str) -> None:
        print(f"  [{time.monotonic() - self.started:6.2f}s] {text}", flush=True)

    async def run(self) -> int:
        conn = await connect(self.uri, self.database)
        assert conn.identity is not None and conn.token is not None
        planner_token = conn.token
        handler = f"{__name__}:summarise"
        workers = await asyncio.gather(
            *(  # each shares its history with the planner's identity
                WorkerProcess.start(
                    self.uri,
                    self.database,
                    name,
                    ["summarise"],
                    handler,
                    history_readers=[conn.identity.to_hex()],
                )
                for name in ("worker-a", "worker-b")
            )
        )
        self.victim, self.survivor = workers
        self.names = {w.agent_id: w.name for w in workers}
        self.say(", ".join(f"{w.name} ready (pid {w.pid})" for w in workers))
        try:
            async with conn:
                self.board = await TaskBoard.of(conn)
                conn.on_reducer("complete_task", self.on_complete)
                conn.db.task.on_update(self.on_update)
                ids, results = await self.delegate_pieces(conn)
        finally:
            report = await self.survivor.stop()
            await self.victim.kill()
        transitions = await self.victims_history(planner_token)
        return self.check(ids, results, transitions, report)

    async def delegate_pieces(self, conn: DbConnection) -> tuple[list[int], list[Any]]:
        """The planner: register, allow the delegation, submit every piece, gather results."""
        await conn.call_reducer("register_agent", "chief-planner", "planning", b"")
        planner = agent_id(self.board, "chief-planner")
        await allow_delegation(conn, planner, "summarise")
        ids = [
            await submit(conn, "summarise", piece, from_agent=planner, lease=LEASE, backoff=0.2)
            for piece in PIECES.items()
        ]
        self.say(f"chief-planner delegated {len(ids)} pieces to 'summarise': tasks {ids}")
        results = await asyncio.gather(*(result_of(conn, i, timeout=60) for i in ids))
        by_worker = Counter(self.names[self.board.known_task(i).claimed_by] for i in ids)
        self.say(
            f"chief-planner got {len(results)} results "
            f"({', '.join(f'{n} by {w}' for w, n in sorted(by_worker.items()))})"
        )
        return ids, list(results)

    def on_complete(self, _ctx: EventContext, event: ReducerEvent) -> None:
        self.completions[event.args["task_id"]] += 1

    def on_update(self, _ctx: EventContext, old: Any, new: Any) -> None:
        """Narrate the task table; on the victim's second claim, kill it mid-task."""
        who = self.names.get(new.claimed_by, "")
        if new.status == CLAIMED:
            self.say(f"task {new.id} -> {who} (attempt {new.attempts}, epoch {new.epoch})")
            self.victim_claims += who == self.victim.name
            if who == self.victim.name and self.victim_claims == 2:
                self.killed.append(new.id)
                asyncio.get_running_loop().create_task(self.kill_mid_task(new.id))
        elif new.status == RETRYING and old.status != RETRYING:
            self.say(f"task {new.id}: {new.error}; back in the queue after a backoff")
        elif new.status == SUCCEEDED:
            self.say(f"task {new.id} done by {who}: {unpack(new.result)!r}")

    async def kill_mid_task(self, task_id: int) -> None:
        await self.board.until(lambda: self.board.known_task(task_id).status == RUNNING)
        await asyncio.sleep(WORK / 2)  # let it get well into the piece
        await self.victim.kill()
        self.say(
            f"killed {self.victim.name} (pid {self.victim.pid}) in the middle of task {task_id}"
        )

    async def victims_history(self, token: str) -> list[Transition]:
        """What the TemporalStore recorded of the killed worker, read as the planner."""
        history = await asyncio.to_thread(
            AgentHistory.open, self.uri, self.database, self.victim.agent_id, token
        )
        try:
            transitions = await asyncio.to_thread(history.transitions)
        finally:
            await asyncio.to_thread(history.close)
        print(f"\n  {self.victim.name}'s history in the TemporalStore (it died mid-task):")
        for t in transitions:
            task = f" task {t.task_id}" if t.task_id else ""
            note = f" ({t.note})" if t.status == "idle" else ""
            print(f"    v{t.version}: {t.status}{task}{note}")
        return transitions

    def check(
        self,
        ids: list[int],
        results: list[Any],
        transitions: list[Transition],
        report: dict[str, Any],
    ) -> int:
        retaken = self.killed[0] if self.killed else 0
        row = self.board.task(retaken)
        last = transitions[-1] if transitions else None
        survivor, victim = self.survivor.name, self.victim.name
        checks = {
            "every piece has a result": len(results) == len(PIECES),
            "each result was committed exactly once": self.completions == Counter(ids),
            f"the killed worker's task {retaken} was retaken by {survivor}": row is not None
            and (row.epoch, row.claimed_by) == (2, self.survivor.agent_id),
            f"{victim}'s last recorded state is 'running task {retaken}'": last is not None
            and (last.status, last.task_id) == ("running", retaken),
            f"{survivor} completed {len(report.get('completed', []))} tasks": bool(
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


async def delegation_act(uri: str, database: str) -> int:
    """Run the act against a database with the module; 0 when every check held."""
    print("\n--- delegation: a planner splits work, two worker processes take the pieces ---\n")
    return await _Act(uri, database).run()
