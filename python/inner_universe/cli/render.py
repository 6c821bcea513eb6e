"""How rows and changes read in a terminal: one line per change, as the demo prints them.

Plain functions over the SDK's row dataclasses, shared by ``watch``, ``sql`` and
the TUI, so a change looks the same wherever it is shown.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..spacetime.events import EventContext, ReducerEvent
from ..spacetime.types import ConnectionId, Identity, Timestamp

__all__ = [
    "change_line",
    "jsonable",
    "row_text",
    "short",
    "value_text",
    "who",
]

_MAX_TEXT = 60


def short(value: object, width: int = 8) -> str:
    """An identity or connection id as its first hex digits."""
    return str(value)[:width]


def value_text(value: Any) -> str:
    """A column value as a short readable text (ids as their first hex digits)."""
    if isinstance(value, Identity | ConnectionId):
        return short(value)
    if isinstance(value, Timestamp):
        try:
            return value.to_datetime().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        except OverflowError:
            return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        text = value if len(value) <= _MAX_TEXT else value[: _MAX_TEXT - 1] + "…"
        return repr(text)
    return str(value)


def _is_record(value: Any) -> bool:
    """A row or struct (a dataclass without a text form of its own, unlike Identity)."""
    return (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and type(value).__str__ is object.__str__
    )


def _fields(row: Any) -> list[tuple[str, Any]]:
    if _is_record(row):
        return [(f.name, getattr(row, f.name)) for f in dataclasses.fields(row)]
    return [("value", row)]


def row_text(table: str, row: Any) -> str:
    """``agent #1 name='planner' role='planning' ...``: the id first, timestamps left out.

    A change line has its own time; ``sql`` shows every column.
    """
    parts = [table]
    fields = [(k, v) for k, v in _fields(row) if not isinstance(v, Timestamp)]
    ids = [v for k, v in fields if k == "id"]
    if ids:
        parts.append(f"#{ids[0]}")
    parts += [f"{k}={value_text(v)}" for k, v in fields if k != "id"]
    return " ".join(parts)


def _update_text(table: str, old: Any, new: Any) -> str:
    """What changed: ``message #3 content += 'SDK '`` for appended text, else old -> new.

    Timestamps that changed along with something else (``updated_at``) are left out.
    """
    changed = [
        (name, before, after)
        for (name, before), (_, after) in zip(_fields(old), _fields(new), strict=True)
        if before != after
    ]
    if any(not isinstance(after, Timestamp) for _, _, after in changed):
        changed = [c for c in changed if not isinstance(c[2], Timestamp)]
    changes = []
    for name, before, after in changed:
        if isinstance(before, str) and isinstance(after, str) and after.startswith(before):
            changes.append(f"{name} += {value_text(after[len(before) :])}")
        else:
            changes.append(f"{name}: {value_text(before)} -> {value_text(after)}")
    ids = [v for k, v in _fields(new) if k == "id"]
    head = f"{table} #{ids[0]}" if ids else table
    return f"{head} {', '.join(changes) or '(no change)'}"


def who(ctx: EventContext) -> str:
    """Which identity's reducer made a change, or why the rows arrived."""
    event = ctx.event
    if isinstance(event, ReducerEvent):
        return f"{short(event.caller_identity)}.{event.reducer}"
    return type(event).__name__.removesuffix("Event")


def change_line(kind: str, table: str, row: Any, old: Any = None) -> str:
    """``+ row`` for an insert, ``- row`` for a delete, ``~ what changed`` for an update."""
    if kind == "update":
        return f"~ {_update_text(table, old, row)}"
    return f"{'+' if kind == 'insert' else '-'} {row_text(table, row)}"


def jsonable(value: Any) -> Any:
    """A row (or anything in it) as JSON-ready data: bytes as hex, ids as their text."""
    if _is_record(value):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
