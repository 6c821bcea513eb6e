"""The sans-I/O client protocol, driven with bytes only: no sockets, no event loop."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inner_universe.errors import (
    DecodeError,
    EncodeError,
    InvalidStateError,
    ProtocolError,
    UsageError,
)
from inner_universe.spacetime import messages as m
from inner_universe.spacetime import protocol as p
from inner_universe.spacetime.messages import (
    CallReducerFlags,
    Compression,
    DatabaseUpdate,
    QueryId,
    TableUpdate,
)
from inner_universe.spacetime.protocol import (
    MAX_CLIENT_MESSAGE_SIZE,
    CallKey,
    ClientProtocol,
    Identified,
    OneOffQueryResult,
    QueryState,
    ReducerResult,
    State,
    StrayFailure,
    SubscriptionApplied,
    SubscriptionEnded,
    SubscriptionRejected,
    TransactionApplied,
    key_bytes,
)
from inner_universe.spacetime.types import ConnectionId, Identity, TimeDuration, Timestamp

ME = Identity(0xC200_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0001)
MY_CONN = ConnectionId(0x1234)
OTHER = Identity(0xC200_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0002)
OTHER_CONN = ConnectionId(0x5678)
ROWS = DatabaseUpdate((TableUpdate.from_rows(1, "person", inserts=[b"\x01\x00\x00\x00"]),))


# --------------------------------------------------------------------------- helpers


def frame(msg: m.ServerMessage, compression: Compression = Compression.NONE) -> bytes:
    return m.encode_server_frame(msg, compression)


def opened() -> ClientProtocol:
    """A protocol that has received its IdentityToken, with events drained."""
    proto = ClientProtocol()
    proto.receive_message(frame(m.IdentityToken(ME, "token", MY_CONN)))
    proto.events_received()
    return proto


def sent(proto: ClientProtocol) -> list[m.ClientMessage]:
    return [m.decode_client_message(data) for data in proto.data_to_send()]


def tx(
    status: m.UpdateStatus,
    reducer: str,
    request_id: int,
    args: bytes = b"",
    caller: Identity = ME,
    conn: ConnectionId = MY_CONN,
    energy: int = 42,
    micros: int = 17,
) -> bytes:
    """A server TransactionUpdate frame."""
    return frame(
        m.TransactionUpdate(
            status,
            Timestamp(1_700_000_000_000_000),
            caller,
            conn,
            m.ReducerCallInfo(reducer, 3, args, request_id),
            m.EnergyQuanta(energy),
            TimeDuration(micros),
        )
    )


def committed(reducer: str, request_id: int, **kw: object) -> bytes:
    return tx(m.Committed(ROWS), reducer, request_id, **kw)  # type: ignore[arg-type]


def failed(reducer: str, message: str = "boom", **kw: object) -> bytes:
    """A reducer that ran and failed, as 1.2 sends it (route A): request id 0, args echoed."""
    return tx(m.Failed(message), reducer, 0, **kw)  # type: ignore[arg-type]


def results(proto: ClientProtocol) -> list[ReducerResult]:
    return [e for e in proto.events_received() if isinstance(e, ReducerResult)]


# --------------------------------------------------------------------------- connecting


def test_identity_token_opens_the_connection() -> None:
    assert ClientProtocol().state is State.CONNECTING
    proto = ClientProtocol()
    proto.receive_message(frame(m.IdentityToken(ME, "jwt", MY_CONN)))
    assert proto.events_received() == [Identified(ME, "jwt", MY_CONN)]
    assert proto.events_received() == []  # drained
    assert proto.state is State.OPEN
    assert (proto.identity, proto.token, proto.connection_id) == (ME, "jwt", MY_CONN)


def test_gzip_compressed_frames_are_accepted() -> None:
    proto = ClientProtocol()
    proto.receive_message(frame(m.IdentityToken(ME, "jwt", MY_CONN), Compression.GZIP))
    assert proto.state is State.OPEN


@pytest.mark.parametrize(
    "request_",
    [
        lambda p: p.call_reducer("add", b""),
        lambda p: p.subscribe(["SELECT * FROM t"]),
        lambda p: p.unsubscribe(QueryId(1)),
        lambda p: p.one_off_query("SELECT * FROM t"),
    ],
    ids=["call_reducer", "subscribe", "unsubscribe", "one_off_query"],
)
def test_requests_before_identified_raise(request_) -> None:  # type: ignore[no-untyped-def]
    proto = ClientProtocol()
    with pytest.raises(InvalidStateError, match="before the server identified"):
        request_(proto)
    assert proto.data_to_send() == []


def test_first_message_must_be_identity_token() -> None:
    proto = ClientProtocol()
    with pytest.raises(ProtocolError, match="expected IdentityToken first"):
        proto.receive_message(committed("add", 1))
    assert proto.state is State.CLOSED
    assert isinstance(proto.failure, ProtocolError)
    assert proto.events_received() == []


def test_second_identity_token_is_a_protocol_error() -> None:
    proto = opened()
    with pytest.raises(ProtocolError, match="second IdentityToken"):
        proto.receive_message(frame(m.IdentityToken(ME, "jwt", MY_CONN)))
    assert proto.identity == ME


# --------------------------------------------------------------------------- outgoing


def test_call_reducer_queues_the_message() -> None:
    proto = opened()
    request_id = proto.call_reducer("add", b"\x01\x02")
    assert request_id != 0
    assert sent(proto) == [m.CallReducer("add", b"\x01\x02", request_id)]
    assert proto.data_to_send() == []  # drained
    assert proto.pending_calls() == (request_id,)


def test_request_ids_are_unique_and_never_zero() -> None:
    proto = opened()
    ids = [proto.call_reducer("add") for _ in range(50)]
    ids.append(proto.subscribe(["SELECT * FROM t"]).id)
    assert 0 not in ids
    assert len(set(proto.pending_calls())) == 50
    queued = sent(proto)
    request_ids = [msg.request_id for msg in queued]  # type: ignore[union-attr]
    assert len(set(request_ids)) == len(request_ids) == 51


def test_request_ids_wrap_skipping_zero_and_calls_in_flight() -> None:
    proto = opened()
    first = proto.call_reducer("a")
    assert first == 1
    proto._next_request_id = 0xFFFF_FFFF
    assert proto.call_reducer("b") == 0xFFFF_FFFF
    assert proto.call_reducer("c") == 2  # 0 is skipped, 1 is still in flight


def test_query_ids_are_unique() -> None:
    proto = opened()
    ids = {proto.subscribe([f"SELECT * FROM t{i}"]) for i in range(20)}
    assert len(ids) == 20
    assert all(proto.query_state(q) is QueryState.PENDING for q in ids)


def test_subscribe_rejects_a_bare_string_and_empty_lists() -> None:
    proto = opened()
    with pytest.raises(UsageError):
        proto.subscribe("SELECT * FROM t")
    with pytest.raises(UsageError):
        proto.subscribe([])
    assert proto.data_to_send() == []


def test_oversized_messages_are_refused_before_queueing() -> None:
    proto = opened()
    with pytest.raises(EncodeError, match="at most"):
        proto.call_reducer("big", bytes(MAX_CLIENT_MESSAGE_SIZE))
    assert proto.data_to_send() == []
    assert proto.pending_calls() == ()


def rejected(reducer: str, message: str = "invalid arguments") -> bytes:
    """A message-level error (route B): written before any reducer ran, so no args, no time."""
    return tx(m.Failed(message), reducer, 0, energy=0, micros=0)


def barrier_error(proto_sent: list[m.ClientMessage]) -> bytes:
    """The server's answer to the last barrier subscription in ``proto_sent``."""
    barrier = [x for x in proto_sent if isinstance(x, m.SubscribeMulti)][-1]
    assert barrier.query_strings == (p.BARRIER_QUERY,)
    return frame(
        m.SubscriptionError(0, barrier.request_id, barrier.query_id.id, None, "parse error")
    )


def test_calls_without_success_notification_are_settled_by_a_barrier() -> None:
    proto = opened()
    request_id = proto.call_reducer("add", b"", CallReducerFlags.NO_SUCCESS_NOTIFY)
    out = sent(proto)
    assert out[0] == m.CallReducer("add", b"", request_id, CallReducerFlags.NO_SUCCESS_NOTIFY)
    assert proto.pending_calls() == (request_id,)
    proto.receive_message(barrier_error(out))
    assert proto.events_received() == [
        ReducerResult(request_id, "add", False, None, None, None, reported=False)
    ]
    assert proto.pending_calls() == ()


def test_a_call_without_notification_still_reports_its_rejection() -> None:
    proto = opened()
    request_id = proto.call_reducer("add", b"", CallReducerFlags.NO_SUCCESS_NOTIFY)
    proto.receive_message(rejected("add"))
    tx_event, result = proto.events_received()
    assert result == ReducerResult(request_id, "add", False, "invalid arguments", tx_event)


def test_a_commit_of_a_silent_call_seen_through_a_subscription_finishes_it() -> None:
    proto = opened()
    other = proto.call_reducer("add")
    silent = proto.call_reducer("add", b"", CallReducerFlags.NO_SUCCESS_NOTIFY)
    proto.receive_message(committed("add", silent))
    assert [(r.request_id, r.committed) for r in results(proto)] == [(silent, True)]
    assert proto.pending_calls() == (other,)


# --------------------------------------------------------------------------- reducer outcomes


def test_committed_call_is_matched_by_request_id() -> None:
    proto = opened()
    request_id = proto.call_reducer("add", b"\x05")
    proto.receive_message(committed("add", request_id, args=b"\x05"))
    tx_event, result = proto.events_received()
    assert isinstance(tx_event, TransactionApplied)
    assert tx_event.committed and tx_event.error is None and not tx_event.light
    assert tx_event.update == ROWS
    assert (tx_event.reducer_name, tx_event.reducer_args, tx_event.request_id) == (
        "add",
        b"\x05",
        request_id,
    )
    assert (tx_event.caller_identity, tx_event.caller_connection_id) == (ME, MY_CONN)
    assert (tx_event.energy_used, tx_event.duration) == (42, TimeDuration(17))
    assert tx_event.timestamp == Timestamp(1_700_000_000_000_000)
    assert result == ReducerResult(request_id, "add", True, None, tx_event)
    assert proto.pending_calls() == ()


def test_a_runtime_failure_finds_its_call_by_the_key_it_echoes() -> None:
    proto = opened()
    keys = [CallKey(7, seq) for seq in (1, 2, 3)]
    ids = [proto.call_reducer("send", key_bytes(k) + b"x", keyed=True) for k in keys]
    proto.receive_message(failed("send", "second", args=key_bytes(keys[1]) + b"x"))
    (result,) = results(proto)
    assert (result.request_id, result.error, result.key) == (ids[1], "second", keys[1])


def test_a_runtime_failure_without_key_finds_the_oldest_call_with_its_arguments() -> None:
    proto = opened()
    add = proto.call_reducer("add")
    proto.call_reducer("send", b"A")
    b_call = proto.call_reducer("send", b"B")
    proto.receive_message(failed("send", "no such person", args=b"B"))
    tx_event, result = proto.events_received()
    assert isinstance(tx_event, TransactionApplied)
    assert not tx_event.committed and tx_event.update == DatabaseUpdate()
    assert result == ReducerResult(b_call, "send", False, "no such person", tx_event)
    assert proto.pending_calls() == (add, b_call - 1)


def test_a_rejection_with_a_single_candidate_is_placed_at_once() -> None:
    proto = opened()
    proto.call_reducer("add")
    send = proto.call_reducer("send")
    proto.receive_message(rejected("send"))
    (result,) = results(proto)
    assert (result.request_id, result.committed, result.error) == (send, False, "invalid arguments")
    assert [x for x in sent(proto) if isinstance(x, m.SubscribeMulti)] == []  # no barrier needed


def test_a_rejection_overtaking_an_earlier_commit_is_not_misattributed() -> None:
    """The issue's case: the valid call before the bad one committed; the bad one failed."""
    proto = opened()
    valid = proto.call_reducer("send", b"ok")
    bad = proto.call_reducer("send", b"\xff")
    proto.receive_message(rejected("send"))  # route B overtakes the commit
    assert results(proto) == []
    assert any(
        isinstance(x, m.SubscribeMulti) and x.query_strings == (p.BARRIER_QUERY,)
        for x in sent(proto)
    )
    proto.receive_message(committed("send", valid, args=b"ok"))
    assert [(r.request_id, r.committed) for r in results(proto)] == [(valid, True), (bad, False)]
    assert proto.pending_calls() == ()


def test_the_barrier_settles_held_rejections_in_call_order() -> None:
    proto = opened()
    first, second, third = (proto.call_reducer("send", bytes([i])) for i in range(3))
    proto.receive_message(rejected("send", "bad 1"))
    proto.receive_message(rejected("send", "bad 3"))
    out = sent(proto)
    proto.receive_message(committed("send", second, args=b"\x01"))
    proto.receive_message(barrier_error(out))
    assert [(r.request_id, r.committed, r.error) for r in results(proto)] == [
        (first, False, "bad 1"),
        (second, True, None),
        (third, False, "bad 3"),
    ]


def test_an_echoed_failure_request_id_wins_over_name_matching() -> None:
    proto = opened()
    proto.call_reducer("send")
    second = proto.call_reducer("send")
    proto.receive_message(tx(m.Failed("x"), "send", second))
    assert [r.request_id for r in results(proto)] == [second]


def test_out_of_energy_finishes_the_call_as_a_failure() -> None:
    proto = opened()
    request_id = proto.call_reducer("spin")
    proto.receive_message(tx(m.OutOfEnergy(), "spin", 0))
    (result,) = results(proto)
    assert (result.request_id, result.committed, result.error) == (
        request_id,
        False,
        "out of energy",
    )


def test_none_failures_match_no_reducer_call() -> None:
    """A failed subscribe/one-off request is reported as reducer ``"<none>"``."""
    proto = opened()
    proto.call_reducer("add")
    proto.receive_message(rejected("<none>", "internal error"))
    (event,) = proto.events_received()
    assert isinstance(event, TransactionApplied) and event.error == "internal error"
    assert len(proto.pending_calls()) == 1


def test_other_clients_transactions_finish_no_call() -> None:
    proto = opened()
    request_id = proto.call_reducer("add")
    # Another client's commit that happens to carry the same request id.
    proto.receive_message(committed("add", request_id, caller=OTHER, conn=OTHER_CONN))
    # Our identity on another connection (the same agent connected twice).
    proto.receive_message(failed("add", caller=ME, conn=OTHER_CONN))
    proto.receive_message(committed("add", request_id, caller=ME, conn=OTHER_CONN))
    events = proto.events_received()
    assert [type(e) for e in events] == [TransactionApplied] * 3
    assert proto.pending_calls() == (request_id,)


def test_light_updates_never_finish_a_call() -> None:
    proto = opened()
    request_id = proto.call_reducer("add")
    proto.receive_message(frame(m.TransactionUpdateLight(request_id, ROWS)))
    (event,) = proto.events_received()
    assert event == TransactionApplied(m.Committed(ROWS), ROWS, request_id, light=True)
    assert event.reducer_name is None and event.caller_identity is None
    assert proto.pending_calls() == (request_id,)


def test_zero_caller_connection_id_becomes_none() -> None:
    proto = opened()
    proto.receive_message(committed("tick", 0, caller=OTHER, conn=ConnectionId(0)))
    (event,) = proto.events_received()
    assert isinstance(event, TransactionApplied) and event.caller_connection_id is None


class TwoRouteServer:
    """A model of how a 1.2 server answers one connection (see protocol.py's docstring).

    It handles messages in order. Commits, runtime failures and subscription
    answers go to route A; rejections of undecodable calls to route B. Delivery
    interleaves the routes at random, except that a route-B error for request k
    always precedes route-A answers to later requests.
    """

    def __init__(self, proto: ClientProtocol, rnd: Any) -> None:
        self.proto, self.rnd = proto, rnd
        self.ordinal = 0
        self.route_a: list[tuple[int, bytes]] = []
        self.route_b: list[tuple[int, bytes]] = []

    def handle_sent(self) -> None:
        for msg in sent(self.proto):
            self.ordinal += 1
            if isinstance(msg, m.SubscribeMulti):  # only barriers in these scripts
                error = m.SubscriptionError(0, msg.request_id, msg.query_id.id, None, "parse")
                self.route_a.append((self.ordinal, frame(error)))
                continue
            assert isinstance(msg, m.CallReducer)
            silent = msg.flags == CallReducerFlags.NO_SUCCESS_NOTIFY
            if msg.args.endswith(b"BAD"):
                self.route_b.append((self.ordinal, rejected(msg.reducer, f"bad {msg.request_id}")))
            elif silent:
                continue
            elif msg.args.endswith(b"FAIL"):
                answer = failed(msg.reducer, f"fail {msg.request_id}", args=msg.args)
                self.route_a.append((self.ordinal, answer))
            else:
                self.route_a.append(
                    (self.ordinal, committed(msg.reducer, msg.request_id, args=msg.args))
                )

    def deliver_all(self) -> None:
        self.handle_sent()
        while self.route_a or self.route_b:
            a_allowed = bool(self.route_a) and not any(
                k < self.route_a[0][0] for k, _ in self.route_b
            )
            if a_allowed and (not self.route_b or self.rnd.random() < 0.5):
                _, data = self.route_a.pop(0)
            else:
                _, data = self.route_b.pop(0)
            self.proto.receive_message(data)
            self.handle_sent()


calls = st.lists(
    st.tuples(
        st.sampled_from(["send", "add"]),  # reducer
        st.sampled_from([b"A", b"B", b"FAIL", b"BAD"]),  # args; BAD is rejected, FAIL fails
        st.booleans(),  # with a key
        st.sampled_from([True, True, True, False]),  # notify
    ),
    max_size=30,
)


@settings(max_examples=int(os.environ.get("ROUTE_EXAMPLES", "400")), deadline=None)
@given(calls, st.randoms(use_true_random=False))
def test_every_outcome_reaches_its_own_call_in_any_order_the_server_can_produce(
    script: list,
    rnd: Any,  # type: ignore[type-arg]
) -> None:
    proto = opened()
    server = TwoRouteServer(proto, rnd)
    expected = {}
    for seq, (name, args, keyed, notify) in enumerate(script, start=1):
        key = CallKey(99, seq) if keyed else None
        payload = (key_bytes(key) if key else b"") + args
        flags = CallReducerFlags.FULL_UPDATE if notify else CallReducerFlags.NO_SUCCESS_NOTIFY
        request_id = proto.call_reducer(name, payload, flags, key)
        if args == b"BAD":
            expected[request_id] = (False, f"bad {request_id}", notify)
        elif not notify:
            expected[request_id] = (False, None, notify)  # handled, not reported
        elif args == b"FAIL":
            expected[request_id] = (False, f"fail {request_id}", notify)
        else:
            expected[request_id] = (True, None, notify)
        if rnd.random() < 0.3:
            server.deliver_all()
    server.deliver_all()
    events = proto.events_received()
    got = {r.request_id: (r.committed, r.error) for r in events if isinstance(r, ReducerResult)}
    assert got.keys() == expected.keys()
    want = {rid: outcome[:2] for rid, outcome in expected.items()}
    if all(notify for _, _, notify in expected.values()):
        assert got == want  # every outcome, exactly, on its own call
    else:
        # Rejections of silent calls and tracked calls of one reducer carry no call
        # identity on the wire: the kinds are exact, the texts may swap between them.
        tracked = [rid for rid, (_, _, notify) in expected.items() if notify]
        assert [(got[r][0], got[r][1] is None) for r in tracked] == [
            (want[r][0], want[r][1] is None) for r in tracked
        ]
        assert sorted(got.values(), key=repr) == sorted(want.values(), key=repr)
    assert [e for e in events if isinstance(e, StrayFailure)] == []
    assert proto.pending_calls() == ()


# --------------------------------------------------------------------------- subscriptions


def test_subscribe_then_unsubscribe() -> None:
    proto = opened()
    query_id = proto.subscribe(["SELECT * FROM person", "SELECT * FROM pet"])
    (sub,) = sent(proto)
    assert isinstance(sub, m.SubscribeMulti)
    assert sub.query_strings == ("SELECT * FROM person", "SELECT * FROM pet")
    assert sub.query_id == query_id

    proto.receive_message(frame(m.SubscribeMultiApplied(sub.request_id, 5, query_id, ROWS)))
    assert proto.events_received() == [SubscriptionApplied(query_id, sub.request_id, ROWS)]
    assert proto.query_state(query_id) is QueryState.ACTIVE

    proto.unsubscribe(query_id)
    (unsub,) = sent(proto)
    assert isinstance(unsub, m.UnsubscribeMulti) and unsub.query_id == query_id
    assert proto.query_state(query_id) is QueryState.ENDING
    with pytest.raises(InvalidStateError, match="ending"):
        proto.unsubscribe(query_id)

    proto.receive_message(frame(m.UnsubscribeMultiApplied(unsub.request_id, 1, query_id, ROWS)))
    assert proto.events_received() == [SubscriptionEnded(query_id, unsub.request_id, ROWS)]
    assert proto.query_state(query_id) is None


def test_unsubscribe_unknown_or_pending_query_raises() -> None:
    proto = opened()
    with pytest.raises(InvalidStateError, match="unknown"):
        proto.unsubscribe(QueryId(99))
    pending = proto.subscribe(["SELECT * FROM t"])
    proto.data_to_send()
    with pytest.raises(InvalidStateError, match="pending"):
        proto.unsubscribe(pending)
    assert proto.data_to_send() == []


def test_subscription_error_for_one_query_is_not_fatal() -> None:
    proto = opened()
    query_id = proto.subscribe(["SELECT * FROM nope"])
    (sub,) = sent(proto)
    error = m.SubscriptionError(0, sub.request_id, query_id.id, None, "no such table")  # type: ignore[union-attr]
    proto.receive_message(frame(error))
    assert proto.events_received() == [
        SubscriptionRejected(query_id, sub.request_id, "no such table", fatal=False)  # type: ignore[union-attr]
    ]
    assert proto.query_state(query_id) is None
    assert proto.state is State.OPEN
    proto.call_reducer("still_works")


def test_subscription_error_without_query_id_is_fatal() -> None:
    proto = opened()
    query_id = proto.subscribe(["SELECT * FROM t"])
    proto.receive_message(frame(m.SubscriptionError(0, None, None, None, "tx eval failed")))
    assert proto.events_received() == [SubscriptionRejected(None, None, "tx eval failed", True)]
    assert proto.state is State.CLOSED
    assert proto.query_state(query_id) is None
    with pytest.raises(InvalidStateError, match="dropped every subscription: tx eval failed"):
        proto.call_reducer("add")


def test_applied_for_an_unknown_query_is_a_protocol_error_and_changes_nothing() -> None:
    proto = opened()
    request_id = proto.call_reducer("add")
    with pytest.raises(ProtocolError, match="query id 7, which is unknown"):
        proto.receive_message(frame(m.SubscribeMultiApplied(1, 0, QueryId(7), ROWS)))
    assert proto.events_received() == []
    assert proto.state is State.CLOSED
    assert proto.pending_calls() == (request_id,)


def test_unsubscribe_applied_for_an_active_query_is_a_protocol_error() -> None:
    proto = opened()
    query_id = proto.subscribe(["SELECT * FROM t"])
    proto.receive_message(frame(m.SubscribeMultiApplied(1, 0, query_id, ROWS)))
    with pytest.raises(ProtocolError, match="active"):
        proto.receive_message(frame(m.UnsubscribeMultiApplied(1, 0, query_id, ROWS)))


# --------------------------------------------------------------------------- one-off queries


def test_one_off_query_round_trip() -> None:
    proto = opened()
    message_id = proto.one_off_query("SELECT * FROM person")
    assert sent(proto) == [m.OneOffQuery(message_id, "SELECT * FROM person")]
    assert proto.pending_one_off_queries() == (message_id,)
    table = m.OneOffTable("person", m.BsatnRowList.from_rows([b"row"]))
    response = m.OneOffQueryResponse(message_id, None, (table,), TimeDuration(3))
    proto.receive_message(frame(response))
    assert proto.events_received() == [OneOffQueryResult(message_id, None, (table,))]
    assert proto.pending_one_off_queries() == ()
    assert proto.one_off_query("SELECT 1") != message_id


def test_unknown_one_off_response_is_a_protocol_error() -> None:
    proto = opened()
    response = m.OneOffQueryResponse(b"nope", "err", (), TimeDuration(0))
    with pytest.raises(ProtocolError, match="unknown id"):
        proto.receive_message(frame(response))


@pytest.mark.parametrize(
    "msg",
    [
        m.InitialSubscription(ROWS, 1, TimeDuration(0)),
        m.ProcedureResult(m.ProcedureReturned(b""), Timestamp(0), TimeDuration(0), 1),
    ],
    ids=lambda msg: type(msg).__name__,
)
def test_unsolicited_messages_are_protocol_errors(msg: m.ServerMessage) -> None:
    proto = opened()
    with pytest.raises(ProtocolError, match="unsolicited"):
        proto.receive_message(frame(msg))


# --------------------------------------------------------------------------- failure and closing


def test_malformed_message_closes_the_protocol_and_is_recorded() -> None:
    proto = opened()
    request_id = proto.call_reducer("add")
    proto.data_to_send()
    bad = committed("add", request_id)[:-3]
    with pytest.raises(DecodeError) as info:
        proto.receive_message(bad)
    assert proto.failure is info.value
    assert proto.state is State.CLOSED
    assert proto.events_received() == []
    assert proto.pending_calls() == (request_id,)  # left for the driver to fail
    with pytest.raises(InvalidStateError, match="truncated"):
        proto.call_reducer("add")
    proto.receive_message(committed("add", request_id))  # ignored once closed
    assert proto.events_received() == []


@pytest.mark.parametrize("data", [b"", b"\x07", b"\x00\x63"], ids=["empty", "tag", "variant"])
def test_garbage_raises_decode_error(data: bytes) -> None:
    proto = opened()
    with pytest.raises(DecodeError):
        proto.receive_message(data)
    assert proto.state is State.CLOSED


def test_close() -> None:
    proto = opened()
    request_id = proto.call_reducer("add")
    query_id = proto.subscribe(["SELECT * FROM t"])
    proto.close()
    assert proto.state is State.CLOSED
    assert proto.failure is None
    with pytest.raises(InvalidStateError, match="closed"):
        proto.one_off_query("SELECT 1")
    assert proto.pending_calls() == (request_id,)
    assert proto.query_state(query_id) is QueryState.PENDING
    proto.close()  # idempotent


# --------------------------------------------------------------------------- a real session


def _captured(name: str) -> bytes:
    return (Path(__file__).parents[1] / "data" / "captured" / name).read_bytes()


def test_replay_of_a_captured_session() -> None:
    """The "plain" client of scripts/capture_protocol.py, replayed: same requests, real bytes."""
    proto = p.ClientProtocol()
    proto.receive_message(_captured("plain_0001_identity_token.bin"))
    [identified] = proto.events_received()
    assert isinstance(identified, p.Identified)

    agents = proto.subscribe(["SELECT * FROM agent"])
    proto.receive_message(_captured("plain_0002_subscribe_multi_applied.bin"))
    [applied] = proto.events_received()
    assert isinstance(applied, p.SubscriptionApplied) and applied.query_id == agents

    call = proto.call_reducer("register_agent", b"")
    proto.receive_message(_captured("plain_0003_transaction_update.bin"))
    tx, result = proto.events_received()
    assert isinstance(tx, p.TransactionApplied) and tx.committed
    assert tx.caller_identity == identified.identity
    assert tx.update.table_changes()["agent"][0] == []  # nothing deleted
    assert len(tx.update.table_changes()["agent"][1]) == 1  # one agent inserted
    assert isinstance(result, p.ReducerResult)
    assert (result.request_id, result.committed) == (call, True)

    failing = proto.call_reducer("register_agent", b"")
    proto.receive_message(_captured("plain_0004_transaction_update.bin"))
    tx, result = proto.events_received()
    assert isinstance(result, p.ReducerResult)
    assert result.request_id == failing and not result.committed
    assert result.error == "agent name must not be empty"
    assert proto.pending_calls() == ()

    bad = proto.subscribe(["SELECT * FROM no_such_table"])
    proto.receive_message(_captured("plain_0005_subscription_error.bin"))
    [failed] = proto.events_received()
    assert isinstance(failed, p.SubscriptionRejected)
    assert failed.query_id == bad and not failed.fatal and "no_such_table" in failed.message

    proto.unsubscribe(agents)
    proto.receive_message(_captured("plain_0006_unsubscribe_multi_applied.bin"))
    [ended] = proto.events_received()
    assert isinstance(ended, p.SubscriptionEnded) and ended.query_id == agents
    assert len(ended.update.table_changes()["agent"][0]) == 1  # the agent row leaves
    assert proto.state is p.State.OPEN
