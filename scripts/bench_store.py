"""TemporalStore benchmark: the SpacetimeDB recorders next to eventsourcing's SQLite ones.

Runs the same workload through both persistence modules in one run, in
alternating rounds (best of each), so the ratios mean something on any machine:

- appending events one per call (``insert_events([event])``, each its own transaction);
- appending events in batches (one call, one transaction per batch);
- loading one aggregate with a long history, without and with snapshots.

The SQLite baseline is a database file (eventsourcing's default for SQLite
files: WAL journal), the configuration that persists and can be shared between
processes on one machine; the SpacetimeDB figures include the WebSocket round
trip to a local server and the replica update.

After the table, where a SpacetimeDB batch's time goes, from the same run: the
reducer's host time on the server (as the server reports it), the same
``append_runs`` call made on a bare connection with no replica (no subscription,
nothing indexed on the client): the floor of this write path, whatever the store
does on top of it, and the time the benchmark itself takes to make a batch's 100
``StoredEvent`` records, which both modules' batch figures include. (The bare call
was ``append_events`` with one NewEvent per event until the store moved to
``append_runs``; it makes the store's call again.) Last, the full (generation 2)
garbage collections that ran during each module's batch appends, in all rounds:
objects a process keeps per call (the replica's runs, the SDK's record of each
acknowledged call) set them off, and one costs 10-30 ms, so a round that has one is
slower by that much (reported only; both modules are timed the same way).

    .venv/bin/python scripts/bench_store.py [--single N] [--batches N] [--history N] [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any, ClassVar
from uuid import UUID, uuid4

from bench_common import machine
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, MutableOrImmutableAggregate, event
from eventsourcing.persistence import StoredEvent

from inner_universe.spacetime.connection import ConnectionBuilder
from inner_universe.spacetime.events import EventContext, ReducerEvent
from inner_universe.spacetime.server import LocalServer
from inner_universe.universe import publish

BATCH = 100
SNAPSHOT_INTERVAL = 100


class Agent(Aggregate):
    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.notes: list[str] = []

    @event("NoteAdded")
    def add_note(self, note: str) -> None:
        self.notes.append(note)


class Agents(Application[UUID]):
    name = "BenchAgents"


class SnapshottingAgents(Agents):
    snapshotting_intervals: ClassVar[dict[type[MutableOrImmutableAggregate[Any]], int]] = {
        Agent: SNAPSHOT_INTERVAL
    }


class FullCollections:
    """Counts and times the garbage collector's full collections while it is on."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.count += 1
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median_time(fn: Callable[[], object], repeat: int = 7) -> float:
    fn()  # warm up
    return statistics.median(timed(fn) for _ in range(repeat))


def bench(env: dict[str, str], single: int, batches: int, history: int) -> dict[str, float]:
    """Events/s for single and batched appends; seconds to load a long-lived aggregate."""
    results: dict[str, float] = {}
    plain = Agents(env=env)
    snapshotting: SnapshottingAgents | None = None
    try:
        recorder = plain.recorder

        def one() -> None:
            recorder.insert_events([StoredEvent(uuid4(), 1, "bench.Event", b'{"n":1}')])

        for _ in range(20):  # warm up
            one()

        def singles() -> None:
            for _ in range(single):
                one()

        results["single"] = single / timed(singles)

        def batch_events() -> list[StoredEvent]:
            oid = uuid4()
            return [StoredEvent(oid, v, "bench.Event", b'{"n":1}') for v in range(1, BATCH + 1)]

        def batch() -> None:
            recorder.insert_events(batch_events())

        def all_batches() -> None:
            for _ in range(batches):
                batch()

        host_micros: list[int] = []
        replica = getattr(recorder, "replica", None)  # None: SQLite
        if replica is not None:

            def on_append(_ctx: EventContext, event: ReducerEvent) -> None:
                host_micros.append(event.duration.micros)

            replica.connection.on_reducer("append_runs", on_append)
        with FullCollections() as collections:
            results["batch"] = batches * BATCH / timed(all_batches)
        results["batch_full_gcs"] = collections.count
        results["make_ms"] = median_time(lambda: [batch_events() for _ in range(batches)]) * (
            1000 / batches
        )
        results["batch_full_gc_ms"] = collections.seconds * 1000
        if host_micros:
            results["batch_host_ms"] = statistics.median(host_micros) / 1000

        # One aggregate with a long history, written through the snapshotting app,
        # so its snapshots exist; the plain app on the same events ignores them.
        # (Opened only now: a second replica of the store would slow the appends.)
        snapshotting = SnapshottingAgents(env=env)
        agent = Agent("long-lived")
        snapshotting.save(agent)
        while agent.version < history:
            for i in range(min(SNAPSHOT_INTERVAL, history - agent.version)):
                agent.add_note(f"note {agent.version} {i}")
            snapshotting.save(agent)
        # The plain app's SpacetimeDB replica receives those events a moment after they
        # commit: time its loads only once it holds them all, not a stale history.
        if replica is not None:
            last = snapshotting.recorder.max_notification_id() or 0
            caught_up = replica.wait_for(
                lambda: (plain.recorder.max_notification_id() or 0) >= last, timeout=60
            )
            assert caught_up, "the plain app's replica did not catch up within 60 s"
        results["load"] = median_time(lambda: plain.repository.get(agent.id))
        app = snapshotting
        results["load_snap"] = median_time(lambda: app.repository.get(agent.id))
        loaded: Any = plain.repository.get(agent.id)
        assert loaded.version == history, loaded.version
    finally:
        plain.close()
        if snapshotting is not None:
            snapshotting.close()
    return results


def bare_batches(uri: str, database: str, batches: int) -> float:
    """Events/s of ``append_runs`` batches on a connection with no replica: the floor."""
    connection = (
        ConnectionBuilder()
        .with_uri(uri)
        .with_database(database)
        .with_compression("None")  # as the store's connection
        .connect_threaded()
    )
    try:

        def batch() -> None:  # one run of BATCH events, as the store sends a save
            run = (str(uuid4()), 1, ["bench.Event"] * BATCH, [b'{"n":1}'] * BATCH)
            connection.call_reducer("append_runs", "bare", [run], None)

        def all_batches() -> None:
            for _ in range(batches):
                batch()

        for _ in range(10):  # warm up
            batch()
        return batches * BATCH / timed(all_batches)
    finally:
        connection.disconnect()


def best_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """The best figure of each measurement over the rounds: highest rate, shortest time."""
    return {
        key: (max if key in ("single", "batch", "bare") else min)(run[key] for run in runs)
        for key in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--single", type=int, default=1000, help="single-event appends")
    parser.add_argument("--batches", type=int, default=100, help=f"batches of {BATCH} events")
    parser.add_argument("--history", type=int, default=5000, help="events of the loaded aggregate")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best of each is shown")
    args = parser.parse_args()
    print(machine("eventsourcing"))
    print(
        f"workload: {args.single} single appends, {args.batches} batches of {BATCH}, "
        f"one aggregate of {args.history} events (snapshot every {SNAPSHOT_INTERVAL})\n"
    )

    stdb_runs: list[dict[str, float]] = []
    sqlite_runs: list[dict[str, float]] = []
    with LocalServer() as server, tempfile.TemporaryDirectory() as tmp:
        token = server.create_identity().token
        for r in range(args.rounds):  # alternating, each round on a fresh database
            database = publish(server)
            stdb_env = {
                "PERSISTENCE_MODULE": "inner_universe.nerv.store",
                "SPACETIMEDB_URI": server.uri,
                "SPACETIMEDB_DATABASE": database,
                "SPACETIMEDB_STORE": "bench",
                # Both apps of the benchmark write the store: one identity (its owner).
                "SPACETIMEDB_TOKEN": token,
            }
            stdb_runs.append(bench(stdb_env, args.single, args.batches, args.history))
            stdb_runs[-1]["bare"] = bare_batches(server.uri, database, args.batches)
            server.delete_database(database)
            sqlite_env = {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": os.path.join(tmp, f"bench-{r}.sqlite"),
            }
            sqlite_runs.append(bench(sqlite_env, args.single, args.batches, args.history))
    stdb, sqlite = best_of(stdb_runs), best_of(sqlite_runs)

    rows = [
        ("append, 1 event per call", "single", "events/s", True),
        (f"append, {BATCH} events per call", "batch", "events/s", True),
        (f"load {args.history} events, no snapshot", "load", "ms", False),
        (f"load with snapshots (<= {SNAPSHOT_INTERVAL} events)", "load_snap", "ms", False),
    ]
    print(f"{'':42} {'SpacetimeDB':>12} {'SQLite file':>12}  {'ratio':>6}")
    for label, key, unit, higher_is_better in rows:
        ours, theirs = stdb[key], sqlite[key]
        if unit == "ms":
            ours, theirs = ours * 1000, theirs * 1000
        ratio = ours / theirs if higher_is_better else theirs / ours
        fmt = "{:>12,.0f}" if unit == "events/s" else "{:>12.2f}"
        name = f"{label} ({unit})"
        print(f"{name:42} {fmt.format(ours)} {fmt.format(theirs)}  {ratio:>5.2f}x")
    print("\nratio > 1: the SpacetimeDB store is faster (higher rate, or shorter load).")
    print(f"best of {args.rounds} rounds each; SpacetimeDB and SQLite rounds alternate.")

    per_batch = 1000 * BATCH
    print(f"\nwhere a SpacetimeDB batch of {BATCH} goes (ms per batch, best round):")
    print(f"  insert_events through the store{per_batch / stdb['batch']:>30.2f}")
    print(f"  append_runs on a bare connection (no replica){per_batch / stdb['bare']:>15.2f}")
    print(f"  of which the reducer on the server (median host time){stdb['batch_host_ms']:>7.2f}")
    print(f"  SQLite's insert_events{per_batch / sqlite['batch']:>38.2f}")
    print(f"  making the batch's {BATCH} StoredEvents (in both figures){stdb['make_ms']:>11.2f}")
    print(f"full garbage collections during the batch appends, all {args.rounds} rounds:")
    for name, runs in (("SpacetimeDB", stdb_runs), ("SQLite", sqlite_runs)):
        count = sum(run["batch_full_gcs"] for run in runs)
        ms = sum(run["batch_full_gc_ms"] for run in runs)
        print(f"  {name:12} {count:.0f} ({ms:.1f} ms in all)")


if __name__ == "__main__":
    main()
