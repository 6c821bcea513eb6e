"""The local executor: dependency order, parallelism and its bound, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from inner_universe.features.workflow import LocalExecutor, StepFailed, WorkflowCycleError


async def test_independent_steps_run_at_the_same_time_and_results_flow_down() -> None:
    both_started = asyncio.Barrier(2)
    ex = LocalExecutor()

    async def a(inputs: dict[str, Any]) -> int:
        return 1

    async def side(inputs: dict[str, Any]) -> int:
        # Passes only if the other side step is running at the same time.
        await asyncio.wait_for(both_started.wait(), 5)
        return int(inputs["a"]) + 1

    async def d(inputs: dict[str, Any]) -> int:
        return int(inputs["b"] + inputs["c"])

    ex.add("a", a)
    ex.add("b", side, needs=["a"])
    ex.add("c", side, needs=["a"])
    ex.add("d", d, needs=["b", "c"])
    assert await ex.run() == {"a": 1, "b": 2, "c": 2, "d": 4}


async def test_parallelism_is_bounded() -> None:
    running = 0
    most = 0
    release = asyncio.Event()
    ex = LocalExecutor(max_parallel=2)

    async def step(inputs: dict[str, Any]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if most == 2:
            release.set()
        await release.wait()
        running -= 1

    for name in "abcdef":
        ex.add(name, step)
    await ex.run()
    assert most == 2


async def test_a_failing_step_stops_the_run_and_cancels_the_rest() -> None:
    cancelled = asyncio.Event()
    ex = LocalExecutor()

    async def slow(inputs: dict[str, Any]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def broken(inputs: dict[str, Any]) -> None:
        raise RuntimeError("disk full")

    async def never(inputs: dict[str, Any]) -> None:
        raise AssertionError("a step after a failed one ran")

    ex.add("slow", slow)
    ex.add("broken", broken)
    ex.add("after", never, needs=["broken"])
    with pytest.raises(StepFailed, match="step 'broken' failed: RuntimeError: disk full"):
        await ex.run()
    assert cancelled.is_set()


async def test_a_cycle_is_rejected_before_any_step_runs() -> None:
    ran = []
    ex = LocalExecutor("cyclic")

    async def step(inputs: dict[str, Any]) -> None:
        ran.append(1)

    ex.add("free", step)
    ex.add("a", step, needs=["b"])
    ex.add("b", step, needs=["a"])
    with pytest.raises(WorkflowCycleError, match="'cyclic' has a cycle"):
        await ex.run()
    assert ran == []
