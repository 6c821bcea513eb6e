"""TokenBuffer and FlushPolicy: batching by size and by age, and a bound on memory. No server."""

from __future__ import annotations

import asyncio

import pytest

from inner_universe.features.chat import ChatInputError, FlushPolicy, TokenBuffer


async def test_a_batch_is_released_once_it_reaches_max_chars() -> None:
    buffer = TokenBuffer(capacity=100)
    for word in ["ab", "cd", "ef", "gh"]:
        await buffer.put(word)
    # Whole pieces only: 3 pieces make 6 characters, a 4th would exceed max_chars=7.
    assert await buffer.take(max_chars=7, max_delay=60.0) == "abcdef"
    assert len(buffer) == 2


async def test_a_short_batch_is_released_when_its_oldest_piece_is_due() -> None:
    buffer = TokenBuffer(capacity=100)
    await buffer.put("tok")
    # max_chars is never reached; the 10 ms age limit releases the batch.
    assert await buffer.take(max_chars=1000, max_delay=0.01) == "tok"


async def test_a_piece_larger_than_max_chars_still_goes_out_whole() -> None:
    buffer = TokenBuffer(capacity=100)
    await buffer.put("a-very-long-token")
    assert await buffer.take(max_chars=4, max_delay=60.0) == "a-very-long-token"


async def test_put_waits_while_full_and_resumes_when_a_batch_is_taken() -> None:
    buffer = TokenBuffer(capacity=4)
    await buffer.put("abcd")
    blocked = asyncio.ensure_future(buffer.put("e"))
    await asyncio.sleep(0)  # let it run until it waits
    assert not blocked.done() and buffer.full_waits == 1
    assert await buffer.take(max_chars=4, max_delay=60.0) == "abcd"
    await blocked
    assert len(buffer) == 1 and buffer.peak_chars == 4


async def test_close_drains_what_is_left_then_ends() -> None:
    buffer = TokenBuffer(capacity=100)
    await buffer.put("x")
    await buffer.put("y")
    buffer.close()
    assert await buffer.take(max_chars=1000, max_delay=60.0) == "xy"
    assert await buffer.take(max_chars=1000, max_delay=60.0) is None
    await buffer.put("ignored")
    assert len(buffer) == 0


async def test_flush_releases_at_once_and_discard_drops_everything() -> None:
    buffer = TokenBuffer(capacity=100)
    await buffer.put("now")
    buffer.flush()
    assert await buffer.take(max_chars=1000, max_delay=60.0) == "now"
    await buffer.put("gone")
    buffer.discard()
    assert await buffer.take(max_chars=1000, max_delay=60.0) is None


async def test_a_producer_blocked_on_a_full_buffer_is_released_by_close() -> None:
    buffer = TokenBuffer(capacity=2)
    await buffer.put("ab")
    blocked = asyncio.ensure_future(buffer.put("c"))
    await asyncio.sleep(0)
    buffer.discard()
    await blocked
    assert len(buffer) == 0


@pytest.mark.parametrize(
    "kwargs", [{"max_chars": 0}, {"capacity": 0}, {"max_delay": -1.0}], ids=str
)
def test_a_policy_out_of_range_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ChatInputError):
        FlushPolicy(**kwargs)  # type: ignore[arg-type]
