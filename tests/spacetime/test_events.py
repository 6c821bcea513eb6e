"""ReducerEvent: arguments decoded on first read, otherwise a frozen record of its fields."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from inner_universe.spacetime.events import ReducerEvent
from inner_universe.spacetime.types import ConnectionId, Identity, TimeDuration, Timestamp


def event(args: Any) -> ReducerEvent:
    return ReducerEvent(
        "say",
        args,
        Identity(7),
        ConnectionId(8),
        Timestamp(9),
        True,
        None,
        10,
        TimeDuration(11),
        12,
    )


def test_lazy_arguments_are_decoded_once_on_first_read() -> None:
    decoded: list[int] = []

    def decode() -> dict[str, Any]:
        decoded.append(1)
        return {"text": "hi"}

    lazy = event(decode)
    assert decoded == []
    assert lazy.args == {"text": "hi"} and lazy.args is lazy.args
    assert decoded == [1]


def test_a_lazy_event_equals_shows_and_pickles_like_an_eager_one() -> None:
    lazy, eager = event(lambda: {"text": "hi"}), event({"text": "hi"})
    assert lazy == eager and lazy != event({"text": "other"})
    assert repr(lazy) == repr(eager)
    assert repr(eager).startswith("ReducerEvent(reducer='say', args={'text': 'hi'}, ")
    assert pickle.loads(pickle.dumps(lazy)) == eager
    match lazy:
        case ReducerEvent("say", {"text": text}):
            assert text == "hi"
        case _:
            pytest.fail("the event did not match its fields")


def test_an_event_is_frozen() -> None:
    e = event({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.reducer = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del e.committed
    with pytest.raises(TypeError):
        hash(e)
