"""Subscription handles: one set of SQL queries, live across reconnects.

A handle outlives the socket it was made on: after a reconnect the connection
subscribes its queries again (under a new query id) and reconciles the cache.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from ..errors import InvalidStateError
from .messages import QueryId

if TYPE_CHECKING:
    from .driver import DbConnection
    from .events import EventContext

__all__ = ["SubscriptionHandle", "SubscriptionState"]

AppliedCallback = Callable[["EventContext"], object]
ErrorCallback = Callable[[Exception], object]


class SubscriptionState(enum.Enum):
    """Where a handle is in its life (the server's view may lag during a reconnect)."""

    PENDING = "pending"  # asked for, not applied yet
    ACTIVE = "active"  # applied: its rows are in the cache
    CANCELLING = "cancelling"  # cancelled before it was applied; the server is told once it is
    ENDED = "ended"  # unsubscribed, cancelled, rejected or closed


class SubscriptionHandle:
    """A live set of subscribed queries.

    ``await handle`` returns it once applied (or raises
    :class:`~inner_universe.errors.SubscriptionRejectedError`);
    ``await handle.unsubscribe()`` removes its rows. Unsubscribing before it is
    applied cancels it: its rows never arrive and ``on_applied`` never runs.
    """

    def __init__(
        self,
        connection: DbConnection,
        queries: tuple[str, ...],
        on_applied: AppliedCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.connection = connection
        self.queries = queries
        self.query_id: QueryId | None = None  # the id on the current socket
        self.state = SubscriptionState.PENDING
        self.error: str | None = None
        self.on_applied = on_applied
        self.on_error = on_error
        self._applied: asyncio.Future[SubscriptionHandle] = loop.create_future()
        self._ended: asyncio.Future[None] = loop.create_future()
        # The server answered (applied or rejected) on the current socket: what a resync awaits.
        self._answered: asyncio.Future[None] | None = None

    def is_active(self) -> bool:
        return self.state is SubscriptionState.ACTIVE

    def is_ended(self) -> bool:
        return self.state is SubscriptionState.ENDED

    def __await__(self) -> Generator[Any, None, SubscriptionHandle]:
        return self._applied.__await__()

    async def unsubscribe(self) -> None:
        """Remove this subscription; returns once its rows have left the cache.

        Before it is applied this cancels it: the applied callback never runs.
        """
        if self.state is SubscriptionState.ENDED:
            return
        self.connection._unsubscribe(self)
        await asyncio.shield(self._ended)

    # --- called by the connection -------------------------------------------------

    def _mark_applied(self) -> None:
        self.state = SubscriptionState.ACTIVE
        if not self._applied.done():
            self._applied.set_result(self)

    def _mark_ended(self, failure: Exception | None = None) -> None:
        self.state = SubscriptionState.ENDED
        if not self._applied.done():
            self._applied.set_exception(
                failure or InvalidStateError("the subscription was cancelled before it was applied")
            )
            self._applied.exception()  # reported through the awaiter, never "never retrieved"
        if not self._ended.done():
            self._ended.set_result(None)
