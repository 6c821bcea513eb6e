"""What workflows raise."""

from __future__ import annotations

from collections.abc import Sequence

from ..delegation.errors import DelegationError

__all__ = ["StepFailed", "WorkflowCycleError", "WorkflowError", "WorkflowFailed"]


class WorkflowError(DelegationError):
    """A workflow could not be declared, stored or run."""


class WorkflowCycleError(WorkflowError):
    """The steps' dependencies form a cycle; ``cycle`` names it (first name repeated last)."""

    def __init__(self, workflow: str, cycle: Sequence[str]) -> None:
        super().__init__(f"workflow {workflow!r} has a cycle: {' -> '.join(cycle)}")
        self.cycle = list(cycle)


class WorkflowFailed(WorkflowError):
    """A stored workflow ended failed or cancelled; ``error`` is the first failure's reason."""

    def __init__(self, workflow_id: int, status: str, error: str, steps: dict[str, str]) -> None:
        super().__init__(f"workflow {workflow_id} {status}: {error}")
        self.workflow_id = workflow_id
        self.status = status
        self.error = error
        self.steps = steps


class StepFailed(WorkflowError):
    """A local step raised; the run stopped and ``__cause__`` is what it raised."""

    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(f"step {step!r} failed: {type(error).__name__}: {error}")
        self.step = step
