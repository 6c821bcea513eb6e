"""DiffSynchronizer: reconcile a local copy with the live tables, three ways.

One ``sync()``:

1. reads the replica (the remote), the local copy and its base (the last sync);
2. gives offline-created rows the key of the server row they match, if any;
3. merges three ways (:func:`.merge.three_way`), settling conflicts by the policy;
4. pushes merged-minus-remote through the reducers (diffsync ``sync_from`` into a
   :class:`.ReplicaAdapter`), going on past refused rows;
5. re-reads the replica and makes it the new local copy and base, except for
   refused rows: those keep their local version and their old base, so the edit
   is neither lost nor mistaken for settled, and the next sync tries it again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from diffsync.enum import DiffSyncFlags

from ...logs import quiet_structlog
from ...spacetime.types import Timestamp
from .local import LocalCopy, json_default
from .merge import (
    POLICIES,
    Change,
    Conflict,
    MergePlan,
    Policy,
    changes,
    diff_changes,
    three_way,
)
from .models import TABLES, Dataset, SyncAdapter, empty_dataset, is_server_key, natural_key
from .replica import SYNC_QUERIES, Replica, ReplicaAdapter, RowError, replica_rows

__all__ = ["DiffSynchronizer", "SyncReport", "match_drafts"]


@dataclass
class SyncReport:
    """What a sync found and did (or, from ``preview()``, would do)."""

    policy: str
    applied: bool
    local_changes: list[Change] = field(default_factory=list)
    remote_changes: list[Change] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    pushed: list[Change] = field(default_factory=list)
    pulled: list[Change] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No row was refused."""
        return not self.errors

    @property
    def in_sync(self) -> bool:
        """Local and remote already agreed: nothing to push, pull or settle."""
        return not (self.pushed or self.pulled or self.conflicts or self.errors)

    def summary(self) -> str:
        verb = "synced" if self.applied else "would sync"
        lines = [
            f"{verb} with policy {self.policy!r}: {len(self.local_changes)} local and "
            f"{len(self.remote_changes)} remote changes, {len(self.conflicts)} conflicts, "
            f"{len(self.errors)} refused ({self.seconds * 1000:.0f} ms)"
        ]
        for title, items in (
            ("to the server" if self.applied else "to push", self.pushed),
            ("into the local copy" if self.applied else "to pull", self.pulled),
            ("conflicts", self.conflicts),
            ("refused by the server", self.errors),
        ):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines += [f"  {item}" for item in items]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON (bytes as ``{"base64": ...}``, as in the local file)."""
        return json.dumps(self.to_dict(), indent=indent, default=json_default)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (rows keep their bytes)."""
        return {
            "policy": self.policy,
            "applied": self.applied,
            "local_changes": [c.to_dict() for c in self.local_changes],
            "remote_changes": [c.to_dict() for c in self.remote_changes],
            "conflicts": [c.to_dict() for c in self.conflicts],
            "pushed": [c.to_dict() for c in self.pushed],
            "pulled": [c.to_dict() for c in self.pulled],
            "errors": [e.to_dict() for e in self.errors],
            "seconds": self.seconds,
        }


def match_drafts(local: Dataset, remote: Dataset, me: str | None) -> Dataset:
    """Re-key rows created offline to the server row they are, when there is one.

    A draft (a row whose key is not a server id) matches a remote row with the same
    natural key that no local row already holds: an agent by name (any owner, names
    are unique), a document or conversation by title among ``me``'s rows, a message
    by conversation, role and content among ``me``'s messages. Messages follow their
    conversation's new key. Unmatched drafts keep their keys and will be created.
    """
    out = {table: dict(local.get(table, {})) for table in TABLES}
    moved: dict[str, str] = {}  # conversation draft key -> server key
    for table in TABLES:
        if table == "message":
            for key, row in out["message"].items():
                if row["conversation"] in moved:
                    out["message"][key] = {**row, "conversation": moved[row["conversation"]]}
        who = "author" if table == "message" else "owner"
        candidates: dict[tuple[Any, ...], str] = {}
        for key, row in remote.get(table, {}).items():
            if key in out[table] or (table != "agent" and row.get(who) != me):
                continue
            candidates.setdefault(natural_key(table, row), key)
        for key, row in list(out[table].items()):
            if is_server_key(key):
                continue
            match = candidates.pop(natural_key(table, row), None)
            if match is not None:
                del out[table][key]
                out[table][match] = {**row, "key": match, "id": int(match)}
                if table == "conversation":
                    moved[key] = match
    return out


def _rekey(data: Dataset, created: dict[tuple[str, str], int]) -> Dataset:
    """``data`` with each pushed draft under the server id it got (for reporting)."""
    out = {table: dict(rows) for table, rows in data.items()}
    for (table, old), new_id in created.items():
        row = out[table].pop(old, None)
        if row is not None:
            out[table][str(new_id)] = {**row, "key": str(new_id), "id": new_id}
    for key, row in out["message"].items():
        moved = created.get(("conversation", row["conversation"]))
        if moved is not None:
            out["message"][key] = {**row, "conversation": str(moved)}
    return out


class DiffSynchronizer:
    """Reconciles a :class:`LocalCopy` with a connection's replica of the synced tables.

    ``conn`` is a ThreadedConnection (or anything with its blocking ``call_reducer``,
    ``subscribe``, ``db`` and ``identity``). ``policy`` settles a row changed on both
    sides: "remote" (default: the server is the authority), "local", "newest" (by
    ``updated_at``), or a function of the :class:`Conflict`.

    The first preview or sync subscribes to :data:`SYNC_QUERIES` (a no-op for rows
    already subscribed): a replica missing a table would read as "deleted remotely".
    Pass ``subscribe=False`` only if the connection already holds all four tables.
    """

    def __init__(
        self, conn: Replica, local: LocalCopy, policy: Policy = "remote", *, subscribe: bool = True
    ) -> None:
        if not callable(policy) and policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; use one of {POLICIES} or a function")
        self.conn = conn
        self.local = local
        self.policy = policy
        self._subscribed = not subscribe
        quiet_structlog()  # diffsync would otherwise print each step to stdout

    def _ensure_subscribed(self) -> None:
        if not self._subscribed:
            self.conn.subscribe(*SYNC_QUERIES)
            self._subscribed = True

    @property
    def _policy_name(self) -> str:
        if callable(self.policy):
            return getattr(self.policy, "__name__", "function")
        return self.policy

    def _me(self) -> str | None:
        return None if self.conn.identity is None else self.conn.identity.to_hex()

    def _plan(self, remote: Dataset) -> tuple[Dataset, MergePlan]:
        local = match_drafts(self.local.tables, remote, self._me())
        return local, three_way(self.local.base, local, remote, self.policy)

    def preview(self) -> SyncReport:
        """What ``sync()`` would do now; changes nothing."""
        started = time.perf_counter()
        self._ensure_subscribed()
        remote = replica_rows(self.conn)
        local, plan = self._plan(remote)
        return SyncReport(
            self._policy_name,
            applied=False,
            local_changes=plan.local_changes,
            remote_changes=plan.remote_changes,
            conflicts=plan.conflicts,
            pushed=list(changes(remote, plan.merged).values()),
            pulled=list(changes(local, plan.merged).values()),
            seconds=time.perf_counter() - started,
        )

    def sync(self) -> SyncReport:
        """Push local changes, pull remote ones, settle conflicts; save the local copy."""
        started = time.perf_counter()
        self._ensure_subscribed()
        remote = ReplicaAdapter(self.conn)
        remote.load()
        before = remote.rows()
        local, plan = self._plan(before)
        target = SyncAdapter(plan.merged, name="merged")
        diff = remote.diff_from(target)
        planned = diff_changes(diff, before, plan.merged)
        remote.sync_from(target, flags=DiffSyncFlags.CONTINUE_ON_FAILURE, diff=diff)

        after = replica_rows(self.conn)
        failed = {(e.table, e.key) for e in remote.failures}
        tables, base = empty_dataset(), empty_dataset()
        for table in TABLES:
            for key in {*after[table], *local[table], *self.local.base[table]}:
                if (table, key) in failed:  # keep the refused edit pending
                    if key in local[table]:
                        tables[table][key] = local[table][key]
                    if key in self.local.base[table]:
                        base[table][key] = self.local.base[table][key]
                elif key in after[table]:
                    tables[table][key] = base[table][key] = after[table][key]
        pulled = changes(_rekey(local, remote.created), tables)
        self.local.tables, self.local.base = tables, base
        self.local.identity = self._me()
        self.local.synced_at = Timestamp.now().micros_since_epoch
        self.local.save()
        return SyncReport(
            self._policy_name,
            applied=True,
            local_changes=plan.local_changes,
            remote_changes=plan.remote_changes,
            conflicts=plan.conflicts,
            pushed=[c for k, c in planned.items() if k not in failed],
            pulled=list(pulled.values()),
            errors=list(remote.failures),
            seconds=time.perf_counter() - started,
        )
