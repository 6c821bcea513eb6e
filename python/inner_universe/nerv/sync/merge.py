"""The three-way merge: base (last sync), local, remote -> the state both should reach.

Pure data, no server. diffsync computes what changed on each side since the base
(``base.diff_from(side)``); a row changed on one side takes that side's version;
a row changed on both sides to different values is a :class:`Conflict`, settled
by the policy. Two sides that made the same change (both deleted a row, or both
set the same values) converge silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from diffsync.diff import Diff

from .models import TABLES, Dataset, Row, SyncAdapter, attributes_of, empty_dataset, label

__all__ = [
    "POLICIES",
    "Change",
    "Conflict",
    "MergePlan",
    "Policy",
    "PolicyFunction",
    "Resolution",
    "changes",
    "diff_changes",
    "resolve",
    "three_way",
]

Action: TypeAlias = Literal["create", "update", "delete"]
_ACTIONS: dict[str, Action] = {"create": "create", "update": "update", "delete": "delete"}
Side: TypeAlias = Literal["local", "remote"]
Resolution: TypeAlias = Side | Row
"""What a policy answers: which side wins, or a row of merged attribute values."""


@dataclass(frozen=True)
class Change:
    """One row created, updated or deleted on one side; ``fields`` maps attribute -> (old, new)."""

    table: str
    key: str
    action: Action
    label: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    row: Row | None = None
    """The row as the change left it (for a delete: as it was)."""

    def __str__(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        if self.action != "update":
            return f"{sign} {self.label}"
        parts = ", ".join(
            f"{name}: {_short(old)} -> {_short(new)}" for name, (old, new) in self.fields.items()
        )
        return f"{sign} {self.label} ({parts})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": self.key,
            "action": self.action,
            "label": self.label,
            "fields": {name: list(pair) for name, pair in self.fields.items()},
            "row": self.row,
        }


@dataclass
class Conflict:
    """A row both sides changed differently since the last sync, and how it was settled.

    ``base``/``local``/``remote`` are the three versions (None: absent or deleted).
    ``resolution`` is "local", "remote" or "merged"; ``result`` the winning row (None: deleted).
    """

    table: str
    key: str
    label: str
    base: Row | None
    local: Row | None
    remote: Row | None
    reason: str = "changed on both sides"
    resolution: str = ""
    result: Row | None = None

    def __str__(self) -> str:
        local, remote = (
            attributes_of(self.table, self.local),
            attributes_of(self.table, self.remote),
        )
        if local is None or remote is None:
            sides = f"local {'deleted' if local is None else 'kept'} it, "
            sides += f"remote {'deleted' if remote is None else 'kept'} it"
        else:
            sides = ", ".join(
                f"{name}: local {_short(local[name])} / remote {_short(remote[name])}"
                for name in local
                if local[name] != remote[name]
            )
        return f"! {self.label}: {self.reason} ({sides}) -> {self.resolution}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": self.key,
            "label": self.label,
            "reason": self.reason,
            "base": self.base,
            "local": self.local,
            "remote": self.remote,
            "resolution": self.resolution,
            "result": self.result,
        }


PolicyFunction: TypeAlias = Callable[[Conflict], Resolution]
Policy: TypeAlias = Literal["remote", "local", "newest"] | PolicyFunction
POLICIES = ("remote", "local", "newest")


@dataclass
class MergePlan:
    """The merge's outcome: the state to reach, and why."""

    merged: Dataset
    local_changes: list[Change]
    remote_changes: list[Change]
    conflicts: list[Conflict]


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def changes(base: Dataset, side: Dataset) -> dict[tuple[str, str], Change]:
    """What ``side`` changed relative to ``base``, per (table, key), computed by diffsync."""
    diff = SyncAdapter(base, name="base").diff_from(SyncAdapter(side, name="side"))
    return diff_changes(diff, base, side)


def diff_changes(diff: Diff, base: Dataset, side: Dataset) -> dict[tuple[str, str], Change]:
    """A diffsync ``Diff`` (from ``base`` to ``side``) as :class:`Change` records."""
    out: dict[tuple[str, str], Change] = {}
    for element in diff.get_children():
        action = _ACTIONS.get(element.action or "")
        if action is None:
            continue  # unchanged
        table, key = element.type, element.keys["key"]
        attrs = element.get_attrs_diffs()
        new, old = attrs.get("+", {}), attrs.get("-", {})
        names = [n for n in (*new, *old) if new.get(n) != old.get(n)]
        fields = {n: (old.get(n), new.get(n)) for n in dict.fromkeys(names)}
        row = side[table].get(key) or base[table].get(key)
        out[table, key] = Change(table, key, action, label(table, row, key), fields, row)
    return out


def resolve(policy: Policy, conflict: Conflict) -> Resolution:
    """Apply a policy to one conflict.

    "remote"/"local": that side wins. "newest": the later ``updated_at`` wins (a tie
    goes to remote); a deletion has no time, so against an edit the side that kept
    the row wins: deleting is never chosen over someone's newer work by a guess.
    A function gets the conflict and answers "local", "remote" or a merged row.
    """
    if callable(policy):
        return policy(conflict)
    if policy in ("local", "remote"):
        return policy
    if policy == "newest":
        if conflict.local is None:
            return "remote"
        if conflict.remote is None:
            return "local"
        newer = conflict.local.get("updated_at", 0) > conflict.remote.get("updated_at", 0)
        return "local" if newer else "remote"
    raise ValueError(f"unknown policy {policy!r}; use one of {POLICIES} or a function")


def three_way(base: Dataset, local: Dataset, remote: Dataset, policy: Policy) -> MergePlan:
    """Merge ``local`` and ``remote`` against their common ``base`` (all keyed alike)."""
    base, local, remote = _complete(base), _complete(local), _complete(remote)
    local_changes = changes(base, local)
    remote_changes = changes(base, remote)
    merged = empty_dataset()
    for table in TABLES:
        merged[table] = {key: dict(row) for key, row in remote.get(table, {}).items()}
    conflicts: list[Conflict] = []
    for (table, key), _change in local_changes.items():
        local_row = local[table].get(key)
        remote_row = remote[table].get(key)
        if (table, key) not in remote_changes:
            _put(merged, table, key, local_row)
            continue
        if attributes_of(table, local_row) == attributes_of(table, remote_row):
            continue  # both sides made the same change
        conflict = Conflict(
            table,
            key,
            label(table, local_row or remote_row or base[table].get(key), key),
            base[table].get(key),
            local_row,
            remote_row,
        )
        answer = resolve(policy, conflict)
        if answer == "local":
            conflict.resolution, result = "local", local_row
        elif answer == "remote":
            conflict.resolution, result = "remote", remote_row
        elif isinstance(answer, dict):
            start = remote_row or local_row or {}
            conflict.resolution, result = "merged", {**start, **answer, "key": key}
        else:
            raise ValueError(f"a policy answered {answer!r}; expected 'local', 'remote' or a row")
        conflict.result = None if result is None else dict(result)
        _put(merged, table, key, result)
        conflicts.append(conflict)
    _drop_orphans(merged, local_changes, base, local, conflicts)
    return MergePlan(merged, list(local_changes.values()), list(remote_changes.values()), conflicts)


def _complete(data: Dataset) -> Dataset:
    return {table: data.get(table, {}) for table in TABLES}


def _put(data: Dataset, table: str, key: str, row: Row | None) -> None:
    if row is None:
        data[table].pop(key, None)
    else:
        data[table][key] = dict(row)


def _drop_orphans(
    merged: Dataset,
    local_changes: dict[tuple[str, str], Change],
    base: Dataset,
    local: Dataset,
    conflicts: list[Conflict],
) -> None:
    """Drop messages whose conversation is gone; a local edit lost this way is a conflict."""
    settled = {c.key: c for c in conflicts if c.table == "message"}
    for key, row in list(merged["message"].items()):
        if row["conversation"] in merged["conversation"]:
            continue
        del merged["message"][key]
        conflict = settled.get(key)
        if conflict is None and ("message", key) in local_changes and key in local["message"]:
            conflict = Conflict(
                "message",
                key,
                label("message", row, key),
                base["message"].get(key),
                local["message"][key],
                None,
            )
            conflicts.append(conflict)
        if conflict is not None:
            conflict.reason, conflict.resolution = "its conversation was deleted", "remote"
            conflict.result = None
