"""A worker: an agent that takes tasks it can do, runs them, and reports with its epoch.

The worker registers (or reuses) its agent with its capabilities and reacts to the
task table's subscription: a task it may take appears (or is queued again), and it
asks the module for one (``claim_task``: the module picks, atomically, so each task
goes to exactly one claimant). The claim reaches it as an update of that task's
row, with the epoch its reports must carry. While the async handler runs, the
worker heartbeats at a third of the lease; when the handler returns it completes
the task, and when it raises, fails it (retried by the module's policy). No polling
anywhere: every step is a reaction to a committed row.

A handler stops (``asyncio.CancelledError``) when its task is cancelled by the
submitter, or when the worker learns it lost the claim (the lease expired and the
task moved on); such a run reports nothing, and a late report would be refused
as a stale epoch anyway.

The board holds only unfinished tasks of other submitters: a task this worker
runs leaves it when it ends without the worker's report (cancelled, say). The
worker then follows that task by id, and its end arrives with the reason. For a
workflow step it follows the whole workflow (the results its step needs). Both
are let go when the run ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ...spacetime.connection import DbConnection, SubscriptionHandle
from ...spacetime.events import EventContext
from ...spacetime.types import Identity
from .board import Following, TaskBoard
from .delegate import delegate
from .errors import StaleEpoch, TaskRefused
from .history import AgentHistory
from .tasks import CANCELLED, CLAIMED, QUEUED, RUNNING, agent_id, pack, unpack

__all__ = ["Handler", "TaskContext", "Worker"]

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000
"""Failure messages are cut to this (the module refuses longer ones)."""


class TaskContext:
    """What a handler gets: the task, its decoded payload, and ways to act from within it."""

    def __init__(self, worker: Worker, row: Any) -> None:
        self.worker = worker
        self.row = row
        self.id: int = row.id
        self.kind: str = row.kind
        self.epoch: int = row.epoch
        self.attempt: int = row.attempts
        self.payload: Any = unpack(row.payload)

    @property
    def board(self) -> TaskBoard:
        return self.worker.board

    @property
    def inputs(self) -> dict[str, Any]:
        """For a workflow step: the results of the steps it needs, by step name."""
        db = self.board.conn.db
        step = db.workflow_step.find("id", self.row.step_id) if self.row.step_id else None
        if step is None:
            return {}
        siblings = {s.position: s for s in db.workflow_step.filter("workflow_id", step.workflow_id)}
        results = {}
        for position in step.needs:
            needed = siblings[position]
            task = self.board.task(needed.task_id)
            results[needed.name] = unpack(task.result) if task is not None else None
        return results

    async def delegate(self, to: str, payload: Any, **options: Any) -> Any:
        """Delegate a sub-task from this one (one hop further down the chain)."""
        return await delegate(self.board.conn, to, payload, parent=self.id, **options)

    async def until(self, condition: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait for a condition on the replicated tables (see :meth:`TaskBoard.until`)."""
        return await self.board.until(condition, timeout)


Handler = Callable[[TaskContext], Awaitable[Any]]


@dataclass(slots=True)
class _Job:
    epoch: int
    runner: asyncio.Task[None] | None = None
    watching: SubscriptionHandle | None = None
    """The task's own row, followed by id once it left the board (it ended elsewhere)."""
    workflow: Following | None = None
    """A step task's workflow, followed while the run lasts."""
    stopped_because: str | None = None
    reporting: bool = False
    """Set once the handler is done: from then on the run is not interrupted."""

    async def let_go(self) -> None:
        """Stop following what the run needed."""
        if self.watching is not None:
            await self.watching.unsubscribe()
        if self.workflow is not None:
            await self.workflow.close()


@dataclass(slots=True)
class WorkerStats:
    """What a worker did, for tests, demos and benchmarks."""

    completed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    stopped: list[tuple[int, str]] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


class Worker:
    """Runs ``handler`` for tasks addressed to ``name`` or to one of its ``capabilities``.

    ``async with Worker(conn, "summariser", ["summarise"], handler) as worker: ...``
    (or ``await worker.start()`` / ``await worker.stop()``). ``concurrency`` tasks
    run at once. With ``history`` (the default), the agent's transitions are
    recorded in the TemporalStore (:class:`AgentHistory`), readable by this
    connection's identity and by ``history_readers``.
    """

    def __init__(
        self,
        conn: DbConnection,
        name: str,
        capabilities: Iterable[str],
        handler: Handler,
        *,
        concurrency: int = 1,
        role: str = "worker",
        history: bool = True,
        history_readers: Iterable[Identity] = (),
        uri: str | None = None,
        database: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.conn = conn
        self.name = name
        self.capabilities = tuple(capabilities)
        self.handler = handler
        self.concurrency = concurrency
        self.role = role
        self.stats = WorkerStats()
        self.agent_id = 0
        self.history: AgentHistory | None = None
        self._want_history = history
        self._history_readers = tuple(history_readers)
        self._where = (uri, database)
        self._board: TaskBoard | None = None
        self._jobs: dict[int, _Job] = {}
        self._runners: set[asyncio.Task[None]] = set()
        """Every run not over yet, including those still letting go of what they followed."""
        self._claimable: set[int] = set()
        self._claiming = 0
        self._stopping = False

    @property
    def board(self) -> TaskBoard:
        if self._board is None:
            raise RuntimeError("the worker is not started")
        return self._board

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> Worker:
        """Register the agent and its capabilities, then take tasks as they come."""
        self._board = board = await TaskBoard.of(self.conn)
        mine = [
            a
            for a in board.conn.db.agent.filter("name", self.name)
            if a.owner == self.conn.identity
        ]
        if not mine:
            await self.conn.call_reducer("register_agent", self.name, self.role, b"")
        self.agent_id = agent_id(board, self.name)
        await board.call("set_agent_capabilities", self.agent_id, list(self.capabilities))
        if self._want_history:
            uri, database = self._where
            if uri is None or database is None:
                raise ValueError("a worker with history needs uri= and database=")
            self.history = await asyncio.to_thread(
                AgentHistory, uri, database, self.agent_id, self.name, self.conn.token
            )
            for reader in self._history_readers:
                await asyncio.to_thread(self.history.share_with, reader)
            self.history.record_soon("idle", note="started")
        self.conn.db.task.on_insert(self._on_insert)
        self.conn.db.task.on_update(self._on_update)
        self.conn.db.task.on_delete(self._on_delete)
        self._claimable = {t.id for t in self.conn.db.task.iter() if self._may_take(t)}
        self._fill()
        return self

    async def stop(self) -> None:
        """Stop claiming; running tasks are stopped and failed for a retry elsewhere."""
        if self._stopping:
            return
        self._stopping = True
        self.conn.db.task.remove_on_insert(self._on_insert)
        self.conn.db.task.remove_on_update(self._on_update)
        self.conn.db.task.remove_on_delete(self._on_delete)
        for job in self._jobs.values():
            self._stop_job(job, "worker stopped")
        await asyncio.gather(*self._runners, return_exceptions=True)
        if self.history is not None:
            self.history.record_soon("stopped")
            await self.history.flush()
            await asyncio.to_thread(self.history.close)

    async def __aenter__(self) -> Worker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- reacting to the task table ------------------------------------------------------------

    def _may_take(self, row: Any) -> bool:
        if row.status != QUEUED:
            return False
        if row.agent_id:
            return bool(row.agent_id == self.agent_id)
        return row.capability in self.capabilities

    def _on_insert(self, _ctx: EventContext, row: Any) -> None:
        job = self._jobs.get(row.id)
        if job is not None:  # a running task that had left the board, back by its id
            self._follow_job(job, row)
        elif self._may_take(row):
            self._claimable.add(row.id)
            self._fill()

    def _on_delete(self, _ctx: EventContext, row: Any) -> None:
        self._claimable.discard(row.id)
        job = self._jobs.get(row.id)
        if job is not None and not job.reporting and job.watching is None:
            # It ended without our report: follow it by id to learn how (an insert).
            job.watching = self.board.follow_task(row.id)

    def _on_update(self, _ctx: EventContext, _old: Any, row: Any) -> None:
        if self._may_take(row):
            self._claimable.add(row.id)
            self._fill()
            return
        self._claimable.discard(row.id)
        job = self._jobs.get(row.id)
        if job is None:
            if row.claimed_by == self.agent_id and row.status == CLAIMED:
                self._begin(row)
        else:
            self._follow_job(job, row)

    def _follow_job(self, job: _Job, row: Any) -> None:
        """Stop a run whose task was cancelled or whose claim is over."""
        if row.status == CANCELLED:
            self._stop_job(job, f"cancelled: {row.error}")
        elif row.epoch != job.epoch or row.status not in (CLAIMED, RUNNING):
            self._stop_job(job, f"lost the claim: the task is {row.status} at epoch {row.epoch}")

    def _fill(self) -> None:
        """Ask for as many tasks as there are free slots and visible claimable tasks."""
        if self._stopping:
            return
        free = self.concurrency - len(self._jobs) - self._claiming
        wanted = min(free, len(self._claimable) - self._claiming)
        for _ in range(max(wanted, 0)):
            self._claiming += 1
            asyncio.get_running_loop().create_task(self._claim())

    async def _claim(self) -> None:
        try:
            await self.board.call("claim_task", self.agent_id)
        except TaskRefused as exc:
            log.warning("worker %s could not claim: %s", self.name, exc.message)
        except Exception:
            if not self._stopping:
                log.exception("worker %s: claim failed", self.name)
            return
        finally:
            self._claiming -= 1
        self._fill()

    # --- running one task ----------------------------------------------------------------------

    def _begin(self, row: Any) -> None:
        job = _Job(row.epoch)
        self._jobs[row.id] = job
        job.runner = asyncio.get_running_loop().create_task(self._run(row, job))
        self._runners.add(job.runner)
        job.runner.add_done_callback(self._runners.discard)

    def _stop_job(self, job: _Job, reason: str) -> None:
        if job.stopped_because is None and not job.reporting and job.runner is not None:
            job.stopped_because = reason
            job.runner.cancel()

    async def _run(self, row: Any, job: _Job) -> None:
        """Run the handler under heartbeats, then report; reports carry the claim's epoch."""
        board = self.board
        try:
            if row.step_id:
                job.workflow = await self._follow_workflow_of(row)
            if self.history is not None:  # recorded before the task shows as running
                await self.history.record_async("running", row.id, row.kind)
            await board.call("heartbeat_task", row.id, row.epoch)  # now running
            beat = asyncio.get_running_loop().create_task(self._heartbeat(row))
            try:
                result = await self.handler(TaskContext(self, row))
            except Exception as exc:  # the handler's failure, to report (not ours)
                job.reporting = True
                self.stats.failed.append(row.id)
                await self._report_failure(row, f"{type(exc).__name__}: {exc}")
                return
            finally:
                beat.cancel()
            job.reporting = True
            await board.call("complete_task", row.id, row.epoch, pack(result))
            self.stats.completed.append(row.id)
        except asyncio.CancelledError:
            reason = job.stopped_because or "cancelled"
            self.stats.stopped.append((row.id, reason))
            if reason == "worker stopped":
                job.reporting = True
                await self._report_failure(row, "the worker stopped before finishing")
        except TaskRefused as exc:  # a report of ours refused: the claim is over
            self.stats.refused.append((row.id, exc.message))
            log.warning("worker %s: task %s: %s", self.name, row.id, exc.message)
        finally:
            self._jobs.pop(row.id, None)
            if self.history is not None:
                self.history.record_soon("idle", row.id, "done")
            self._fill()
            await job.let_go()

    async def _follow_workflow_of(self, row: Any) -> Following | None:
        """Follow the workflow a step task belongs to (its step is ready, so on the board)."""
        step = self.conn.db.workflow_step.find("id", row.step_id)
        if step is None:
            return None
        return await self.board.follow_workflow(step.workflow_id)

    async def _report_failure(self, row: Any, error: str) -> None:
        try:
            await self.board.call("fail_task", row.id, row.epoch, error[:MAX_ERROR_CHARS], True)
        except TaskRefused as exc:
            self.stats.refused.append((row.id, exc.message))

    async def _heartbeat(self, row: Any) -> None:
        """Extend the lease at a third of its length until the handler ends."""
        interval = row.lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.board.call("heartbeat_task", row.id, row.epoch)
            except StaleEpoch:
                job = self._jobs.get(row.id)
                if job is not None:
                    self._stop_job(job, "lost the claim: its lease expired")
                return
            except Exception:
                # The connection is gone: the lease will expire and another worker retry.
                log.exception("worker %s: heartbeat for task %s failed", self.name, row.id)
                return
