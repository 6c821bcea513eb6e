"""The connection: protocol + cache + callbacks + transport, driven by asyncio.

:class:`DbConnection` owns one :class:`ClientProtocol` (pure state, bytes in and
events out), one :class:`ClientCache` and one transport. A receive task feeds
server messages to the protocol and dispatches its events: the cache applies
each transaction whole, then row callbacks fire, then waiting calls resume. A
send task writes outgoing messages in order, so reducer calls can be pipelined.

Use it from asyncio with :func:`connect`, or from synchronous code with
:class:`ThreadedConnection` (the same connection on a background event loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import logging
import secrets
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Generator, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ..errors import (
    ConnectError,
    ConnectionClosedError,
    InnerUniverseError,
    InvalidStateError,
    QueryError,
    ReducerError,
    SchemaError,
    SubscriptionError,
)
from . import codec
from . import protocol as p
from .cache import ClientCache, TableCache, TableDiff, TransactionDiff
from .events import (
    Event,
    EventContext,
    ReducerEvent,
    SubscribeAppliedEvent,
    UnknownTransactionEvent,
    UnsubscribeAppliedEvent,
)
from .messages import DatabaseUpdate, QueryId
from .schema import CallKey, ModuleSchema, ReducerSchema
from .transport import Compression, Transport, WebSocketTransport, subscribe_url
from .types import ConnectionId, Identity, TimeDuration

__all__ = [
    "ConnectionBuilder",
    "DbConnection",
    "SubscriptionHandle",
    "TableHandle",
    "ThreadedConnection",
    "connect",
    "fetch_schema",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

RowCallback = Callable[[EventContext, Any], object]
UpdateCallback = Callable[[EventContext, Any, Any], object]
TransactionCallback = Callable[[EventContext], object]
ReducerCallback = Callable[[EventContext, ReducerEvent], object]


def _run_callback(what: str, callback: Callable[..., object], *args: Any) -> None:
    """Call a user callback; an exception is logged and never breaks the connection."""
    try:
        callback(*args)
    except Exception:
        log.exception("%s callback %r raised; continuing", what, callback)


def fetch_schema(uri: str, database: str, timeout: float = 30.0) -> ModuleSchema:
    """Download a database's module schema (RawModuleDefV9) over HTTP."""
    parts = urllib.parse.urlsplit(uri)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    url = urllib.parse.urlunsplit(
        (
            scheme,
            parts.netloc,
            parts.path.rstrip("/") + f"/v1/database/{urllib.parse.quote(database)}/schema",
            "version=9",
            "",
        )
    )
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return ModuleSchema.from_json(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        raise ConnectError(
            f"could not fetch the schema of {database!r}: HTTP {exc.code} {detail}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectError(
            f"could not fetch the schema of {database!r} from {url}: {exc}"
        ) from None


class TableHandle:
    """One table of a connection: its cached rows and its row callbacks.

    ``on_insert(cb)`` / ``on_delete(cb)`` call ``cb(ctx, row)``; ``on_update(cb)``
    calls ``cb(ctx, old, new)`` (tables with a primary key only). Each returns the
    callback, so it can serve as a decorator, and ``remove_on_*`` undoes it.
    """

    def __init__(self, cache: TableCache) -> None:
        self._cache = cache
        self._on_insert: list[RowCallback] = []
        self._on_delete: list[RowCallback] = []
        self._on_update: list[UpdateCallback] = []

    @property
    def name(self) -> str:
        return self._cache.name

    def count(self) -> int:
        return self._cache.count()

    def __len__(self) -> int:
        return self._cache.count()

    def iter(self) -> Iterator[Any]:
        return self._cache.iter()

    def __iter__(self) -> Iterator[Any]:
        return self._cache.iter()

    def find(self, column: str, value: Any) -> Any | None:
        """The row whose unique ``column`` equals ``value``, or None."""
        return self._cache.find(column, value)

    def filter(self, column: str, value: Any) -> list[Any]:
        return self._cache.filter(column, value)

    def on_insert(self, callback: RowCallback) -> RowCallback:
        self._on_insert.append(callback)
        return callback

    def on_delete(self, callback: RowCallback) -> RowCallback:
        self._on_delete.append(callback)
        return callback

    def on_update(self, callback: UpdateCallback) -> UpdateCallback:
        if self._cache.schema.primary_key is None:
            raise SchemaError(f"table {self.name} has no primary key, so it has no updates")
        self._on_update.append(callback)
        return callback

    def remove_on_insert(self, callback: RowCallback) -> None:
        self._on_insert.remove(callback)

    def remove_on_delete(self, callback: RowCallback) -> None:
        self._on_delete.remove(callback)

    def remove_on_update(self, callback: UpdateCallback) -> None:
        self._on_update.remove(callback)

    def _fire(self, ctx: EventContext, diff: TableDiff) -> None:
        for row in diff.deletes:
            for cb in list(self._on_delete):
                _run_callback(f"{self.name}.on_delete", cb, ctx, row)
        for old, new in diff.updates:
            for ucb in list(self._on_update):
                _run_callback(f"{self.name}.on_update", ucb, ctx, old, new)
        for row in diff.inserts:
            for cb in list(self._on_insert):
                _run_callback(f"{self.name}.on_insert", cb, ctx, row)


class Tables:
    """``conn.db``: attribute access to each table's :class:`TableHandle`."""

    def __init__(self, cache: ClientCache) -> None:
        self._handles = {name: TableHandle(table) for name, table in cache.tables.items()}

    def __getattr__(self, name: str) -> TableHandle:
        try:
            return self._handles[name]
        except KeyError:
            raise AttributeError(
                f"no table named {name!r}; tables: {sorted(self._handles)}"
            ) from None

    def __getitem__(self, name: str) -> TableHandle:
        return self.__getattr__(name)

    def __iter__(self) -> Iterator[TableHandle]:
        return iter(self._handles.values())


class Reducers:
    """``conn.reducers``: each reducer of the module as a method, checked against the schema."""

    def __init__(self, schema: ModuleSchema, call: Callable[..., Any]) -> None:
        self._schema = schema
        self._call = call

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        reducer = self._schema.reducer(name)  # raises SchemaError for unknown names

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(reducer.name, *args, **kwargs)

        call.__name__ = reducer.name
        call.__doc__ = f"Call reducer {reducer.name}({', '.join(n for n, _ in reducer.params)})."
        return call


class SubscriptionHandle:
    """A live set of subscribed queries; ``await handle.unsubscribe()`` removes its rows."""

    def __init__(
        self, connection: DbConnection, query_id: QueryId, queries: tuple[str, ...]
    ) -> None:
        self.connection = connection
        self.query_id = query_id
        self.queries = queries
        self._applied: asyncio.Future[SubscriptionHandle] = connection._loop.create_future()
        self._ended: asyncio.Future[None] = connection._loop.create_future()
        self.error: str | None = None

    def is_active(self) -> bool:
        return self._applied.done() and not self._applied.exception() and not self._ended.done()

    def is_ended(self) -> bool:
        return self._ended.done()

    def __await__(self) -> Generator[Any, None, SubscriptionHandle]:
        return self._applied.__await__()

    async def unsubscribe(self) -> None:
        """Remove this subscription; returns once the server has removed its rows."""
        if self._ended.done():
            return
        await self._applied
        self.connection._protocol.unsubscribe(self.query_id)
        self.connection._flush()
        await self._ended


class DbConnection:
    """A live connection to one SpacetimeDB database. Create it with :func:`connect`."""

    def __init__(
        self,
        transport: Transport,
        schema: ModuleSchema,
        *,
        builder: ConnectionBuilder,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._protocol = p.ClientProtocol()
        self.schema = schema
        self.cache = ClientCache(schema)
        self.db = Tables(self.cache)
        self.reducers = Reducers(schema, self.call_reducer)
        self.identity: Identity | None = None
        self.token: str | None = None
        self.connection_id: ConnectionId | None = None
        self._builder = builder
        self._outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._identified: asyncio.Future[None] = self._loop.create_future()
        self._closed: asyncio.Future[Exception | None] = self._loop.create_future()
        self._pending_calls: dict[int, asyncio.Future[ReducerEvent]] = {}
        self._pending_queries: dict[bytes, asyncio.Future[dict[str, list[Any]]]] = {}
        self._subscriptions: dict[QueryId, SubscriptionHandle] = {}
        self._on_transaction: list[TransactionCallback] = []
        self._on_reducer: dict[str | None, list[ReducerCallback]] = {}
        self._sequence = 0
        #: This connection's client id in the call keys it sends (random, never 0).
        self.client_id = secrets.randbits(128) or 1
        self._call_seq = itertools.count(1)
        self._tasks = [
            self._loop.create_task(self._receive_loop(), name="spacetimedb-receive"),
            self._loop.create_task(self._send_loop(), name="spacetimedb-send"),
        ]

    # --- public API -------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._identified.done() and not self._closed.done()

    def subscribe(self, *queries: str) -> SubscriptionHandle:
        """Subscribe to SQL queries (``SELECT * FROM t [WHERE ...]``) as one set.

        ``await conn.subscribe(...)`` returns the handle once the rows are in the
        cache (their insert callbacks have fired), or raises SubscriptionError.
        """
        if not queries:
            raise ValueError("subscribe needs at least one query")
        self._check_open()
        query_id = self._protocol.subscribe(list(queries))
        handle = SubscriptionHandle(self, query_id, tuple(queries))
        self._subscriptions[query_id] = handle
        self._flush()
        return handle

    def call_reducer(
        self, reducer: str, *args: Any, call_key: CallKey | None = None, **kwargs: Any
    ) -> asyncio.Future[ReducerEvent]:
        """Call a reducer; arguments are checked and encoded now, before anything is sent.

        Returns a future resolving to the :class:`ReducerEvent` once the reducer's
        transaction is applied to the cache, or failing with :class:`ReducerError`
        carrying the server's message.

        A reducer that takes a call key gets this connection's next one, unless
        ``call_key`` is given (to resend a call whose outcome is unknown).

        Raises:
            ArgumentError: the arguments do not match the reducer's parameters.
            SchemaError: there is no such reducer.
        """
        schema = self.schema.reducer(reducer)
        key = self._call_key(schema, call_key)
        encoded = codec.encode_args(schema, *args, call_key=key, **kwargs)
        return self._submit_call(reducer, encoded)

    def _call_key(self, reducer: ReducerSchema, given: CallKey | None) -> CallKey | None:
        """The key to send: ``given``, else the next one if the reducer takes keys."""
        if given is not None or not reducer.takes_call_key:
            return given
        return CallKey(self.client_id, next(self._call_seq))

    def _submit_call(self, reducer: str, encoded_args: bytes) -> asyncio.Future[ReducerEvent]:
        """Send an already-encoded reducer call (on the loop thread)."""
        self._check_open()
        request_id = self._protocol.call_reducer(reducer, encoded_args)
        future: asyncio.Future[ReducerEvent] = self._loop.create_future()
        self._pending_calls[request_id] = future
        self._flush()
        return future

    def one_off_query(self, sql: str) -> asyncio.Future[dict[str, list[Any]]]:
        """Run a read-only SQL query once, outside any subscription; the cache is untouched.

        Resolves to ``{table name: [rows]}`` decoded against the schema, or fails
        with :class:`QueryError` carrying the server's message.
        """
        self._check_open()
        message_id = self._protocol.one_off_query(sql)
        future: asyncio.Future[dict[str, list[Any]]] = self._loop.create_future()
        self._pending_queries[message_id] = future
        self._flush()
        return future

    def on_transaction(self, callback: TransactionCallback) -> TransactionCallback:
        """Call ``callback(ctx)`` after every applied change, with ``ctx.diff`` for all tables."""
        self._on_transaction.append(callback)
        return callback

    def remove_on_transaction(self, callback: TransactionCallback) -> None:
        self._on_transaction.remove(callback)

    def on_reducer(self, reducer: str | None, callback: ReducerCallback) -> ReducerCallback:
        """Call ``callback(ctx, event)`` when ``reducer`` (or any, for None) runs, by anyone."""
        if reducer is not None:
            self.schema.reducer(reducer)
        self._on_reducer.setdefault(reducer, []).append(callback)
        return callback

    async def disconnect(self) -> None:
        """Close the connection; on_disconnect callbacks run with no error."""
        await self._close(None)

    async def wait_closed(self) -> Exception | None:
        """Wait until the connection ends; returns the error that ended it, if any."""
        return await self._closed

    async def __aenter__(self) -> DbConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    # --- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed.done():
            raise InvalidStateError("the connection is closed")

    def _flush(self) -> None:
        """Hand everything the protocol queued to the send task, in order."""
        for data in self._protocol.data_to_send():
            self._outgoing.put_nowait(data)

    async def _send_loop(self) -> None:
        try:
            while (data := await self._outgoing.get()) is not None:
                await self._transport.send(data)
        except ConnectionClosedError as exc:
            await self._close(exc)

    async def _receive_loop(self) -> None:
        try:
            while True:
                message = await self._transport.recv()
                self._protocol.receive_message(message)
                for event in self._protocol.events_received():
                    self._dispatch(event)
        except ConnectionClosedError as exc:
            if not self._closed.done():
                await self._close(exc)
        except InnerUniverseError as exc:  # undecodable or illegal server message
            log.error("closing the connection: %s", exc)
            await self._close(exc)

    async def _close(self, error: Exception | None) -> None:
        if self._closed.done():
            return
        self._closed.set_result(error)
        self._outgoing.put_nowait(None)
        failure = error or ConnectionClosedError("the connection was closed")
        if not isinstance(failure, ConnectionClosedError):
            failure = ConnectionClosedError(f"the connection was closed: {failure}")
        waiting: list[asyncio.Future[Any]] = [*self._pending_calls.values()]
        waiting += self._pending_queries.values()
        for future in waiting:
            if not future.done():
                future.set_exception(failure)
        self._pending_calls.clear()
        self._pending_queries.clear()
        for handle in self._subscriptions.values():
            if not handle._applied.done():
                handle._applied.set_exception(failure)
            if not handle._ended.done():
                handle._ended.set_result(None)
        if not self._identified.done():
            self._identified.set_exception(failure)
        try:
            await self._transport.close()
        except Exception:  # the link may already be gone
            log.debug("closing the transport failed", exc_info=True)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if self._identified.done() and not self._identified.exception():
            for cb in self._builder._on_disconnect:
                _run_callback("on_disconnect", cb, self, error)

    def _dispatch(self, event: p.Event) -> None:
        if isinstance(event, p.Identified):
            self.identity, self.token = event.identity, event.token
            self.connection_id = event.connection_id
            if not self._identified.done():
                self._identified.set_result(None)
        elif isinstance(event, p.SubscribeApplied):
            handle = self._subscriptions.get(event.query_id)
            self._apply(event.update, SubscribeAppliedEvent(event.query_id.id))
            if handle is not None and not handle._applied.done():
                handle._applied.set_result(handle)
        elif isinstance(event, p.UnsubscribeApplied):
            handle = self._subscriptions.pop(event.query_id, None)
            self._apply(event.update, UnsubscribeAppliedEvent(event.query_id.id))
            if handle is not None and not handle._ended.done():
                handle._ended.set_result(None)
        elif isinstance(event, p.SubscriptionFailed):
            self._subscription_failed(event)
        elif isinstance(event, p.TransactionApplied):
            self._transaction(event)
        elif isinstance(event, p.ReducerResult):
            self._reducer_result(event)
        elif isinstance(event, p.OneOffQueryResult):
            self._query_result(event)

    def _query_result(self, event: p.OneOffQueryResult) -> None:
        future = self._pending_queries.pop(event.message_id, None)
        if future is None or future.done():
            return
        if event.error is not None:
            future.set_exception(QueryError(event.error))
            return
        try:
            result = {
                table.table_name: [
                    codec.decode_row(self.schema.table(table.table_name), row)
                    for row in table.rows.rows()
                ]
                for table in event.tables
            }
        except InnerUniverseError as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _subscription_failed(self, event: p.SubscriptionFailed) -> None:
        if event.fatal or event.query_id is None:
            error = SubscriptionError(event.message)
            self._loop.create_task(self._close(error))
            return
        handle = self._subscriptions.pop(event.query_id, None)
        if handle is None:
            log.warning(
                "subscription error for unknown query %s: %s", event.query_id, event.message
            )
            return
        handle.error = event.message
        failure = SubscriptionError(event.message, handle.queries)
        if not handle._applied.done():
            handle._applied.set_exception(failure)
            handle._applied.exception()  # the failure is reported through the awaiter
        if not handle._ended.done():
            handle._ended.set_result(None)

    def _reducer_event(self, event: p.TransactionApplied) -> ReducerEvent | None:
        if event.light or event.reducer_name is None:
            return None
        assert event.caller_identity is not None and event.timestamp is not None
        try:
            reducer = self.schema.reducer(event.reducer_name)
            args = codec.decode_args(reducer, event.reducer_args or b"")
        except InnerUniverseError:
            args = {}  # a reducer this schema does not know (e.g. the module was updated)
        return ReducerEvent(
            reducer=event.reducer_name,
            args=args,
            caller_identity=event.caller_identity,
            caller_connection_id=event.caller_connection_id,
            timestamp=event.timestamp,
            committed=event.committed,
            error=event.error,
            energy_used=event.energy_used or 0,
            duration=event.duration or TimeDuration(0),
            request_id=event.request_id,
        )

    def _transaction(self, event: p.TransactionApplied) -> None:
        reducer_event = self._reducer_event(event)
        ctx_event: Event = reducer_event if reducer_event is not None else UnknownTransactionEvent()
        ctx = self._apply(event.update, ctx_event) if event.committed else None
        if reducer_event is None:
            return
        if ctx is None:
            ctx = EventContext(self, reducer_event, TransactionDiff(), self._sequence)
        for key in (reducer_event.reducer, None):
            for cb in list(self._on_reducer.get(key, ())):
                _run_callback(f"on_reducer({key})", cb, ctx, reducer_event)

    def _reducer_result(self, event: p.ReducerResult) -> None:
        future = self._pending_calls.pop(event.request_id, None)
        if future is None or future.done():
            return
        if event.committed and event.transaction is not None:
            result = self._reducer_event(event.transaction)
            assert result is not None
            future.set_result(result)
        else:
            future.set_exception(ReducerError(event.reducer, event.error or "failed"))

    def _apply(self, update: DatabaseUpdate, event: Event) -> EventContext:
        """Apply a whole update to the cache, then fire callbacks: rows first, then the rest."""
        diff = self.cache.apply(update.table_changes())
        self._sequence += 1
        ctx = EventContext(self, event, diff, self._sequence)
        for name, table_diff in diff.tables.items():
            self.db[name]._fire(ctx, table_diff)
        for cb in list(self._on_transaction):
            _run_callback("on_transaction", cb, ctx)
        return ctx


class ConnectionBuilder:
    """Configure and open a :class:`DbConnection` (the shape of the official SDKs' builders)."""

    def __init__(self) -> None:
        self._uri: str | None = None
        self._database: str | None = None
        self._token: str | None = None
        self._compression: Compression = "Gzip"
        self._light = False
        self._schema: ModuleSchema | None = None
        self._record_to: Path | None = None
        self._on_connect: list[Callable[[DbConnection, Identity, str], object]] = []
        self._on_connect_error: list[Callable[[Exception], object]] = []
        self._on_disconnect: list[Callable[[DbConnection, Exception | None], object]] = []

    def with_uri(self, uri: str) -> ConnectionBuilder:
        self._uri = uri
        return self

    def with_database(self, name_or_identity: str) -> ConnectionBuilder:
        self._database = name_or_identity
        return self

    def with_token(self, token: str | None) -> ConnectionBuilder:
        """Connect as the identity this token proves; None asks the server for a new identity."""
        self._token = token
        return self

    def with_compression(self, compression: Compression) -> ConnectionBuilder:
        self._compression = compression
        return self

    def with_light_mode(self, light: bool = True) -> ConnectionBuilder:
        """Receive other clients' transactions without reducer details (less traffic)."""
        self._light = light
        return self

    def with_schema(self, schema: ModuleSchema) -> ConnectionBuilder:
        """Use this schema instead of downloading it (for example, from generated bindings)."""
        self._schema = schema
        return self

    def record_messages_to(self, directory: Path) -> ConnectionBuilder:
        """Save every received server message under ``directory`` (for protocol tests)."""
        self._record_to = directory
        return self

    def on_connect(
        self, callback: Callable[[DbConnection, Identity, str], object]
    ) -> ConnectionBuilder:
        self._on_connect.append(callback)
        return self

    def on_connect_error(self, callback: Callable[[Exception], object]) -> ConnectionBuilder:
        self._on_connect_error.append(callback)
        return self

    def on_disconnect(
        self, callback: Callable[[DbConnection, Exception | None], object]
    ) -> ConnectionBuilder:
        self._on_disconnect.append(callback)
        return self

    async def connect(self, timeout: float = 30.0) -> DbConnection:
        """Open the connection; returns once the server has identified this client."""
        if self._uri is None or self._database is None:
            raise InvalidStateError("a connection needs with_uri(...) and with_database(...)")
        try:
            schema = self._schema
            if schema is None:
                schema = await asyncio.to_thread(fetch_schema, self._uri, self._database)
            url = subscribe_url(
                self._uri, self._database, compression=self._compression, light=self._light
            )
            transport = await WebSocketTransport.open(
                url, token=self._token, record_to=self._record_to
            )
            conn = DbConnection(transport, schema, builder=self)
            try:
                await asyncio.wait_for(asyncio.shield(conn._identified), timeout)
            except (TimeoutError, ConnectionClosedError) as exc:
                await conn._close(None)
                raise ConnectError(
                    f"the server accepted the socket but did not identify the client: {exc}"
                ) from None
        except (ConnectError, SchemaError) as exc:
            for cb in self._on_connect_error:
                _run_callback("on_connect_error", cb, exc)
            raise
        assert conn.identity is not None and conn.token is not None
        for on_connect in self._on_connect:
            _run_callback("on_connect", on_connect, conn, conn.identity, conn.token)
        return conn

    def connect_threaded(self, timeout: float = 30.0) -> ThreadedConnection:
        """Open the connection on a background event loop, for synchronous code."""
        return ThreadedConnection(self, timeout)


class _Connecting:
    """What :func:`connect` returns: await it, or use it as ``async with``."""

    def __init__(self, builder: ConnectionBuilder) -> None:
        self._builder = builder
        self._conn: DbConnection | None = None

    def __await__(self) -> Generator[Any, None, DbConnection]:
        return self._builder.connect().__await__()

    async def __aenter__(self) -> DbConnection:
        self._conn = await self._builder.connect()
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.disconnect()


def connect(
    uri: str,
    database: str,
    *,
    token: str | None = None,
    compression: Compression = "Gzip",
    light: bool = False,
    schema: ModuleSchema | None = None,
) -> _Connecting:
    """Connect to ``database`` on the server at ``uri`` (``http://127.0.0.1:3000`` style).

    ``async with connect(uri, db) as conn: ...`` or ``conn = await connect(uri, db)``.
    Without a token the server mints a new identity; keep ``conn.token`` to come back as it.
    """
    builder = (
        ConnectionBuilder()
        .with_uri(uri)
        .with_database(database)
        .with_token(token)
        .with_compression(compression)
        .with_light_mode(light)
    )
    if schema is not None:
        builder.with_schema(schema)
    return _Connecting(builder)


class ThreadedConnection:
    """A :class:`DbConnection` running on its own event-loop thread, for synchronous code.

    Calls block until done (or take ``timeout``); callbacks run on the connection's
    thread, so keep them short and guard any shared state they touch. Reads of
    ``db`` are safe from any thread.
    """

    def __init__(self, builder: ConnectionBuilder, timeout: float = 30.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="spacetimedb-connection", daemon=True
        )
        self._thread.start()
        self.timeout = timeout
        try:
            self.connection: DbConnection = self._run(builder.connect(timeout))
        except BaseException:
            self._stop_loop()
            raise
        self.db = self.connection.db
        self.reducers = Reducers(self.connection.schema, self.call_reducer)

    @property
    def identity(self) -> Identity | None:
        return self.connection.identity

    @property
    def token(self) -> str | None:
        return self.connection.token

    @property
    def connection_id(self) -> ConnectionId | None:
        return self.connection.connection_id

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout if timeout is not None else self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError("the connection did not answer in time") from None

    def run_on_connection_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the connection's own thread and return its result.

        Callbacks and cache updates happen on that thread, so ``fn`` sees no
        transaction half-applied: the place to read the cache and register
        callbacks together, atomically.
        """

        async def run() -> T:
            return fn()

        return self._run(run())

    def subscribe(self, *queries: str) -> SubscriptionHandle:
        """Subscribe and wait until applied; ``unsubscribe(handle)`` removes it."""

        async def run() -> SubscriptionHandle:
            return await self.connection.subscribe(*queries)

        return self._run(run())

    def unsubscribe(self, handle: SubscriptionHandle) -> None:
        self._run(handle.unsubscribe())

    def one_off_query(self, sql: str) -> dict[str, list[Any]]:
        """Run a read-only SQL query once and wait for its rows (see DbConnection.one_off_query)."""

        async def run() -> dict[str, list[Any]]:
            return await self.connection.one_off_query(sql)

        return self._run(run())

    def call_reducer(self, reducer: str, *args: Any, **kwargs: Any) -> ReducerEvent:
        """Call a reducer and wait for its outcome (raises ReducerError if it failed)."""
        future = self.call_reducer_async(reducer, *args, **kwargs)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"reducer {reducer!r} did not complete in time") from None

    def call_reducer_async(
        self, reducer: str, *args: Any, call_key: CallKey | None = None, **kwargs: Any
    ) -> concurrent.futures.Future[ReducerEvent]:
        """Call a reducer without waiting; arguments are checked before this returns."""
        # Encode here, on the caller's thread, so bad arguments raise right away.
        schema = self.connection.schema.reducer(reducer)
        key = self.connection._call_key(schema, call_key)
        encoded = codec.encode_args(schema, *args, call_key=key, **kwargs)

        async def run() -> ReducerEvent:
            return await self.connection._submit_call(reducer, encoded)

        return asyncio.run_coroutine_threadsafe(run(), self._loop)

    def on_transaction(self, callback: TransactionCallback) -> TransactionCallback:
        return self.connection.on_transaction(callback)

    def on_reducer(self, reducer: str | None, callback: ReducerCallback) -> ReducerCallback:
        return self.connection.on_reducer(reducer, callback)

    def disconnect(self) -> None:
        try:
            if self._loop.is_running():
                self._run(self.connection.disconnect())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> ThreadedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
