"""A Python client SDK for SpacetimeDB 1.x (the v1 binary WebSocket protocol).

It serves any SpacetimeDB module: the schema is read from the server, so rows
decode into dataclasses and reducer arguments are checked without generated code.

    from inner_universe.spacetime import LocalServer, connect

    async with connect("http://127.0.0.1:3000", "my-database") as conn:
        await conn.subscribe("SELECT * FROM agent")
        conn.db.agent.on_insert(lambda ctx, row: print("new agent", row.name))
        await conn.reducers.register_agent("planner", "planning", b"")
"""

from __future__ import annotations

from .cache import TableDiff, TransactionDiff
from .connection import (
    CallOptions,
    ConnectionBuilder,
    DbConnection,
    KeepAlive,
    ReconnectPolicy,
    SubscriptionHandle,
    TableHandle,
    ThreadedConnection,
    connect,
    fetch_schema,
)
from .events import (
    EventContext,
    ReconnectedEvent,
    ReducerEvent,
    SubscribeAppliedEvent,
    UnknownTransactionEvent,
    UnsubscribeAppliedEvent,
)
from .schema import CallKey, ModuleSchema
from .server import Credentials, LocalServer
from .types import ConnectionId, Identity, ScheduleAt, TimeDuration, Timestamp

__all__ = [
    "CallKey",
    "CallOptions",
    "ConnectionBuilder",
    "ConnectionId",
    "Credentials",
    "DbConnection",
    "EventContext",
    "Identity",
    "KeepAlive",
    "LocalServer",
    "ModuleSchema",
    "ReconnectPolicy",
    "ReconnectedEvent",
    "ReducerEvent",
    "ScheduleAt",
    "SubscribeAppliedEvent",
    "SubscriptionHandle",
    "TableDiff",
    "TableHandle",
    "ThreadedConnection",
    "TimeDuration",
    "Timestamp",
    "TransactionDiff",
    "UnknownTransactionEvent",
    "UnsubscribeAppliedEvent",
    "connect",
    "fetch_schema",
]
