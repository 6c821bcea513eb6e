"""Tasks as the module stores them: statuses, the spec a submitter sends, targets.

A target is a capability (``"summarise"``: any agent offering it may take the
task) or one agent by name with an ``@`` (``"@researcher"``). Payloads and
results are any msgpack-serialisable value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgpack

from ...universe.bindings import TaskSpec
from .errors import TaskRefused

if TYPE_CHECKING:
    from .board import TaskBoard

__all__ = [
    "CANCELLED",
    "CLAIMED",
    "DEAD",
    "FAILED",
    "FINISHED",
    "QUEUED",
    "RETRYING",
    "RUNNING",
    "SUCCEEDED",
    "UNFINISHED",
    "TaskSpec",
    "agent_id",
    "pack",
    "target",
    "task_spec",
    "unpack",
]

QUEUED = "queued"
CLAIMED = "claimed"
RUNNING = "running"
RETRYING = "retrying"
"""Waiting out its backoff after a failed attempt or an expired lease."""
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
DEAD = "dead"
"""Its last attempt's lease expired."""
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED, DEAD})
UNFINISHED = (QUEUED, CLAIMED, RUNNING, RETRYING)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False) if data else None


def agent_id(board: TaskBoard, agent: str | int | None) -> int:
    """An agent's id from its name (or the id itself); 0 for None."""
    if agent is None:
        return 0
    if isinstance(agent, int):
        return agent
    try:
        row = board.agent(agent)
    except LookupError as exc:
        raise TaskRefused("submit_task", str(exc)) from None
    if row is None:
        raise TaskRefused("submit_task", f"no agent named {agent!r}")
    return int(row.id)


def target(board: TaskBoard, to: str) -> tuple[str, int]:
    """``to`` as (capability, agent id): ``("summarise", 0)``, or ``("", id)`` for ``@name``."""
    if to.startswith("@"):
        return "", agent_id(board, to[1:])
    return to, 0


def task_spec(
    board: TaskBoard,
    to: str,
    payload: Any,
    *,
    kind: str = "task",
    max_attempts: int = 3,
    lease: float = 30.0,
    backoff: float = 1.0,
    max_hops: int = 0,
) -> TaskSpec:
    """A spec for ``to`` (a capability, or ``@name`` for one agent); times in seconds."""
    capability, target_agent = target(board, to)
    return TaskSpec(
        kind=kind,
        payload=pack(payload),
        capability=capability,
        agent_id=target_agent,
        max_attempts=max_attempts,
        lease_ms=round(lease * 1000),
        backoff_ms=round(backoff * 1000),
        max_hops=max_hops,
    )
