"""The local copy: rows a user edits offline, plus the snapshot of the last sync.

Stored as one msgpack file (the project's payload encoding), or JSON when the
path ends in ``.json`` (for hand editing). Format, version 1::

    {"format": "inner-universe.sync", "version": 1,
     "identity": "<64 hex digits>" | null,   # who synced it last
     "synced_at": <microseconds since the epoch> | null,
     "tables": {"agent": [row, ...], "document": [...], "conversation": [...], "message": [...]},
     "base":   {same shape: the rows as they were after the last sync}}

Rows carry the fields of :mod:`.models` (``key``, the compared attributes, and
``id``/``owner``/``updated_at`` ...). In JSON, bytes (agent ``state``, document
``metadata``) are ``{"base64": "..."}``; ``{"msgpack": value}`` is also accepted
on reading, so a hand-written state can be a plain value. A hand-added row may
leave out ``key`` (it gets ``"new:..."``) and the fields that have defaults.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import msgpack

from ...spacetime.types import Timestamp
from .models import FIELDS, MODELS, TABLES, Dataset, Row, empty_dataset, natural_key

__all__ = ["FORMAT", "FORMAT_VERSION", "LocalCopy", "LocalFormatError"]

FORMAT = "inner-universe.sync"
FORMAT_VERSION = 1


class LocalFormatError(ValueError):
    """The local file is not a sync file this version understands; the message says why."""


class LocalCopy:
    """Rows edited offline and the base they started from; save() writes them back.

    Edit through :meth:`put` and :meth:`delete` (they stamp ``updated_at``, which the
    "newest" policy compares), or edit the file by hand.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        tables: Dataset | None = None,
        base: Dataset | None = None,
        identity: str | None = None,
        synced_at: int | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.tables = _complete(tables or empty_dataset())
        self.base = _complete(base or empty_dataset())
        self.identity = identity
        self.synced_at = synced_at

    # --- files -------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> LocalCopy:
        """Read ``path``; a missing file is an empty copy (the first sync fills it)."""
        path = Path(path)
        if not path.exists():
            return cls(path)
        raw = path.read_bytes()
        try:
            if _is_json(path):
                data = json.loads(raw, object_hook=_json_bytes)
            else:
                data = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except (ValueError, msgpack.ExtraData) as exc:
            raise LocalFormatError(f"{path} is not a readable sync file: {exc}") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: Any, path: str | os.PathLike[str] | None = None) -> LocalCopy:
        """Build a copy from the file's decoded structure (also: a plain dict store)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LocalFormatError(f"not an {FORMAT} document (no 'format': {FORMAT!r})")
        if data.get("version") != FORMAT_VERSION:
            raise LocalFormatError(
                f"sync file version {data.get('version')!r}; this code reads {FORMAT_VERSION}"
            )
        return cls(
            path,
            _read_tables(data.get("tables") or {}, "tables"),
            _read_tables(data.get("base") or {}, "base"),
            data.get("identity"),
            data.get("synced_at"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "identity": self.identity,
            "synced_at": self.synced_at,
            "tables": {t: list(self.tables[t].values()) for t in TABLES},
            "base": {t: list(self.base[t].values()) for t in TABLES},
        }

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the copy atomically (a temporary file renamed over the old one)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            return  # an in-memory copy
        self.path = target
        if _is_json(target):
            data = json.dumps(self.to_dict(), indent=2, default=json_default).encode()
        else:
            data = msgpack.packb(self.to_dict(), use_bin_type=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # --- editing -------------------------------------------------------------------------

    def rows(self, table: str) -> list[Row]:
        return list(self.tables[table].values())

    def get(self, table: str, key: str) -> Row | None:
        return self.tables[table].get(key)

    def find(self, table: str, **fields: Any) -> Row | None:
        """The first row whose fields equal ``fields`` (e.g. ``find("agent", name="planner")``)."""
        for row in self.tables[table].values():
            if all(row.get(k) == v for k, v in fields.items()):
                return row
        return None

    def put(self, table: str, row: Row) -> Row:
        """Add or replace a row (stamping ``updated_at`` now); returns the stored row."""
        stored = _normalise(table, {**row, "updated_at": Timestamp.now().micros_since_epoch})
        self.tables[table][stored["key"]] = stored
        return stored

    def delete(self, table: str, key: str) -> None:
        """Delete a row; deleting a conversation deletes its messages, as the server does."""
        self.tables[table].pop(key, None)
        if table == "conversation":
            for mkey, message in list(self.tables["message"].items()):
                if message["conversation"] == key:
                    del self.tables["message"][mkey]


def _is_json(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def _complete(data: Dataset) -> Dataset:
    return {table: dict(data.get(table, {})) for table in TABLES}


def _normalise(table: str, row: Row) -> Row:
    """Fill defaults (via the model) and a key; drop fields the table does not have."""
    unknown = set(row) - set(FIELDS[table])
    if unknown:
        raise LocalFormatError(f"{table} row has unknown fields {sorted(unknown)}: {row!r}")
    draft = dict(row)
    if not draft.get("key"):
        if draft.get("id") is not None:
            draft["key"] = str(draft["id"])
        elif table == "message":
            draft["key"] = f"new:{uuid.uuid4().hex[:12]}"
        else:
            draft["key"] = "new:" + ":".join(str(part) for part in natural_key(table, draft))
    try:
        model = MODELS[table](**draft)
    except Exception as exc:  # pydantic's ValidationError names the field
        raise LocalFormatError(f"bad {table} row {row!r}: {exc}") from None
    return model.dict(exclude={"adapter", "model_flags"})


def _read_tables(data: Any, where: str) -> Dataset:
    if not isinstance(data, dict):
        raise LocalFormatError(f"'{where}' must map table names to lists of rows")
    unknown = set(data) - set(TABLES)
    if unknown:
        raise LocalFormatError(f"'{where}' has unknown tables {sorted(unknown)}")
    out = empty_dataset()
    for table, rows in data.items():
        if not isinstance(rows, list):
            raise LocalFormatError(f"'{where}.{table}' must be a list of rows")
        for row in rows:
            if not isinstance(row, dict):
                raise LocalFormatError(f"'{where}.{table}' holds a non-row {row!r}")
            stored = _normalise(table, row)
            if stored["key"] in out[table]:
                raise LocalFormatError(f"'{where}.{table}' has two rows keyed {stored['key']!r}")
            out[table][stored["key"]] = stored
    return out


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for bytes: ``{"base64": ...}``."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _json_bytes(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "base64" in obj:
        return base64.b64decode(obj["base64"])
    if len(obj) == 1 and "msgpack" in obj:
        return msgpack.packb(obj["msgpack"], use_bin_type=True)
    return obj
