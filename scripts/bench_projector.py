#!/usr/bin/env python
"""StateProjector throughput and retained memory, next to baselines measured in the same run.

Workload: one ``message`` table of ``--rows`` rows over 100 conversations; each
transaction inserts one message and updates two (a chat that streams). Measured:

- plain dict updates (no versions at all: the floor, what a mutable cache costs);
- naive snapshots: a shallow copy of the table dict per version (same window);
- naive snapshots: ``copy.deepcopy`` of the table per version (fewer versions: slow);
- StateProjector, without and with the two built-in projections.

Usage: .venv/bin/python scripts/bench_projector.py [--rows 10000] [--versions 20000]
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import platform
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from importlib.metadata import version

from blinker import Signal

from inner_universe.nerv.bus import ALL, BusEvent, EventBus
from inner_universe.nerv.projector import GroupBy, SortedGroups, StateProjector
from inner_universe.spacetime.cache import TableDiff, TransactionDiff

__all__ = ["main"]


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    conversation_id: int
    sequence: int
    content: str


def workload(rows: int, versions: int) -> tuple[list[Message], list[TransactionDiff]]:
    """The initial rows and ``versions`` transactions (1 insert + 2 updates each)."""
    initial = [Message(i, i % 100, i // 100, "") for i in range(rows)]
    live = {m.id: m for m in initial}
    diffs = []
    next_id = rows
    for n in range(versions):
        new = Message(next_id, next_id % 100, next_id // 100, "")
        next_id += 1
        updates = []
        for key in ((n * 7919) % rows, (n * 104729 + 1) % rows):
            old = live[key]
            live[key] = changed = replace(old, content=old.content[-20:] + "x")
            updates.append((old, changed))
        live[new.id] = new
        diffs.append(TransactionDiff({"message": TableDiff("message", (new,), (), tuple(updates))}))
    return initial, diffs


def run_dict(initial: list[Message], diffs: list[TransactionDiff], window: int) -> object:
    table = {m.id: m for m in initial}
    for diff in diffs:
        change = diff.tables["message"]
        for _, new in change.updates:
            table[new.id] = new
        for row in change.inserts:
            table[row.id] = row
    return table


def run_dict_copy(initial: list[Message], diffs: list[TransactionDiff], window: int) -> object:
    versions: deque[dict[int, Message]] = deque([{m.id: m for m in initial}], maxlen=window)
    for diff in diffs:
        table = dict(versions[-1])
        change = diff.tables["message"]
        for _, new in change.updates:
            table[new.id] = new
        for row in change.inserts:
            table[row.id] = row
        versions.append(table)
    return versions


def run_deepcopy(initial: list[Message], diffs: list[TransactionDiff], window: int) -> object:
    versions: deque[dict[int, Message]] = deque([{m.id: m for m in initial}], maxlen=window)
    for diff in diffs:
        table = copy.deepcopy(versions[-1])
        change = diff.tables["message"]
        for _, new in change.updates:
            table[new.id] = new
        for row in change.inserts:
            table[row.id] = row
        versions.append(table)
    return versions


def projector_run(with_projections: bool) -> Callable[..., object]:
    def run(initial: list[Message], diffs: list[TransactionDiff], window: int) -> object:
        p = StateProjector({"message": "id"}, window=window, initial={"message": initial})
        if with_projections:
            p.register("by_conv", SortedGroups("message", "conversation_id", "sequence", key="id"))
            p.register("groups", GroupBy("message", "conversation_id"))
        for diff in diffs:
            p.apply(diff)
        return p

    return run


def measure(
    run: Callable[..., object], initial: list[Message], diffs: list[TransactionDiff], window: int
) -> float:
    """Versions per second (best of 3)."""
    best = float("inf")
    for _ in range(3):
        gc.collect()
        start = time.perf_counter()
        result = run(initial, diffs, window)
        best = min(best, time.perf_counter() - start)
        del result
    return len(diffs) / best


def retained(
    run: Callable[..., object], initial: list[Message], diffs: list[TransactionDiff], window: int
) -> float:
    """MiB still allocated by the run's result (its kept versions), rows excluded."""
    gc.collect()
    tracemalloc.start()
    result = run(initial, diffs, window)
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del result
    return size / 2**20


def bus_rates(diffs: list[TransactionDiff]) -> tuple[float, float]:
    """Row events/s through EventBus.publish_transaction vs a bare blinker ``send``."""
    count = [0]

    def receiver(sender: object, *, event: BusEvent) -> None:
        count[0] += 1

    bus = EventBus()
    bus.connect(ALL, receiver)
    start = time.perf_counter()
    for n, diff in enumerate(diffs):
        bus.publish_transaction(diff, sequence=n)
    bus_rate = count[0] / (time.perf_counter() - start)

    signal = Signal()
    signal.connect(receiver)
    sent = 0
    start = time.perf_counter()
    for diff in diffs:  # the same number of sends, with nothing around them
        for _ in range(len(diff.tables["message"].updates) + len(diff.tables["message"].inserts)):
            signal.send(None, event=None)
            sent += 1
        signal.send(None, event=None)
        sent += 1
    return bus_rate, sent / (time.perf_counter() - start)


def machine() -> Iterator[str]:
    yield f"machine: {platform.machine()} {platform.system()} {platform.release()}"
    yield f"cpu: {platform.processor() or '?'} x{os.cpu_count()}"
    yield f"python: {sys.version.split()[0]} ({platform.python_implementation()})"
    try:
        import pvectorc  # type: ignore[import-not-found]  # noqa: F401

        c_ext = "with C extension"
    except ImportError:
        c_ext = "pure Python"
    yield f"pyrsistent {version('pyrsistent')} ({c_ext}), blinker {version('blinker')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=100)
    args = parser.parse_args()
    for line in machine():
        print(line)
    print(
        f"workload: {args.rows} rows, {args.versions} versions of 3 row changes, "
        f"window {args.window}"
    )
    initial, diffs = workload(args.rows, args.versions)
    few = diffs[: max(1, args.versions // 1000)]
    cases: list[tuple[str, Callable[..., object], list[TransactionDiff]]] = [
        ("plain dict updates (no versions)", run_dict, diffs),
        ("dict copy per version", run_dict_copy, diffs[: args.versions // 10]),
        ("deepcopy per version", run_deepcopy, few),
        ("StateProjector", projector_run(False), diffs),
        ("StateProjector + 2 projections", projector_run(True), diffs),
    ]
    print(f"{'':34} {'versions/s':>12} {'kept MiB':>9}  (versions run)")
    for name, run, stream in cases:
        rate = measure(run, initial, stream, args.window)
        kept = retained(run, initial, stream, args.window)
        print(f"{name:34} {rate:12,.0f} {kept:9.1f}  ({len(stream)})")
    bus_rate, blinker_rate = bus_rates(diffs)
    print(f"{'EventBus, 1 receiver on *':34} {bus_rate:12,.0f} events/s")
    print(f"{'bare blinker send, 1 receiver':34} {blinker_rate:12,.0f} events/s")


if __name__ == "__main__":
    main()
