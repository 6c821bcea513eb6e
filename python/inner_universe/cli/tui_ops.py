"""The terminal UI's delegation and provider panes: tasks and workflows, provider health and spend.

Both are one table each, fed only by subscribed row changes like every other
pane (see :mod:`inner_universe.cli.tui_pane`); they sit side by side in the row under
the conversation.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from rich.console import RenderableType
from rich.text import Text

from ..features.delegation.board import (
    own_workflow_queries,
    running_workflow_queries,
    task_queries,
)
from ..spacetime.types import Identity
from .render import short
from .tasks import addressee
from .tui_pane import TablePane
from .watching import Change

__all__ = ["ProvidersPane", "TasksPane"]

STATUS_STYLES = {
    "queued": "yellow",
    "claimed": "cyan",
    "running": "cyan",
    "retrying": "magenta",
    "succeeded": "green",
    "done": "green",
    "failed": "red",
    "dead": "red",
    "cancelled": "dim",
}
"""How a task, workflow, step or model call status is coloured."""

STEP_MARKS = {"succeeded": "✓", "running": "▸", "failed": "✗", "cancelled": "-", "dead": "✗"}
"""A workflow step's status as one mark after its name (waiting and ready: ·)."""


def status_text(text: str, status: str | None = None) -> Text:
    """``text`` coloured by ``status`` (by default the text itself is the status)."""
    return Text(text, style=STATUS_STYLES.get(status or text, ""))


def dollars(nano_usd: int) -> str:
    return f"${nano_usd / 1e9:.4f}"


class TasksPane(TablePane):
    """Tasks (who may take each, status, tries, epoch, holder) and workflows with their steps.

    Not whole tables (finished work piles up): this identity's tasks and workflows,
    finished too, and the unfinished ones of others, each of which leaves the pane
    when it finishes (see :meth:`queries`).
    """

    TABLES = ("task", "workflow", "workflow_step")
    LOWER = True
    TITLE = "tasks and workflows"
    COLUMNS = ("id", "for", "status", "tries", "epoch", "held by")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workflows: dict[int, Any] = {}
        self.steps: dict[int, dict[int, Any]] = {}
        """Each workflow's steps by step id (a workflow row shows them all)."""

    def queries(self, me: Identity) -> tuple[str, ...]:
        """The rows a task board holds of tasks and workflows, but others' running
        workflows in place of their ready steps (a step is shown in its workflow's row)."""
        return (*task_queries(me), *own_workflow_queries(me), *running_workflow_queries(me))

    def reset(self) -> None:
        super().reset()
        self.workflows.clear()
        self.steps.clear()

    def apply(self, change: Change) -> None:
        if change.table != "workflow_step":
            if change.table == "workflow":
                if change.kind == "delete":
                    self.workflows.pop(change.row.id, None)
                else:
                    self.workflows[change.row.id] = change.row
            super().apply(change)
            return
        step = change.row
        steps = self.steps.setdefault(step.workflow_id, {})
        if change.kind == "delete":
            steps.pop(step.id, None)
        else:
            steps[step.id] = step
        workflow = self.workflows.get(step.workflow_id)
        if workflow is not None:
            self.show(self.row_key("workflow", workflow), self.row_cells("workflow", workflow))

    def row_key(self, table: str, row: Any) -> str:
        return f"{table}:{row.id}"

    def row_cells(self, table: str, row: Any) -> tuple[RenderableType, ...]:
        if table == "workflow":
            return self._workflow_cells(row)
        holder = f"agent {row.claimed_by}" if row.claimed_by else ""
        for_whom = addressee(row)
        return (
            Text(f"#{row.id}"),
            Text(for_whom if row.kind == "task" else f"{for_whom} ({row.kind})"),
            status_text(row.status),
            Text(f"{row.attempts}/{row.max_attempts}"),
            Text(str(row.epoch)),
            Text(holder),
        )

    def _workflow_cells(self, row: Any) -> tuple[RenderableType, ...]:
        steps = sorted(self.steps.get(row.id, {}).values(), key=lambda s: s.position)
        done = sum(step.status == "succeeded" for step in steps)
        marks = Text()
        for step in steps:
            marks.append(
                f"{step.name}{STEP_MARKS.get(step.status, '·')} ",
                STATUS_STYLES.get(step.status, ""),
            )
        return (
            Text(f"wf{row.id}"),
            Text(row.name),
            status_text(row.status),
            Text(f"{done}/{len(steps)}"),
            Text(""),
            marks,
        )


class ProvidersPane(TablePane):
    """Provider health (a row per reporting identity and provider), each budget holder's
    spend, and the latest model calls.

    Provider rows are public, one per identity that called the provider (another
    identity's row names its reporter); spend and model calls are each identity's own
    (the module shows this UI only its identity's).
    """

    TABLES = ("provider", "spend", "model_call")
    LOWER = True
    TITLE = "providers and spend"
    COLUMNS = ("what", "health", "calls", "spent", "tokens")
    LATEST_CALLS: ClassVar[int] = 5
    """Ledger rows kept on screen (the newest)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[int] = []
        """The model call ids on screen, oldest first."""

    def reset(self) -> None:
        super().reset()
        self.calls.clear()

    def apply(self, change: Change) -> None:
        if change.table == "model_call" and change.kind == "delete":
            if change.row.id in self.calls:
                self.calls.remove(change.row.id)
        elif change.table == "model_call":
            call_id = change.row.id
            if call_id not in self.calls:
                if self.calls and call_id < self.calls[0] and len(self.calls) >= self.LATEST_CALLS:
                    return  # older than every call shown
                self.calls = sorted([*self.calls, call_id])
            super().apply(change)
            while len(self.calls) > self.LATEST_CALLS:
                self._remove(f"model_call:{self.calls.pop(0)}")
            return
        super().apply(change)

    def row_key(self, table: str, row: Any) -> str:
        return f"{table}:{row.id}"

    def row_cells(self, table: str, row: Any) -> tuple[RenderableType, ...]:
        if table == "provider":
            return self._provider_cells(row)
        if table == "spend":
            who = f"agent {row.agent_id}" if row.agent_id else short(row.owner)
            budget = row.budget_nano_usd
            return (
                Text(f"{who} spend"),
                Text("no budget" if budget is None else f"of {dollars(budget)}"),
                Text(str(row.calls)),
                Text(dollars(row.spent_nano_usd)),
                Text(""),
            )
        took = f" {row.duration_ms}ms" if row.ended_at is not None else ""
        return (
            Text(f"#{row.id} {row.provider} {row.model}"),
            status_text(f"{row.status}{took}", row.status),
            Text(""),
            Text(dollars(row.cost_nano_usd)),
            Text(f"{row.tokens_in}>{row.tokens_out}"),
        )

    def _provider_cells(self, row: Any) -> tuple[RenderableType, ...]:
        until = row.cooldown_until.to_datetime()
        if until > dt.datetime.now(dt.UTC):
            health = Text(f"cool to {until:%H:%M:%S}", style="yellow")
        elif row.consecutive_failures:
            health = Text(f"{row.consecutive_failures} failing", style="red")
        else:
            health = Text("ok", style="green")
        what = Text(f"{row.name} {row.model}", style="bold")
        if row.owner != self.identity:  # another identity's report on this provider
            what.append(f" by {short(row.owner)}", style="dim")
        return (
            what,
            health,
            Text(f"{row.calls}" + (f" ({row.failures} failed)" if row.failures else "")),
            Text(""),
            Text(""),
        )
