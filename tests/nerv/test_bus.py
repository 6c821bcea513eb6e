"""EventBus unit tests: synthetic diffs, no server."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from inner_universe.nerv.bus import ALL, RECEIVER_ERROR, TRANSACTION, BusEvent, EventBus
from inner_universe.spacetime.cache import TableDiff, TransactionDiff


@dataclass(frozen=True)
class Agent:
    id: int
    name: str
    status: str


def tx(*tables: TableDiff) -> TransactionDiff:
    return TransactionDiff({t.table: t for t in tables})


class Recorder:
    """A receiver object (weakly connected by default, so the test keeps it alive)."""

    def __init__(self) -> None:
        self.events: list[BusEvent] = []

    def __call__(self, sender: Any, *, event: BusEvent) -> None:
        self.events.append(event)


def test_row_events_are_named_per_table_and_kind_and_carry_the_transaction() -> None:
    bus = EventBus()
    seen = Recorder()
    bus.connect(ALL, seen)
    a1, a1b, a2 = Agent(1, "a", "idle"), Agent(1, "a", "busy"), Agent(2, "b", "idle")
    diff = tx(TableDiff("agent", inserts=(a2,), deletes=(), updates=((a1, a1b),)))
    bus.publish_transaction(diff, sequence=7, event="why", sender="conn")

    assert [e.name for e in seen.events] == ["agent.update", "agent.insert", TRANSACTION]
    update, insert, _whole = seen.events
    assert (update.old, update.new, update.row, update.kind) == (a1, a1b, a1b, "update")
    assert (insert.old, insert.new, insert.table) == (None, a2, "agent")
    assert {e.sequence for e in seen.events} == {7}
    assert {e.event for e in seen.events} == {"why"}
    assert all(e.diff is diff for e in seen.events)
    assert [e.index for e in seen.events] == [0, 1, 2]
    assert all(e.sender == "conn" for e in seen.events)

    bus.publish_transaction(tx(TableDiff("agent", deletes=(a2,))), sequence=8)
    assert seen.events[-2].name == "agent.delete"
    assert (seen.events[-2].old, seen.events[-2].new, seen.events[-2].row) == (a2, None, a2)


def test_deletes_then_updates_then_inserts_within_a_table() -> None:
    bus = EventBus()
    a, b, c = Agent(1, "a", "x"), Agent(2, "b", "x"), Agent(3, "c", "x")
    diff = tx(TableDiff("agent", inserts=(c,), deletes=(a,), updates=((b, b),)))
    bus.publish_transaction(diff, sequence=1)
    assert [e.kind for e in bus.history()] == ["delete", "update", "insert", "transaction"]


def test_named_signal_gets_only_its_events() -> None:
    bus = EventBus()
    inserts, updates = Recorder(), Recorder()
    bus.connect("agent.insert", inserts)
    bus.connect("agent.update", updates)
    bus.publish_transaction(tx(TableDiff("agent", inserts=(Agent(1, "a", "x"),))), sequence=1)
    bus.publish_transaction(tx(TableDiff("message", inserts=("m",))), sequence=2)
    assert [e.name for e in inserts.events] == ["agent.insert"]
    assert updates.events == []


def test_filter_by_sender_and_by_predicate() -> None:
    bus = EventBus()
    from_a, busy = Recorder(), Recorder()
    sender_a, sender_b = object(), object()
    bus.connect("agent.insert", from_a, sender=sender_a)
    bus.connect("agent.insert", busy, where=lambda e: e.new.status == "busy")
    bus.publish("agent.insert", sender_a, new=Agent(1, "a", "idle"))
    bus.publish("agent.insert", sender_b, new=Agent(2, "b", "busy"))
    assert [e.new.id for e in from_a.events] == [1]
    assert [e.new.id for e in busy.events] == [2]


def test_receivers_are_weak_by_default_and_strong_on_request() -> None:
    bus = EventBus()
    calls: list[str] = []
    weak = Recorder()
    bus.connect("x", weak, where=lambda e: True)
    bus.connect("x", lambda sender, event: calls.append("strong"), weak=False)
    bus.publish("x")
    assert len(weak.events) == 1 and calls == ["strong"]
    del weak
    gc.collect()
    bus.publish("x")
    assert calls == ["strong", "strong"]
    assert len(list(bus.signal("x").receivers_for(None))) == 1
    assert bus._filters == {}  # the dead receiver's filter went with it


def test_bound_method_receivers_stay_connected_while_the_object_lives() -> None:
    class Listener:
        def __init__(self) -> None:
            self.names: list[str] = []

        def handle(self, sender: Any, *, event: BusEvent) -> None:
            self.names.append(event.name)

    bus = EventBus()
    listener = Listener()
    bus.connect("x", listener.handle, where=lambda e: e.sender == 1)
    bus.publish("x", 1)
    bus.publish("x", 2)
    assert listener.names == ["x"]
    bus.disconnect("x", listener.handle)
    bus.publish("x", 1)
    assert listener.names == ["x"]


def test_decorator_connects_strongly() -> None:
    bus = EventBus()
    seen: list[int] = []

    @bus.on("x", where=lambda e: e.sequence == 2)
    def receiver(sender: Any, *, event: BusEvent) -> None:
        seen.append(event.index)

    del receiver
    gc.collect()
    bus.publish("x", sequence=1)
    bus.publish("x", sequence=2)
    assert seen == [1]


def test_a_raising_receiver_is_reported_and_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    good = Recorder()
    reported = Recorder()

    def bad(sender: Any, *, event: BusEvent) -> None:
        raise ValueError("boom")

    bus.connect("x", bad, weak=False)
    bus.connect("x", good)
    bus.connect(RECEIVER_ERROR, reported)
    with caplog.at_level(logging.ERROR, logger="inner_universe.nerv.bus"):
        event = bus.publish("x", "s")
    assert good.events == [event]
    assert len(reported.events) == 1
    failure = reported.events[0]
    assert isinstance(failure.error, ValueError) and failure.cause is event
    assert failure.sender == "s"
    [error] = bus.errors()
    assert error.receiver is bad and error.event is event
    assert "boom" in caplog.text


def test_a_raising_predicate_counts_as_a_receiver_error() -> None:
    bus = EventBus()
    seen = Recorder()
    bus.connect("x", seen, where=lambda e: 1 / 0 > 0)
    bus.publish("x")
    assert seen.events == [] and isinstance(bus.errors()[0].error, ZeroDivisionError)


def test_an_error_handler_that_raises_is_only_logged() -> None:
    bus = EventBus()

    def bad(sender: Any, *, event: BusEvent) -> None:
        raise RuntimeError(event.name)

    bus.connect("x", bad, weak=False)
    bus.connect(RECEIVER_ERROR, bad, weak=False)
    bus.publish("x")
    assert [str(e.error) for e in bus.errors()] == ["x", RECEIVER_ERROR]
    assert [e.name for e in bus.history()] == ["x", RECEIVER_ERROR]


def test_history_is_bounded_and_filterable() -> None:
    bus = EventBus(history=5)
    for i in range(12):
        bus.publish("even" if i % 2 == 0 else "odd", sequence=i)
    assert bus.history_size == 5
    assert [e.sequence for e in bus.history()] == [7, 8, 9, 10, 11]
    assert [e.sequence for e in bus.history("odd")] == [7, 9, 11]
    assert bus.published == 12


def test_muted_signal_delivers_nothing() -> None:
    bus = EventBus()
    seen = Recorder()
    bus.connect("x", seen)
    with bus.signal("x").muted():
        bus.publish("x")
    bus.publish("x")
    assert len(seen.events) == 1


async def test_async_receivers_are_awaited_in_emission_order_by_drain() -> None:
    bus = EventBus()
    done: list[int] = []
    sync_seen: list[int] = []

    async def slow(sender: Any, *, event: BusEvent) -> None:
        await asyncio.sleep(0.002 if event.index % 2 == 0 else 0)
        done.append(event.index)

    bus.connect("x", slow)
    bus.connect("x", lambda sender, event: sync_seen.append(event.index), weak=False)
    for _ in range(20):
        bus.publish("x")
    assert sync_seen == list(range(20))  # sync receivers ran during publish
    await bus.drain()
    assert done == list(range(20))
    await bus.drain()  # idle: returns at once


async def test_async_receiver_errors_are_reported() -> None:
    bus = EventBus()

    async def bad(sender: Any, *, event: BusEvent) -> None:
        raise KeyError(event.name)

    after = Recorder()
    bus.connect("x", bad)
    bus.connect(RECEIVER_ERROR, after)
    bus.publish("x")
    bus.publish("y")
    await bus.drain()
    assert len(after.events) == 1 and isinstance(after.events[0].error, KeyError)


async def test_drain_from_an_async_receiver_is_refused() -> None:
    bus = EventBus()

    async def nested(sender: Any, *, event: BusEvent) -> None:
        await bus.drain()

    bus.connect("x", nested)
    bus.publish("x")
    await bus.drain()
    assert isinstance(bus.errors()[0].error, RuntimeError)


def test_async_receivers_published_without_a_loop_wait_for_drain() -> None:
    bus = EventBus()
    done: list[int] = []

    async def receiver(sender: Any, *, event: BusEvent) -> None:
        done.append(event.index)

    bus.connect("x", receiver)
    bus.publish("x")
    bus.publish("x")
    assert done == [] and not bus.wait_idle(0.01)
    asyncio.run(bus.drain())
    assert done == [0, 1] and bus.wait_idle(0)


def test_wait_idle_from_another_thread_than_the_loop() -> None:
    bus = EventBus()
    done: list[int] = []

    async def receiver(sender: Any, *, event: BusEvent) -> None:
        await asyncio.sleep(0.01)
        done.append(event.index)

    bus.connect("x", receiver)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        for _ in range(5):
            loop.call_soon_threadsafe(bus.publish, "x")
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(5)
        assert bus.wait_idle(5)
        assert done == [0, 1, 2, 3, 4]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_publishing_from_many_threads_keeps_index_and_delivery_order_equal() -> None:
    bus = EventBus(history=10_000)
    seen: list[int] = []
    bus.connect(ALL, lambda sender, event: seen.append(event.index), weak=False)

    def publish_many(sender: str) -> None:
        for i in range(500):
            bus.publish("x", sender, sequence=i)

    threads = [threading.Thread(target=publish_many, args=(f"t{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == list(range(2000))
    for n in range(4):  # each publisher's own events stay in its order
        mine = [e.sequence for e in bus.history() if e.sender == f"t{n}"]
        assert mine == list(range(500))
