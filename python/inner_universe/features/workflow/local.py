"""The local executor: in-process steps in dependency order, with bounded parallelism.

Built on the standard library (``graphlib.TopologicalSorter`` and asyncio): a step
starts as soon as every step it needs has finished, at most ``max_parallel`` at a
time, and gets the results of the steps it needs. The first step that raises stops
the run (the others still running are cancelled) with :class:`StepFailed`.
"""

from __future__ import annotations

import asyncio
import graphlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .dag import topological_order
from .errors import StepFailed, WorkflowError

__all__ = ["LocalExecutor", "StepFunction"]

StepFunction = Callable[[dict[str, Any]], Awaitable[Any]]
"""``async def step(inputs)``: ``inputs`` maps each needed step's name to its result."""


class LocalExecutor:
    """``ex = LocalExecutor(); ex.add("b", fn, needs=["a"]); results = await ex.run()``."""

    def __init__(self, name: str = "local", *, max_parallel: int = 4) -> None:
        if max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1, not {max_parallel}")
        self.name = name
        self.max_parallel = max_parallel
        self._steps: dict[str, tuple[StepFunction, tuple[str, ...]]] = {}

    def add(self, name: str, function: StepFunction, needs: Iterable[str] = ()) -> str:
        """Add a step; returns its name, to use in other steps' ``needs``."""
        if name in self._steps:
            raise WorkflowError(f"{self.name!r} already has a step {name!r}")
        self._steps[name] = (function, tuple(needs))
        return name

    async def run(self) -> dict[str, Any]:
        """Run every step; returns their results by name."""
        graph = {name: needs for name, (_, needs) in self._steps.items()}
        topological_order(self.name, graph)  # unknown steps and cycles fail here, named
        sorter = graphlib.TopologicalSorter(graph)
        sorter.prepare()
        results: dict[str, Any] = {}
        running: dict[asyncio.Task[Any], str] = {}
        waiting: list[str] = []
        try:
            while sorter.is_active():
                waiting.extend(sorter.get_ready())
                while waiting and len(running) < self.max_parallel:
                    name = waiting.pop(0)
                    function, needs = self._steps[name]
                    inputs = {need: results[need] for need in needs}
                    running[asyncio.ensure_future(function(inputs))] = name
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    name = running.pop(finished)
                    if finished.exception() is not None:
                        error = finished.exception()
                        assert error is not None
                        raise StepFailed(name, error) from error
                    results[name] = finished.result()
                    sorter.done(name)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        return results
