"""The asyncio driver: one :class:`DbConnection`, across as many sockets as it takes.

A connection outlives its sockets. Each socket is a :class:`_Session`: a
transport, a fresh sans-I/O :class:`ClientProtocol`, and a send task. The
transport hands each server message to the protocol in the turn its bytes arrive,
and the protocol's events are dispatched there and then (the cache applies each
transaction whole, then callbacks fire, then waiting calls resume). Calls
pipeline: a message is written in the caller's turn when nothing is queued ahead
of it and the socket can take it without waiting; otherwise it queues, in order,
for the send task, which waits out backpressure.

When a socket dies (closed, reset, or silent past the keepalive timeout) a
supervisor reopens one with backoff (:class:`ReconnectPolicy`), as the same
identity and connection id, then *resyncs* before anything new is sent:

1. every live subscription is subscribed again, into a fresh cache; once all
   are answered, the cache is reconciled with it and callbacks fire only for
   what changed while away (:class:`ReconnectedEvent`);
2. the caller's ``call_receipt`` rows are read (one-off query) to find the
   acknowledged calls of the last ``ack_window`` seconds the server lost;
3. those, and every call whose outcome never arrived, and every call made
   meanwhile, are sent in call order under their original :class:`CallKey`,
   so the module applies each exactly once.

A call's future resolves once: with the :class:`ReducerEvent` of its single
effective execution, a :class:`ReducerError`, or a typed timeout
(:class:`NotSentError`, :class:`OutcomeUnknownError`).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeAlias

from ..errors import (
    ArgumentError,
    CallTimeoutError,
    ConnectError,
    ConnectionClosedError,
    ConnectRefusedError,
    DecodeError,
    InnerUniverseError,
    InvalidStateError,
    NotSentError,
    OutcomeUnknownError,
    ProtocolError,
    QueryError,
    ReducerError,
    SubscriptionRejectedError,
    UsageError,
)
from . import codec
from . import protocol as p
from .cache import ClientCache, TransactionDiff
from .call_keys import CallPlan, PreparedCall, keyed_args
from .events import (
    ContextEvent,
    EventContext,
    ReconnectedEvent,
    ReducerEvent,
    SubscribeAppliedEvent,
    UnknownTransactionEvent,
    UnsubscribeAppliedEvent,
)
from .messages import CallReducerFlags, DatabaseUpdate, QueryId
from .outbox import CallState, MemoryOutbox, OutboxCall
from .schema import CallKey, ModuleSchema
from .settings import ConnectionSettings
from .subscriptions import AppliedCallback, ErrorCallback, SubscriptionHandle, SubscriptionState
from .tables import (
    DEFAULT_CALL_OPTIONS,
    CallOptions,
    ReducerCallback,
    Reducers,
    Tables,
    TransactionCallback,
    run_callback,
)
from .transport import Transport, WebSocketTransport, subscribe_url
from .types import ConnectionId, Identity, TimeDuration

__all__ = ["DbConnection"]

log = logging.getLogger(__name__)

#: The table where the module records the key of every call that took effect.
RECEIPT_TABLE = "call_receipt"
ExpireCallback: TypeAlias = Callable[[OutboxCall, float], None]

#: At most this many acknowledged calls are kept for the ack window (bounded memory).
MAX_ACKED_CALLS = 100_000

_FULL_UPDATE: Final = CallReducerFlags.FULL_UPDATE
# The states every call passes through, read without an enum attribute lookup per call.
_SENT: Final = CallState.SENT
_ACKED: Final = CallState.ACKED
_NO_SUCCESS_NOTIFY: Final = CallReducerFlags.NO_SUCCESS_NOTIFY


class _Session:
    """One socket's life: its transport, its protocol, and what waits on them."""

    def __init__(self, transport: Transport, max_message_size: int) -> None:
        loop = asyncio.get_running_loop()
        self.transport = transport
        self.protocol = p.ClientProtocol(max_message_size=max_message_size, lean_replies=True)
        self.outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.sending = False  # the send task holds a message not yet written
        self.identified: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[Exception | None] = loop.create_future()
        self.ready = False  # resynced: new calls go straight out
        self.calls: dict[int, OutboxCall] = {}  # request id -> call
        self.queries: dict[QueryId, SubscriptionHandle] = {}
        self.discard_rows: set[QueryId] = set()  # cancelled before applied: rows never shown
        self.one_offs: dict[bytes, asyncio.Future[p.OneOffQueryResult]] = {}
        self.tasks: list[asyncio.Task[None]] = []


class _Deadlines:
    """Every call's timeout on one loop timer, armed for the earliest deadline.

    A timer per call (``call_later``, then ``cancel`` when the answer comes, as it
    almost always does) cost more than the rest of settling a call. Calls made
    with the same timeout expire in the order they were made, so each timeout
    value keeps a queue in call order: a call is appended, and a settled call is
    only marked (its ``deadline`` set to None); it leaves its queue when it
    reaches the front, which in steady traffic is at the next call.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, expire: ExpireCallback) -> None:
        self._loop = loop
        self._expire = expire
        self._queues: dict[float, collections.deque[OutboxCall]] = {}  # timeout -> calls
        self._timer: asyncio.TimerHandle | None = None
        self._due = math.inf  # when the timer fires

    def add(self, call: OutboxCall, timeout: float) -> None:
        """Expire ``call`` in ``timeout`` seconds unless :meth:`remove` comes first."""
        deadline = call.deadline = self._loop.time() + timeout
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = collections.deque()
        queue.append(call)
        while queue[0].deadline is None:  # settled calls at the front leave (not this one)
            queue.popleft()
        if deadline < self._due:
            self._arm(deadline)

    def remove(self, call: OutboxCall) -> None:
        """``call`` no longer expires (its outcome is known)."""
        call.deadline = None

    def clear(self) -> None:
        """No call expires any more (the connection is closed)."""
        for queue in self._queues.values():
            for call in queue:
                call.deadline = None
        self._queues.clear()
        self._arm(None)

    def _arm(self, due: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None if due is None else self._loop.call_at(due, self._sweep)
        self._due = math.inf if due is None else due

    def _sweep(self) -> None:
        # The loop runs a timer up to its clock's resolution early: what the timer was
        # armed for is due, whatever time() says.
        now = max(self._loop.time(), self._due)
        self._timer, self._due = None, math.inf
        earliest = math.inf
        for timeout, queue in list(self._queues.items()):
            while queue:
                call = queue[0]
                deadline = call.deadline
                if deadline is not None and deadline > now:
                    earliest = min(earliest, deadline)
                    break
                queue.popleft()
                if deadline is not None:
                    call.deadline = None
                    self._expire(call, timeout)
            if not queue:
                del self._queues[timeout]
        if earliest < math.inf:
            self._arm(earliest)


class DbConnection:
    """A live connection to one SpacetimeDB database. Create it with :func:`connect`."""

    def __init__(
        self, schema: ModuleSchema, settings: ConnectionSettings, outbox: MemoryOutbox
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.schema = schema
        self._settings = settings
        self._outbox = outbox
        self.cache = ClientCache(schema)
        self._watched_tables: set[str] = set()  # those with a row callback, kept by self.db
        self.db = Tables(self.cache.tables, self._watched_tables)
        self.reducers = Reducers(schema, self._call_with_options)
        self._plans: dict[str, CallPlan] = {}  # reducer name -> its plan, made on first call
        # The first 16 bytes of every key this connection makes: its client id.
        self._key_prefix = outbox.client_id.to_bytes(16, "little")
        self._args_decoder = self._decode_args  # one bound method for every ReducerEvent
        self.identity: Identity | None = None
        self.token: str | None = settings.token or outbox.token
        self.connection_id: ConnectionId | None = None
        self._session: _Session | None = None
        self._calls: dict[int, OutboxCall] = {}  # seq -> call, unsettled or acked in window
        # (when, call) in acknowledgement order; stale if the call was re-acknowledged since.
        self._acked: collections.deque[tuple[float, OutboxCall]] = collections.deque()
        self._unsettled: set[int] = set()
        self._settled = asyncio.Event()
        self._settled.set()
        self._subscriptions: list[SubscriptionHandle] = []
        self._staging: ClientCache | None = None  # the fresh cache while resyncing
        self._on_transaction: list[TransactionCallback] = []
        self._on_reducer: dict[str | None, list[ReducerCallback]] = {}
        self._sequence = 0
        self._last_tx: tuple[p.TransactionApplied, ReducerEvent] | None = None
        self._closed: asyncio.Future[Exception | None] = self._loop.create_future()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._deadlines = _Deadlines(self._loop, self._expire)
        for call in outbox.load():  # calls a killed predecessor left unsettled
            self._track(call)

    # --- public API -------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True while a socket is open and resynced (False while reconnecting)."""
        session = self._session
        return session is not None and session.ready and not session.ended.done()

    @property
    def last_call_seq(self) -> int:
        """The sequence number of the last call made; with a durable outbox, across runs."""
        return self._outbox.last_seq

    @property
    def client_id(self) -> int:
        """The first half of every :class:`CallKey` this connection sends."""
        return self._outbox.client_id

    def subscribe(
        self,
        *queries: str,
        on_applied: AppliedCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> SubscriptionHandle:
        """Subscribe to SQL queries (``SELECT * FROM t [WHERE ...]``) as one set.

        ``await conn.subscribe(...)`` returns the handle once the rows are in the
        cache (their insert callbacks have fired), or raises
        SubscriptionRejectedError. The subscription is renewed after reconnects.
        """
        if not queries or not all(isinstance(q, str) and q for q in queries):
            raise UsageError(f"subscribe needs one or more SQL strings, got {queries!r}")
        self._check_open()
        handle = SubscriptionHandle(self, tuple(queries), on_applied, on_error)
        self._subscriptions.append(handle)
        session = self._session
        if session is not None and session.ready:
            self._send_subscribe(session, handle)
            self._flush(session)
        return handle

    def call_reducer(
        self, reducer: str, *args: Any, call_key: CallKey | None = None, **kwargs: Any
    ) -> asyncio.Future[ReducerEvent]:
        """Call a reducer; arguments are checked and encoded now, before anything is sent.

        Returns a future resolving to the :class:`ReducerEvent` once the reducer's
        transaction is applied to the cache, or failing with :class:`ReducerError`
        carrying the server's message, or with a :class:`CallTimeoutError` after
        30 s (``conn.reducers.with_options(timeout=...)`` for another limit).
        A reducer taking a call key gets the next one of this connection, or
        ``call_key`` when given (``CallKey(0, 0)``: no key, no deduplication).

        Raises:
            ArgumentError: the arguments do not match the reducer's parameters.
            SchemaError: there is no such reducer.
        """
        return self._call_with_options(reducer, DEFAULT_CALL_OPTIONS, args, kwargs, call_key)

    def one_off_query(self, sql: str) -> asyncio.Future[dict[str, list[Any]]]:
        """Run a read-only SQL query once, outside any subscription; the cache is untouched.

        Resolves to ``{table name: [rows]}`` decoded against the schema, or fails
        with :class:`QueryError` carrying the server's message, or
        :class:`ConnectionClosedError` if the socket is lost first (retry it).
        """
        self._check_open()
        session = self._require_ready("run a one-off query")
        raw = self._one_off(session, sql)
        future: asyncio.Future[dict[str, list[Any]]] = self._loop.create_future()

        def decode(done: asyncio.Future[p.OneOffQueryResult]) -> None:
            if future.done():
                return
            if done.exception() is not None:
                future.set_exception(done.exception())  # type: ignore[arg-type]
                return
            try:
                future.set_result(self._decode_query(done.result()))
            except InnerUniverseError as exc:
                future.set_exception(exc)

        raw.add_done_callback(decode)
        return future

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every call made so far has a known outcome (or has timed out)."""
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            raise CallTimeoutError(
                f"{len(self._unsettled)} call(s) still unsettled after {timeout} s"
            ) from None

    def on_transaction(self, callback: TransactionCallback) -> TransactionCallback:
        """Call ``callback(ctx)`` after every applied change, with ``ctx.diff`` for all tables."""
        self._on_transaction.append(callback)
        return callback

    def remove_on_transaction(self, callback: TransactionCallback) -> None:
        try:
            self._on_transaction.remove(callback)
        except ValueError:
            raise UsageError(f"{callback!r} is not registered as on_transaction") from None

    def on_reducer(self, reducer: str | None, callback: ReducerCallback) -> ReducerCallback:
        """Call ``callback(ctx, event)`` when ``reducer`` (or any, for None) runs, by anyone."""
        if reducer is not None:
            self.schema.reducer(reducer)
        self._on_reducer.setdefault(reducer, []).append(callback)
        return callback

    async def disconnect(self) -> None:
        """Close the connection for good; on_disconnect callbacks run with no error."""
        self._closing = True
        if self._supervisor is not None and self._supervisor is not asyncio.current_task():
            self._supervisor.cancel()
        session = self._session
        if session is not None:
            await self._end_session(session, None)
        await self._finish(None)

    async def wait_closed(self) -> Exception | None:
        """Wait until the connection ends for good; returns the error that ended it, if any."""
        return await asyncio.shield(self._closed)

    async def __aenter__(self) -> DbConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    # --- opening and reopening ------------------------------------------------------------

    async def _start(self, timeout: float) -> None:
        """Open the first socket and resync (the builder's ``connect``)."""
        await self._open(timeout)
        self._supervisor = self._loop.create_task(self._supervise(), name="spacetimedb-supervisor")

    async def _open(self, timeout: float) -> _Session:
        settings = self._settings
        reuse = None if self.connection_id is None else self.connection_id.to_hex()
        url = subscribe_url(
            settings.uri,
            settings.database,
            compression=settings.compression,
            light=settings.light,
            connection_id=reuse,
        )
        if settings.transport_factory is not None:
            transport = await settings.transport_factory(url, self.token)
        else:
            keepalive = settings.keepalive
            transport = await WebSocketTransport.open(
                url,
                token=self.token,
                open_timeout=keepalive.open_timeout,
                ping_interval=keepalive.interval,
                ping_timeout=keepalive.timeout,
                record_to=settings.record_to,
                max_frame_size=settings.max_frame_size,
            )
        session = _Session(transport, settings.max_message_size)
        self._session = session
        session.tasks = [self._loop.create_task(self._send_loop(session), name="spacetimedb-send")]
        transport.start(
            functools.partial(self._received, session), functools.partial(self._lose, session)
        )
        try:
            await asyncio.wait_for(asyncio.shield(session.identified), timeout)
            await asyncio.wait_for(self._resync(session), timeout)
        except (TimeoutError, InnerUniverseError) as exc:
            await self._end_session(session, ConnectionClosedError(str(exc)))
            raise ConnectError(
                f"the server accepted the socket but the session failed: {exc}"
            ) from None
        return session

    async def _supervise(self) -> None:
        """Reopen lost sockets until the connection is closed or the policy gives up."""
        policy = self._settings.reconnect
        while True:
            session = self._session
            assert session is not None
            error = await asyncio.shield(session.ended)
            if self._closing:
                return
            if not policy.enabled or isinstance(error, DecodeError | ProtocolError):
                # A message the server sent wrong (malformed, over our size limits) would
                # only come again: that ends the connection instead of reopening it.
                await self._finish(error)
                return
            attempt = 0
            while True:
                for cb in self._settings.on_reconnecting:
                    run_callback("on_reconnecting", cb, self, attempt, error)
                await asyncio.sleep(policy.delay(attempt, self._rng))  # backoff, not a sync
                try:
                    await self._open(self._settings.keepalive.open_timeout * 2)
                    break
                except ConnectRefusedError as exc:
                    if self.connection_id is not None:
                        log.info("the server refused our connection id; taking a new one: %s", exc)
                        self.connection_id = None
                    error = exc
                except ConnectError as exc:
                    error = exc
                attempt += 1
                if policy.max_attempts is not None and attempt >= policy.max_attempts:
                    await self._finish(error)
                    return
            for done in self._settings.on_reconnected:
                run_callback("on_reconnected", done, self)

    async def _resync(self, session: _Session) -> None:
        """Renew subscriptions into a fresh cache, find lost calls, then send the outbox."""
        renew = [h for h in self._subscriptions if h.state is not SubscriptionState.ENDED]
        for handle in renew:
            if handle.state is SubscriptionState.CANCELLING:
                self._subscriptions.remove(handle)
                handle._mark_ended()
        renew = [h for h in renew if h.state is not SubscriptionState.ENDED]
        had_rows = any(h.state is SubscriptionState.ACTIVE for h in renew)
        self._staging = ClientCache(self.schema) if had_rows else None
        answered = [self._send_subscribe(session, h) for h in renew]
        receipts = self._ask_receipts(session)
        self._flush(session)
        if answered:
            await asyncio.gather(*answered)
        lost = await self._lost_calls(receipts) if receipts is not None else set()
        staging, self._staging = self._staging, None
        if staging is not None:
            diff = self.cache.replace_with(staging)
            if not diff.is_empty():
                self._sequence += 1
                self._fire(self._context(ReconnectedEvent(), diff))
        for handle in renew:
            query_id = handle.query_id
            applied = query_id is not None and (
                session.protocol.query_state(query_id) is p.QueryState.ACTIVE
            )
            if handle.state is SubscriptionState.PENDING and applied:
                assert query_id is not None
                cause = SubscribeAppliedEvent(query_id.id)
                self._handle_applied(handle, self._context(cause, TransactionDiff()))
        for call in sorted(self._calls.values(), key=lambda c: c.seq):
            if call.state is CallState.QUEUED or call.seq in lost:
                self._send_call(session, call)
        session.ready = True
        for handle in self._subscriptions:  # made while this resync ran
            if handle.state is SubscriptionState.PENDING and handle.query_id is None:
                self._send_subscribe(session, handle)
        self._flush(session)

    def _ask_receipts(self, session: _Session) -> asyncio.Future[p.OneOffQueryResult] | None:
        """Ask for our receipts if some acknowledged call might have been lost."""
        if RECEIPT_TABLE not in self.schema.tables:
            return None
        if not any(self._verifiable(c) for c in self._calls.values()):
            return None
        sql = f"SELECT * FROM {RECEIPT_TABLE} WHERE client = {self.client_id}"
        return self._one_off(session, sql)

    def _verifiable(self, call: OutboxCall) -> bool:
        """An acknowledged call whose receipt this connection can look up."""
        key = call.key()
        return call.state is CallState.ACKED and key is not None and key.client == self.client_id

    async def _lost_calls(self, receipts: asyncio.Future[p.OneOffQueryResult]) -> set[int]:
        """Seqs of acknowledged calls the server holds no receipt for: to be resent."""
        try:
            result = self._decode_query(await receipts)
        except InnerUniverseError as exc:
            log.warning("could not read call receipts; not resending acknowledged calls: %s", exc)
            return set()
        held = {row.seq for row in result.get(RECEIPT_TABLE, ())}
        lost = {c.seq for c in self._calls.values() if self._verifiable(c) and c.seq not in held}
        if lost:
            log.warning("the server lost %d acknowledged call(s); resending them", len(lost))
        for seq in lost:
            self._calls[seq].state = CallState.QUEUED
            self._unsettled.add(seq)
            self._settled.clear()
        return lost

    # --- calls ----------------------------------------------------------------------------

    def _call_with_options(
        self,
        reducer: str,
        options: CallOptions,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        call_key: CallKey | None = None,
    ) -> asyncio.Future[Any]:
        """Every call on the loop's thread: ``conn.reducers.x(...)``, ``call_reducer``."""
        plan = self._plan(reducer)
        args_data = plan.encode(args, kwargs)
        return self._make_call(plan.name, args_data, plan.keyed, options, call_key)

    def _plan(self, reducer: str) -> CallPlan:
        """How calls of ``reducer`` are checked and encoded (SchemaError: no such reducer)."""
        plan = self._plans.get(reducer)
        if plan is None:
            plan = self._plans[reducer] = CallPlan(self.schema.reducer(reducer))
        return plan

    def _submit(
        self, prepared: PreparedCall, options: CallOptions, call_key: CallKey | None = None
    ) -> asyncio.Future[Any]:
        """Send (or queue) a call checked and encoded beforehand; on the loop's thread."""
        return self._make_call(prepared.reducer, prepared.args, prepared.keyed, options, call_key)

    def _make_call(
        self,
        reducer: str,
        args: bytes,
        keyed: bool,
        options: CallOptions,
        call_key: CallKey | None,
    ) -> asyncio.Future[Any]:
        """Number a checked call, key it, record it, and send it (or queue it).

        ``args`` are the encoded arguments without the key; a reducer that takes
        one (``keyed``) gets ``call_key``, or this connection's next. Every call
        passes here, so it builds one record (the :class:`OutboxCall`) and writes
        the key once.
        """
        self._check_open()
        if call_key is not None:  # the caller's own key: checked before the call takes a number
            if not keyed:
                raise ArgumentError(f"reducer {reducer!r} takes no call key")
            args = keyed_args(reducer, call_key, args)
            if call_key.client == 0:
                call_key, keyed = None, False  # the zero key: sent, but not deduplicated
        seq = self._outbox.next_seq()
        if keyed and call_key is None:  # this connection's key: read back from args if needed
            args = self._key_prefix + seq.to_bytes(8, "little") + args
        future = self._loop.create_future()
        call = OutboxCall(
            seq, reducer, args, keyed, options.notify, future=future, call_key=call_key
        )
        self._outbox.add(call)
        self._track(call)
        self._deadlines.add(call, options.timeout)
        session = self._session
        if session is not None and session.ready and not session.ended.done():
            self._send_call(session, call)
            self._flush(session)
        return future

    def _track(self, call: OutboxCall) -> None:
        self._calls[call.seq] = call
        if call.state is _ACKED:
            self._acked.append((call.acked_at, call))
        else:
            self._unsettled.add(call.seq)
            self._settled.clear()

    def _send_call(self, session: _Session, call: OutboxCall) -> None:
        flags = _FULL_UPDATE if call.notify else _NO_SUCCESS_NOTIFY
        try:
            request_id = session.protocol.call_reducer(call.reducer, call.args, flags, call.keyed)
        except InnerUniverseError as exc:  # too large for the server: it can never be sent
            self._settle(call, failure=exc)
            return
        session.calls[request_id] = call
        call.state = _SENT
        call.was_sent = True

    def _expire(self, call: OutboxCall, timeout: float) -> None:
        """A call's timeout: withdraw it if unsent, else report its outcome unknown."""
        future = call.future
        if future is None or future.done():
            return
        if call.state is CallState.QUEUED and not call.was_sent:
            self._forget(call)
            future.set_exception(
                NotSentError(
                    f"reducer {call.reducer!r} was not sent within {timeout} s "
                    "(no connection); it was withdrawn and will not take effect"
                )
            )
            return
        key = call.key()
        future.set_exception(
            OutcomeUnknownError(
                f"reducer {call.reducer!r} was sent but its outcome did not arrive within "
                f"{timeout} s; it may still take effect"
                + (", once (it is resent under its key after a reconnect)" if call.keyed else ""),
                call.reducer,
                None if key is None else (key.client, key.seq),
            )
        )

    def _settle(
        self,
        call: OutboxCall,
        event: ReducerEvent | None = None,
        failure: Exception | None = None,
    ) -> None:
        """A call's outcome is known: resolve its future (once) and update the outbox."""
        self._deadlines.remove(call)
        future = call.future
        if failure is not None:
            self._forget(call)
            if future is not None and not future.done():
                future.set_exception(failure)
            elif future is not None and future.cancelled():
                log.info(
                    "call %s failed after its caller stopped waiting: %s", call.reducer, failure
                )
            elif future is None or not isinstance(future.exception(), OutcomeUnknownError):
                log.warning("resent call %s failed: %s", call.reducer, failure)
            return
        if future is not None and not future.done():
            future.set_result(event)
        if not call.keyed:
            self._forget(call)
            return
        # Kept for the ack window, to be resent if the server loses it; its caller has the
        # outcome, so the call lets go of the future and what it holds (the ReducerEvent):
        # the collector's full passes would otherwise walk them for the whole window.
        call.future = None
        call.state = _ACKED
        call.acked_at = now = time.time()
        self._outbox.acked(call)
        self._acked.append((now, call))
        self._unsettled.discard(call.seq)
        if not self._unsettled:
            self._settled.set()
        self._prune_acked(now)

    def _forget(self, call: OutboxCall) -> None:
        self._deadlines.remove(call)
        self._calls.pop(call.seq, None)
        self._outbox.remove(call)
        self._unsettled.discard(call.seq)
        if not self._unsettled:
            self._settled.set()

    def _prune_acked(self, now: float) -> None:
        """Forget acknowledged calls older than the ack window, or beyond the count cap."""
        cutoff = now - self._settings.ack_window
        while self._acked and (len(self._acked) > MAX_ACKED_CALLS or self._acked[0][0] < cutoff):
            when, call = self._acked.popleft()
            if call.state is CallState.ACKED and call.acked_at == when:
                self._forget(call)

    # --- subscriptions and queries ------------------------------------------------------

    def _send_subscribe(
        self, session: _Session, handle: SubscriptionHandle
    ) -> asyncio.Future[None]:
        query_id = session.protocol.subscribe(handle.queries)
        handle.query_id = query_id
        session.queries[query_id] = handle
        answered: asyncio.Future[None] = self._loop.create_future()
        handle._answered = answered
        return answered

    def _unsubscribe(self, handle: SubscriptionHandle) -> None:
        session = self._session
        on_socket = (
            session is not None
            and not session.ended.done()
            and handle.query_id is not None
            and handle.query_id in session.queries
        )
        if handle.state is SubscriptionState.ACTIVE and on_socket:
            assert session is not None and handle.query_id is not None
            if session.protocol.query_state(handle.query_id) is p.QueryState.ACTIVE:
                session.protocol.unsubscribe(handle.query_id)
                self._flush(session)
            return
        if handle.state is SubscriptionState.PENDING and on_socket:
            handle.state = SubscriptionState.CANCELLING  # unsubscribed once the server applies it
            return
        # Not on a socket: nothing to tell the server; its rows leave at the next resync.
        if handle in self._subscriptions:
            self._subscriptions.remove(handle)
        handle._mark_ended()

    def _one_off(self, session: _Session, sql: str) -> asyncio.Future[p.OneOffQueryResult]:
        message_id = session.protocol.one_off_query(sql)
        future: asyncio.Future[p.OneOffQueryResult] = self._loop.create_future()
        session.one_offs[message_id] = future
        self._flush(session)
        return future

    def _decode_query(self, result: p.OneOffQueryResult) -> dict[str, list[Any]]:
        if result.error is not None:
            raise QueryError(result.error)
        return {
            table.table_name: codec.decode_rows(
                self.schema.table(table.table_name), table.rows.rows_data, table.rows.size_hint
            )
            for table in result.tables
        }

    # --- the socket -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed.done() or self._closing:
            raise InvalidStateError("the connection is closed")

    def _require_ready(self, action: str) -> _Session:
        session = self._session
        if session is None or not session.ready or session.ended.done():
            raise ConnectionClosedError(f"cannot {action} while reconnecting")
        return session

    def _flush(self, session: _Session) -> None:
        """Write what the protocol queued, in order: now, or through the send task.

        A message is written in the caller's turn when nothing is ahead of it and the
        transport can take it without waiting; otherwise it queues behind the others
        for the send task, which waits for the transport (backpressure, closing).
        """
        outgoing = session.outgoing
        for data in session.protocol.data_to_send():
            if session.sending or not outgoing.empty() or not session.transport.send_now(data):
                outgoing.put_nowait(data)

    async def _send_loop(self, session: _Session) -> None:
        try:
            while (data := await session.outgoing.get()) is not None:
                session.sending = True
                await session.transport.send(data)
                session.sending = False
        except ConnectionClosedError as exc:
            await self._end_session(session, exc)

    def _received(self, session: _Session, message: bytes) -> None:
        """One server message, in the turn it arrived: protocol, cache, callbacks, calls."""
        if session.ended.done():
            return
        try:
            session.protocol.receive_message(message)
            for event in session.protocol.events_received():
                self._dispatch(session, event)
            self._flush(session)
        except InnerUniverseError as exc:  # undecodable or illegal server message
            log.error("closing the socket: %s", exc)
            self._lose(session, exc)

    def _lose(self, session: _Session, error: Exception) -> None:
        """End the session now; its transport closes in a task of its own."""
        if self._release(session, error):
            session.tasks.append(self._loop.create_task(self._close_transport(session)))

    async def _end_session(self, session: _Session, error: Exception | None) -> None:
        """The socket is gone: requeue or fail what waited on it, close the transport."""
        if self._release(session, error):
            await self._close_transport(session)

    def _release(self, session: _Session, error: Exception | None) -> bool:
        """Requeue or fail what waited on the session; False if it had already ended."""
        if session.ended.done():
            return False
        session.ended.set_result(error)
        session.protocol.close()
        session.outgoing.put_nowait(None)
        lost = ConnectionClosedError(
            f"the connection was lost: {error}" if error else "the connection was closed"
        )
        for future in session.one_offs.values():
            if not future.done():
                future.set_exception(lost)
                future.exception()  # reported through the query's own future, if anyone waits
        for call in session.calls.values():
            if call.keyed:
                call.state = CallState.QUEUED  # resent under its key after a reconnect
            else:
                self._settle(
                    call,
                    failure=OutcomeUnknownError(
                        f"reducer {call.reducer!r}: {lost}; it may or may not have taken effect",
                        call.reducer,
                    ),
                )
        for handle in session.queries.values():
            handle.query_id = None
            answered = handle._answered
            if answered is not None and not answered.done():
                answered.set_result(None)
        self._staging = None
        if not session.identified.done():
            session.identified.set_exception(lost)
            session.identified.exception()
        return True

    async def _close_transport(self, session: _Session) -> None:
        try:
            await session.transport.close()
        except Exception:  # the link may already be gone
            log.debug("closing the transport failed", exc_info=True)
        current = asyncio.current_task()
        for task in session.tasks:
            if task is not current:
                task.cancel()

    async def _finish(self, error: Exception | None) -> None:
        """The connection is over for good: fail everything still waiting."""
        if self._closed.done():
            return
        self._closing = True
        was_open = self.identity is not None
        self._closed.set_result(error)
        closed = ConnectionClosedError(
            f"the connection was closed: {error}" if error else "the connection was closed"
        )
        self._deadlines.clear()
        for call in list(self._calls.values()):
            future = call.future
            if future is not None and not future.done():
                if not call.was_sent:
                    future.set_exception(closed)
                else:
                    future.set_exception(
                        OutcomeUnknownError(
                            f"reducer {call.reducer!r}: {closed}; it may or may not have "
                            "taken effect (a durable outbox resends it on the next run)",
                            call.reducer,
                        )
                    )
        for handle in self._subscriptions:
            handle._mark_ended(closed)
        self._subscriptions.clear()
        self._outbox.close()  # a durable outbox keeps the unsettled calls for the next run
        if was_open:
            for cb in self._settings.on_disconnect:
                run_callback("on_disconnect", cb, self, error)

    # --- dispatch -------------------------------------------------------------------------

    def _dispatch(self, session: _Session, event: p.ProtocolEvent) -> None:
        match event:  # the commonest first: a committed call, a transaction, a call's result
            case p.TransactionCommitted():
                self._committed(session, event)
            case p.TransactionApplied():
                self._transaction(event)
            case p.ReducerResult():
                self._reducer_result(session, event)
            case p.Identified():
                self.identity, self.token = event.identity, event.token
                self.connection_id = event.connection_id
                self._outbox.save_token(event.token)
                if not session.identified.done():
                    session.identified.set_result(None)
            case p.SubscriptionApplied():
                self._subscription_applied(session, event)
            case p.SubscriptionEnded():
                self._subscription_ended(session, event)
            case p.SubscriptionRejected():
                self._subscription_rejected(session, event)
            case p.StrayFailure():
                log.warning(
                    "a failure of reducer %s matched no call: %s", event.reducer, event.message
                )
            case p.OneOffQueryResult():
                future = session.one_offs.pop(event.message_id, None)
                if future is not None and not future.done():
                    future.set_result(event)

    def _subscription_applied(self, session: _Session, event: p.SubscriptionApplied) -> None:
        handle = session.queries.get(event.query_id)
        if handle is None:
            return
        answered = handle._answered
        if handle.state is SubscriptionState.CANCELLING:
            session.discard_rows.add(event.query_id)
            session.protocol.unsubscribe(event.query_id)
        elif self._staging is not None:
            self._staging.apply(event.update.table_changes())
        else:
            ctx = self._apply(event.update, SubscribeAppliedEvent(event.query_id.id))
            self._handle_applied(handle, ctx)
        if answered is not None and not answered.done():
            answered.set_result(None)

    def _handle_applied(self, handle: SubscriptionHandle, ctx: EventContext) -> None:
        first = handle.state is SubscriptionState.PENDING
        handle._mark_applied()
        if first and handle.on_applied is not None:
            run_callback("on_applied", handle.on_applied, ctx)

    def _subscription_ended(self, session: _Session, event: p.SubscriptionEnded) -> None:
        handle = session.queries.pop(event.query_id, None)
        if event.query_id in session.discard_rows:
            session.discard_rows.discard(event.query_id)
        elif self._staging is not None:
            self._staging.apply(event.update.table_changes())
        else:
            self._apply(event.update, UnsubscribeAppliedEvent(event.query_id.id))
        if handle is not None:
            if handle in self._subscriptions:
                self._subscriptions.remove(handle)
            handle._mark_ended()

    def _subscription_rejected(self, session: _Session, event: p.SubscriptionRejected) -> None:
        if event.fatal or event.query_id is None:
            self._lose(session, SubscriptionRejectedError(event.message))
            return
        handle = session.queries.pop(event.query_id, None)
        if handle is None:
            log.warning(
                "subscription error for unknown query %s: %s", event.query_id, event.message
            )
            return
        handle.error = event.message
        failure = SubscriptionRejectedError(event.message, handle.queries)
        if handle in self._subscriptions:
            self._subscriptions.remove(handle)
        answered = handle._answered
        if answered is not None and not answered.done():
            answered.set_result(None)
        handle._mark_ended(failure)
        if handle.on_error is not None:
            run_callback("on_error", handle.on_error, failure)

    def _reducer_event(self, tx: p.TransactionApplied) -> ReducerEvent | None:
        """The one ReducerEvent of a transaction (built once, shared by all who see it)."""
        if self._last_tx is not None and self._last_tx[0] is tx:
            return self._last_tx[1]
        if tx.light or tx.reducer_name is None:
            return None
        assert tx.caller_identity is not None and tx.timestamp is not None
        event = ReducerEvent.with_wire_args(
            self._args_decoder,
            tx.reducer_args or b"",
            (
                tx.reducer_name,
                tx.caller_identity,
                tx.caller_connection_id,
                tx.timestamp,
                tx.committed,
                tx.error,
                tx.energy_used or 0,
                tx.duration or TimeDuration(0),
                tx.request_id,
            ),
        )
        self._last_tx = (tx, event)
        return event

    def _decode_args(self, reducer: str, data: bytes) -> dict[str, Any]:
        """A ReducerEvent's arguments, decoded when first read (most are never read)."""
        try:
            return codec.decode_args(self.schema.reducer(reducer), data)
        except InnerUniverseError:
            return {}  # a reducer this schema does not know (e.g. the module was updated)

    def _committed(self, session: _Session, event: p.TransactionCommitted) -> None:
        """The fast lane's commit: what ``_transaction`` and ``_reducer_result`` do for the
        TransactionApplied and ReducerResult it stands for, from the reply's fields."""
        reply = event.reply
        connection_id = reply.caller_connection_id
        reducer_event = ReducerEvent.with_wire_args(
            self._args_decoder,
            reply.args,
            (
                reply.reducer_name,
                reply.caller_identity,
                None if connection_id.is_zero() else connection_id,
                reply.timestamp,
                True,
                None,
                reply.energy_used,
                reply.duration,
                reply.request_id,
            ),
        )
        self._show(reply.changes, reducer_event)
        if event.settles:
            call = session.calls.pop(reply.request_id, None)
            if call is not None:
                self._settle(call, reducer_event)

    def _transaction(self, tx: p.TransactionApplied) -> None:
        changes = tx.update.table_changes() if tx.committed else None
        self._show(changes, self._reducer_event(tx))

    def _show(
        self,
        changes: dict[str, tuple[list[bytes], list[bytes]]] | None,
        reducer_event: ReducerEvent | None,
    ) -> None:
        """Apply a transaction's changes (None: it failed) and run the callbacks.

        While resyncing, changes go to the fresh cache and the reconciliation shows them.
        The diff and the context are built only when a callback may see them: most
        replies have none (no callback for the reducer, the transaction, or a changed
        table; the diff's tables are among the changed ones).
        """
        applied = False
        if changes is None:
            diff = TransactionDiff()
        elif self._staging is not None:
            self._staging.apply_unseen(changes)
            diff = TransactionDiff()
        elif not self._watched(changes, reducer_event):
            self.cache.apply_unseen(changes)
            self._sequence += 1
            return
        else:
            diff, applied = self._applied(changes), True
        if not self._watched(diff.tables, reducer_event):
            return
        cause = reducer_event if reducer_event is not None else UnknownTransactionEvent()
        ctx = self._context(cause, diff)
        if applied:
            self._fire(ctx)
        if reducer_event is None:
            return
        for key in (reducer_event.reducer, None):
            callbacks = self._on_reducer.get(key)
            if callbacks:  # copied: a callback may remove itself
                for cb in list(callbacks):
                    run_callback(f"on_reducer({key})", cb, ctx, reducer_event)

    def _watched(self, tables: Iterable[str], reducer_event: ReducerEvent | None) -> bool:
        """Whether any callback would see a transaction changing ``tables`` (none can
        register meanwhile)."""
        if self._on_transaction:
            return True
        on_reducer = self._on_reducer
        if (
            on_reducer
            and reducer_event is not None
            and (on_reducer.get(reducer_event.reducer) or on_reducer.get(None))
        ):
            return True
        watched = self._watched_tables
        return bool(watched) and not watched.isdisjoint(tables)

    def _reducer_result(self, session: _Session, result: p.ReducerResult) -> None:
        call = session.calls.pop(result.request_id, None)
        if call is None:
            return
        if not result.reported:
            self._settle(call, None)
        elif result.committed:
            assert result.transaction is not None
            self._settle(call, self._reducer_event(result.transaction))
        else:
            self._settle(call, failure=ReducerError(result.reducer, result.error or "failed"))

    def _context(self, cause: ContextEvent, diff: TransactionDiff) -> EventContext:
        return EventContext(self, cause, diff, self._sequence)

    def _apply(self, update: DatabaseUpdate, cause: ContextEvent) -> EventContext:
        """Apply a whole update to the cache, then fire callbacks: rows first, then the rest."""
        return self._apply_changes(update.table_changes(), cause)

    def _apply_changes(
        self, changes: dict[str, tuple[list[bytes], list[bytes]]], cause: ContextEvent
    ) -> EventContext:
        ctx = self._context(cause, self._applied(changes))
        self._fire(ctx)
        return ctx

    def _applied(self, changes: dict[str, tuple[list[bytes], list[bytes]]]) -> TransactionDiff:
        """Apply a transaction to the cache and count it (``EventContext.sequence``)."""
        diff = self.cache.apply(changes)
        self._sequence += 1
        return diff

    def _fire(self, ctx: EventContext) -> None:
        for name, table_diff in ctx.diff.tables.items():
            self.db[name].fire(ctx, table_diff)
        if self._on_transaction:  # copied: a callback may remove itself
            for cb in list(self._on_transaction):
                run_callback("on_transaction", cb, ctx)
