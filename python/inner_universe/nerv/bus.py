"""EventBus: every row change, reducer outcome and connection event as a blinker signal.

Why a bus on top of the SDK's callbacks: components that should not know about each
other (a UI, a logger, the TemporalStore) each subscribe to the names they care
about, filter by sender or payload, and a receiver that raises cannot break the
others or the connection.

Signal names (``ALL`` = ``"*"`` receives every event as well):

=============================  ===================================================
``<table>.insert``             a row appeared (``event.new``)
``<table>.update``             a row changed (``event.old`` -> ``event.new``)
``<table>.delete``             a row went away (``event.old``)
``transaction``                one per applied transaction, after its rows (``event.diff``)
``reducer.<name>``             a reducer outcome, committed or failed (``event.event``)
``connection.connect``         the connection was identified
``connection.disconnect``      it closed (``event.error`` is None for a clean close)
``connection.connect_error``   it could not be opened (``event.error``)
``bus.receiver_error``         a receiver raised (``event.error``, ``event.cause``)
=============================  ===================================================

Receivers have blinker's signature, ``receiver(sender, *, event: BusEvent)``, and
are held weakly by default (blinker's rule: a receiver whose object dies
disconnects itself). A receiver returning an awaitable (an ``async def``) has it
awaited on the running event loop, one at a time, in emission order;
``await bus.drain()`` (or ``bus.wait_idle()`` from another thread) waits for them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from blinker import ANY, NamedSignal, Namespace

from ..spacetime.cache import TransactionDiff

__all__ = [
    "ALL",
    "ANY",
    "RECEIVER_ERROR",
    "TRANSACTION",
    "BusEvent",
    "EventBus",
    "ReceiverError",
]

log = logging.getLogger(__name__)

ALL = "*"
"""The catch-all signal: its receivers get every event, after the named signal's."""
TRANSACTION = "transaction"
RECEIVER_ERROR = "bus.receiver_error"

Receiver = Callable[..., Any]
Predicate = Callable[["BusEvent"], bool]
R = TypeVar("R", bound=Receiver)


@dataclass(frozen=True, slots=True)
class BusEvent:
    """One published event: what happened, from which sender, in which transaction."""

    name: str
    """The signal it was sent on, e.g. ``"agent.update"``."""
    sender: Any
    index: int
    """Position in this bus's emission order: 0, 1, 2, ..."""
    sequence: int | None = None
    """The source connection's transaction sequence (commit order); None for connection events."""
    event: Any = None
    """Why the rows changed: ReducerEvent, SubscribeAppliedEvent, ... (``ctx.event``)."""
    table: str | None = None
    old: Any = None
    new: Any = None
    diff: TransactionDiff | None = None
    """The whole transaction this event belongs to."""
    error: BaseException | None = None
    cause: BusEvent | None = None
    """For ``bus.receiver_error``: the event whose delivery failed."""

    @property
    def kind(self) -> str:
        """The last part of the name: ``insert``, ``update``, ``delete``, ``connect``, ..."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def row(self) -> Any:
        """The row as it is now (``new``), or as it was for a delete (``old``)."""
        return self.new if self.new is not None else self.old


@dataclass(frozen=True, slots=True)
class ReceiverError:
    """A receiver (or its filter) raised while an event was delivered."""

    receiver: Receiver
    event: BusEvent
    error: BaseException


def _receiver_key(receiver: Receiver) -> Hashable:
    """A stable identity for a receiver (bound methods are new objects on each access)."""
    if inspect.ismethod(receiver):
        return (id(receiver.__func__), id(receiver.__self__))
    return id(receiver)


class EventBus:
    """In-process publish/subscribe over blinker signals, with history and error isolation.

    Thread-safe for publishing from several connection threads: emission is
    serialised, so ``index`` order is delivery order.
    """

    def __init__(self, *, history: int = 1000, errors: int = 100) -> None:
        self._signals = Namespace()
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._index = 0
        self._history: deque[BusEvent] = deque(maxlen=history)
        self._errors: deque[ReceiverError] = deque(maxlen=errors)
        # (signal name, receiver key) -> (predicate, weak ref kept so its callback can clean up)
        self._filters: dict[tuple[str, Hashable], tuple[Predicate, object]] = {}
        self._pending: deque[tuple[Receiver, BusEvent, Awaitable[Any]]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._worker_loop: asyncio.AbstractEventLoop | None = None

    # --- subscribing ----------------------------------------------------------------

    def signal(self, name: str) -> NamedSignal:
        """The blinker signal behind ``name`` (created on first use)."""
        return self._signals.signal(name)

    def connect(
        self,
        name: str,
        receiver: R,
        *,
        sender: Any = ANY,
        where: Predicate | None = None,
        weak: bool = True,
    ) -> R:
        """Call ``receiver(sender, event=...)`` for events on ``name`` (``"*"`` for all).

        ``sender`` limits it to one sender (by identity, as blinker does); ``where``
        to events for which ``where(event)`` is true. Weak by default: keep a
        reference to the receiver, or pass ``weak=False``.
        """
        key = (name, _receiver_key(receiver))
        self._filters.pop(key, None)
        if where is not None:
            ref: object = None
            if weak:

                def forget(_: object, key: tuple[str, Hashable] = key) -> None:
                    self._filters.pop(key, None)

                ref = (
                    weakref.WeakMethod(receiver, forget)
                    if inspect.ismethod(receiver)
                    else weakref.ref(receiver, forget)
                )
            self._filters[key] = (where, ref)
        self.signal(name).connect(receiver, sender, weak=weak)
        return receiver

    def on(
        self, name: str, *, sender: Any = ANY, where: Predicate | None = None
    ) -> Callable[[R], R]:
        """Decorator form of :meth:`connect`; strong, like blinker's ``connect_via``."""

        def decorator(receiver: R) -> R:
            return self.connect(name, receiver, sender=sender, where=where, weak=False)

        return decorator

    def disconnect(self, name: str, receiver: Receiver, *, sender: Any = ANY) -> None:
        if sender is ANY:
            self._filters.pop((name, _receiver_key(receiver)), None)
        self.signal(name).disconnect(receiver, sender)

    # --- publishing -----------------------------------------------------------------

    def publish(self, name: str, sender: Any = None, **fields: Any) -> BusEvent:
        """Publish one event on ``name``; returns it once every sync receiver has run."""
        with self._lock:
            event = BusEvent(name, sender, self._index, **fields)
            self._index += 1
            self._history.append(event)
            self._deliver(event)
        return event

    def publish_transaction(
        self, diff: TransactionDiff, *, sequence: int, event: Any = None, sender: Any = None
    ) -> None:
        """Publish one applied transaction: its row events, then ``transaction``.

        Per table: deletes, updates, then inserts (the order the cache applies them).
        """
        with self._lock:
            for table, changes in diff.tables.items():
                common = {"sequence": sequence, "event": event, "table": table, "diff": diff}
                for row in changes.deletes:
                    self.publish(f"{table}.delete", sender, old=row, **common)
                for old, new in changes.updates:
                    self.publish(f"{table}.update", sender, old=old, new=new, **common)
                for row in changes.inserts:
                    self.publish(f"{table}.insert", sender, new=row, **common)
            self.publish(TRANSACTION, sender, sequence=sequence, event=event, diff=diff)

    def publish_reducer(
        self, reducer_event: Any, *, sequence: int | None, sender: Any = None
    ) -> BusEvent:
        """Publish a reducer outcome (committed or failed) on ``reducer.<name>``."""
        return self.publish(
            f"reducer.{reducer_event.reducer}", sender, sequence=sequence, event=reducer_event
        )

    def _deliver(self, event: BusEvent) -> None:
        for name in (event.name, ALL):
            signal = self._signals.get(name)
            if signal is None or signal.is_muted:
                continue
            for receiver in list(signal.receivers_for(event.sender)):
                try:
                    entry = self._filters.get((name, _receiver_key(receiver)))
                    if entry is not None and not entry[0](event):
                        continue
                    result = receiver(event.sender, event=event)
                except Exception as exc:
                    self._receiver_failed(receiver, event, exc)
                    continue
                if inspect.isawaitable(result):
                    self._enqueue(receiver, event, result)

    def _receiver_failed(self, receiver: Receiver, event: BusEvent, exc: BaseException) -> None:
        log.error("bus receiver %r failed on %s", receiver, event.name, exc_info=exc)
        with self._lock:
            self._errors.append(ReceiverError(receiver, event, exc))
            if event.name != RECEIVER_ERROR:  # an error handler's own failure is only logged
                self.publish(RECEIVER_ERROR, event.sender, error=exc, cause=event)

    # --- async receivers ----------------------------------------------------------------

    def _worker_alive(self) -> bool:
        """Whether a worker will still run; one whose loop was stopped or closed will not."""
        if self._worker is None:
            return False
        loop = self._worker_loop
        if self._worker.done() or loop is None or loop.is_closed() or not loop.is_running():
            self._worker = None
            self._idle.notify_all()
            return False
        return True

    def _enqueue(self, receiver: Receiver, event: BusEvent, awaitable: Awaitable[Any]) -> None:
        with self._lock:
            self._pending.append((receiver, event, awaitable))
            if not self._worker_alive():
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    return  # no loop here: it waits for ``await bus.drain()``
                self._start_worker(loop)

    def _start_worker(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
        self._worker_loop = loop
        self._worker = loop.create_task(self._work(), name="event-bus")
        return self._worker

    async def _work(self) -> None:
        """Await queued receivers one at a time, so each sees events in emission order."""
        while True:
            with self._lock:
                if not self._pending:
                    self._worker = None
                    self._idle.notify_all()
                    return
                receiver, event, awaitable = self._pending.popleft()
            try:
                await awaitable
            except Exception as exc:
                self._receiver_failed(receiver, event, exc)

    async def drain(self) -> None:
        """Wait until every async receiver scheduled so far has finished."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                worker = self._worker if self._worker_alive() else None
                if worker is None:
                    if not self._pending:
                        return
                    worker = self._start_worker(loop)
                if worker is asyncio.current_task():
                    raise RuntimeError("drain() awaited from an async receiver would wait forever")
                same_loop = self._worker_loop is loop
            if same_loop:
                await asyncio.shield(worker)
            else:
                await asyncio.to_thread(self.wait_idle)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no async receiver is pending (for threads without the bus's loop)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._worker is None and not self._pending, timeout)

    # --- inspection -------------------------------------------------------------------

    def history(self, name: str | None = None) -> list[BusEvent]:
        """The most recent events (bounded, oldest first), optionally only those on ``name``."""
        with self._lock:
            events = list(self._history)
        return events if name is None else [e for e in events if e.name == name]

    @property
    def history_size(self) -> int | None:
        return self._history.maxlen

    def errors(self) -> list[ReceiverError]:
        """The most recent receiver failures (bounded, oldest first)."""
        with self._lock:
            return list(self._errors)

    @property
    def published(self) -> int:
        """How many events this bus has published in all."""
        return self._index

    def names(self) -> Iterable[str]:
        """The signal names that exist so far (connected to or sent on)."""
        return list(self._signals)
