"""Wiring NERV components to a live connection: the one module importing both layers.

Why here: ``spacetime`` knows nothing of NERV, and the components themselves only
consume diffs, so they can be fed synthetic transactions in tests. These
functions hook them to a connection's callbacks in one call, for both the
asyncio :class:`DbConnection` and the :class:`ThreadedConnection` (whose
callbacks, and so the components' updates, run on the connection's thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from ..spacetime.connection import ConnectionBuilder, DbConnection, ThreadedConnection
from ..spacetime.events import EventContext, ReducerEvent
from ..spacetime.sats import attribute_name
from .bus import EventBus
from .projector import Projection, StateProjector

__all__ = [
    "attach_event_bus",
    "attach_projector",
    "event_bus_hooks",
    "primary_keys",
]

T = TypeVar("T")
AnyConnection = DbConnection | ThreadedConnection

# Keeps the disconnect watchers alive (the loop holds tasks only weakly).
_watchers: set[asyncio.Task[None]] = set()


def _inner(conn: AnyConnection) -> DbConnection:
    return conn.connection if isinstance(conn, ThreadedConnection) else conn


def _on_loop(conn: AnyConnection, fn: Callable[[], T]) -> T:
    """Run ``fn`` on the connection's loop thread, so it sees no transaction half-applied."""
    if isinstance(conn, DbConnection):
        return fn()  # an asyncio connection is only ever used from its own loop

    return conn.run_on_connection_thread(fn)


def primary_keys(conn: AnyConnection) -> dict[str, str | None]:
    """Table -> the row attribute holding its primary key (None if it has none)."""
    return {
        name: None if table.primary_key is None else attribute_name(table.primary_key)
        for name, table in _inner(conn).schema.tables.items()
    }


def _wire_transactions(conn: DbConnection, bus: EventBus, sender: Any) -> None:
    def on_transaction(ctx: EventContext) -> None:
        bus.publish_transaction(ctx.diff, sequence=ctx.sequence, event=ctx.event, sender=sender)

    def on_reducer(ctx: EventContext, event: ReducerEvent) -> None:
        bus.publish_reducer(event, sequence=ctx.sequence, sender=sender)

    conn.on_transaction(on_transaction)
    conn.on_reducer(None, on_reducer)


def attach_event_bus(
    conn: AnyConnection,
    bus: EventBus | None = None,
    *,
    sender: Any = None,
    watch_disconnect: bool = True,
    history: int = 1000,
) -> EventBus:
    """Publish ``conn``'s row changes, reducer outcomes and its disconnect on a bus.

    ``sender`` (default: the :class:`DbConnection`, also for a threaded one) is
    what receivers can filter on. Several connections may share one bus. For
    ``connection.connect`` / ``connect_error``, which happen before a connection
    exists, use :func:`event_bus_hooks` on the builder instead.
    """
    bus = bus if bus is not None else EventBus(history=history)
    inner = _inner(conn)
    source = inner if sender is None else sender

    def wire() -> None:
        _wire_transactions(inner, bus, source)
        if watch_disconnect:
            _watch_disconnect(inner, bus, source)

    _on_loop(conn, wire)
    return bus


def _watch_disconnect(conn: DbConnection, bus: EventBus, sender: Any) -> None:
    async def watch() -> None:
        error = await conn.wait_closed()
        bus.publish("connection.disconnect", sender, error=error)

    task = asyncio.get_running_loop().create_task(watch(), name="event-bus-disconnect")
    _watchers.add(task)
    task.add_done_callback(_watchers.discard)


def event_bus_hooks(
    builder: ConnectionBuilder, bus: EventBus | None = None, *, history: int = 1000
) -> EventBus:
    """Register a bus on a builder: every event of the connections it opens, connect included.

    Connection events are sent by the :class:`DbConnection` (by the builder for
    ``connection.connect_error``, when there is no connection).
    """
    bus = bus if bus is not None else EventBus(history=history)

    def on_connect(conn: DbConnection, identity: Any, token: str) -> None:
        _wire_transactions(conn, bus, conn)
        bus.publish("connection.connect", conn)

    builder.on_connect(on_connect)
    builder.on_disconnect(
        lambda conn, error: bus.publish("connection.disconnect", conn, error=error)
    )
    builder.on_connect_error(
        lambda error: bus.publish("connection.connect_error", builder, error=error)
    )
    return bus


def attach_projector(
    conn: AnyConnection,
    projector: StateProjector | None = None,
    *,
    window: int = 1000,
    projections: dict[str, Projection[Any]] | None = None,
) -> StateProjector:
    """Keep a :class:`StateProjector` of ``conn``'s replica: one version per applied transaction.

    A new projector starts (version 0) from the rows already in the cache. Its
    versions' ``delta.sequence`` is the connection's ``ctx.sequence``.
    """

    def wire() -> StateProjector:
        inner = _inner(conn)
        nonlocal projector
        if projector is None:
            projector = StateProjector(
                primary_keys(conn),
                window=window,
                initial={name: table.iter() for name, table in inner.cache.tables.items()},
            )
        for name, projection in (projections or {}).items():
            projector.register(name, projection)
        target = projector

        def on_transaction(ctx: EventContext) -> None:
            target.apply(ctx.diff, sequence=ctx.sequence, event=ctx.event)

        inner.on_transaction(on_transaction)
        return target

    return _on_loop(conn, wire)
