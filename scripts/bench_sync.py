"""DiffSynchronizer benchmark: rows reconciled per second, each next to a baseline.

- Planning (pure, no server): the three-way merge of N agent rows (1% changed
  locally, 1% remotely, 1% new locally) against one plain two-way diffsync
  ``diff_from`` of the same rows, the least any diffsync-based reconcile pays.
- Pushing (a real local SpacetimeDB): ``sync()`` of K rows created offline
  against calling the same reducer K times directly from the same connection,
  the floor for pushing through reducers one call at a time.

    .venv/bin/python scripts/bench_sync.py [--rows N] [--push K]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import structlog

from inner_universe.nerv.sync import SYNC_QUERIES, DiffSynchronizer, LocalCopy, three_way
from inner_universe.nerv.sync.models import Dataset, SyncAdapter, empty_dataset
from inner_universe.spacetime.connection import ConnectionBuilder
from inner_universe.spacetime.server import SPACETIMEDB_VERSION, LocalServer
from inner_universe.universe import publish


def agents(n: int, role: str = "r") -> Dataset:
    data = empty_dataset()
    for i in range(1, n + 1):
        data["agent"][str(i)] = {"key": str(i), "id": i, "owner": None, "name": f"agent-{i}",
                                 "role": role, "status": "idle", "state": b"", "version": 1,
                                 "updated_at": 0}  # fmt: skip
    return data


def bench_plan(n: int) -> None:
    base = agents(n)
    local, remote = agents(n), agents(n)
    step = 100
    for i in range(1, n + 1, step):
        local["agent"][str(i)]["role"] = "local"
        remote["agent"][str(i + 1)]["role"] = "remote"
        key = f"new:{i}"
        local["agent"][key] = {**local["agent"][str(i)], "key": key, "id": None,
                               "name": f"draft-{i}"}  # fmt: skip
    started = time.perf_counter()
    SyncAdapter(remote).diff_from(SyncAdapter(local))
    two_way = time.perf_counter() - started
    started = time.perf_counter()
    plan = three_way(base, local, remote, "newest")
    merge = time.perf_counter() - started
    changed = len(plan.local_changes) + len(plan.remote_changes)
    print(
        f"plan   {n:>6} rows ({changed} changed): three-way {merge:.3f}s = {n / merge:,.0f} rows/s;"
        f" baseline two-way diff {two_way:.3f}s = {n / two_way:,.0f} rows/s;"
        f" ratio {merge / two_way:.2f}x"
    )


def bench_push(k: int) -> None:
    with LocalServer() as server, tempfile.TemporaryDirectory() as tmp:
        database = publish(server)
        builder = ConnectionBuilder().with_uri(server.uri).with_database(database)
        with builder.connect_threaded() as conn:
            conn.subscribe(*SYNC_QUERIES)
            started = time.perf_counter()
            for i in range(k):
                conn.reducers.register_agent(f"direct-{i}", "r", b"")
            direct = time.perf_counter() - started

            copy = LocalCopy(Path(tmp) / "bench.msgpack")
            sync = DiffSynchronizer(conn, copy)
            sync.sync()  # the first sync pulls the direct rows; not timed
            for i in range(k):
                copy.put("agent", {"name": f"offline-{i}", "role": "r"})
            started = time.perf_counter()
            report = sync.sync()
            pushed = time.perf_counter() - started
            assert report.ok and len(report.pushed) == k, report.summary()
    print(
        f"push   {k:>6} new rows: sync {pushed:.3f}s = {k / pushed:,.0f} rows/s;"
        f" baseline direct reducer calls {direct:.3f}s = {k / direct:,.0f} rows/s;"
        f" ratio {pushed / direct:.2f}x (table holds {2 * k} rows)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--push", type=int, default=500)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(
        f"{platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()};"
        f" diffsync {version('diffsync')}; SpacetimeDB {SPACETIMEDB_VERSION}"
    )
    for n in (1_000, args.rows):
        bench_plan(n)
    bench_push(args.push)


if __name__ == "__main__":
    main()
