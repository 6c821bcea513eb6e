"""Declaring a DAG of steps, and ordering it (stdlib graphlib), cycles named.

Both the stored workflows (:mod:`.remote`) and the local executor (:mod:`.local`)
check their graph here before anything runs or is stored.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import WorkflowCycleError, WorkflowError

__all__ = ["Step", "Workflow", "topological_order"]


def topological_order(workflow: str, needs: Mapping[str, Iterable[str]]) -> list[str]:
    """The step names, each after the steps it needs; raises naming a cycle or unknown step."""
    for name, required in needs.items():
        for dependency in required:
            if dependency not in needs:
                raise WorkflowError(
                    f"workflow {workflow!r}: step {name!r} needs {dependency!r}, "
                    "which is not a step of it"
                )
    sorter = graphlib.TopologicalSorter({name: list(req) for name, req in needs.items()})
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        # graphlib names the cycle as [a, b, ..., a] in reverse dependency order.
        raise WorkflowCycleError(workflow, list(reversed(exc.args[1]))) from None


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a stored workflow: a task for ``to`` (a capability or ``@agent``)."""

    name: str
    to: str
    payload: Any = None
    needs: tuple[str, ...] = ()
    kind: str = ""
    max_attempts: int = 3
    lease: float = 30.0
    backoff: float = 1.0


@dataclass
class Workflow:
    """A workflow declared in Python: ``wf.step("b", "compute", needs=["a"])``."""

    name: str
    steps: dict[str, Step] = field(default_factory=dict)

    def step(
        self,
        name: str,
        to: str,
        payload: Any = None,
        *,
        needs: Iterable[str] = (),
        kind: str | None = None,
        max_attempts: int = 3,
        lease: float = 30.0,
        backoff: float = 1.0,
    ) -> str:
        """Add a step; returns its name, to use in other steps' ``needs``."""
        if name in self.steps:
            raise WorkflowError(f"workflow {self.name!r} already has a step {name!r}")
        self.steps[name] = Step(
            name, to, payload, tuple(needs), kind or name, max_attempts, lease, backoff
        )
        return name

    def ordered(self) -> list[Step]:
        """The steps in an order the module accepts; raises on a cycle, naming it."""
        if not self.steps:
            raise WorkflowError(f"workflow {self.name!r} has no steps")
        order = topological_order(self.name, {s.name: s.needs for s in self.steps.values()})
        return [self.steps[name] for name in order]
