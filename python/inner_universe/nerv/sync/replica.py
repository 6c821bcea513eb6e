"""The remote side: a diffsync adapter over a connection's live replica.

It reads the connection's cache (subscribe to :data:`SYNC_QUERIES` first) and
writes only through the module's reducers, so the server validates every change
and enforces ownership. A reducer's refusal is recorded per row in
:attr:`ReplicaAdapter.failures` and the sync goes on with the other rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, Self, cast

from diffsync import Adapter, DiffSyncModel

from ...errors import InnerUniverseError
from ...spacetime.events import ReducerEvent
from ...spacetime.types import Identity
from .models import (
    TABLES,
    AgentModel,
    ConversationModel,
    Dataset,
    DocumentModel,
    MessageModel,
    Row,
    SyncAdapter,
    empty_dataset,
    is_server_key,
    label,
)

__all__ = ["SYNC_QUERIES", "PushError", "Replica", "ReplicaAdapter", "RowError", "replica_rows"]

SYNC_QUERIES = (*(f"SELECT * FROM {table}" for table in TABLES), "SELECT * FROM agent_state")
"""The subscription a replica needs for the synchronizer to see every synced row.

Agents' state is in ``agent_state``, which the module shows to each agent's owner
only: other identities' agents read as having an empty state.
"""


class Replica(Protocol):
    """What the adapter needs of a connection (a ``ThreadedConnection`` has it)."""

    @property
    def identity(self) -> Identity | None: ...

    @property
    def db(self) -> Any: ...

    def call_reducer(self, reducer: str, *args: Any, **kwargs: Any) -> ReducerEvent: ...

    def subscribe(self, *queries: str) -> Any: ...


class PushError(InnerUniverseError):
    """A local change the module has no reducer for (e.g. moving a message)."""


@dataclass(frozen=True)
class RowError:
    """A change to one row that the server refused (or that no reducer can make), and why."""

    table: str
    key: str
    action: str
    message: str
    label: str = ""

    def __str__(self) -> str:
        return (
            f"x {self.label or self.table + ' ' + self.key}: {self.action} refused: {self.message}"
        )

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _hex(identity: Identity | None) -> str | None:
    return None if identity is None else identity.to_hex()


def replica_rows(conn: Replica) -> Dataset:
    """The replica's rows of the synced tables, keyed by id, as plain rows."""
    db = conn.db
    out = empty_dataset()
    # Children before parents: a conversation deleted while we read leaves orphan
    # messages (dropped by the merge; deleting them again is a no-op), never a
    # message whose conversation we missed (which the merge would delete).
    for m in db.message.iter():
        out["message"][str(m.id)] = {
            "key": str(m.id), "id": m.id, "conversation": str(m.conversation_id),
            "author": _hex(m.author), "role": m.role, "content": m.content,
            "sequence": m.sequence, "updated_at": m.updated_at.micros_since_epoch,
        }  # fmt: skip
    for c in db.conversation.iter():
        out["conversation"][str(c.id)] = {
            "key": str(c.id), "id": c.id, "owner": _hex(c.owner), "title": c.title,
            "updated_at": c.updated_at.micros_since_epoch,
        }  # fmt: skip
    for d in db.document.iter():
        out["document"][str(d.id)] = {
            "key": str(d.id), "id": d.id, "owner": _hex(d.owner), "title": d.title,
            "content": d.content, "metadata": bytes(d.metadata),
            "updated_at": d.updated_at.micros_since_epoch,
        }  # fmt: skip
    states = {s.agent_id: bytes(s.state) for s in db.agent_state.iter()}
    for a in db.agent.iter():
        out["agent"][str(a.id)] = {
            "key": str(a.id), "id": a.id, "owner": _hex(a.owner), "name": a.name,
            "role": a.role, "status": a.status, "state": states.get(a.id, b""),
            "version": a.version, "updated_at": a.updated_at.micros_since_epoch,
        }  # fmt: skip
    return out


def _row_id(obj: DiffSyncModel) -> int:
    return cast(int, getattr(obj, "id", None))


def _adapter(adapter: Adapter | None) -> ReplicaAdapter:
    if not isinstance(adapter, ReplicaAdapter):
        raise TypeError("a replica model must belong to a ReplicaAdapter")
    return adapter


class _PushedThroughReducers(DiffSyncModel):
    """Base for the replica's models: diffsync's create/update/delete call the reducers."""

    @classmethod
    def create(cls, adapter: Adapter, ids: dict[Any, Any], attrs: dict[Any, Any]) -> Self | None:
        return cast("Self | None", _adapter(adapter).push_create(cls, ids, attrs))

    def update(self, attrs: dict[Any, Any]) -> Self | None:
        return cast("Self | None", _adapter(self.adapter).push_update(self, attrs))

    def delete(self) -> Self | None:
        return cast("Self | None", _adapter(self.adapter).push_delete(self))


class ReplicaAgent(_PushedThroughReducers, AgentModel):
    pass


class ReplicaDocument(_PushedThroughReducers, DocumentModel):
    pass


class ReplicaConversation(_PushedThroughReducers, ConversationModel):
    pass


class ReplicaMessage(_PushedThroughReducers, MessageModel):
    pass


class ReplicaAdapter(SyncAdapter):
    """The live replica as a diffsync adapter; create/update/delete call the reducers.

    ``load()`` reads the cache. After a sync, :attr:`failures` holds every refused
    row and :attr:`created` maps each local draft key to the server id it got.
    """

    agent = ReplicaAgent
    document = ReplicaDocument
    conversation = ReplicaConversation
    message = ReplicaMessage

    def __init__(self, conn: Replica, name: str = "remote") -> None:
        super().__init__(name=name)
        self.conn = conn
        self.failures: list[RowError] = []
        self.created: dict[tuple[str, str], int] = {}

    def load(self) -> None:
        self.load_rows(replica_rows(self.conn))

    # --- pushing through reducers -------------------------------------------------------

    def push_create(
        self, model: type[DiffSyncModel], ids: dict[str, Any], attrs: dict[str, Any]
    ) -> DiffSyncModel | None:
        table, key = model.get_type(), ids["key"]
        try:
            new_id = self._create(table, attrs)
        except (InnerUniverseError, TimeoutError) as exc:
            self._refuse(table, key, "create", exc, {**ids, **attrs})
            return None
        self.created[table, key] = new_id
        return model.create_base(adapter=self, ids=ids, attrs={**attrs, "id": new_id})

    def push_update(self, obj: DiffSyncModel, attrs: dict[str, Any]) -> DiffSyncModel | None:
        table, row = obj.get_type(), {**obj.get_attrs(), **attrs}
        try:
            self._update(table, _row_id(obj), obj.get_attrs(), row)
        except (InnerUniverseError, TimeoutError) as exc:
            self._refuse(table, obj.get_unique_id(), "update", exc, obj.dict())
            return None
        return obj.update_base(attrs)

    def push_delete(self, obj: DiffSyncModel) -> DiffSyncModel | None:
        table, row_id = obj.get_type(), _row_id(obj)
        if getattr(self.conn.db, table).find("id", row_id) is None:
            return obj.delete_base()  # already gone (a deleted conversation takes its messages)
        try:
            self.conn.call_reducer(f"delete_{table}", row_id)
        except (InnerUniverseError, TimeoutError) as exc:
            self._refuse(table, obj.get_unique_id(), "delete", exc, obj.dict())
            return None
        return obj.delete_base()

    def _refuse(self, table: str, key: str, action: str, exc: BaseException, row: Row) -> None:
        message = getattr(exc, "message", None) or str(exc)
        self.failures.append(RowError(table, key, action, message, label(table, row, key)))

    def _conversation_id(self, key: str) -> int:
        if is_server_key(key):
            return int(key)
        if ("conversation", key) in self.created:
            return self.created["conversation", key]
        raise PushError(f"its conversation {key!r} was not created on the server")

    def _mine_created_at(self, rows: list[Any], who: str, event: ReducerEvent) -> int:
        """The id of the row the caller's reducer just inserted (same identity and timestamp)."""
        for row in rows:
            if getattr(row, who) == self.conn.identity and row.created_at == event.timestamp:
                return cast(int, row.id)
        raise PushError(f"{event.reducer} committed but its row is not in the replica")

    def _create(self, table: str, a: Row) -> int:
        call, db = self.conn.call_reducer, self.conn.db
        if table == "agent":
            call("register_agent", a["name"], a["role"], a["state"])
            agent = next(
                (r for r in db.agent.filter("name", a["name"]) if r.owner == self.conn.identity),
                None,
            )
            if agent is None:
                raise PushError("register_agent committed but the agent is not in the replica")
            if a["status"] != agent.status:
                call("update_agent", agent.id, a["name"], a["role"], a["status"], a["state"])
            return cast(int, agent.id)
        if table == "document":
            event = call("create_document", a["title"], a["content"], a["metadata"])
            return self._mine_created_at(
                db.document.filter("owner", self.conn.identity), "owner", event
            )
        if table == "conversation":
            event = call("create_conversation", a["title"])
            return self._mine_created_at(
                db.conversation.filter("owner", self.conn.identity), "owner", event
            )
        conversation_id = self._conversation_id(a["conversation"])
        event = call("post_message", conversation_id, a["role"], a["content"])
        return self._mine_created_at(
            db.message.filter("conversation_id", conversation_id), "author", event
        )

    def _update(self, table: str, row_id: int, old: Row, a: Row) -> None:
        call = self.conn.call_reducer
        if table == "agent":
            call("update_agent", row_id, a["name"], a["role"], a["status"], a["state"])
        elif table == "document":
            call("update_document", row_id, a["title"], a["content"], a["metadata"])
        elif table == "conversation":
            call("rename_conversation", row_id, a["title"])
        else:
            for fixed in ("conversation", "role"):
                if a[fixed] != old[fixed]:
                    raise PushError(
                        f"a message's {fixed} cannot change (the module has no reducer"
                        " for it); post a new message instead"
                    )
            call("edit_message", row_id, a["content"])
