"""What delegation raises: refusals by the module, and tasks that did not succeed.

    InnerUniverseError
    └── DelegationError
        ├── TaskRefused            the module refused a task operation; nothing changed
        │   ├── StaleEpoch           a report from a worker whose claim is over (fencing)
        │   ├── DelegationNotAllowed the delegating agent's rules do not name the target
        │   └── HopLimitExceeded     the delegation chain is too long (a loop, usually)
        └── TaskFailed             the task ended failed, dead or cancelled
            └── TaskCancelled

``TaskRefused`` is also a :class:`~inner_universe.errors.ReducerError`, so code that
catches reducer failures in general still catches it.
"""

from __future__ import annotations

from ...errors import InnerUniverseError, ReducerError

__all__ = [
    "DelegationError",
    "DelegationNotAllowed",
    "HopLimitExceeded",
    "StaleEpoch",
    "TaskCancelled",
    "TaskFailed",
    "TaskRefused",
    "refusal",
]


class DelegationError(InnerUniverseError):
    """Base of the delegation and workflow errors."""


class TaskRefused(DelegationError, ReducerError):
    """The module refused the call (bad input, not the caller's task, ...); ``message`` says why."""


class StaleEpoch(TaskRefused):
    """The claim this report belongs to is over: the lease expired or another worker holds it."""


class DelegationNotAllowed(TaskRefused):
    """The delegating agent has rules, and none of them names this target."""


class HopLimitExceeded(TaskRefused):
    """The task would be more hops from its root than the chain allows; the message names it."""


class TaskFailed(DelegationError):
    """The task ended without a result: ``status`` is failed, dead or cancelled."""

    def __init__(self, task_id: int, status: str, error: str) -> None:
        super().__init__(f"task {task_id} {status}: {error}")
        self.task_id = task_id
        self.status = status
        self.error = error


class TaskCancelled(TaskFailed):
    """The task was cancelled by its submitter (or its workflow)."""


# The module starts these errors with a fixed phrase (server-module/src/tasks.rs).
_PREFIXES: tuple[tuple[str, type[TaskRefused]], ...] = (
    ("stale epoch: ", StaleEpoch),
    ("delegation not allowed: ", DelegationNotAllowed),
    ("hop limit: ", HopLimitExceeded),
)


def refusal(error: ReducerError) -> TaskRefused:
    """The typed form of a reducer failure from one of the delegation reducers."""
    for prefix, kind in _PREFIXES:
        if error.message.startswith(prefix):
            return kind(error.reducer, error.message)
    return TaskRefused(error.reducer, error.message)
