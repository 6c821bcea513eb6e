"""The synchronous API: a :class:`DbConnection` on its own event-loop thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import CallTimeoutError, WrongThreadError
from .call_keys import PreparedCall, keyed_args
from .events import ReducerEvent
from .schema import CallKey
from .subscriptions import SubscriptionHandle
from .tables import (
    DEFAULT_CALL_OPTIONS,
    CallOptions,
    ReducerCallback,
    Reducers,
    TransactionCallback,
)
from .types import ConnectionId, Identity

if TYPE_CHECKING:
    from .builder import ConnectionBuilder
    from .driver import DbConnection

__all__ = ["ThreadedConnection"]

T = TypeVar("T")


def _relay(done: concurrent.futures.Future[Any], future: asyncio.Future[Any]) -> None:
    """Give a call's outcome to the caller's thread (unless the caller cancelled)."""
    if future.cancelled():
        done.cancel()
        return
    if not done.set_running_or_notify_cancel():
        return
    if (exc := future.exception()) is not None:
        done.set_exception(exc)
    else:
        done.set_result(future.result())


def _cancel_from(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    done: concurrent.futures.Future[Any],
) -> None:
    """The caller cancelled: stop waiting on the loop too."""
    if done.cancelled() and not loop.is_closed():
        loop.call_soon_threadsafe(future.cancel)


class _Outcome:
    """A blocking call's outcome, handed from the connection's thread to the caller's.

    The caller sleeps on a lock that the connection's thread releases once the
    outcome is in: one wake-up, with none of a ``concurrent.futures.Future``'s
    condition variable, callbacks and cancellation (a blocking call is never
    cancelled; it times out).
    """

    __slots__ = ("_error", "_ready", "_value")

    def __init__(self) -> None:
        self._ready = threading.Lock()
        self._ready.acquire()
        self._value: Any = None
        self._error: BaseException | None = None

    def take(self, future: asyncio.Future[Any]) -> None:
        """The call's future is done (on the connection's thread)."""
        if future.cancelled():
            self.fail(concurrent.futures.CancelledError())
            return
        self._error = future.exception()
        if self._error is None:
            self._value = future.result()
        self._ready.release()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._ready.release()

    def wait(self, timeout: float) -> bool:
        """Block until the outcome is in; False after ``timeout`` seconds."""
        return self._ready.acquire(timeout=timeout)

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class ThreadedConnection:
    """A :class:`DbConnection` running on its own event-loop thread, for synchronous code.

    Calls block until done (or ``timeout``, then :class:`CallTimeoutError`).
    Callbacks run on the connection's thread: keep them short, and never make a
    blocking call from one (it raises :class:`WrongThreadError` at once rather
    than deadlock). Reads of ``db`` are safe from any thread: the cache is
    locked while a transaction is applied.
    """

    def __init__(self, builder: ConnectionBuilder, timeout: float = 30.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="spacetimedb-connection", daemon=True
        )
        self._thread.start()
        self.timeout = timeout
        try:
            self.connection: DbConnection = self._run(builder.connect(timeout), timeout + 5)
        except BaseException:
            self._stop_loop()
            raise
        self.db = self.connection.db
        self.reducers = Reducers(self.connection.schema, self._call)

    @property
    def identity(self) -> Identity | None:
        return self.connection.identity

    @property
    def token(self) -> str | None:
        return self.connection.token

    @property
    def connection_id(self) -> ConnectionId | None:
        return self.connection.connection_id

    @property
    def is_connected(self) -> bool:
        return self.connection.is_connected

    def _check_thread(self, what: str) -> None:
        if threading.current_thread() is self._thread:
            raise WrongThreadError(
                f"{what} blocks until the connection's thread answers, and was called on "
                "that very thread (from a callback?): use call_reducer_async, or the "
                "asyncio DbConnection in self.connection"
            )

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        self._check_thread("this call")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        limit = timeout if timeout is not None else self.timeout
        try:
            return future.result(limit)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise CallTimeoutError(f"the connection did not answer within {limit} s") from None

    def run_on_connection_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the connection's own thread and return its result.

        Callbacks and cache updates happen on that thread, so ``fn`` sees no
        transaction half-applied: the place to read the cache and register
        callbacks together, atomically. Called on that thread, it just runs ``fn``.
        """
        if threading.current_thread() is self._thread:
            return fn()

        async def run() -> T:
            return fn()

        return self._run(run())

    def subscribe(self, *queries: str) -> SubscriptionHandle:
        """Subscribe and wait until applied; ``unsubscribe(handle)`` removes it."""
        self._check_thread("subscribe")

        async def run() -> SubscriptionHandle:
            return await self.connection.subscribe(*queries)

        return self._run(run())

    def unsubscribe(self, handle: SubscriptionHandle) -> None:
        self._check_thread("unsubscribe")
        self._run(handle.unsubscribe())

    def one_off_query(self, sql: str) -> dict[str, list[Any]]:
        """Run a read-only SQL query once and wait for its rows (see DbConnection.one_off_query)."""
        self._check_thread("one_off_query")

        async def run() -> dict[str, list[Any]]:
            return await self.connection.one_off_query(sql)

        return self._run(run())

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every call made so far has a known outcome."""
        self._check_thread("flush")
        limit = timeout if timeout is not None else self.timeout
        self._run(self.connection.flush(limit), limit + 5)

    def call_reducer(
        self, reducer: str, *args: Any, call_key: CallKey | None = None, **kwargs: Any
    ) -> ReducerEvent:
        """Call a reducer and wait for its outcome (raises ReducerError if it failed)."""
        event: ReducerEvent = self._call(reducer, DEFAULT_CALL_OPTIONS, args, kwargs, call_key)
        return event

    def _call(
        self,
        reducer: str,
        options: CallOptions,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        call_key: CallKey | None = None,
    ) -> Any:
        """Block for the call; None only for a call made with ``notify=False``."""
        self._check_thread(f"reducer {reducer!r}")
        prepared = self._prepare(reducer, args, kwargs, call_key)
        outcome = _Outcome()

        def submit() -> None:  # on the loop: the call's own future hands the outcome over
            try:
                future = self.connection._submit(prepared, options, call_key)
            except Exception as exc:
                outcome.fail(exc)
                return
            future.add_done_callback(outcome.take)

        self._loop.call_soon_threadsafe(submit)
        # The call's own timeout resolves the future; the margin only guards a dead loop.
        if not outcome.wait(options.timeout + 5):
            raise CallTimeoutError(f"reducer {reducer!r}: the connection thread is stuck")
        return outcome.result()

    def call_reducer_async(
        self, reducer: str, *args: Any, call_key: CallKey | None = None, **kwargs: Any
    ) -> concurrent.futures.Future[ReducerEvent]:
        """Call a reducer without waiting; arguments are checked before this returns."""
        return self._call_async(reducer, DEFAULT_CALL_OPTIONS, args, kwargs, call_key)

    def _prepare(
        self,
        reducer: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        call_key: CallKey | None,
    ) -> PreparedCall:
        """Check and encode a call here, on the caller's thread, so bad arguments raise at once."""
        plan = self.connection._plan(reducer)
        prepared = PreparedCall(plan.name, plan.encode(args, kwargs), plan.keyed)
        if call_key is not None:
            keyed_args(reducer, call_key, b"")  # a bad key raises here too
        return prepared

    def _call_async(
        self,
        reducer: str,
        options: CallOptions,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        call_key: CallKey | None = None,
    ) -> concurrent.futures.Future[Any]:
        prepared = self._prepare(reducer, args, kwargs, call_key)
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def submit() -> None:  # on the loop: no task, the call's own future is relayed
            if done.cancelled():
                return
            try:
                future = self.connection._submit(prepared, options, call_key)
            except Exception as exc:
                if done.set_running_or_notify_cancel():
                    done.set_exception(exc)
                return
            future.add_done_callback(functools.partial(_relay, done))
            done.add_done_callback(functools.partial(_cancel_from, self._loop, future))

        self._loop.call_soon_threadsafe(submit)
        return done

    def on_transaction(self, callback: TransactionCallback) -> TransactionCallback:
        return self.connection.on_transaction(callback)

    def on_reducer(self, reducer: str | None, callback: ReducerCallback) -> ReducerCallback:
        return self.connection.on_reducer(reducer, callback)

    def disconnect(self) -> None:
        self._check_thread("disconnect")
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
