"""Reducer calls with an idempotency key: checking, encoding and keying them.

A module that wants exactly-once calls gives each mutating reducer a first
parameter ``call_key: CallKey`` (``{client: u128, seq: u64}``, 24 BSATN bytes)
and ignores a key it has seen before. The caller never passes it: a call is
encoded with a zero key when it is made (so bad arguments raise at once, on the
caller's thread), and the connection writes the real key over those first 24
bytes when it gives the call its sequence number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ArgumentError
from . import codec
from .protocol import CallKey
from .schema import ModuleSchema, ReducerSchema

__all__ = ["CALL_KEY_PARAM", "PreparedCall", "prepare_call", "takes_call_key", "with_key"]

#: The name of the hidden first parameter of reducers that take a key.
CALL_KEY_PARAM = "call_key"
_NO_KEY = CallKey(0, 0)
_KEY_SIZE = len(_NO_KEY.encode())


def takes_call_key(reducer: ReducerSchema) -> bool:
    """True when the reducer's first parameter is the call key."""
    return bool(reducer.param_names) and reducer.param_names[0] == CALL_KEY_PARAM


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A checked call: its encoded arguments, with a zero key in front when ``keyed``."""

    reducer: str
    args: bytes
    keyed: bool


def prepare_call(
    schema: ModuleSchema, reducer: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> PreparedCall:
    """Check and encode a call (SchemaError, ArgumentError); nothing is sent."""
    plan = schema.reducer(reducer)
    if not takes_call_key(plan):
        return PreparedCall(plan.name, codec.encode_args(plan, *args, **kwargs), False)
    if CALL_KEY_PARAM in kwargs:
        raise ArgumentError(f"reducer {reducer!r}: the connection supplies {CALL_KEY_PARAM}")
    return PreparedCall(plan.name, codec.encode_args(plan, _NO_KEY, *args, **kwargs), True)


def with_key(args: bytes, key: CallKey | None) -> bytes:
    """``args`` with ``key`` written over its zero key (unchanged when ``key`` is None)."""
    return args if key is None else key.encode() + args[_KEY_SIZE:]
