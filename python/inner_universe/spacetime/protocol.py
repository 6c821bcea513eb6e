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
connection, a :class:`ReducerResult` follows, naming the call's ``request_id``.
The protocol owns the pending calls, and attributes every outcome exactly, in
every order a 1.2 server can produce. What the server does (``subscribe.rs``,
``message_handlers.rs``, ``module_subscription_actor.rs`` at v1.2.0):

* It handles one connection's messages strictly one after another.
* Its answers travel by two routes. **Route A**, the broadcast queue, carries
  commits (echoing our request id), failures of a reducer that ran (request id 0,
  but the call's arguments echoed) and every subscription answer. **Route B** is
  written straight to the socket when a message fails before any reducer runs
  (undecodable arguments, unknown reducer): request id 0, no arguments, zero
  duration. Each route keeps call order, but a route-B error can overtake
  route-A answers to *earlier* calls: the old "oldest pending call of that
  reducer" rule misattributed exactly there.
* A route-B error for request *k* is written before request *k+1* is even
  read. So once any route-A answer to request *m* arrives, every route-B error
  of a request before *m* has arrived, and every call before *m* still pending
  is one of them: they pair up in order.

Hence the rules: a commit finishes the call with its request id; a route-A
failure finishes the call whose :class:`CallKey` it echoes as its first argument
(else the oldest pending call of that reducer with the same argument bytes); a
route-B error finishes its call at once when as many errors of that reducer
are held as its calls are pending, and is otherwise held until the next
route-A answer settles it as above (held errors pair with the calls before the
answer in order, by reducer name). If nothing else is in flight, the protocol queues a
*barrier*: a ``SubscribeMulti`` of a query that cannot compile, whose route-A
``SubscriptionError`` settles everything before it (the driver never sees it).

``NO_SUCCESS_NOTIFY`` calls are tracked too: the server reports neither their
commit nor their runtime failure, but still reports route-B errors. They finish
with ``reported=False`` once a later route-A answer shows the server handled them.
Two of them of one reducer, rejected at once, cannot be told apart: the earlier
is taken not to be the rejected one (see :meth:`ClientProtocol._pairing`).
``OutOfEnergy`` (never sent by 1.2) finishes the call like a route-A failure.

The fast lane
-------------
Most of what a busy client receives is one kind of reply: a committed
``TransactionUpdate`` of its own oldest pending call, or of someone else's call.
With ``lean_replies=True`` (the driver's choice) the protocol reads such a frame
into a flat :class:`~.messages.CommittedReply` and reports it as one
:class:`TransactionCommitted` event, standing for the :class:`TransactionApplied`
(and, for one's own call, the :class:`ReducerResult`) that the general path emits
for it. Anything else takes the general path: a failure, a light or compressed
update, one's own commit while an older call is pending or an error is held.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from ..errors import DecodeError, EncodeError, InvalidStateError, ProtocolError, UsageError
from . import messages as m
from .messages import (
    CallReducerFlags,
    DatabaseUpdate,
    OneOffTable,
    QueryId,
    UpdateStatus,
)
from .schema import CallKey
from .types import ConnectionId, Identity, TimeDuration, Timestamp

__all__ = [
    "BARRIER_QUERY",
    "MAX_CLIENT_MESSAGE_SIZE",
    "CallKey",
    "CallReducerFlags",
    "ClientProtocol",
    "DatabaseUpdate",
    "Identified",
    "OneOffQueryResult",
    "OneOffTable",
    "ProtocolEvent",
    "QueryId",
    "QueryState",
    "ReducerResult",
    "State",
    "StrayFailure",
    "SubscriptionApplied",
    "SubscriptionEnded",
    "SubscriptionRejected",
    "TransactionApplied",
    "TransactionCommitted",
    "UpdateStatus",
    "key_bytes",
    "key_in_args",
]

#: The server closes the connection on client messages larger than this (32 MiB).
MAX_CLIENT_MESSAGE_SIZE: Final = 0x200_0000

#: The query of a barrier subscription: it never compiles, so the server answers
#: it with a ``SubscriptionError`` through the same queue as reducer outcomes.
BARRIER_QUERY: Final = "SELECT * FROM -- inner_universe ordering barrier"

_U32_MAX: Final = 0xFFFF_FFFF
_FULL_UPDATE: Final = CallReducerFlags.FULL_UPDATE
_NO_SUCCESS_NOTIFY: Final = CallReducerFlags.NO_SUCCESS_NOTIFY
KEY_SIZE: Final = 24  # CallKey: u128 client + u64 seq, the first reducer argument


def key_bytes(key: CallKey) -> bytes:
    """The 24 BSATN bytes of a :class:`CallKey` (u128 client, u64 seq): a keyed call's first."""
    return key.client.to_bytes(16, "little") + key.seq.to_bytes(8, "little")


def key_in_args(args: bytes) -> CallKey | None:
    """The key at the front of a keyed call's argument bytes (None if too short)."""
    if len(args) < KEY_SIZE:
        return None
    return CallKey(int.from_bytes(args[:16], "little"), int.from_bytes(args[16:24], "little"))


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
class SubscriptionApplied:
    """A subscription is live; ``update`` holds its current rows (as inserts)."""

    query_id: QueryId
    request_id: int
    update: DatabaseUpdate


@dataclass(frozen=True, slots=True)
class SubscriptionEnded:
    """A subscription ended; ``update`` holds the rows to forget (as deletes)."""

    query_id: QueryId
    request_id: int
    update: DatabaseUpdate


@dataclass(frozen=True, slots=True)
class SubscriptionRejected:
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
    """A reducer call made on this connection finished.

    ``transaction`` is the :class:`TransactionApplied` that reported it (the
    event just before, or an earlier one for a held route-B error); None for a
    ``NO_SUCCESS_NOTIFY`` call known only to have been handled (``reported`` False).
    """

    request_id: int
    reducer: str
    committed: bool
    error: str | None
    transaction: TransactionApplied | None
    key: CallKey | None = None
    reported: bool = True


class TransactionCommitted:
    """A committed transaction read by the fast lane (``lean_replies=True`` only).

    ``reply`` holds its fields. ``settles`` is True when it finishes this
    connection's oldest pending call (request id ``reply.request_id``): it then
    stands for a :class:`TransactionApplied` followed by a committed
    :class:`ReducerResult`, else (someone else's call) for the
    :class:`TransactionApplied` alone. A plain slotted record: one is built per
    reply, and a frozen dataclass costs a call per field.
    """

    __slots__ = ("reply", "settles")

    def __init__(self, reply: m.CommittedReply, settles: bool) -> None:
        self.reply = reply
        self.settles = settles

    def __repr__(self) -> str:
        return f"TransactionCommitted(request_id={self.reply.request_id}, settles={self.settles})"


@dataclass(frozen=True, slots=True)
class StrayFailure:
    """A failure the server sent for a call of ours that this protocol cannot place.

    Only a server breaking the ordering rules above produces one; the driver logs it.
    """

    reducer: str
    message: str


@dataclass(frozen=True, slots=True)
class OneOffQueryResult:
    """Answer to :meth:`ClientProtocol.one_off_query`: an error, or the result tables."""

    message_id: bytes
    error: str | None
    tables: tuple[OneOffTable, ...]


ProtocolEvent: TypeAlias = (
    Identified
    | SubscriptionApplied
    | SubscriptionEnded
    | SubscriptionRejected
    | TransactionApplied
    | TransactionCommitted
    | ReducerResult
    | StrayFailure
    | OneOffQueryResult
)


@dataclass(slots=True)
class _PendingCall:
    """A call sent and not finished; ``ordinal`` orders every request of the session."""

    ordinal: int
    request_id: int
    reducer: str
    args: bytes
    keyed: bool  # ``args`` start with the call's CallKey
    notify: bool

    def key(self) -> CallKey | None:
        """The call's key, read from its arguments (only a failure's attribution needs it)."""
        return key_in_args(self.args) if self.keyed else None


@dataclass(slots=True)
class _HeldError:
    """A route-B error whose call is not known yet."""

    reducer: str
    tx: TransactionApplied


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

    def __init__(
        self, *, max_message_size: int = m.DEFAULT_MAX_MESSAGE_SIZE, lean_replies: bool = False
    ) -> None:
        self.max_message_size = max_message_size  # what one message may decompress to
        self.lean_replies = lean_replies  # report common commits as TransactionCommitted
        self._own_caller = b""  # our identity and connection id as a reply's 48 caller bytes
        self.state = State.CONNECTING
        self.identity: Identity | None = None
        self.token: str | None = None
        self.connection_id: ConnectionId | None = None
        self.failure: DecodeError | ProtocolError | None = None
        self._closed_because = ""
        self._events: list[ProtocolEvent] = []
        self._outgoing: list[bytes] = []
        self._next_request_id = 1
        self._next_query_id = 1
        self._next_message_id = 1
        self._next_ordinal = 1
        # request id -> call, in call order. Ordered, not a dict: calls finish oldest
        # first, and a dict's iteration steps over every slot its deletions left at the
        # front, so finding the oldest pending call grew with the calls answered.
        self._calls: OrderedDict[int, _PendingCall] = OrderedDict()
        self._held: deque[_HeldError] = deque()  # route-B errors not placed yet, in order
        self._queries: dict[QueryId, QueryState] = {}
        self._query_ordinal: dict[QueryId, int] = {}  # the request awaiting its answer
        self._barriers: dict[QueryId, int] = {}  # barrier query id -> ordinal
        self._one_off: set[bytes] = set()

    # ----------------------------------------------------------------- draining

    def events_received(self) -> list[ProtocolEvent]:
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
        keyed: bool = False,
    ) -> int:
        """Queue a reducer call; returns its request id (never 0).

        ``keyed``: ``args`` start with the call's :class:`CallKey` (it lets a
        failure echoing the arguments find its call). A :class:`ReducerResult`
        with the returned id follows the outcome; for ``NO_SUCCESS_NOTIFY`` it
        says only that the server handled the call, unless the call was rejected
        before running.

        Raises:
            InvalidStateError: the connection is not open.
            EncodeError: the message does not fit the wire format or the size limit.
        """
        # Every reducer call passes here: no message object, no copy of bytes, no enum
        # call for the two flags there are, no key object.
        self._check_open("call a reducer")
        request_id = self._allocate_request_id()
        if flags is not _FULL_UPDATE and flags is not _NO_SUCCESS_NOTIFY:
            flags = CallReducerFlags(flags)  # an int: checked
        if type(args) is not bytes:
            args = bytes(args)  # a copy the caller cannot change while the call is pending
        data = m.encode_call_reducer(reducer, args, request_id, flags)
        self._queue_data("CallReducer", data)
        notify = flags is _FULL_UPDATE
        self._calls[request_id] = _PendingCall(
            self._ordinal(), request_id, reducer, args, keyed, notify
        )
        if not notify:
            self._want_barrier()  # nothing else may ever show that it was handled
        return request_id

    def subscribe(self, queries: Sequence[str]) -> QueryId:
        """Queue a ``SubscribeMulti`` for ``queries``; returns the subscription's query id.

        Its outcome is a :class:`SubscriptionApplied` or a :class:`SubscriptionRejected`.

        Raises:
            UsageError: ``queries`` is a bare string or empty.
        """
        self._check_open("subscribe")
        if isinstance(queries, str):
            raise UsageError("subscribe() takes a sequence of SQL strings, not a single str")
        if not queries:
            raise UsageError("subscribe() needs at least one query")
        return self._subscribe(tuple(queries))

    def unsubscribe(self, query_id: QueryId) -> None:
        """Queue an ``UnsubscribeMulti`` for an applied subscription.

        Its outcome is a :class:`SubscriptionEnded` or a :class:`SubscriptionRejected`.

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
        self._query_ordinal[query_id] = self._ordinal()

    def one_off_query(self, sql: str) -> bytes:
        """Queue a one-off query; returns the message id its :class:`OneOffQueryResult` carries."""
        self._check_open("run a one-off query")
        while True:
            message_id = self._next_message_id.to_bytes(4, "little")
            self._next_message_id = self._next_message_id % _U32_MAX + 1
            if message_id not in self._one_off:
                break
        self._queue(m.OneOffQuery(message_id, sql))
        self._ordinal()
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
            if self.lean_replies and self.state is State.OPEN:
                reply = m.read_committed_reply(data, max_message_size=self.max_message_size)
                if reply is not None and self._on_committed_reply(reply):
                    return
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
                self._settle_before(self._query_ordinal.pop(msg.query_id))
                self._queries[msg.query_id] = QueryState.ACTIVE
                self._events.append(SubscriptionApplied(msg.query_id, msg.request_id, msg.update))
            case m.UnsubscribeMultiApplied():
                self._expect_query(msg.query_id, QueryState.ENDING, "UnsubscribeMultiApplied")
                self._settle_before(self._query_ordinal.pop(msg.query_id))
                del self._queries[msg.query_id]
                self._events.append(SubscriptionEnded(msg.query_id, msg.request_id, msg.update))
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
        self._own_caller = msg.identity.to_bytes() + msg.connection_id.value.to_bytes(16, "little")
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
        if msg.caller_identity != self.identity or msg.caller_connection_id != self.connection_id:
            return  # someone else's call (their request ids mean nothing to us)
        if self._is_route_b(msg):
            self._on_rejected_call(info.reducer_name, tx)
            return
        call = self._route_a_call(msg)
        if call is None:
            return  # not a tracked call (a commit always echoes the id of ours)
        self._settle_before(call.ordinal)
        self._finish(call, tx)
        self._place_held(call.reducer)

    def _on_committed_reply(self, reply: m.CommittedReply) -> bool:
        """The fast lane: report a commit in one event if nothing else is to be done.

        Someone else's commit needs no attribution. One's own settles its call at
        once when that call is the oldest pending and no route-B error is held:
        ``_settle_before`` and ``_place_held`` would find nothing to do. Returns
        False, changing nothing, for any other commit: the general path takes it.
        """
        if reply.caller_bytes != self._own_caller:
            self._events.append(TransactionCommitted(reply, False))
            return True
        if self._held or not self._calls:
            return False
        request_id = next(iter(self._calls))
        if request_id != reply.request_id:
            return False
        del self._calls[request_id]
        self._events.append(TransactionCommitted(reply, True))
        return True

    @staticmethod
    def _is_route_b(msg: m.TransactionUpdate) -> bool:
        """A failure written before any reducer ran: no arguments, no time spent."""
        return (
            isinstance(msg.status, m.Failed)
            and not msg.reducer_call.args
            and msg.total_host_execution_duration.micros == 0
            and msg.energy_quanta_used.quanta == 0
        )

    def _route_a_call(self, msg: m.TransactionUpdate) -> _PendingCall | None:
        """The pending call a commit or a runtime failure answers."""
        info = msg.reducer_call
        call = self._calls.get(info.request_id) if info.request_id else None
        if call is not None or isinstance(msg.status, m.Committed):
            return call
        key = key_in_args(info.args)
        if key is not None:  # a keyed call's arguments start with its own key
            for pending in self._calls.values():
                if pending.keyed and pending.key() == key:
                    return pending
        # The server reports no runtime failure of a NO_SUCCESS_NOTIFY call: not one of those.
        same_name = [c for c in self._calls.values() if c.reducer == info.reducer_name and c.notify]
        same_args = [c for c in same_name if c.args == info.args]
        candidates = same_args or same_name
        return candidates[0] if candidates else None

    def _on_rejected_call(self, reducer: str, tx: TransactionApplied) -> None:
        """A route-B error: place it now if only one call can own it, else hold it."""
        if reducer == "<none>":
            return  # a failed subscribe/one-off request, not a reducer call
        if not any(c.reducer == reducer for c in self._calls.values()):
            self._events.append(StrayFailure(reducer, tx.error or ""))
            return
        self._held.append(_HeldError(reducer, tx))
        self._place_held(reducer)
        if self._held:
            self._want_barrier()

    def _place_held(self, reducer: str) -> None:
        """When as many errors of ``reducer`` are held as its calls are pending, they pair up.

        Each held error belongs to a distinct pending call of that reducer, and
        route B keeps call order, so the n-th held error is the n-th pending call's.
        """
        if not self._held:
            return
        held = [h for h in self._held if h.reducer == reducer]
        pending = [c for c in self._calls.values() if c.reducer == reducer]
        if not held or len(held) != len(pending):
            return
        for error, call in zip(held, pending, strict=True):
            self._held.remove(error)
            self._finish(call, error.tx)

    def _settle_before(self, ordinal: int) -> None:
        """A route-A answer to request ``ordinal`` arrived: settle every call before it.

        Every call before it still pending was answered on route B or not at all
        (a ``NO_SUCCESS_NOTIFY`` call handled silently), and the held errors are
        in call order: they pair with a subsequence of those calls, names
        matching, every tracked call included, leaving held only errors that a
        later call of their reducer can own (:meth:`_pairing`). While a silent
        call's reducer has a held error and a later call pending, whether the
        silent call owns it is unknowable: the calls wait for a later barrier.
        """
        older = []
        for call in self._calls.values():  # in call order: the older ones come first
            if call.ordinal >= ordinal:
                break
            older.append(call)
        if not older:
            return
        later = {c.reducer for c in self._calls.values() if c.ordinal > ordinal}
        ambiguous = later & {h.reducer for h in self._held}
        if any(not c.notify and c.reducer in ambiguous for c in older):
            self._want_barrier()
            return
        owners = self._pairing(older, later)
        errors = [self._held.popleft() for owner in owners if owner is not None]
        placed = iter(errors)
        for call, owner in zip(older, owners, strict=True):
            if owner is not None:
                self._finish(call, next(placed).tx)
            elif not call.notify:
                self._finish(call, None)
            # else: a tracked call with no answer (out of energy?): left for the driver
        if not self._held:
            return
        # A held error no pending call can own any more is reported, not kept forever.
        pending = {c.reducer for c in self._calls.values()}
        for stray in [h for h in self._held if h.reducer not in pending]:
            self._held.remove(stray)
            self._events.append(StrayFailure(stray.reducer, stray.tx.error or ""))

    def _pairing(self, older: list[_PendingCall], later: set[str]) -> list[int | None]:
        """For each older call, the index of the held error it owns, or None.

        The pairing keeps both orders, matches names, includes every tracked
        call, and leaves held only errors of reducers in ``later``. Among several
        (two silent calls of one reducer cannot be told apart on the wire), a
        silent call is taken not to own one. With no such pairing (a server
        breaking the rules), tracked calls may stay unpaired.
        """
        held = [h.reducer for h in self._held]
        n, m = len(older), len(held)
        for strict in (True, False):
            # ok[i][j]: calls i.. can pair with held errors j.. under the rules.
            ok = [[False] * (m + 1) for _ in range(n + 1)]
            for j in range(m + 1):
                ok[n][j] = not strict or all(name in later for name in held[j:])
            for i in range(n - 1, -1, -1):
                may_skip = not older[i].notify or not strict
                for j in range(m, -1, -1):
                    pair = j < m and held[j] == older[i].reducer and ok[i + 1][j + 1]
                    ok[i][j] = pair or (may_skip and ok[i + 1][j])
            if not ok[0][0]:
                continue
            owners: list[int | None] = []
            j = 0
            for i, call in enumerate(older):
                may_skip = not call.notify or not strict
                pair = j < m and held[j] == call.reducer and ok[i + 1][j + 1]
                if pair and not (may_skip and ok[i + 1][j] and not call.notify):
                    owners.append(j)
                    j += 1
                else:
                    owners.append(None)
            return owners
        return [None] * n

    def _finish(self, call: _PendingCall, tx: TransactionApplied | None) -> None:
        """The call is over: reported by ``tx``, or (None) only known to have been handled."""
        del self._calls[call.request_id]
        reported = tx is not None
        committed, error = (tx.committed, tx.error) if tx is not None else (False, None)
        self._events.append(
            ReducerResult(call.request_id, call.reducer, committed, error, tx, call.key(), reported)
        )

    def _on_subscription_error(self, msg: m.SubscriptionError) -> None:
        query_id = None if msg.query_id is None else QueryId(msg.query_id)
        if query_id is not None and query_id in self._barriers:
            del self._queries[query_id]
            self._query_ordinal.pop(query_id, None)
            self._settle_before(self._barriers.pop(query_id))
            return
        fatal = query_id is None
        if fatal:
            self._queries.clear()
            self._query_ordinal.clear()
            self.state = State.CLOSED
            self._closed_because = f"the server dropped every subscription: {msg.error}"
        elif query_id in self._queries:
            # Whether the subscribe or the unsubscribe failed, the server holds no
            # subscription under this id any more.
            del self._queries[query_id]
            self._settle_before(self._query_ordinal.pop(query_id))
        self._events.append(SubscriptionRejected(query_id, msg.request_id, msg.error, fatal))

    def _expect_query(self, query_id: QueryId, state: QueryState, what: str) -> None:
        actual = self._queries.get(query_id)
        if actual is not state:
            found = "unknown" if actual is None else actual.value
            raise ProtocolError(f"{what} for query id {query_id.id}, which is {found}")

    # ----------------------------------------------------------------- helpers

    def _want_barrier(self) -> None:
        """Queue a barrier unless one already follows every pending call.

        Both dicts are in request order (an id still in use is never reissued), so
        their last entries are the newest call and the newest barrier: no scan.
        """
        newest_call = next(reversed(self._calls.values())).ordinal if self._calls else 0
        if next(reversed(self._barriers.values()), 0) > newest_call:
            return
        query_id = self._subscribe((BARRIER_QUERY,))
        self._barriers[query_id] = self._query_ordinal[query_id]

    def _subscribe(self, queries: tuple[str, ...]) -> QueryId:
        query_id = self._allocate_query_id()
        request_id = self._allocate_request_id()
        self._queue(m.SubscribeMulti(queries, request_id, query_id))
        self._queries[query_id] = QueryState.PENDING
        self._query_ordinal[query_id] = self._ordinal()
        return query_id

    def _ordinal(self) -> int:
        ordinal = self._next_ordinal
        self._next_ordinal += 1
        return ordinal

    def _check_open(self, action: str) -> None:
        if self.state is State.OPEN:
            return
        if self.state is State.CONNECTING:
            raise InvalidStateError(f"cannot {action} before the server identified the connection")
        reason = str(self.failure or self._closed_because)
        detail = f" ({reason})" if reason else ""
        raise InvalidStateError(f"cannot {action}: the connection is closed{detail}")

    def _queue(self, msg: m.ClientMessage) -> None:
        self._queue_data(type(msg).__name__, m.encode_client_message(msg))

    def _queue_data(self, what: str, data: bytes) -> None:
        """Queue one encoded message (``what``: its type's name) unless it is too large."""
        if len(data) > MAX_CLIENT_MESSAGE_SIZE:
            raise EncodeError(
                f"{what} is {len(data)} bytes; the server accepts at most "
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
