"""StateProjector: immutable, versioned snapshots of the replicated tables.

Why: the cache is a mutable replica; readers on other threads, UIs diffing
frames, and code asking "what did this look like three transactions ago" need
values that never change under them. Each applied transaction yields a new
:class:`Version` -- a pyrsistent ``pmap`` of table -> ``pmap`` of primary key ->
row, sharing every untouched branch with the version before -- together with its
:class:`Delta`. The last ``window`` versions stay readable (time travel); older
ones are dropped, so memory follows the window and the table sizes, not the
length of the stream.

Derived views (:class:`Projection`) are computed once from a snapshot and then
advanced from each delta, never by rescanning. Two come built in:
:class:`SortedGroups` ("the messages of each conversation, in order") and
:class:`GroupBy` ("agents by status").
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from pyrsistent import PMap, PVector, pmap, pvector

from ..errors import InnerUniverseError
from ..spacetime.cache import TransactionDiff

__all__ = [
    "Delta",
    "GroupBy",
    "Projection",
    "RowChange",
    "Snapshot",
    "SortedGroups",
    "StateProjector",
    "Version",
    "VersionUnavailableError",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Table = PMap[Hashable, Any]
Snapshot = PMap[str, Table]
"""table name -> primary key -> row."""

_EMPTY_TABLE: Table = pmap()
_EMPTY_SNAPSHOT: Snapshot = pmap()
_EMPTY_VECTOR: PVector[Any] = pvector()


class VersionUnavailableError(InnerUniverseError, LookupError):
    """A version outside the kept window (already dropped, or not yet made)."""


class RowChange(NamedTuple):
    """One row's change: ``old`` is None for an insert, ``new`` is None for a delete."""

    kind: Literal["insert", "update", "delete"]
    key: Hashable
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class Delta:
    """What one version changed, per table, keyed like the snapshot."""

    version: int
    sequence: int | None
    """The connection's transaction sequence this came from, if known."""
    event: Any
    """Why: the transaction's ReducerEvent / SubscribeAppliedEvent / ..., if known."""
    tables: Mapping[str, tuple[RowChange, ...]] = field(default_factory=dict)

    def changes(self, table: str) -> tuple[RowChange, ...]:
        return self.tables.get(table, ())

    def inserted(self, table: str) -> list[Any]:
        return [c.new for c in self.changes(table) if c.kind == "insert"]

    def updated(self, table: str) -> list[tuple[Any, Any]]:
        return [(c.old, c.new) for c in self.changes(table) if c.kind == "update"]

    def deleted(self, table: str) -> list[Any]:
        return [c.old for c in self.changes(table) if c.kind == "delete"]

    def __len__(self) -> int:
        return sum(len(changes) for changes in self.tables.values())


@dataclass(frozen=True, slots=True)
class Version:
    """One immutable state of the replica, the delta that made it, and derived views."""

    number: int
    state: Snapshot
    delta: Delta
    projections: PMap[str, Any]

    def table(self, name: str) -> Table:
        return self.state.get(name, _EMPTY_TABLE)

    def get(self, table: str, key: Hashable) -> Any:
        """The row with this key, or None."""
        return self.table(table).get(key)

    def projection(self, name: str) -> Any:
        try:
            return self.projections[name]
        except KeyError:
            raise KeyError(
                f"version {self.number} has no projection {name!r} "
                f"(registered ones then: {sorted(self.projections)})"
            ) from None


class Projection(Protocol[T]):
    """A derived view kept up to date from deltas.

    ``initial`` builds the value from a whole snapshot (once, at registration or
    after a failure); ``apply`` returns the next value from the previous one and a
    delta, without rescanning. Values should be immutable, so old versions keep
    theirs.
    """

    def initial(self, state: Snapshot) -> T: ...

    def apply(self, value: T, delta: Delta) -> T: ...


class StateProjector:
    """Turns a stream of :class:`TransactionDiff` into versioned immutable snapshots.

    ``primary_keys`` maps each table to the attribute holding its primary key
    (tables not listed, or mapped to None, are keyed by the whole row). Reads are
    safe from any thread; ``apply`` is meant to be called by one writer.
    """

    def __init__(
        self,
        primary_keys: Mapping[str, str | None],
        *,
        window: int = 1000,
        initial: Mapping[str, Iterable[Any]] | None = None,
        sequence: int | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        self._primary_keys = dict(primary_keys)
        self._lock = threading.Lock()
        self._projections: dict[str, Projection[Any]] = {}
        state = _EMPTY_SNAPSHOT
        for table, rows in (initial or {}).items():
            key = self._key_function(table)
            state = state.set(table, pmap({key(row): row for row in rows}))
        first = Version(0, state, Delta(0, sequence, None), pmap())
        self._versions: deque[Version] = deque([first], maxlen=window)

    def _key_function(self, table: str) -> Callable[[Any], Hashable]:
        attr = self._primary_keys.get(table)
        if attr is None:
            return lambda row: row
        return lambda row: getattr(row, attr)

    # --- writing ------------------------------------------------------------------------

    def apply(
        self, diff: TransactionDiff, *, sequence: int | None = None, event: Any = None
    ) -> Version:
        """Make the next version from one transaction's diff (empty diffs too: one per tx)."""
        with self._lock:
            version = self._next(diff, sequence, event)
            self._versions.append(version)
        return version

    def _next(self, diff: TransactionDiff, sequence: int | None, event: Any) -> Version:
        current = self._versions[-1]
        number = current.number + 1
        state = current.state
        tables: dict[str, tuple[RowChange, ...]] = {}
        for name, diff_table in diff.tables.items():
            if diff_table.is_empty():
                continue
            key = self._key_function(name)
            before = state.get(name, _EMPTY_TABLE)
            rows = before.evolver()
            changes: list[RowChange] = []
            for row in diff_table.deletes:  # first, as the cache does
                k = key(row)
                if k in before:
                    rows.remove(k)
                changes.append(RowChange("delete", k, row, None))
            for old, new in diff_table.updates:
                k = key(new)
                rows.set(k, new)
                changes.append(RowChange("update", k, old, new))
            for row in diff_table.inserts:
                k = key(row)
                rows.set(k, row)
                changes.append(RowChange("insert", k, None, row))
            state = state.set(name, rows.persistent())
            tables[name] = tuple(changes)
        delta = Delta(number, sequence, event, tables)
        values = current.projections
        for stale in [n for n in values if n not in self._projections]:  # unregistered
            values = values.discard(stale)
        for pname, projection in self._projections.items():
            values = values.set(pname, self._advance(pname, projection, values, state, delta))
        return Version(number, state, delta, values)

    def _advance(
        self,
        name: str,
        projection: Projection[Any],
        values: PMap[str, Any],
        state: Snapshot,
        delta: Delta,
    ) -> Any:
        if name not in values:  # registered after the current version was made
            return projection.initial(state)
        try:
            return projection.apply(values[name], delta) if delta.tables else values[name]
        except Exception:
            log.exception("projection %r failed on version %d; rebuilding it", name, delta.version)
            return projection.initial(state)

    def register(self, name: str, projection: Projection[Any]) -> Any:
        """Add a derived view, built now from the current snapshot; returns its value.

        It appears in the versions made from now on (and in a new current version).
        """
        with self._lock:
            current = self._versions[-1]
            value = projection.initial(current.state)
            self._projections[name] = projection
            self._versions[-1] = Version(
                current.number, current.state, current.delta, current.projections.set(name, value)
            )
        return value

    def unregister(self, name: str) -> None:
        self._projections.pop(name)

    # --- reading ------------------------------------------------------------------------

    @property
    def current(self) -> Version:
        return self._versions[-1]

    @property
    def version(self) -> int:
        return self._versions[-1].number

    @property
    def state(self) -> Snapshot:
        return self._versions[-1].state

    @property
    def window(self) -> int:
        maxlen = self._versions.maxlen
        assert maxlen is not None
        return maxlen

    def oldest(self) -> int:
        """The oldest version still readable."""
        with self._lock:
            return self._versions[0].number

    def at(self, number: int) -> Version:
        """The version ``number``, if it is still in the window."""
        with self._lock:
            first = self._versions[0].number
            last = self._versions[-1].number
            if not first <= number <= last:
                raise VersionUnavailableError(
                    f"version {number} is not kept; readable versions are {first}..{last} "
                    f"(window {self.window})"
                )
            return self._versions[number - first]

    def versions(self) -> list[Version]:
        """Every kept version, oldest first."""
        with self._lock:
            return list(self._versions)

    def deltas_since(self, number: int) -> list[Delta]:
        """The deltas after version ``number`` up to now (to catch a reader up)."""
        with self._lock:
            first = self._versions[0].number
            if number < first - 1 or number > self._versions[-1].number:
                raise VersionUnavailableError(
                    f"cannot replay from version {number}; oldest kept delta is {first}"
                )
            return [v.delta for v in list(self._versions)[number - first + 1 :]]

    def table(self, name: str, version: int | None = None) -> Table:
        return (self.current if version is None else self.at(version)).table(name)

    def projection(self, name: str, version: int | None = None) -> Any:
        return (self.current if version is None else self.at(version)).projection(name)

    def __iter__(self) -> Iterator[Version]:
        return iter(self.versions())


# --- built-in projections ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupBy:
    """``{column value: {key: row}}`` for one table, e.g. agents by status.

    Empty groups disappear. Each step touches only the groups a delta changes.
    """

    table: str
    by: str

    def initial(self, state: Snapshot) -> PMap[Any, Table]:
        groups: dict[Any, dict[Hashable, Any]] = {}
        for key, row in state.get(self.table, _EMPTY_TABLE).items():
            groups.setdefault(getattr(row, self.by), {})[key] = row
        return pmap({group: pmap(rows) for group, rows in groups.items()})

    def apply(self, value: PMap[Any, Table], delta: Delta) -> PMap[Any, Table]:
        changes = delta.changes(self.table)
        if not changes:
            return value
        touched: dict[Any, Any] = {}  # group -> evolver of its rows, one per delta

        def rows(group: Any) -> Any:
            if group not in touched:
                touched[group] = value.get(group, _EMPTY_TABLE).evolver()
            return touched[group]

        for change in changes:
            if change.old is not None:
                rows(getattr(change.old, self.by)).remove(change.key)
            if change.new is not None:
                rows(getattr(change.new, self.by)).set(change.key, change.new)
        groups = value.evolver()
        for group, evolver in touched.items():
            if len(evolver):
                groups.set(group, evolver.persistent())
            elif group in value:
                groups.remove(group)
        return groups.persistent()


@dataclass(frozen=True, slots=True)
class SortedGroups:
    """``{column value: vector of rows sorted by order_by}``, e.g. messages per conversation.

    Rows arriving in order (the usual case) are appended in O(log n); others are
    placed by binary search. Ties are broken by primary key.
    """

    table: str
    group_by: str
    order_by: str
    key: str | None = None
    """The primary key attribute, for ties; None to break ties by nothing."""

    def _sort_key(self, row: Any) -> tuple[Any, ...]:
        if self.key is None:
            return (getattr(row, self.order_by),)
        return (getattr(row, self.order_by), getattr(row, self.key))

    def initial(self, state: Snapshot) -> PMap[Any, PVector[Any]]:
        groups: dict[Any, list[Any]] = {}
        for row in state.get(self.table, _EMPTY_TABLE).values():
            groups.setdefault(getattr(row, self.group_by), []).append(row)
        return pmap(
            {group: pvector(sorted(rows, key=self._sort_key)) for group, rows in groups.items()}
        )

    def _insert(self, rows: PVector[Any], row: Any) -> PVector[Any]:
        if not rows or self._sort_key(rows[-1]) <= self._sort_key(row):
            return rows.append(row)
        index = bisect.bisect_right(rows, self._sort_key(row), key=self._sort_key)
        return pvector([*rows[:index], row, *rows[index:]])

    def _find(self, rows: PVector[Any], row: Any) -> int:
        """The index of ``row`` in ``rows``, or ``len(rows)`` if it is not there."""
        index = bisect.bisect_left(rows, self._sort_key(row), key=self._sort_key)
        while index < len(rows) and rows[index] != row:
            index += 1  # equal sort keys without a tie-breaker
        return index

    def apply(self, value: PMap[Any, PVector[Any]], delta: Delta) -> PMap[Any, PVector[Any]]:
        changes = delta.changes(self.table)
        if not changes:
            return value
        touched: dict[Any, PVector[Any]] = {}  # group -> its rows so far in this delta

        def rows(group: Any) -> PVector[Any]:
            return touched[group] if group in touched else value.get(group, _EMPTY_VECTOR)

        for change in changes:
            old, new = change.old, change.new
            if old is not None and new is not None:
                group = getattr(new, self.group_by)
                if getattr(old, self.group_by) == group and self._sort_key(old) == self._sort_key(
                    new
                ):  # the usual update (content changed): replace in place
                    current = rows(group)
                    touched[group] = current.set(self._find(current, old), new)
                    continue
            if old is not None:
                group = getattr(old, self.group_by)
                current = rows(group)
                index = self._find(current, old)
                touched[group] = current.delete(index) if index < len(current) else current
            if new is not None:
                group = getattr(new, self.group_by)
                touched[group] = self._insert(rows(group), new)
        groups = value.evolver()
        for group, vector in touched.items():
            if vector:
                groups.set(group, vector)
            elif group in value:
                groups.remove(group)
        return groups.persistent()
