"""Delegation benchmark: durable tasks through the module, next to a local queue.

In one run, on one machine:

- ``--tasks`` tasks submitted from one client (pipelined), taken by 1, 2 and 4
  worker processes (``concurrency`` 4 each, the ``echo`` handler, no agent history):
  tasks submitted, claimed and completed per second;
- the same work through ``multiprocessing.Queue`` with the same numbers of worker
  processes: the local queue users would otherwise pick (not durable: a task taken
  by a process that dies is lost);
- the time from a worker's death (SIGKILL, mid-task) to its task being claimed by
  another worker, for two lease lengths (backoff 0.1 s).

    .venv/bin/python scripts/bench_tasks.py [--tasks N] [--kills N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import time
from typing import Any

from bench_common import machine

from inner_universe.features.delegation import TaskBoard, cancel, submit
from inner_universe.features.delegation.processes import WorkerProcess
from inner_universe.features.delegation.tasks import CLAIMED, RUNNING, SUCCEEDED
from inner_universe.spacetime.connection import connect
from inner_universe.spacetime.events import EventContext
from inner_universe.spacetime.server import LocalServer
from inner_universe.universe import publish

HANDLERS = "inner_universe.features.delegation.handlers"
WORKER_COUNTS = (1, 2, 4)
CONCURRENCY = 4


async def through_module(server: LocalServer, workers: int, tasks: int) -> dict[str, float]:
    """Rates for ``tasks`` echo tasks taken by ``workers`` worker processes."""
    database = publish(server)
    procs = await asyncio.gather(
        *(
            WorkerProcess.start(
                server.uri,
                database,
                f"bench-{i}",
                ["echo"],
                f"{HANDLERS}:echo",
                concurrency=CONCURRENCY,
                history=False,
            )
            for i in range(workers)
        )
    )
    claimed: list[float] = []
    done: list[float] = []
    try:
        async with connect(server.uri, database) as conn:
            board = await TaskBoard.of(conn)

            def on_update(_ctx: EventContext, _old: Any, new: Any) -> None:
                if new.status == CLAIMED:
                    claimed.append(time.perf_counter())
                elif new.status == SUCCEEDED:
                    done.append(time.perf_counter())

            conn.db.task.on_update(on_update)
            start = time.perf_counter()
            await asyncio.gather(*(submit(conn, "echo", n) for n in range(tasks)))
            submitted = time.perf_counter()
            await board.until(lambda: len(done) == tasks, timeout=600)
    finally:
        for proc in procs:
            await proc.stop()
        server.delete_database(database)
    return {
        "submitted": tasks / (submitted - start),
        "claimed": tasks / (max(claimed) - start),
        "completed": tasks / (max(done) - start),
    }


def _queue_worker(inbox: Any, outbox: Any) -> None:
    while (item := inbox.get()) is not None:
        outbox.put(item)


def through_local_queue(workers: int, tasks: int) -> dict[str, float]:
    """The same work through multiprocessing queues (get = claim, put back = complete)."""
    ctx = mp.get_context("spawn")
    inbox, outbox = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_queue_worker, args=(inbox, outbox)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    # Warm up: every process is running and has taken one item before the clock starts.
    for _ in procs:
        inbox.put(-1)
    for _ in procs:
        outbox.get()
    start = time.perf_counter()
    for n in range(tasks):
        inbox.put(n)
    submitted = time.perf_counter()
    for _ in range(tasks):
        outbox.get()
    completed = time.perf_counter()
    for _ in procs:
        inbox.put(None)
    for proc in procs:
        proc.join()
    return {
        "submitted": tasks / (submitted - start),
        "claimed": tasks / (completed - start),
        "completed": tasks / (completed - start),
    }


async def death_to_retake(server: LocalServer, lease: float, kills: int) -> list[float]:
    """Seconds from SIGKILL of the worker running a task to another worker claiming it."""
    database = publish(server)
    try:
        async with connect(server.uri, database) as conn:
            board = await TaskBoard.of(conn)
            return [
                await one_kill(board, server.uri, database, lease, f"k{n}") for n in range(kills)
            ]
    finally:
        server.delete_database(database)


async def one_kill(board: TaskBoard, uri: str, database: str, lease: float, prefix: str) -> float:
    conn = board.conn
    procs = await asyncio.gather(
        *(
            WorkerProcess.start(
                uri, database, f"{prefix}-{i}", ["sleep"], f"{HANDLERS}:sleep", history=False
            )
            for i in range(2)
        )
    )
    task = await submit(conn, "sleep", 600, lease=lease, backoff=0.1)
    await board.until(lambda: board.known_task(task).status == RUNNING, timeout=30)
    victim = next(p for p in procs if p.agent_id == board.known_task(task).claimed_by)
    await victim.kill()
    killed = time.perf_counter()
    await board.until(lambda: board.known_task(task).epoch == 2, timeout=60)
    elapsed = time.perf_counter() - killed
    await cancel(conn, task)
    for proc in procs:
        await proc.stop()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    print(machine("eventsourcing"))
    print(f"{args.tasks} echo tasks; worker processes run {CONCURRENCY} tasks at a time\n")
    with LocalServer() as server:
        print(f"{'':32}{'submitted/s':>12}{'claimed/s':>12}{'completed/s':>12}")
        for workers in WORKER_COUNTS:
            module = await through_module(server, workers, args.tasks)
            local = through_local_queue(workers, args.tasks)
            for label, rates in (
                (f"module, {workers} worker process(es)", module),
                (f"  multiprocessing.Queue, {workers}", local),
            ):
                print(
                    f"{label:32}{rates['submitted']:12,.0f}{rates['claimed']:12,.0f}"
                    f"{rates['completed']:12,.0f}"
                )
        print("\nworker killed mid-task -> task claimed by another worker (backoff 0.1 s):")
        for lease in (0.5, 2.0):
            times = await death_to_retake(server, lease, args.kills)
            print(
                f"  lease {lease:.1f} s: median {statistics.median(times):.2f} s, "
                f"range {min(times):.2f}-{max(times):.2f} s over {len(times)} kills"
            )


if __name__ == "__main__":
    asyncio.run(main())
