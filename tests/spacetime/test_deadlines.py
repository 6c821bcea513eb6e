"""The driver's call deadlines: one timer, a queue in call order per timeout value."""

from __future__ import annotations

import asyncio

from inner_universe.spacetime.driver import _Deadlines
from inner_universe.spacetime.outbox import OutboxCall


def make_call(seq: int) -> OutboxCall:
    return OutboxCall(seq, "add", b"", keyed=False, notify=True)


async def test_calls_expire_in_deadline_order_across_timeouts() -> None:
    expired: list[tuple[int, float]] = []
    done = asyncio.Event()

    def expire(call: OutboxCall, timeout: float) -> None:
        expired.append((call.seq, timeout))
        if len(expired) == 3:
            done.set()

    deadlines = _Deadlines(asyncio.get_running_loop(), expire)
    calls = [make_call(seq) for seq in range(5)]
    deadlines.add(calls[0], 0.2)
    deadlines.add(calls[1], 5.0)
    deadlines.add(calls[2], 0.05)
    deadlines.add(calls[3], 0.2)
    deadlines.add(calls[4], 0.05)
    deadlines.remove(calls[4])  # answered: never expires
    await asyncio.wait_for(done.wait(), 5)
    assert expired == [(2, 0.05), (0, 0.2), (3, 0.2)]
    assert calls[1].deadline is not None  # not due yet
    deadlines.clear()
    assert calls[1].deadline is None


async def test_answered_calls_leave_their_queue_in_steady_traffic() -> None:
    deadlines = _Deadlines(asyncio.get_running_loop(), lambda call, timeout: None)
    for seq in range(1000):
        call = make_call(seq)
        deadlines.add(call, 30.0)
        deadlines.remove(call)  # answered before the next call is made
    assert len(deadlines._queues[30.0]) == 1  # only the last call waits to leave
    deadlines.clear()


async def test_an_expired_call_leaves_nothing_behind() -> None:
    expired: list[int] = []
    done = asyncio.Event()

    def expire(call: OutboxCall, timeout: float) -> None:
        expired.append(call.seq)
        done.set()

    deadlines = _Deadlines(asyncio.get_running_loop(), expire)
    call = make_call(1)
    deadlines.add(call, 0.01)
    await asyncio.wait_for(done.wait(), 5)
    deadlines.remove(call)  # an answer after the deadline changes nothing
    assert expired == [1]
    assert call.deadline is None
    assert not deadlines._queues and deadlines._timer is None  # nothing left to fire
