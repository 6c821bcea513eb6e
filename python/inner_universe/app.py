"""Universe: one object that holds a server, a connection and the services built on it.

Every program would otherwise wire the same things by hand: find or start a
server, connect as a stored identity, attach an EventBus and a StateProjector,
configure the TemporalStore, and close it all in the right order. A Universe
does that once, explicitly::

    from inner_universe.app import Universe

    async with Universe() as universe:          # the local server: reused, or started
        await universe.subscribe("SELECT * FROM agent")
        universe.bus.connect("agent.insert", lambda sender, event: print(event.row.name))
        await universe.connection.reducers.register_agent("planner", "planning", b"")

    with Universe("http://127.0.0.1:3000", "my-universe") as universe:   # synchronous code
        universe.connection.reducers.post_message(1, "user", "hello")

Services are created on first use, once, and closed in reverse order of creation
before the connection closes (and the server stops, if this Universe started it):
``bus`` and ``projector`` (NERV), and the features: ``chat`` (a ChatSession on
``chat_model``, the offline provider unless named), ``tasks`` (delegation and
workflows) and ``knowledge`` (ingesting and live search). The features' APIs are
asynchronous; synchronous code runs them on the connection's thread with
:meth:`Universe.run`::

    async with Universe() as universe:
        reply = await universe.chat.send(conversation_id, "hello")
        result = await universe.tasks.delegate("summarise", {"text": "..."})
        hits = await universe.knowledge.search("how do workers claim tasks?")

    with Universe() as universe:
        hits = universe.run(universe.knowledge.search("how do workers claim tasks?"))

A feature's dependencies (LiteLLM, WordLlama, tantivy) are imported when its
service is first used, never by importing this module. More services plug in
with :func:`register_service`; ``universe.service(name)`` gives the one instance.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .errors import ConnectRefusedError, InvalidStateError, ServerError, UsageError
from .home import (
    DEFAULT_DATABASE,
    LOCAL,
    RunningServer,
    find_running,
    forget_running,
    load_identity,
    save_identity,
    start_local_server,
    token_file,
)
from .nerv.adapters import attach_event_bus, attach_projector
from .nerv.bus import EventBus
from .nerv.projector import StateProjector
from .spacetime.connection import ConnectionBuilder, DbConnection, ThreadedConnection
from .spacetime.server import Credentials, LocalServer
from .spacetime.types import Identity

if TYPE_CHECKING:
    from .features.chat import ChatSession
    from .features.delegation.service import Tasks
    from .features.knowledge.service import Knowledge

__all__ = ["OFFLINE_MODEL", "Universe", "register_service"]

OFFLINE_MODEL = "offline/echo"
"""The chat service's default model: the offline LiteLLM provider (no network, no key)."""

log = logging.getLogger(__name__)
T = TypeVar("T")
ServiceFactory = Callable[["Universe"], Any]
AnyConnection = DbConnection | ThreadedConnection

_SERVICES: dict[str, ServiceFactory] = {}


def register_service(name: str, factory: ServiceFactory) -> None:
    """Make ``universe.service(name)`` build ``factory(universe)`` on first use.

    Where features plug in (chat, delegation, knowledge): a factory gets the open
    Universe; what it returns is closed with the Universe if it has ``aclose()``
    or ``close()`` (either may be a coroutine function).
    """
    _SERVICES[name] = factory


def _close_service(service: Any) -> Any:
    for name in ("aclose", "close"):
        method = getattr(service, name, None)
        if callable(method):
            return method()
    return None


class Universe:
    """A server, one connection as a stored identity, and lazily created services.

    The connection reconnects by itself (the SDK's default policy: backoff, then its
    subscriptions renewed and its cache resynced) when the server comes back at the
    same URI; :meth:`reconnect` is for a local server that came back elsewhere.

    Args:
        uri: a SpacetimeDB server (``http://host:port``); omitted: the user's local
            server, reused if ``inner-universe up`` (or another Universe) runs it,
            started on its persistent data directory otherwise (and stopped on close).
        database: the database name; defaults to ``inner-universe``.
        token: connect as this identity; omitted: the identity stored for this server
            (created and stored on first connection).
        stored_identity: use (and create) the identity stored in the user's config
            folder; False: a new identity every time, kept nowhere.
        start_server: without a URI and with no local server running, start one (True)
            or raise :class:`ServerError` naming ``inner-universe up`` (False).
        chat_model: the LiteLLM model ``universe.chat`` replies with.
        chat_trust: identities whose provider health reports ``universe.chat`` heeds,
            besides this identity's own: a provider one of them put in cooldown is not
            called (``ProviderRouter(trust=...)``, docs/chat.md). Anyone else's reports
            are ignored, so by default only this identity's own count.
    """

    def __init__(
        self,
        uri: str | None = None,
        database: str | None = None,
        *,
        token: str | None = None,
        stored_identity: bool = True,
        start_server: bool = True,
        chat_model: str = OFFLINE_MODEL,
        chat_trust: Iterable[Identity] = (),
    ) -> None:
        self._requested_uri = uri
        self.database = database or DEFAULT_DATABASE
        self._token = token
        self._stored_identity = stored_identity
        self._start_server = start_server
        self.chat_model = chat_model
        self.chat_trust = frozenset(chat_trust)
        if not all(isinstance(identity, Identity) for identity in self.chat_trust):
            raise UsageError(f"chat_trust takes Identity values, got {set(self.chat_trust)!r}")
        self.server: LocalServer | None = None
        """The server this Universe started (None when it uses one that was running)."""
        self.running: RunningServer | None = None
        self._connection: AnyConnection | None = None
        self._services: dict[str, Any] = {}
        self._closers: list[tuple[str, Any]] = []
        self._builder_hooks: list[Callable[[ConnectionBuilder], object]] = []
        self._mints_identity = False
        self._uses_stored_identity = False
        """The next connection has no stored identity yet: store the one the server mints."""

    # --- where and who ------------------------------------------------------------------

    @property
    def uri(self) -> str:
        if self._requested_uri is not None:
            return self._requested_uri
        if self.running is None:
            raise InvalidStateError("the Universe is not open")
        return self.running.uri

    @property
    def server_key(self) -> str:
        """Which stored identity this Universe uses: ``local`` or the server's URI."""
        return LOCAL if self._requested_uri is None else self._requested_uri

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    @property
    def connection(self) -> AnyConnection:
        """The connection: a DbConnection (async use) or a ThreadedConnection (sync use)."""
        if self._connection is None:
            raise InvalidStateError("the Universe is not open: use `with` or `async with`")
        return self._connection

    @property
    def db_connection(self) -> DbConnection:
        """The asyncio connection (for sync use: the one running on the connection's thread)."""
        conn = self.connection
        return conn.connection if isinstance(conn, ThreadedConnection) else conn

    @property
    def identity(self) -> Identity:
        identity = self.connection.identity
        assert identity is not None
        return identity

    def on_builder(self, hook: Callable[[ConnectionBuilder], object]) -> None:
        """Configure the connection before it opens (callbacks such as ``on_disconnect``)."""
        if self._connection is not None:
            raise InvalidStateError("on_builder must be called before the Universe opens")
        self._builder_hooks.append(hook)

    # --- opening and closing ----------------------------------------------------------

    def _find_or_start_server(self) -> None:
        if self._requested_uri is not None:
            return
        self.running = find_running()
        if self.running is not None:
            log.info("using the local server at %s (pid %d)", self.running.uri, self.running.pid)
        else:
            if not self._start_server:
                raise ServerError(
                    "no local server is running; start one with `inner-universe up` "
                    "(or name a server with --uri)"
                )
            self.server, self.running = start_local_server(self.database)
            log.info("started the local server at %s", self.running.uri)

    def _builder(self) -> ConnectionBuilder:
        token = self._token
        if token is None and self._stored_identity:
            stored = load_identity(self.server_key)
            token = stored.token if stored else None
            self._mints_identity = stored is None
            self._uses_stored_identity = stored is not None
        builder = ConnectionBuilder().with_uri(self.uri).with_database(self.database)
        builder.with_token(token)  # the SDK reconnects by itself (its default policy)
        for hook in self._builder_hooks:
            hook(builder)
        return builder

    def _connected(self) -> None:
        """Log who we are, and store a newly minted identity."""
        conn = self.connection
        log.info("connected to %s/%s as %s", self.uri, self.database, conn.identity)
        if self._mints_identity:
            self._mints_identity = False
            assert conn.identity is not None and conn.token is not None
            save_identity(self.server_key, Credentials(conn.identity, conn.token))

    def _refused(self, exc: ConnectRefusedError) -> ConnectRefusedError:
        """``exc``, or what to do when the server refused the identity stored for it.

        Tokens are stored per server address; one stored for a server that ran on this
        address before (or before its keys were reset) is refused with HTTP 401.
        """
        if exc.status != 401 or not self._uses_stored_identity:
            return exc
        path = token_file(self.server_key).path
        return ConnectRefusedError(
            f"{exc}\nThe identity stored for {self.server_key} in {path} was not issued by "
            "this server (another server used this address before, or its keys were reset). "
            f"Remove that file to be given a new identity here: rm {path}",
            exc.status,
        )

    async def _connect(self) -> DbConnection:
        try:
            return await self._builder().connect()
        except ConnectRefusedError as exc:
            raise self._refused(exc) from None

    async def open(self) -> Universe:
        """Find or start the server and connect (asyncio use)."""
        await asyncio.to_thread(self._find_or_start_server)
        try:
            self._connection = await self._connect()
            self._connected()
        except BaseException:
            await asyncio.to_thread(self._stop_server)
            raise
        return self

    def open_sync(self) -> Universe:
        """Find or start the server and connect on a background loop (synchronous use)."""
        self._find_or_start_server()
        try:
            try:
                self._connection = self._builder().connect_threaded()
            except ConnectRefusedError as exc:
                raise self._refused(exc) from None
            self._connected()
        except BaseException:
            self._stop_server()
            raise
        return self

    async def moved(self) -> bool:
        """Does the local server this Universe uses now answer at another URI?

        A server that restarts on its port is reconnected to by the connection itself
        (resubscribed, its cache resynced); one that came back elsewhere (``up
        --port``, or its port taken meanwhile) needs :meth:`reconnect`.
        """
        if self._requested_uri is not None or self.server is not None or self.running is None:
            return False
        running = await asyncio.to_thread(find_running)
        return running is not None and running.uri != self.running.uri

    async def reconnect(self) -> None:
        """Replace the connection with a new one (the local server :meth:`moved`).

        Not needed when the server comes back where it was: the connection
        reconnects by itself. The services are closed and start afresh, lazily, on
        the new connection; the local server is looked up again. Raises ConnectError
        or ServerError while the server is not back. For a Universe used with
        ``async with`` (or never opened).
        """
        if isinstance(self._connection, ThreadedConnection):
            raise InvalidStateError("reconnect() is for a Universe opened with `async with`")
        await self._close_services()
        old, self._connection = self._connection, None
        if isinstance(old, DbConnection):
            await old.disconnect()
        if self._requested_uri is None and self.server is None:
            self.running = await asyncio.to_thread(find_running)
            if self.running is None:
                raise ServerError("no local server is running (yet)")
        self._connection = await self._connect()
        self._connected()

    def _close_next_service(self) -> Any:
        """Close the newest service not yet closed; returns what its close returned."""
        name, service = self._closers.pop()
        log.debug("closing %s", name)
        return _close_service(service)

    async def _close_services(self) -> None:
        while self._closers:
            result = self._close_next_service()
            if inspect.isawaitable(result):
                await result
        self._services.clear()

    async def aclose(self) -> None:
        """Close the services (newest first), the connection, then a server we started."""
        await self._close_services()
        conn, self._connection = self._connection, None
        if isinstance(conn, DbConnection):
            await conn.disconnect()
        elif conn is not None:
            await asyncio.to_thread(conn.disconnect)
        await asyncio.to_thread(self._stop_server)

    def close(self) -> None:
        """Synchronous :meth:`aclose` (for a Universe opened with ``with``)."""
        while self._closers:
            result = self._close_next_service()
            if inspect.isawaitable(result):
                if not isinstance(self._connection, ThreadedConnection):
                    raise InvalidStateError("an async service must be closed with aclose()")
                self._connection._run(cast(Any, result))
        self._services.clear()
        conn, self._connection = self._connection, None
        if isinstance(conn, ThreadedConnection):
            conn.disconnect()
        elif conn is not None:
            raise InvalidStateError("a Universe opened with `async with` closes with aclose()")
        self._stop_server()

    def _stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
            if self.running is not None:
                forget_running(self.running.pid)

    async def __aenter__(self) -> Universe:
        return await self.open()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Universe:
        return self.open_sync()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- reading --------------------------------------------------------------------

    async def subscribe(self, *queries: str) -> Any:
        """Subscribe (asyncio use); the rows are in ``connection.db`` when this returns."""
        conn = self.connection
        if isinstance(conn, ThreadedConnection):
            return await asyncio.to_thread(conn.subscribe, *queries)
        return await conn.subscribe(*queries)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the connection's thread and wait for it (synchronous use).

        How sync code uses the asynchronous services:
        ``universe.run(universe.tasks.delegate("double", {"x": 21}))``. ``timeout``
        defaults to the connection's call timeout (30 s).
        """
        conn = self.connection
        if not isinstance(conn, ThreadedConnection):
            coro.close()
            raise InvalidStateError("run() is for a Universe opened with `with`: use await")
        return conn._run(coro, timeout)

    # --- services -------------------------------------------------------------------

    def service(self, name: str) -> Any:
        """The one instance of a registered service, created on first use."""
        if name in self._services:
            return self._services[name]
        factory = _SERVICES.get(name)
        if factory is None:
            known = ", ".join(sorted(_SERVICES)) or "none"
            raise InvalidStateError(f"no service named {name!r} (registered: {known})")
        self.connection  # noqa: B018 - raises if not open
        service = factory(self)
        self._services[name] = service
        self._closers.append((name, service))
        return service

    @property
    def bus(self) -> EventBus:
        """Every row change and reducer outcome of this connection, as named signals."""
        return cast(EventBus, self.service("bus"))

    @property
    def projector(self) -> StateProjector:
        """Immutable versioned snapshots of what this connection has subscribed to."""
        return cast(StateProjector, self.service("projector"))

    @property
    def chat(self) -> ChatSession:
        """Streamed chat replies into conversations, with ``chat_model`` (LiteLLM)."""
        return cast("ChatSession", self.service("chat"))

    @property
    def tasks(self) -> Tasks:
        """Delegation: submit tasks, wait for results, cancel, run and follow workflows."""
        return cast("Tasks", self.service("tasks"))

    @property
    def knowledge(self) -> Knowledge:
        """Documents: add them (chunked, embedded, stored) and search them live."""
        return cast("Knowledge", self.service("knowledge"))

    def temporal_store_env(self, store: str | None = None) -> dict[str, str]:
        """The eventsourcing settings that put an application on this Universe's TemporalStore."""
        token = self.connection.token
        env = {
            "PERSISTENCE_MODULE": "inner_universe.nerv.store",
            "SPACETIMEDB_URI": self.uri,
            "SPACETIMEDB_DATABASE": self.database,
        }
        if token:
            env["SPACETIMEDB_TOKEN"] = token
        if store:
            env["SPACETIMEDB_STORE"] = store
        return env

    def application(self, cls: Callable[..., T], store: str | None = None) -> T:
        """An eventsourcing application on the TemporalStore, closed with this Universe."""
        app = cls(env=self.temporal_store_env(store))
        self._closers.append((f"application:{cls!r}", app))  # its close() frees its recorders
        return app


def _on_connection_thread(universe: Universe, build: Callable[[DbConnection], T]) -> T:
    """Build a feature's service on the asyncio connection, on its own thread in sync use."""
    conn = universe.connection
    if isinstance(conn, ThreadedConnection):
        return conn.run_on_connection_thread(lambda: build(conn.connection))
    return build(conn)


def _chat(universe: Universe) -> ChatSession:
    from .features.chat import ChatSession, Deployment, ProviderRouter  # imports LiteLLM

    deployment = Deployment(universe.chat_model, universe.chat_model)
    router = ProviderRouter([deployment], trust=universe.chat_trust)
    return _on_connection_thread(universe, lambda conn: ChatSession(conn, router))


def _tasks(universe: Universe) -> Tasks:
    from .features.delegation.service import Tasks

    return _on_connection_thread(universe, Tasks)


def _knowledge(universe: Universe) -> Knowledge:
    from .features.knowledge.service import Knowledge

    return _on_connection_thread(universe, Knowledge)


register_service("bus", lambda universe: attach_event_bus(universe.connection))
register_service("projector", lambda universe: attach_projector(universe.connection))
register_service("chat", _chat)
register_service("tasks", _tasks)
register_service("knowledge", _knowledge)
