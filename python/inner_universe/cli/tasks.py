"""``tasks submit``, ``tasks list`` and ``tasks watch``: delegation from a shell.

A task is for a capability (``summarise``: any agent offering it may take it) or
one agent (``@researcher``); its payload is JSON here and msgpack in the module.
``watch`` prints each task's status changes as they commit, workflow steps included;
``list`` and ``watch`` show your tasks and the unfinished ones of others, not every
task (what a task board holds: :func:`.board.task_queries`);
``workflow`` shows one workflow's DAG and follows it to its end. ``forget`` and
``prune`` delete finished tasks and workflows you submitted (their quota comes back).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ..app import Universe
from ..features.delegation.board import task_queries
from ..features.delegation.retention import FORGET_BATCH, forget_each
from ..features.delegation.tasks import FINISHED, unpack
from ..features.workflow import StepProgress, WorkflowRun
from .actions import run_sql
from .render import jsonable, short, value_text
from .shell import Count, err, fail, friendly_errors, out, run_action
from .watching import Change, watch_rows

__all__ = ["app"]

app = typer.Typer(help="Submit tasks to agents, list them, watch their status change.")


def addressee(row: Any) -> str:
    """Who may take a task: its capability, or ``@agent N``."""
    return row.capability or f"@agent {row.agent_id}"


def _task_json(row: Any) -> dict[str, Any]:
    """A task with its payload and result decoded (msgpack to JSON-ready values)."""
    record: dict[str, Any] = jsonable(row)
    record["payload"] = jsonable(unpack(row.payload))
    record["result"] = jsonable(unpack(row.result))
    return record


async def submit_payload(universe: Universe, to: str, payload: Any) -> int:
    return await universe.tasks.submit(to, payload)


@app.command("submit")
@friendly_errors
def submit(
    capability: Annotated[str, typer.Argument(help="A capability, or @name for one agent.")],
    payload_json: Annotated[str, typer.Argument(help="The payload as JSON, e.g. '{\"x\": 1}'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Submit a task; prints its id (a worker offering CAPABILITY takes it)."""
    try:
        payload = json.loads(payload_json)
    except json.JSONDecodeError as exc:
        raise fail(f"the payload is not JSON: {exc}") from None
    task_id = run_action(submit_payload, capability, payload)
    out.print(json.dumps({"task": task_id}) if as_json else f"submitted task {task_id}")


async def task_rows(universe: Universe) -> list[Any]:
    """Your tasks (finished too) and the unfinished ones of others, as a board holds them:
    not every task, which may be more than one server message holds."""
    rows = []
    for query in task_queries(universe.identity):
        rows += (await run_sql(universe, query)).get("task", [])
    return sorted(rows, key=lambda row: row.id)


def task_table(rows: list[Any]) -> Table:
    table = Table(title=f"task: {len(rows)} rows", title_justify="left")
    for column in ("id", "for", "kind", "status", "attempts", "step", "submitter", "updated"):
        table.add_column(column, overflow="fold")
    table.add_column("error", overflow="fold")
    for row in rows:
        table.add_row(
            *(
                Text(text)
                for text in (
                    str(row.id),
                    addressee(row),
                    row.kind,
                    row.status,
                    f"{row.attempts}/{row.max_attempts}",
                    str(row.step_id or ""),
                    short(row.submitter),
                    value_text(row.updated_at),
                    row.error,
                )
            )
        )
    return table


@app.command("list")
@friendly_errors
def list_tasks(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per task.")] = False,
) -> None:
    """Your tasks and others' unfinished ones, oldest first, with their status."""
    rows = run_action(task_rows)
    if as_json:
        for row in rows:
            out.print(json.dumps(_task_json(row)))
    else:
        out.print(task_table(rows))


def is_status_change(change: Change) -> bool:
    """A new task, a removed one, or one whose status changed (not a heartbeat)."""
    return change.kind != "update" or change.old.status != change.row.status


def status_line(change: Change, since: float) -> str:
    """``[  0.12s] c200d493.claim_task   task #3 summarise: queued -> claimed (attempt 1)``."""
    row = change.row
    if change.kind == "insert":
        what = row.status
    elif change.kind == "delete" and row.status in FINISHED:
        what = "removed"  # forgotten by its submitter
    elif change.kind == "delete":  # another identity's task left the watch: it finished
        what = f"{row.status} -> finished; not yours, so no longer watched"
    else:
        what = f"{change.old.status} -> {row.status}"
    detail = f" (attempt {row.attempts})" if row.attempts else ""
    if row.error and change.kind == "update":
        detail += f" {value_text(row.error)}"
    step = f" step {row.step_id}" if row.step_id else ""
    return (
        f"  [{change.at - since:6.2f}s] {change.by:28} "
        f"task #{row.id}{step} {addressee(row)}: {what}{detail}"
    )


@app.command("watch")
@friendly_errors
def watch(
    count: Count = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per change.")] = False,
) -> None:
    """Print the status changes of your tasks and others' unfinished ones live (Ctrl-C stops)."""
    started = time.monotonic()

    def show(change: Change) -> None:
        if as_json:
            record = change.to_json(started)
            record["row"] = _task_json(change.row)
            out.print(json.dumps(record))
        else:
            out.print(status_line(change, started))

    def ready(query: str, rows: int) -> None:  # on stderr, so also with --json
        err.print(f"watching tasks ({rows} now); Ctrl-C stops", style="dim")

    with contextlib.suppress(KeyboardInterrupt):
        run_action(watch_tasks, show, count, ready)


async def watch_tasks(
    universe: Universe,
    show: Callable[[Change], object],
    count: int | None,
    ready: Callable[[str, int], object],
) -> None:
    """Watch the tasks a task board holds (:func:`task_queries`): yours, and others'
    while unfinished (one of those finishing is its last change here)."""
    queries = task_queries(universe.identity)
    await watch_rows(universe, "task", queries, show, count, ready, is_status_change)


def _dag_lines(run: WorkflowRun) -> list[str]:
    """A workflow and its steps now: status, task, and the steps each one needs."""
    row = run.row
    steps = sorted(run.board.conn.db.workflow_step.filter("workflow_id", run.id), key=_position)
    names = {step.position: step.name for step in steps}
    width = max((len(step.name) for step in steps), default=4)
    lines = [f"workflow {run.id} {row.name!r}: {row.status}, {row.open_steps} open steps"]
    for step, progress in zip(steps, run.progress(), strict=True):
        task = f"task #{step.task_id} {progress.task_status}" if step.task_id else "no task yet"
        needs = f"  needs {', '.join(names[n] for n in step.needs)}" if step.needs else ""
        error = f"  {value_text(step.error)}" if step.error else ""
        lines.append(f"  {step.name:{width}}  {step.status:9}  {task}{needs}{error}")
    return lines


def _position(step: Any) -> int:
    return int(step.position)


async def _follow_workflow(
    universe: Universe, workflow_id: int, follow: bool, as_json: bool
) -> None:
    run = await universe.tasks.workflow(workflow_id)
    if run.row is None:
        raise fail(f"no workflow with id {workflow_id} (or not one you may see)")
    if as_json:
        out.print(json.dumps({"workflow": jsonable(run.row), "steps": jsonable(run.progress())}))
    else:
        for line in _dag_lines(run):
            out.print(line)
    if not follow:
        return
    started = time.monotonic()
    last = {step.name: step for step in run.progress()}

    def on_progress(steps: list[StepProgress]) -> None:
        for step in steps:
            before = last.get(step.name)
            if before == step:
                continue
            last[step.name] = step
            if as_json:
                record = {"t": round(time.monotonic() - started, 3), "step": jsonable(step)}
                out.print(json.dumps(record))
            else:
                was = f"{before.status}/{before.task_status or '-'}" if before else "new"
                now = f"{step.status}/{step.task_status or '-'}"
                out.print(f"  [{time.monotonic() - started:6.2f}s] {step.name}: {was} -> {now}")

    stop = run.watch(on_progress)
    try:
        results = await run.wait()
    finally:
        stop()
    if as_json:
        out.print(json.dumps({"results": jsonable(results)}))
    else:
        out.print(f"workflow {workflow_id} succeeded: {json.dumps(jsonable(results))}")


@app.command("workflow")
@friendly_errors
def workflow(
    workflow_id: Annotated[int, typer.Argument(help="The workflow's id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Print step changes until it ends.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON objects, one per line.")] = False,
) -> None:
    """A workflow's DAG: each step's status, task and needs; --follow until it ends."""
    with contextlib.suppress(KeyboardInterrupt):
        run_action(_follow_workflow, workflow_id, follow, as_json)


async def _forget(universe: Universe, ids: list[int], workflows: bool) -> int:
    return await forget_each(universe.tasks.conn, ids, workflows=workflows)


@app.command("forget")
@friendly_errors
def forget(
    ids: Annotated[list[int], typer.Argument(help="Ids of finished tasks you submitted.")],
    workflows: Annotated[
        bool, typer.Option("--workflow", help="The ids are workflows (forgotten with their steps).")
    ] = False,
) -> None:
    """Delete finished tasks (or workflows) you submitted: all, or none if one may not go."""
    count = run_action(_forget, ids, workflows)
    out.print(f"forgot {count} {'workflow' if workflows else 'task'}{'' if count == 1 else 's'}")


async def _prune(universe: Universe, batch: int) -> int:
    def progress(done: int, total: int) -> None:  # on stderr, so stdout stays one line
        err.print(f"forgot {done}/{total}", style="dim")

    return await universe.tasks.forget_finished(batch=batch, progress=progress)


@app.command("prune")
@friendly_errors
def prune(
    finished: Annotated[
        bool, typer.Option("--finished", help="Forget every finished task and workflow of yours.")
    ] = False,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Forget calls sent at once.")
    ] = FORGET_BATCH,
) -> None:
    """Forget what you submitted that has finished, a batch of calls at a time."""
    if not finished:
        raise fail("say what to prune: --finished (every finished task and workflow of yours)")
    count = run_action(_prune, batch)
    out.print(f"forgot {count} finished tasks and workflows")
