"""The connection API in one import (its parts live in one module per concept).

builder.py        ConnectionBuilder, connect(): configure and open
driver.py         DbConnection: the asyncio driver, sessions, reconnect, resync
tables.py         conn.db table handles and callback registries, conn.reducers
subscriptions.py  SubscriptionHandle
outbox.py         the calls waiting for a certain outcome (memory or SQLite file)
threaded.py       ThreadedConnection: the synchronous API
schema_fetch.py   fetch_schema(): a module's schema over HTTP
"""

from __future__ import annotations

from .builder import ConnectionBuilder, connect
from .driver import DbConnection
from .schema_fetch import fetch_schema
from .settings import KeepAlive, ReconnectPolicy
from .subscriptions import SubscriptionHandle
from .tables import (
    CallOptions,
    ReducerCallback,
    Reducers,
    RowCallback,
    TableHandle,
    Tables,
    TransactionCallback,
    UpdateCallback,
)
from .threaded import ThreadedConnection

__all__ = [
    "CallOptions",
    "ConnectionBuilder",
    "DbConnection",
    "KeepAlive",
    "ReconnectPolicy",
    "ReducerCallback",
    "Reducers",
    "RowCallback",
    "SubscriptionHandle",
    "TableHandle",
    "Tables",
    "ThreadedConnection",
    "TransactionCallback",
    "UpdateCallback",
    "connect",
    "fetch_schema",
]
