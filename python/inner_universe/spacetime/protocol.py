"""The sans-I/O core of a v1 SpacetimeDB client connection, in the style of websockets/h11.

:class:`ClientProtocol` owns no socket and no event loop. The connection driver
(the I/O half) moves whole binary WebSocket messages in and out, following the
same recipe after every incoming message:

1. ``protocol.receive_message(data)`` — feed one server message;
2. ``protocol.events_received()`` — drain the resulting events;
3. ``protocol.data_to_send()`` — write each returned message as one binary frame;
4. dispatch the events.

Requests (:meth:`~ClientProtocol.call_reducer`, :meth:`~ClientProtocol.subscribe`,
:meth:`~ClientProtocol.unsubscribe`, :meth:`~ClientProtocol.one_off_query`)
return the id that later events carry, and *queue* their bytes; nothing is sent
until the driver drains :meth:`~ClientProtocol.data_to_send`.

States: ``CONNECTING`` until the server's ``IdentityToken`` arrives, then
``OPEN``; ``CLOSED`` after :meth:`~ClientProtocol.close`, a fatal subscription
error, or a malformed server message. Requests are only accepted when ``OPEN``
(:class:`InvalidStateError` otherwise — the caller's fault). A server message
that does not decode or does not fit the conversation raises
:class:`DecodeError` / :class:`ProtocolError` (the server's fault); the error is
kept in :attr:`~ClientProtocol.failure` and the protocol becomes ``CLOSED``, so
the driver should close the socket. Messages fed in while ``CLOSED`` are
ignored.

Reducer outcomes
----------------
Every ``TransactionUpdate`` / ``TransactionUpdateLight`` becomes one
:class:`TransactionApplied` event. When it finishes a call made on *this*
connection, a :class:`ReducerResult` follows immediately, naming the call's
``request_id`` and holding the same :class:`TransactionApplied`. Matching is:

* Only a full ``TransactionUpdate`` whose caller identity *and* caller
  connection id equal ours can finish one of our calls. Updates sent because
  someone else's reducer touched our subscriptions carry *their* request ids,
  and ``TransactionUpdateLight`` never goes to the caller, so neither is
  matched by id.
* A committed call always echoes its request id (we never send 0), so a commit
  finishes exactly the pending call with that id.
* A failed call comes back with request id 0 (server bug #2729) — both when the
  reducer ran and failed, and for message-level errors such as an unknown
  reducer or undecodable arguments. The failure names the reducer, so it
  finishes the *oldest* pending call to that reducer. A 1.2 server handles one
  connection's messages in order, so the oldest such call is the one that
  failed. If a server ever echoes the id, that is used first.
* A failure named ``"<none>"`` is a failed subscribe/unsubscribe/one-off request,
  not a reducer call: it matches no call and only appears as a
  :class:`TransactionApplied` with a ``Failed`` status.
* Calls made with ``NO_SUCCESS_NOTIFY`` are not tracked: the server reports
  neither their success nor their runtime failure to the caller.
* ``OutOfEnergy`` is never sent to the caller by 1.2 servers; if it is, it
  finishes the call like a failure.

Limits: the rule assumes answers to one connection's calls of the same reducer
arrive in call order. The arguments cannot help break ties, because
message-level errors echo none. A message-level rejection of a
``NO_SUCCESS_NOTIFY`` call (which the server still reports) would be taken for
the oldest tracked call to the same reducer; drivers validate reducer names and
arguments before sending, so that should not arise. A call that never gets an
answer (out of energy, dropped connection) stays pending until the driver gives
up on it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from ..errors import DecodeError, EncodeError, InvalidStateError, ProtocolError
from . import messages as m
from .messages import (
    CallReducerFlags,
    DatabaseUpdate,
    OneOffTable,
    QueryId,
    UpdateStatus,
)
from .types import ConnectionId, Identity, TimeDuration, Timestamp

__all__ = [
    "MAX_CLIENT_MESSAGE_SIZE",
    "CallReducerFlags",
    "ClientProtocol",
    "DatabaseUpdate",
    "Event",
    "Identified",
    "OneOffQueryResult",
    "OneOffTable",
    "QueryId",
    "QueryState",
    "ReducerResult",
    "State",
    "SubscribeApplied",
    "SubscriptionFailed",
    "TransactionApplied",
    "UnsubscribeApplied",
    "UpdateStatus",
]

#: The server closes the connection on client messages larger than this (32 MiB).
MAX_CLIENT_MESSAGE_SIZE: Final = 0x200_0000

_U32_MAX: Final = 0xFFFF_FFFF


class State(enum.Enum):
    """Where the connection is in its life."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


class QueryState(enum.Enum):
    """Where one subscription (query id) is in its life."""

    PENDING = "pending"  # SubscribeMulti sent, not applied yet
    ACTIVE = "active"  # applied; its rows are live
    ENDING = "ending"  # UnsubscribeMulti sent, not applied yet


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Identified:
    """The server said who we are; the connection is now open."""

    identity: Identity
    token: str = field(repr=False)  # a credential: keep it out of logs
    connection_id: ConnectionId


@dataclass(frozen=True, slots=True)
class SubscribeApplied:
    """A subscription is live; ``update`` holds its current rows (as inserts)."""

    query_id: QueryId
    request_id: int
    update: DatabaseUpdate


@dataclass(frozen=True, slots=True)
class UnsubscribeApplied:
    """A subscription ended; ``update`` holds the rows to forget (as deletes)."""

    query_id: QueryId
    request_id: int
    update: DatabaseUpdate


@dataclass(frozen=True, slots=True)
class SubscriptionFailed:
    """The server rejected a subscribe or unsubscribe request, or dropped every subscription.

    ``fatal`` (the server sent no query id) means the server has dropped this
    client: the protocol is ``CLOSED`` and the driver should close the socket.
    """

    query_id: QueryId | None
    request_id: int | None
    message: str
    fatal: bool


@dataclass(frozen=True, slots=True)
class TransactionApplied:
    """One transaction as this client sees it (from ``TransactionUpdate`` or its light form).

    ``update`` is the committed row changes (empty unless committed). The light
    form carries no reducer details: those fields are None and ``light`` is
    True. ``request_id`` is the *caller's* id, meaningful only for our own calls
    (see :class:`ReducerResult`). ``caller_connection_id`` is None when the
    server sent the all-zero id (scheduled reducers, some HTTP calls).
    """

    status: UpdateStatus
    update: DatabaseUpdate
    request_id: int
    light: bool = False
    timestamp: Timestamp | None = None
    caller_identity: Identity | None = None
    caller_connection_id: ConnectionId | None = None
    reducer_name: str | None = None
    reducer_id: int | None = None
    reducer_args: bytes | None = None
    energy_used: int | None = None
    duration: TimeDuration | None = None

    @property
    def committed(self) -> bool:
        return isinstance(self.status, m.Committed)

    @property
    def error(self) -> str | None:
        """The server's failure text, or None when committed."""
        match self.status:
            case m.Failed(message):
                return message
            case m.OutOfEnergy():
                return "out of energy"
        return None


@dataclass(frozen=True, slots=True)
class ReducerResult:
    """A reducer call made on this connection finished (right after its transaction's event)."""

    request_id: int
    reducer: str
    committed: bool
    error: str | None
    transaction: TransactionApplied


@dataclass(frozen=True, slots=True)
class OneOffQueryResult:
    """Answer to :meth:`ClientProtocol.one_off_query`: an error, or the result tables."""

    message_id: bytes
    error: str | None
    tables: tuple[OneOffTable, ...]


Event: TypeAlias = (
    Identified
    | SubscribeApplied
    | UnsubscribeApplied
    | SubscriptionFailed
    | TransactionApplied
    | ReducerResult
    | OneOffQueryResult
)


# --------------------------------------------------------------------------- the protocol


class ClientProtocol:
    """The state of one v1 connection: ids, pending requests, subscriptions.

    Attributes:
        state: the connection :class:`State`.
        identity, token, connection_id: from the server's ``IdentityToken``
            (None while connecting).
        failure: the error that closed the protocol when a server message was
            malformed, else None.
    """

    def __init__(self, *, max_message_size: int = m.DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size  # what one message may decompress to
        self.state = State.CONNECTING
        self.identity: Identity | None = None
        self.token: str | None = None
        self.connection_id: ConnectionId | None = None
        self.failure: DecodeError | ProtocolError | None = None
        self._closed_because = ""
        self._events: list[Event] = []
        self._outgoing: list[bytes] = []
        self._next_request_id = 1
        self._next_query_id = 1
        self._next_message_id = 1
        self._calls: dict[int, str] = {}  # request id -> reducer name, in call order
        self._queries: dict[QueryId, QueryState] = {}
        self._one_off: set[bytes] = set()

    # ----------------------------------------------------------------- draining

    def events_received(self) -> list[Event]:
        """Events parsed since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Outgoing messages queued since the last call; send each as one binary frame."""
        data, self._outgoing = self._outgoing, []
        return data

    # ----------------------------------------------------------------- requests

    def call_reducer(
        self,
        reducer: str,
        args: bytes = b"",
        flags: CallReducerFlags = CallReducerFlags.FULL_UPDATE,
    ) -> int:
        """Queue a reducer call; returns its request id (never 0).

        With ``FULL_UPDATE`` a :class:`ReducerResult` with this id follows the
        outcome. ``NO_SUCCESS_NOTIFY`` calls are fire-and-forget: no result ever.

        Raises:
            InvalidStateError: the connection is not open.
            EncodeError: the message does not fit the wire format or the size limit.
        """
        self._check_open("call a reducer")
        request_id = self._allocate_request_id()
        self._queue(m.CallReducer(reducer, bytes(args), request_id, CallReducerFlags(flags)))
        if flags == CallReducerFlags.FULL_UPDATE:
            self._calls[request_id] = reducer
        return request_id

    def subscribe(self, queries: Sequence[str]) -> QueryId:
        """Queue a ``SubscribeMulti`` for ``queries``; returns the subscription's query id.

        Its outcome is a :class:`SubscribeApplied` or a :class:`SubscriptionFailed`.
        """
        self._check_open("subscribe")
        if isinstance(queries, str):
            raise TypeError("subscribe() takes a sequence of SQL strings, not a single str")
        if not queries:
            raise ValueError("subscribe() needs at least one query")
        query_id = self._allocate_query_id()
        request_id = self._allocate_request_id()
        self._queue(m.SubscribeMulti(tuple(queries), request_id, query_id))
        self._queries[query_id] = QueryState.PENDING
        return query_id

    def unsubscribe(self, query_id: QueryId) -> None:
        """Queue an ``UnsubscribeMulti`` for an applied subscription.

        Its outcome is an :class:`UnsubscribeApplied` or a :class:`SubscriptionFailed`.

        Raises:
            InvalidStateError: not open, or ``query_id`` is not an applied subscription.
        """
        self._check_open("unsubscribe")
        state = self._queries.get(query_id)
        if state is not QueryState.ACTIVE:
            what = "unknown" if state is None else state.value
            raise InvalidStateError(f"cannot unsubscribe query id {query_id.id}: it is {what}")
        self._queue(m.UnsubscribeMulti(self._allocate_request_id(), query_id))
        self._queries[query_id] = QueryState.ENDING

    def one_off_query(self, sql: str) -> bytes:
        """Queue a one-off query; returns the message id its :class:`OneOffQueryResult` carries."""
        self._check_open("run a one-off query")
        while True:
            message_id = self._next_message_id.to_bytes(4, "little")
            self._next_message_id = self._next_message_id % _U32_MAX + 1
            if message_id not in self._one_off:
                break
        self._queue(m.OneOffQuery(message_id, sql))
        self._one_off.add(message_id)
        return message_id

    def close(self) -> None:
        """The connection is gone (either side closed it): refuse further requests.

        Pending calls, queries and one-off queries stay visible through the
        accessors so the driver can fail whatever still waits on them.
        """
        self.state = State.CLOSED

    # ----------------------------------------------------------------- introspection

    def pending_calls(self) -> tuple[int, ...]:
        """Request ids of reducer calls still waiting for their outcome, oldest first."""
        return tuple(self._calls)

    def query_state(self, query_id: QueryId) -> QueryState | None:
        """The state of a subscription, or None if it is unknown or over."""
        return self._queries.get(query_id)

    def pending_one_off_queries(self) -> tuple[bytes, ...]:
        """Message ids of one-off queries still waiting for their result."""
        return tuple(self._one_off)

    # ----------------------------------------------------------------- receiving

    def receive_message(self, data: bytes | bytearray | memoryview) -> None:
        """Feed one whole binary WebSocket message from the server.

        Resulting events are available from :meth:`events_received`. Ignored
        when ``CLOSED``.

        Raises:
            DecodeError: the message did not decode.
            ProtocolError: it decoded but does not fit the conversation.
            Either way the protocol is left ``CLOSED`` with the error in ``failure``,
            and no event or state change from this message is kept.
        """
        if self.state is State.CLOSED:
            return
        try:
            self._handle(m.decode_server_frame(data, max_message_size=self.max_message_size))
        except (DecodeError, ProtocolError) as exc:
            self.failure = exc
            self.state = State.CLOSED
            raise

    def _handle(self, msg: m.ServerMessage) -> None:
        # Each branch checks everything before changing any state or emitting events.
        if self.state is State.CONNECTING and not isinstance(msg, m.IdentityToken):
            raise ProtocolError(f"expected IdentityToken first, got {type(msg).__name__}")
        match msg:
            case m.IdentityToken():
                self._on_identity_token(msg)
            case m.TransactionUpdate():
                self._on_transaction_update(msg)
            case m.TransactionUpdateLight():
                status = m.Committed(msg.update)
                tx = TransactionApplied(status, msg.update, msg.request_id, light=True)
                self._events.append(tx)
            case m.SubscribeMultiApplied():
                self._expect_query(msg.query_id, QueryState.PENDING, "SubscribeMultiApplied")
                self._queries[msg.query_id] = QueryState.ACTIVE
                self._events.append(SubscribeApplied(msg.query_id, msg.request_id, msg.update))
            case m.UnsubscribeMultiApplied():
                self._expect_query(msg.query_id, QueryState.ENDING, "UnsubscribeMultiApplied")
                del self._queries[msg.query_id]
                self._events.append(UnsubscribeApplied(msg.query_id, msg.request_id, msg.update))
            case m.SubscriptionError():
                self._on_subscription_error(msg)
            case m.OneOffQueryResponse():
                if msg.message_id not in self._one_off:
                    raise ProtocolError(f"OneOffQueryResponse for unknown id {msg.message_id!r}")
                self._one_off.remove(msg.message_id)
                self._events.append(OneOffQueryResult(msg.message_id, msg.error, msg.tables))
            case _:
                # InitialSubscription, SubscribeApplied, UnsubscribeApplied and
                # ProcedureResult answer requests this client never sends.
                raise ProtocolError(f"unsolicited {type(msg).__name__}")

    def _on_identity_token(self, msg: m.IdentityToken) -> None:
        if self.state is not State.CONNECTING:
            raise ProtocolError("a second IdentityToken on an open connection")
        self.identity, self.token, self.connection_id = msg.identity, msg.token, msg.connection_id
        self.state = State.OPEN
        self._events.append(Identified(msg.identity, msg.token, msg.connection_id))

    def _on_transaction_update(self, msg: m.TransactionUpdate) -> None:
        info = msg.reducer_call
        update = msg.status.update if isinstance(msg.status, m.Committed) else DatabaseUpdate()
        tx = TransactionApplied(
            status=msg.status,
            update=update,
            request_id=info.request_id,
            timestamp=msg.timestamp,
            caller_identity=msg.caller_identity,
            caller_connection_id=None
            if msg.caller_connection_id.is_zero()
            else msg.caller_connection_id,
            reducer_name=info.reducer_name,
            reducer_id=info.reducer_id,
            reducer_args=info.args,
            energy_used=msg.energy_quanta_used.quanta,
            duration=msg.total_host_execution_duration,
        )
        self._events.append(tx)
        request_id = self._match_call(msg)
        if request_id is not None:
            reducer = self._calls.pop(request_id)
            self._events.append(ReducerResult(request_id, reducer, tx.committed, tx.error, tx))

    def _match_call(self, msg: m.TransactionUpdate) -> int | None:
        """The pending call ``msg`` finishes, if any (rules in the module docstring)."""
        if msg.caller_identity != self.identity or msg.caller_connection_id != self.connection_id:
            return None
        info = msg.reducer_call
        if info.request_id in self._calls:
            return info.request_id
        if isinstance(msg.status, m.Committed):
            return None  # a commit always echoes its id: this one is not a tracked call
        return next((r for r, name in self._calls.items() if name == info.reducer_name), None)

    def _on_subscription_error(self, msg: m.SubscriptionError) -> None:
        query_id = None if msg.query_id is None else QueryId(msg.query_id)
        fatal = query_id is None
        if fatal:
            self._queries.clear()
            self.state = State.CLOSED
            self._closed_because = f"the server dropped every subscription: {msg.error}"
        elif query_id in self._queries:
            # Whether the subscribe or the unsubscribe failed, the server holds no
            # subscription under this id any more.
            del self._queries[query_id]
        self._events.append(SubscriptionFailed(query_id, msg.request_id, msg.error, fatal))

    def _expect_query(self, query_id: QueryId, state: QueryState, what: str) -> None:
        actual = self._queries.get(query_id)
        if actual is not state:
            found = "unknown" if actual is None else actual.value
            raise ProtocolError(f"{what} for query id {query_id.id}, which is {found}")

    # ----------------------------------------------------------------- helpers

    def _check_open(self, action: str) -> None:
        if self.state is State.OPEN:
            return
        if self.state is State.CONNECTING:
            raise InvalidStateError(f"cannot {action} before the server identified the connection")
        reason = str(self.failure or self._closed_because)
        detail = f" ({reason})" if reason else ""
        raise InvalidStateError(f"cannot {action}: the connection is closed{detail}")

    def _queue(self, msg: m.ClientMessage) -> None:
        data = m.encode_client_message(msg)
        if len(data) > MAX_CLIENT_MESSAGE_SIZE:
            raise EncodeError(
                f"{type(msg).__name__} is {len(data)} bytes; the server accepts at most "
                f"{MAX_CLIENT_MESSAGE_SIZE} bytes per message"
            )
        self._outgoing.append(data)

    def _allocate_request_id(self) -> int:
        """The next u32 request id: wraps, skips 0 and ids of calls still in flight."""
        while True:
            request_id = self._next_request_id
            self._next_request_id = request_id % _U32_MAX + 1
            if request_id not in self._calls:
                return request_id

    def _allocate_query_id(self) -> QueryId:
        """The next u32 query id not naming a live subscription (wraps, skips 0)."""
        while True:
            query_id = QueryId(self._next_query_id)
            self._next_query_id = self._next_query_id % _U32_MAX + 1
            if query_id not in self._queries:
                return query_id
