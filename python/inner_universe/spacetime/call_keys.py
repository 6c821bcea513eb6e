"""Reducer calls: checked and encoded on the caller's thread, keyed on the loop's.

A reducer whose first parameter is ``call_key: CallKey`` (schema.py hides it
from callers) gets a key per call: this connection's client id and the call's
sequence number in the outbox. A call's other arguments are encoded when it is
made, so bad arguments raise at once, on the caller's thread; the connection
writes the key's 24 bytes in front of them, once, when it numbers the call
(:func:`keyed_args`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ArgumentError
from . import codec
from .protocol import key_bytes
from .schema import CallKey, ReducerSchema

__all__ = ["CallPlan", "PreparedCall", "keyed_args"]


class CallPlan:
    """How to check and encode calls of one reducer, made once per reducer and connection.

    Every call goes through :meth:`encode`: the plan holds what the call needs
    (the reducer's name, whether it takes a key, its argument encoder) so a call
    looks nothing up.
    """

    __slots__ = ("_bind", "_encode", "keyed", "name")

    def __init__(self, reducer: ReducerSchema) -> None:
        self.name = reducer.name
        self.keyed = reducer.takes_call_key
        self._bind = reducer.bind
        self._encode = codec.args_encoder(reducer)

    def encode(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The arguments bound like a Python call and encoded, without the key (ArgumentError)."""
        return self._encode(self._bind(*args, **kwargs))


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A checked call: its encoded arguments, without the key its reducer takes when ``keyed``."""

    reducer: str
    args: bytes
    keyed: bool


def keyed_args(reducer: str, key: CallKey, args: bytes) -> bytes:
    """A keyed call's whole argument bytes: ``key`` first, then the other arguments.

    Raises:
        ArgumentError: ``key`` is not a CallKey of a u128 client and a u64 seq.
    """
    try:
        return key_bytes(key) + args
    except (AttributeError, OverflowError, TypeError):
        raise ArgumentError(
            f"reducer {reducer!r}, argument call_key: {key!r} is not a CallKey "
            "of a u128 client and a u64 seq"
        ) from None
