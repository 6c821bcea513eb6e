"""The synced tables as diffsync models, and plain-row datasets to move them around.

A row is a plain dict (``Row``); a ``Dataset`` maps table -> key -> row. Every
model is identified by ``key``: the server id as a decimal string for rows the
server has (``"42"``), or any other string for a row created offline and not
yet pushed (``"new:ideas"``). Keying by id, not by title or name, means a rename
is an update, not a delete plus a create (which would drop a conversation's
messages). Offline-created rows are matched to server rows by their natural key
(:func:`natural_key`) before the merge; see ``docs/diff-synchronizer.md``.

Only ``_attributes`` are compared; ids, owners, versions and timestamps ride along.
"""

from __future__ import annotations

from typing import Any, ClassVar

from diffsync import Adapter, DiffSyncModel

__all__ = [
    "ATTRIBUTES",
    "FIELDS",
    "TABLES",
    "AgentModel",
    "ConversationModel",
    "Dataset",
    "DocumentModel",
    "MessageModel",
    "Row",
    "SyncAdapter",
    "attributes_of",
    "empty_dataset",
    "is_server_key",
    "label",
    "natural_key",
]

Row = dict[str, Any]
Dataset = dict[str, dict[str, Row]]

TABLES: tuple[str, ...] = ("agent", "document", "conversation", "message")
"""Sync order: a message's conversation is created before the message."""


class AgentModel(DiffSyncModel):
    """An agent; ``name`` is unique server-wide."""

    _modelname = "agent"
    _identifiers = ("key",)
    _attributes = ("name", "role", "status", "state")

    key: str
    name: str
    role: str
    status: str = "idle"
    state: bytes = b""
    id: int | None = None
    owner: str | None = None
    version: int = 0
    updated_at: int = 0


class DocumentModel(DiffSyncModel):
    """A document; ``metadata`` is opaque msgpack bytes."""

    _modelname = "document"
    _identifiers = ("key",)
    _attributes = ("title", "content", "metadata")

    key: str
    title: str
    content: str = ""
    metadata: bytes = b""
    id: int | None = None
    owner: str | None = None
    updated_at: int = 0


class ConversationModel(DiffSyncModel):
    """A conversation; its messages refer to it by ``key``."""

    _modelname = "conversation"
    _identifiers = ("key",)
    _attributes = ("title",)

    key: str
    title: str
    id: int | None = None
    owner: str | None = None
    updated_at: int = 0


class MessageModel(DiffSyncModel):
    """A message; ``conversation`` is its conversation's key, ``sequence`` 0 until posted."""

    _modelname = "message"
    _identifiers = ("key",)
    _attributes = ("conversation", "role", "content")

    key: str
    conversation: str
    role: str = "user"
    content: str = ""
    id: int | None = None
    author: str | None = None
    sequence: int = 0
    updated_at: int = 0


MODELS: dict[str, type[DiffSyncModel]] = {
    "agent": AgentModel,
    "document": DocumentModel,
    "conversation": ConversationModel,
    "message": MessageModel,
}
ATTRIBUTES: dict[str, tuple[str, ...]] = {t: m._attributes for t, m in MODELS.items()}
FIELDS: dict[str, tuple[str, ...]] = {
    t: tuple(f for f in m.model_fields if f not in ("adapter", "model_flags"))
    for t, m in MODELS.items()
}


class SyncAdapter(Adapter):
    """A diffsync adapter over a plain dataset (the local copy, the base, a merge result)."""

    agent = AgentModel
    document = DocumentModel
    conversation = ConversationModel
    message = MessageModel
    top_level: ClassVar[list[str]] = list(TABLES)

    def __init__(self, data: Dataset | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        if data is not None:
            self.load_rows(data)

    def load_rows(self, data: Dataset) -> None:
        for table in TABLES:
            model: type[DiffSyncModel] = getattr(self, table)
            for row in data.get(table, {}).values():
                self.add(model(**row))

    def rows(self) -> Dataset:
        """The adapter's content as a dataset (plain rows, no diffsync state)."""
        out = empty_dataset()
        for table in TABLES:
            for obj in self.get_all(table):
                row = obj.dict(exclude={"adapter", "model_flags"})
                out[table][row["key"]] = row
        return out


def empty_dataset() -> Dataset:
    return {table: {} for table in TABLES}


def is_server_key(key: str) -> bool:
    """Whether ``key`` names a row the server has (its id), as opposed to a local draft."""
    return key.isdigit()


def attributes_of(table: str, row: Row | None) -> dict[str, Any] | None:
    """The compared part of a row (None for an absent row)."""
    if row is None:
        return None
    return {a: row.get(a) for a in ATTRIBUTES[table]}


def natural_key(table: str, row: Row) -> tuple[Any, ...]:
    """What identifies a row to a person, used to match a row created offline.

    agent: its name (unique server-wide). document, conversation: the title (among
    the syncing identity's own rows). message: conversation, role and content (among
    its own messages), so a retried push finds the message it already posted.
    """
    if table == "agent":
        return (row["name"],)
    if table in ("document", "conversation"):
        return (row["title"],)
    return (row["conversation"], row["role"], row["content"])


def label(table: str, row: Row | None, key: str) -> str:
    """A short readable name for a row in reports."""
    if row is None:
        return f"{table} {key}"
    if table == "agent":
        return f"agent {row['name']!r}"
    if table in ("document", "conversation"):
        return f"{table} {row['title']!r}"
    seq = f"#{row['sequence']}" if row.get("sequence") else "(new)"
    text = str(row.get("content", ""))
    text = text if len(text) <= 24 else text[:21] + "..."
    return f"message {seq} in conversation {row['conversation']}: {text!r}"
