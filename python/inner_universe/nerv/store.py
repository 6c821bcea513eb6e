"""TemporalStore: an ``eventsourcing`` persistence module backed by SpacetimeDB.

Select it the standard way::

    PERSISTENCE_MODULE=inner_universe.nerv.store
    SPACETIMEDB_URI=http://127.0.0.1:3000
    SPACETIMEDB_DATABASE=my-universe
    SPACETIMEDB_TOKEN=...            # optional: who appends (default: a new identity)
    SPACETIMEDB_STORE=...            # optional: the store name (default: the app's name)
    SPACETIMEDB_COMPRESSION=...      # optional: None (default), Gzip or Brotli
    TRUSTED_TOPIC_MODULES=...        # optional: modules whose topics may be imported on read

Ownership: a store belongs to the identity that opened it first (a replica opens
its store when it is created). Its owner admits other identities as writers or
readers (:meth:`StoreReplica.set_member`); only writers append events and
snapshots or record tracking positions, only members read the store, and a
tracking position must exist in the upstream store's log. See
docs/temporal-store.md.

Reading never imports a module that another identity chose: the default mapper
(:class:`TrustedTopicMapper`) resolves a stored topic only to an event class
this process has already imported, or within the modules listed in
``TRUSTED_TOPIC_MODULES``; any other topic raises :class:`UntrustedTopicError`
naming the topic and who wrote it.

Writes go through the module's ``append_runs`` / ``append_snapshots`` reducers
(server-module/src/events.rs): one reducer call per batch, so a batch is atomic,
and the module gives out the store's notification ids 1, 2, 3, ... without gaps.
Reads never leave the process: each store is a live replica, kept by one
SpacetimeDB subscription to the store tables (the rows of every store this
identity is a member of; the replica keeps its own store's) and indexed here by
originator and by notification id. That makes loading an aggregate a local
lookup and :meth:`SpacetimeApplicationRecorder.subscribe` a push: iterators
wake when the subscription delivers a transaction, from this process or any
other. The cost is memory: a process holds every event of the stores it opens.

Consistency: a call returns after its own transaction is in the replica
(read-your-writes); another process's events arrive a moment after they commit.
A save from a stale replica still cannot overwrite anything: the module rejects
an existing (originator id, version), which surfaces as ``IntegrityError``.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from time import monotonic
from typing import Any, Literal, TypeVar, cast, get_origin
from uuid import UUID

from eventsourcing.domain import DomainEvent, DomainEventProtocol
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    Cipher,
    Compressor,
    DataError,
    InfrastructureFactory,
    IntegrityError,
    Mapper,
    Notification,
    OperationalError,
    PersistenceError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
    Transcoder,
    WaitInterruptedError,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic

from ..errors import ArgumentError, InnerUniverseError, ReducerError
from ..spacetime.connection import ConnectionBuilder, ThreadedConnection
from ..spacetime.events import EventContext
from ..spacetime.transport import CompressionName
from ..spacetime.types import Identity

__all__ = [
    "Factory",
    "SpacetimeAggregateRecorder",
    "SpacetimeApplicationRecorder",
    "SpacetimeProcessRecorder",
    "SpacetimeSubscription",
    "SpacetimeTrackingRecorder",
    "StoreReplica",
    "TrustedTopicMapper",
    "UntrustedTopicError",
    "check_store_name",
    "is_trusted_topic",
]

log = logging.getLogger(__name__)

INTEGRITY_PREFIX = "integrity error: "
"""How the module's append reducers start a conflict error (see events.rs)."""
_STORE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:")
_MAX_STORE_BYTES = 64
_COMPRESSIONS = ("None", "Gzip", "Brotli")
"""How the server may compress its messages to the store's connection (None by default:
each append comes back as a transaction update, and compressing it costs both ends more
CPU than a local link saves; Gzip suits a slow link)."""
_LIVENESS_CHECK = 1.0
"""Seconds between checks that the connection is still open while a wait has no news."""

OriginatorIdType = Literal["uuid", "text"]
_R = TypeVar("_R")


def check_store_name(store: str) -> str:
    """The store name, if the module will accept it; ValueError naming the problem if not.

    Checked here as well as in the module because the name goes into subscription SQL.
    """
    if not store:
        raise ValueError("store name must not be empty")
    if len(store.encode()) > _MAX_STORE_BYTES:
        raise ValueError(f"store name {store!r} is over {_MAX_STORE_BYTES} bytes")
    bad = [c for c in store if c not in _STORE_CHARS]
    if bad:
        raise ValueError(
            f"store name {store!r} contains {bad[0]!r}; use ASCII letters, digits and _ - . :"
        )
    return store


class UntrustedTopicError(InnerUniverseError, DataError):
    """A stored event's topic names a class this application does not trust.

    Raised instead of importing the module the topic names: whoever can write to
    a store would otherwise choose what its readers import.
    """

    def __init__(self, topic: str, writers: Sequence[Identity]) -> None:
        who = ", ".join(str(w) for w in writers) or "an unknown writer"
        super().__init__(
            f"stored topic {topic!r} (written by {who}) is neither an event class this "
            "application has imported nor in TRUSTED_TOPIC_MODULES; refusing to import it"
        )
        self.topic = topic
        self.writers = tuple(writers)


def is_trusted_topic(topic: str, trusted_modules: Sequence[str] = ()) -> bool:
    """Whether resolving ``topic`` ("module:Qual.Name") imports nothing unexpected.

    True for a domain event class of a module already imported (the
    application's own aggregates and events), found without running any
    module-level ``__getattr__``, and for any topic in ``trusted_modules`` or
    their submodules (which eventsourcing will then import).
    """
    module_name, sep, qualname = topic.partition(":")
    if not sep or not module_name or not qualname:
        return False
    if any(module_name == m or module_name.startswith(m + ".") for m in trusted_modules):
        return True
    found: object = sys.modules.get(module_name)
    for part in qualname.split("."):
        namespace = getattr(found, "__dict__", None)
        if not isinstance(namespace, Mapping) or part not in namespace:
            return False
        found = namespace[part]
    return isinstance(found, type) and issubclass(found, DomainEvent)


class TrustedTopicMapper(Mapper[Any]):
    """eventsourcing's mapper, resolving a stored topic only if :func:`is_trusted_topic`.

    ``writers(topic)`` names who wrote events with that topic, for the error.
    """

    def __init__(
        self,
        transcoder: Transcoder,
        compressor: Compressor | None = None,
        cipher: Cipher | None = None,
        *,
        trusted_modules: Sequence[str] = (),
        writers: Callable[[str], Sequence[Identity]] = lambda topic: (),
    ) -> None:
        super().__init__(transcoder, compressor, cipher)
        self.trusted_modules = tuple(trusted_modules)
        self.writers = writers
        self._trusted: set[str] = set()

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[Any]:
        topic = stored_event.topic
        if topic not in self._trusted:
            if not is_trusted_topic(topic, self.trusted_modules):
                raise UntrustedTopicError(topic, self.writers(topic))
            self._trusted.add(topic)
        return super().to_domain_event(stored_event)


def _translate(exc: Exception) -> PersistenceError:
    """Map an SDK failure to the PEP 249-style error eventsourcing expects."""
    if isinstance(exc, ReducerError):
        if exc.message.startswith(INTEGRITY_PREFIX):
            return IntegrityError(exc.message[len(INTEGRITY_PREFIX) :])
        return DataError(exc.message)
    if isinstance(exc, ArgumentError):
        return DataError(str(exc))
    return OperationalError(str(exc) or type(exc).__name__)


class _Run:
    """Consecutive events of one originator, held as the row that brought them.

    ``topics[i]`` and ``states[i]`` are version ``first_version + i``, with
    notification id ``first_notification_id + i`` (an ``event_run`` row's arrays,
    or one-element ones for a ``stored_event`` row of an earlier module). Their
    :class:`StoredEvent` records are made on first read and kept: appending builds
    no per-event objects.
    """

    __slots__ = (
        "_events",
        "first_notification_id",
        "first_version",
        "originator_id",
        "states",
        "topics",
    )

    def __init__(
        self,
        first_notification_id: int,
        originator_id: UUID | str,
        first_version: int,
        topics: Sequence[str],
        states: Sequence[bytes],
    ) -> None:
        self.first_notification_id = first_notification_id
        self.originator_id = originator_id
        self.first_version = first_version
        self.topics = topics
        self.states = states
        self._events: list[StoredEvent] | None = None

    @property
    def last_version(self) -> int:
        return self.first_version + len(self.states) - 1

    @property
    def last_notification_id(self) -> int:
        return self.first_notification_id + len(self.states) - 1

    def events(self) -> list[StoredEvent]:
        events = self._events
        if events is None:
            oid, first = self.originator_id, self.first_version
            events = self._events = [
                StoredEvent(oid, first + i, topic, state)
                for i, (topic, state) in enumerate(zip(self.topics, self.states, strict=True))
            ]
        return events


class _Stream:
    """One originator's runs, ordered by version; they never overlap (the module
    rejects a version already stored), so their first versions bisect gt/lte."""

    __slots__ = ("firsts", "runs")

    def __init__(self) -> None:
        self.firsts: list[int] = []
        self.runs: list[_Run] = []

    def add(self, run: _Run) -> bool:
        """Hold ``run``; False if it is already held (e.g. delivered again)."""
        first = run.first_version
        if not self.runs or first > self.runs[-1].last_version:
            i = len(self.runs)  # the usual case: appended in version order
        else:
            i = bisect.bisect_left(self.firsts, first)
            if i < len(self.firsts) and self.firsts[i] == first:
                return False
        self.firsts.insert(i, first)
        self.runs.insert(i, run)
        return True

    def run_holding(self, version: int) -> _Run | None:
        i = bisect.bisect_right(self.firsts, version) - 1
        if i >= 0 and version <= self.runs[i].last_version:
            return self.runs[i]
        return None

    def select(
        self, gt: int | None, lte: int | None, desc: bool, limit: int | None
    ) -> list[StoredEvent]:
        if limit is not None and limit <= 0:
            return []
        start = 0 if gt is None else max(bisect.bisect_right(self.firsts, gt) - 1, 0)
        end = len(self.runs) if lte is None else bisect.bisect_right(self.firsts, lte)
        indexes = range(end - 1, start - 1, -1) if desc else range(start, end)
        selected: list[StoredEvent] = []
        for i in indexes:
            run = self.runs[i]
            events = run.events()
            lo = 0 if gt is None else max(gt + 1 - run.first_version, 0)
            hi = len(events) if lte is None else min(lte + 1 - run.first_version, len(events))
            if hi <= lo:
                continue
            part = events[lo:hi]
            if desc:
                part.reverse()
            selected += part
            if limit is not None and len(selected) >= limit:
                del selected[limit:]
                break
        return selected


def _stream(streams: dict[str, _Stream], originator_id: str) -> _Stream:
    """The originator's stream, created on first use (``setdefault`` would build one per call)."""
    stream = streams.get(originator_id)
    if stream is None:
        stream = streams[originator_id] = _Stream()
    return stream


class StoreReplica:
    """The live local copy of one store: its events, snapshots and tracking positions.

    Kept by subscription callbacks on the connection's thread; read from any
    thread. One condition variable guards everything and wakes waiters
    (subscriptions, tracking waits) when a transaction brings news.
    """

    def __init__(
        self,
        connection: ThreadedConnection,
        store: str,
        *,
        originator_id_type: OriginatorIdType = "uuid",
        owns_connection: bool = False,
    ) -> None:
        self.connection = connection
        self.store = check_store_name(store)
        self.originator_id_type = originator_id_type
        self._owns_connection = owns_connection
        self._cond = threading.Condition(threading.RLock())
        # The runs of events, in notification order (by their first notification ids).
        self._run_starts: list[int] = []
        self._runs: list[_Run] = []
        self._max_notification_id = 0
        self._topics: dict[str, list[int]] = {}  # topic -> first notification ids of its runs
        self._events: dict[str, _Stream] = {}
        self._snapshots: dict[str, _Stream] = {}
        self._tracking: dict[str, int] = {}
        self._writers: dict[str, set[int]] = {}  # topic -> Identity.value of its writers
        self._closed = False
        self._ids: dict[str, UUID | str] = {}
        self._owner: Identity | None = None
        # A module published before append_runs takes a batch one row per event.
        self._sends_runs = "append_runs" in connection.connection.schema.reducers
        connection.on_transaction(self._on_transaction)
        try:
            # Claim the store if it is new: it belongs to whoever opens it first.
            connection.call_reducer("open_store", self.store)
            # The store's rows are visible to its members only, through a visibility
            # filter that joins the member list; SpacetimeDB 1.2 cannot subscribe to
            # such a join with a WHERE clause of its own, so the replica receives
            # every store it is a member of and keeps the rows of this one.
            self._subscription = connection.subscribe(
                "SELECT * FROM event_run",
                "SELECT * FROM stored_event",
                "SELECT * FROM stored_snapshot",
                "SELECT * FROM event_tracking",
            )
        except BaseException as exc:
            connection.connection.remove_on_transaction(self._on_transaction)
            if isinstance(exc, InnerUniverseError):
                raise OperationalError(
                    f"cannot follow store {self.store!r}: {exc} (is the Inner Universe module, "
                    "with its event store tables, published to this database?)"
                ) from exc
            raise

    # --- kept by the subscription ---------------------------------------------------------

    def _originator_id(self, text: str) -> UUID | str:
        """The originator id as eventsourcing gave it (a UUID unless configured as text)."""
        known = self._ids.get(text)
        if known is None:
            known = text
            if self.originator_id_type == "uuid":
                with contextlib.suppress(ValueError):
                    known = UUID(text)
            self._ids[text] = known
        return known

    def _know_id(self, originator_id: UUID | str, text: str) -> None:
        """Remember the id object of an originator about to be appended, so the
        subscription's callback need not parse its text again (a UUID's parse is slow)."""
        wanted = UUID if self.originator_id_type == "uuid" else str
        if text not in self._ids and isinstance(originator_id, wanted):
            self._ids[text] = originator_id

    def _on_transaction(self, ctx: EventContext) -> None:
        # Read the diff's tables directly: a table the transaction left alone is absent
        # (``diff[name]`` would build an empty TableDiff for each, every transaction).
        tables = ctx.diff.tables
        store = self.store
        # (first notification id, originator id as text, first version, topics, states, writer)
        received: list[tuple[int, str, int, Sequence[str], Sequence[bytes], Identity]] = []
        if (runs := tables.get("event_run")) is not None:
            received += [
                (
                    r.first_notification_id,
                    r.originator_id,
                    r.first_version,
                    r.topics,
                    r.states,
                    r.writer,
                )
                for r in runs.inserts
                if r.store == store
            ]
        if (singles := tables.get("stored_event")) is not None:
            received += [  # events an earlier module wrote, one row each
                (
                    r.notification_id,
                    r.originator_id,
                    r.originator_version,
                    (r.topic,),
                    (r.state,),
                    r.writer,
                )
                for r in singles.inserts
                if r.store == store
            ]
        snapshot_diff, tracking_diff = tables.get("stored_snapshot"), tables.get("event_tracking")
        snapshots = (
            [] if snapshot_diff is None else [r for r in snapshot_diff.inserts if r.store == store]
        )
        tracking = (
            [] if tracking_diff is None else [r for r in tracking_diff.inserts if r.store == store]
        )
        if not (received or snapshots or tracking):
            return
        with self._cond:
            if len(received) > 1:
                received.sort(key=lambda r: r[0])
            for first, originator_id, version, topics, states, writer in received:
                run = _Run(first, self._originator_id(originator_id), version, topics, states)
                if _stream(self._events, originator_id).add(run):
                    self._add_run(run, writer)
            for row in snapshots:
                self._add_writer(row.topic, row.writer)
                oid = self._originator_id(row.originator_id)
                snapshot = _Run(0, oid, row.originator_version, (row.topic,), (row.state,))
                _stream(self._snapshots, row.originator_id).add(snapshot)
            for row in tracking:
                current = self._tracking.get(row.application_name)
                if current is None or row.notification_id > current:
                    self._tracking[row.application_name] = row.notification_id
            self._cond.notify_all()

    def _add_run(self, run: _Run, writer: Identity) -> None:
        """Index a run (new to its originator's stream) by notification id and topic."""
        first = run.first_notification_id
        starts = self._run_starts
        if not starts or first > starts[-1]:
            starts.append(first)
            self._runs.append(run)
        else:
            i = bisect.bisect_left(starts, first)
            starts.insert(i, first)
            self._runs.insert(i, run)
        for topic in set(run.topics):
            self._add_writer(topic, writer)
            ids = self._topics.get(topic)
            if ids is None:
                self._topics[topic] = [first]
            elif first > ids[-1]:
                ids.append(first)
            else:
                bisect.insort(ids, first)
        if run.last_notification_id > self._max_notification_id:
            if first != self._max_notification_id + 1:
                log.warning(
                    "store %s: notification %d follows %d (a gap)",
                    self.store,
                    first,
                    self._max_notification_id,
                )
            self._max_notification_id = run.last_notification_id

    def _add_writer(self, topic: str, writer: Identity) -> None:
        # Kept as ints: hashing an int is much cheaper than hashing an Identity.
        writers = self._writers.get(topic)
        if writers is None:
            self._writers[topic] = {writer.value}
        else:
            writers.add(writer.value)

    # --- ownership ----------------------------------------------------------------------

    @property
    def owner(self) -> Identity:
        """The identity the store belongs to (the first to open it; that never changes).

        Asked of the server once, with a one-off query: the replica does not follow the
        store's ``event_log`` row, which every append changes.
        """
        if self._owner is None:
            query = f"SELECT * FROM event_log WHERE store = '{self.store}'"  # no quotes in it
            try:
                rows = self.connection.one_off_query(query)["event_log"]
            except (InnerUniverseError, TimeoutError) as exc:
                raise _translate(exc) from exc
            if not rows:  # pragma: no cover - __init__ opened the store
                raise OperationalError(f"store {self.store!r} has no log row")
            self._owner = cast(Identity, rows[0].owner)
        return self._owner

    def set_member(self, identity: Identity, *, writer: bool = True) -> None:
        """Admit ``identity`` as a writer (or, with ``writer=False``, a reader). Owner only."""
        self._call("set_store_member", self.store, identity, writer)

    def remove_member(self, identity: Identity) -> None:
        """Take ``identity``'s access away. Owner only."""
        self._call("remove_store_member", self.store, identity)

    def topic_writers(self, topic: str) -> list[Identity]:
        """Who wrote the events and snapshots with ``topic`` held here."""
        with self._cond:
            return sorted((Identity(w) for w in self._writers.get(topic, ())), key=str)

    # --- writes -------------------------------------------------------------------------

    def _call(self, reducer: str, *args: Any) -> None:
        if self._closed:
            raise OperationalError(f"the connection of store {self.store!r} is closed")
        try:
            self.connection.call_reducer(reducer, *args)
        except (InnerUniverseError, TimeoutError) as exc:
            raise _translate(exc) from exc

    @staticmethod
    def _rows(stored_events: Sequence[StoredEvent]) -> list[tuple[str, int, str, bytes]]:
        """The reducer's NewEvent tuples; each originator id is made text once per batch.

        A batch usually holds one aggregate's events, all with the very same id object:
        compared by identity first, since hashing a UUID runs Python code.
        """
        texts: dict[UUID | str, str] = {}
        rows = []
        last: UUID | str | None = None
        text = ""
        for e in stored_events:
            oid = e.originator_id
            if oid is not last:
                text = texts.get(oid) or texts.setdefault(oid, str(oid))
                last = oid
            rows.append((text, e.originator_version, e.topic, e.state))
        return rows

    @staticmethod
    def _event_runs(
        stored_events: Sequence[StoredEvent],
    ) -> list[tuple[str, int, list[str], list[bytes]]]:
        """The ``append_runs`` reducer's NewRun tuples: :meth:`_rows` grouped into runs of
        consecutive versions of one originator (a save of one aggregate is one run)."""
        runs: list[tuple[str, int, list[str], list[bytes]]] = []
        topics: list[str] = []
        states: list[bytes] = []
        last = ""
        expected: int | None = None  # the version that would continue the current run
        for text, version, topic, state in StoreReplica._rows(stored_events):
            if text == last and version == expected:
                topics.append(topic)
                states.append(state)
            else:
                topics, states, last = [topic], [state], text
                runs.append((text, version, topics, states))
            expected = version + 1 if isinstance(version, int) else None
        return runs

    def append_events(
        self, stored_events: Sequence[StoredEvent], tracking: Tracking | None = None
    ) -> list[int]:
        """Record a batch (and a tracking position) atomically; returns the new notification ids.

        Sent as runs (``append_runs``): the originator id once per run, not per event;
        to a module published before that reducer, one row per event (``append_events``).
        The ids come from the replica: the call returns only after its transaction
        is applied here. The module numbers a batch's events consecutively in batch
        order, so the first event's id, found by (originator id, version), gives them all.
        """
        batch: Sequence[tuple[str, int, Any, Any]]
        if self._sends_runs:
            reducer, batch = "append_runs", self._event_runs(stored_events)
        else:
            reducer, batch = "append_events", self._rows(stored_events)
        position = (
            None if tracking is None else (tracking.application_name, tracking.notification_id)
        )
        if not batch and position is None:
            return []
        if batch:
            self._know_id(stored_events[0].originator_id, batch[0][0])
        self._call(reducer, self.store, batch, position)
        if not batch:
            return []
        originator_id, version, _, _ = batch[0]
        with self._cond:
            stream = self._events.get(originator_id)
            run = None if stream is None else stream.run_holding(version)
        if run is None:  # pragma: no cover - the SDK guarantees read-your-writes
            raise ProgrammingError(f"event {originator_id} v{version} not in the replica")
        first = run.first_notification_id + version - run.first_version
        return list(range(first, first + len(stored_events)))

    def append_snapshots(self, stored_events: Sequence[StoredEvent]) -> None:
        rows = self._rows(stored_events)
        if rows:
            self._call("append_snapshots", self.store, rows)

    # --- reads --------------------------------------------------------------------------

    def select(
        self,
        purpose: Literal["events", "snapshots"],
        originator_id: UUID | str,
        gt: int | None,
        lte: int | None,
        desc: bool,
        limit: int | None,
    ) -> list[StoredEvent]:
        streams = self._events if purpose == "events" else self._snapshots
        with self._cond:
            stream = streams.get(str(originator_id))
            return [] if stream is None else stream.select(gt, lte, desc, limit)

    def notifications(
        self,
        first: int,
        limit: int,
        last: int | None = None,
        topics: Sequence[str] = (),
    ) -> list[Notification]:
        """Up to ``limit`` notifications with ids in [first, last], in id order. Lock held."""
        hi = self._max_notification_id if last is None else min(last, self._max_notification_id)
        first = max(first, 1)
        if limit <= 0 or hi < first:
            return []
        starts = self._run_starts
        begin = max(bisect.bisect_right(starts, first) - 1, 0)
        end = bisect.bisect_right(starts, hi)
        indexes: Sequence[int] = range(begin, end)  # stopped early, once `limit` are found
        wanted: set[str] = set()
        if topics:
            wanted = set(topics)
            # Each run listed under a wanted topic holds at least one such event, and
            # only the first may hold it before `first`: `limit + 1` runs per topic do.
            chosen: set[int] = set()
            for topic in wanted:
                ids = self._topics.get(topic, [])
                lo = bisect.bisect_left(ids, starts[begin]) if starts else 0
                chosen.update(ids[lo : min(bisect.bisect_right(ids, hi, lo=lo), lo + limit + 1)])
            indexes = [bisect.bisect_left(starts, nid) for nid in sorted(chosen)]
        found: list[Notification] = []
        for i in indexes:
            run = self._runs[i]
            nid = run.first_notification_id
            oid, version, topics, states = (
                run.originator_id,
                run.first_version,
                run.topics,
                run.states,
            )
            for k in range(max(first - nid, 0), min(hi - nid + 1, len(states))):
                topic = topics[k]
                if wanted and topic not in wanted:
                    continue
                found.append(Notification(oid, version + k, topic, states[k], nid + k))
                if len(found) == limit:
                    return found
        return found

    def select_notifications(
        self, first: int, limit: int, last: int | None, topics: Sequence[str]
    ) -> list[Notification]:
        with self._cond:
            return self.notifications(first, limit, last, topics)

    def max_notification_id(self) -> int | None:
        with self._cond:
            return self._max_notification_id or None

    def max_tracking_id(self, application_name: str) -> int | None:
        with self._cond:
            return self._tracking.get(application_name)

    def wait_for(
        self,
        ready: Any,
        timeout: float | None,
        interrupt: threading.Event | None = None,
        stopped: Any = None,
    ) -> bool:
        """Block until ``ready()`` (called with the lock held) is true; False on timeout.

        Woken by each transaction of this store; re-checks the connection (and the
        interrupt) at least every second, so a dropped connection cannot hang a waiter.
        """
        deadline = None if timeout is None else monotonic() + timeout
        with self._cond:
            while True:
                if ready():
                    return True
                if stopped is not None and stopped():
                    return False
                if interrupt is not None and interrupt.is_set():
                    raise WaitInterruptedError
                if self._closed or not self.connection.connection.is_connected:
                    raise OperationalError(f"the connection of store {self.store!r} is closed")
                wait = _LIVENESS_CHECK if interrupt is None else 0.05
                if deadline is not None:
                    remaining = deadline - monotonic()
                    if remaining <= 0:
                        return False
                    wait = min(wait, remaining)
                self._cond.wait(wait)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Stop following the store (and close the connection if this replica opened it)."""
        if self._closed:
            return
        self._closed = True
        self.wake()
        try:
            self.connection.connection.remove_on_transaction(self._on_transaction)
            if self._owns_connection:
                self.connection.disconnect()
            elif self.connection.connection.is_connected:
                self.connection.unsubscribe(self._subscription)
        except (InnerUniverseError, TimeoutError, ValueError):
            log.debug("closing store %s", self.store, exc_info=True)


# --- recorders ------------------------------------------------------------------------------


class SpacetimeAggregateRecorder(AggregateRecorder):
    """Events (purpose "events") or snapshots (purpose "snapshots") of one store."""

    def __init__(self, replica: StoreReplica, purpose: str = "events") -> None:
        if purpose not in ("events", "snapshots"):
            raise ValueError(f"unknown recorder purpose {purpose!r}; use 'events' or 'snapshots'")
        self.replica = replica
        self.purpose: Literal["events", "snapshots"] = (
            "events" if purpose == "events" else "snapshots"
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if self.purpose == "snapshots":
            self.replica.append_snapshots(stored_events)
        else:
            self.replica.append_events(stored_events)
        return None

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        return self.replica.select(self.purpose, originator_id, gt, lte, desc, limit)


class SpacetimeApplicationRecorder(SpacetimeAggregateRecorder, ApplicationRecorder):
    """A store's events with their application-wide notification log."""

    def __init__(self, replica: StoreReplica) -> None:
        super().__init__(replica, "events")

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self.replica.append_events(stored_events)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        first = 1 if start is None else (start if inclusive_of_start else start + 1)
        return self.replica.select_notifications(first, limit, stop, topics)

    def max_notification_id(self) -> int | None:
        return self.replica.max_notification_id()

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> SpacetimeSubscription:
        return SpacetimeSubscription(self, gt=gt, topics=topics)


class SpacetimeSubscription(Subscription[SpacetimeApplicationRecorder]):
    """Yields the store's notifications after ``gt``, then new ones as they are committed.

    No polling: ``__next__`` sleeps on the replica's condition, which the
    subscription callback notifies when a transaction of this store arrives.
    """

    def __init__(
        self,
        recorder: SpacetimeApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        super().__init__(recorder, gt=gt, topics=topics)
        self._replica = recorder.replica
        self._buffer: list[Notification] = []
        self._index = 0

    def stop(self) -> None:
        super().stop()
        self._replica.wake()

    def _fill(self) -> bool:
        after = self._last_notification_id or 0
        self._buffer = self._replica.notifications(after + 1, 500, None, self._topics)
        self._index = 0
        return bool(self._buffer)

    def __next__(self) -> Notification:
        if self._index >= len(self._buffer) and not self._has_been_stopped:
            self._replica.wait_for(self._fill, None, stopped=lambda: self._has_been_stopped)
        if self._has_been_stopped:
            raise StopIteration
        notification = self._buffer[self._index]
        self._index += 1
        self._last_notification_id = notification.id
        return notification


class SpacetimeTrackingRecorder(TrackingRecorder):
    """A store's positions in the logs of the applications it follows."""

    def __init__(self, replica: StoreReplica) -> None:
        self.replica = replica

    def insert_tracking(self, tracking: Tracking) -> None:
        self.replica.append_events([], tracking)

    def max_tracking_id(self, application_name: str) -> int | None:
        return self.replica.max_tracking_id(application_name)

    def wait(
        self,
        application_name: str,
        notification_id: int | None,
        timeout: float = 1.0,
        interrupt: threading.Event | None = None,
    ) -> None:
        """Like TrackingRecorder.wait, but woken by the subscription instead of polling."""

        def ready() -> bool:
            return self.has_tracking_id(application_name, notification_id)

        if not self.replica.wait_for(ready, timeout, interrupt):
            msg = (
                f"Timed out waiting for notification {notification_id} "
                f"from application '{application_name}' to be processed"
            )
            raise TimeoutError(msg)


class SpacetimeProcessRecorder(
    SpacetimeTrackingRecorder, SpacetimeApplicationRecorder, ProcessRecorder
):
    """Events and the tracking position that produced them, recorded in one transaction."""

    def __init__(self, replica: StoreReplica) -> None:
        SpacetimeApplicationRecorder.__init__(self, replica)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        return self.replica.append_events(stored_events, tracking)


# --- the factory ----------------------------------------------------------------------------


class Factory(InfrastructureFactory[SpacetimeTrackingRecorder]):
    """Builds the recorders of one application, on one connection and one store replica."""

    SPACETIMEDB_URI = "SPACETIMEDB_URI"
    SPACETIMEDB_DATABASE = "SPACETIMEDB_DATABASE"
    SPACETIMEDB_TOKEN = "SPACETIMEDB_TOKEN"
    SPACETIMEDB_STORE = "SPACETIMEDB_STORE"
    SPACETIMEDB_TIMEOUT = "SPACETIMEDB_TIMEOUT"
    SPACETIMEDB_COMPRESSION = "SPACETIMEDB_COMPRESSION"
    ORIGINATOR_ID_TYPE = "ORIGINATOR_ID_TYPE"
    TRUSTED_TOPIC_MODULES = "TRUSTED_TOPIC_MODULES"

    aggregate_recorder_class = SpacetimeAggregateRecorder
    application_recorder_class = SpacetimeApplicationRecorder
    tracking_recorder_class = SpacetimeTrackingRecorder
    process_recorder_class = SpacetimeProcessRecorder

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        self.uri = self._required(self.SPACETIMEDB_URI)
        self.database = self._required(self.SPACETIMEDB_DATABASE)
        self.token = self.env.get(self.SPACETIMEDB_TOKEN) or None
        store = self.env.get(self.SPACETIMEDB_STORE) or self.env.name or "default"
        try:
            self.store = check_store_name(store)
        except ValueError as exc:
            keys = ", ".join(self.env.create_keys(self.SPACETIMEDB_STORE))
            raise OSError(f"{exc} (set one of: {keys})") from None
        id_type = self.env.get(self.ORIGINATOR_ID_TYPE, "uuid").lower()
        if id_type not in ("uuid", "text"):
            raise OSError(
                f"Invalid {self.ORIGINATOR_ID_TYPE} {id_type!r}, must be 'uuid' or 'text'"
            )
        self.originator_id_type: OriginatorIdType = "uuid" if id_type == "uuid" else "text"
        timeout = self.env.get(self.SPACETIMEDB_TIMEOUT, "30")
        try:
            self.timeout = float(timeout)
        except ValueError:
            raise OSError(
                f"{self.SPACETIMEDB_TIMEOUT} must be a number of seconds: {timeout!r}"
            ) from None
        compression = self.env.get(self.SPACETIMEDB_COMPRESSION, "None").title()
        if compression not in _COMPRESSIONS:
            raise OSError(
                f"{self.SPACETIMEDB_COMPRESSION} must be one of {', '.join(_COMPRESSIONS)}: "
                f"{compression!r}"
            )
        self.compression = cast(CompressionName, compression)
        trusted = self.env.get(self.TRUSTED_TOPIC_MODULES, "")
        self.trusted_topic_modules = tuple(m.strip() for m in trusted.split(",") if m.strip())
        self._replica: StoreReplica | None = None
        self._lock = threading.Lock()

    def _required(self, key: str) -> str:
        value = self.env.get(key)
        if not value:
            keys = ", ".join(self.env.create_keys(key))
            raise OSError(f"SpacetimeDB setting not found in environment with keys: {keys}")
        return value

    @property
    def replica(self) -> StoreReplica:
        """The store's replica, connecting on first use (one connection per factory)."""
        with self._lock:
            if self._replica is None:
                replica: list[StoreReplica] = []

                def closed(_conn: object, _error: Exception | None) -> None:
                    for r in replica:
                        r.wake()

                try:
                    connection = (
                        ConnectionBuilder()
                        .with_uri(self.uri)
                        .with_database(self.database)
                        .with_token(self.token)
                        .with_compression(self.compression)
                        .on_disconnect(closed)
                        .connect_threaded(self.timeout)
                    )
                except InnerUniverseError as exc:
                    raise OperationalError(str(exc)) from exc
                try:
                    self._replica = StoreReplica(
                        connection,
                        self.store,
                        originator_id_type=self.originator_id_type,
                        owns_connection=True,
                    )
                except BaseException:
                    connection.disconnect()
                    raise
                replica.append(self._replica)
            return self._replica

    def mapper(
        self,
        transcoder: Transcoder | None = None,
        mapper_class: type[Mapper[Any]] | None = None,
    ) -> Mapper[Any]:
        """A :class:`TrustedTopicMapper` (unless MAPPER_TOPIC names a mapper that is not one)."""
        if mapper_class is None:
            topic = self.env.get(self.MAPPER_TOPIC)
            mapper_class = resolve_topic(topic) if topic else TrustedTopicMapper
        origin = get_origin(mapper_class) or mapper_class
        if not (isinstance(origin, type) and issubclass(origin, TrustedTopicMapper)):
            log.warning("mapper %r does not check stored topics before importing them", origin)
            return super().mapper(transcoder, mapper_class)
        return origin(
            transcoder or self.transcoder(),
            compressor=self.compressor(),
            cipher=self.cipher(),
            trusted_modules=self.trusted_topic_modules,
            writers=lambda topic: self.replica.topic_writers(topic),
        )

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return self.aggregate_recorder_class(self.replica, purpose)

    def application_recorder(self) -> ApplicationRecorder:
        cls = self._recorder_class(self.APPLICATION_RECORDER_TOPIC, self.application_recorder_class)
        return cls(self.replica)

    def tracking_recorder(
        self, tracking_recorder_class: type[SpacetimeTrackingRecorder] | None = None
    ) -> SpacetimeTrackingRecorder:
        cls = tracking_recorder_class or self._recorder_class(
            self.TRACKING_RECORDER_TOPIC, self.tracking_recorder_class
        )
        if not issubclass(cls, SpacetimeTrackingRecorder):
            raise ProgrammingError(f"{cls!r} is not a SpacetimeTrackingRecorder")
        return cls(self.replica)

    def process_recorder(self) -> ProcessRecorder:
        cls = self._recorder_class(self.PROCESS_RECORDER_TOPIC, self.process_recorder_class)
        return cls(self.replica)

    def _recorder_class(self, key: str, default: type[_R]) -> type[_R]:
        topic = self.env.get(key)
        if not topic:
            return default
        cls = resolve_topic(topic)
        if not (isinstance(cls, type) and issubclass(cls, default)):
            raise ProgrammingError(f"{key}={topic!r} is not a subclass of {default.__name__}")
        return cls

    def close(self) -> None:
        with self._lock:
            if self._replica is not None:
                self._replica.close()
                self._replica = None
        super().close()
