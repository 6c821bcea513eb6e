"""An agent's state transitions, recorded in the TemporalStore.

Each agent's history is an event-sourced aggregate in its own store
(``agent-<id>``) of :mod:`inner_universe.nerv.store`: every transition (idle,
running task 7, idle, stopped) is one event, so the agent's state at any past
version can be read back, by this process or any other the worker shared it
with, with ``AgentHistory.open(...).at(version)``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event

from ...nerv.store import Factory, StoreReplica
from ...spacetime.types import Identity

__all__ = ["AgentHistory", "AgentState", "Transition"]


class AgentState(Aggregate):
    """What an agent was doing: its status and the task it ran (0 for none)."""

    @staticmethod
    def create_id(agent_id: int) -> UUID:
        return uuid5(NAMESPACE_URL, f"inner-universe/agent/{agent_id}")

    @event("Registered")
    def __init__(self, agent_id: int, name: str) -> None:
        self.agent_id = agent_id
        self.name = name
        self.status = "idle"
        self.task_id = 0
        self.note = ""

    @event("Transitioned")
    def transition(self, status: str, task_id: int, note: str) -> None:
        self.status = status
        self.task_id = task_id
        self.note = note


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded state, with the version that holds it."""

    version: int
    status: str
    task_id: int
    note: str


class _Histories(Application[UUID]):
    """The eventsourcing application that stores agent states."""


class AgentHistory:
    """One agent's recorded states; :meth:`record` is blocking, :meth:`record_soon` is not."""

    def __init__(
        self, uri: str, database: str, agent_id: int, name: str, token: str | None = None
    ) -> None:
        env = {
            "PERSISTENCE_MODULE": "inner_universe.nerv.store",
            "SPACETIMEDB_URI": uri,
            "SPACETIMEDB_DATABASE": database,
            "SPACETIMEDB_STORE": f"agent-{agent_id}",
        }
        if token is not None:
            env["SPACETIMEDB_TOKEN"] = token
        self.agent_id = agent_id
        self.id = AgentState.create_id(agent_id)
        self._app = _Histories(env=env)
        self._name = name
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[int]] = set()

    @classmethod
    def open(cls, uri: str, database: str, agent_id: int, token: str | None = None) -> AgentHistory:
        """Read an agent's history from any process, as an identity it was shared with.

        A store's contents are visible to its members only: the agent's worker owns
        the store and admits readers (:meth:`share_with`, or ``Worker(history_readers=...)``).
        """
        return cls(uri, database, agent_id, name="", token=token)

    def _replica(self) -> StoreReplica:
        factory = self._app.factory
        assert isinstance(factory, Factory)
        return factory.replica

    @property
    def identity(self) -> Identity | None:
        """The identity this history reads and writes as."""
        return self._replica().connection.identity

    def share_with(self, identity: Identity) -> None:
        """Let ``identity`` read this history (the agent's worker, the store's owner, only)."""
        self._replica().set_member(identity, writer=False)

    def _current(self) -> AgentState:
        try:
            state: AgentState = self._app.repository.get(self.id)
        except AggregateNotFoundError:
            state = AgentState(self.agent_id, self._name)
        return state

    def record(self, status: str, task_id: int = 0, note: str = "") -> int:
        """Append a transition (the first call also records the registration); its version."""
        state = self._current()
        state.transition(status, task_id, note)
        self._app.save(state)
        return int(state.version)

    async def record_async(self, status: str, task_id: int = 0, note: str = "") -> int:
        """:meth:`record` from asyncio code; transitions keep the order they were asked in."""
        async with self._lock:
            return await asyncio.to_thread(self.record, status, task_id, note)

    def record_soon(self, status: str, task_id: int = 0, note: str = "") -> None:
        """:meth:`record_async` without waiting for it (see :meth:`flush`)."""
        task = asyncio.create_task(self.record_async(status, task_id, note))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait until every :meth:`record_soon` is stored."""
        while self._pending:
            await asyncio.gather(*list(self._pending))

    def at(self, version: int) -> AgentState:
        """The agent's state as of ``version`` (1 is its registration)."""
        state: AgentState = self._app.repository.get(self.id, version=version)
        return state

    def transitions(self) -> list[Transition]:
        """Every recorded state, oldest first (version 1 is the registration)."""
        return [
            Transition(
                int(e.originator_version),
                getattr(e, "status", "idle"),
                getattr(e, "task_id", 0),
                getattr(e, "note", "registered"),
            )
            for e in self._app.repository.event_store.get(self.id)
        ]

    def close(self) -> None:
        self._app.close()
