"""Keyed reducer calls: checked and encoded on the caller's thread, keyed on the loop's.

A reducer whose first parameter is ``call_key: CallKey`` (schema.py hides it
from callers) gets a key per call: this connection's client id and the call's
sequence number in the outbox. A call is encoded with the zero key when it is
made, so bad arguments raise at once, on the caller's thread; the connection
writes the real key over those first 24 bytes when it numbers the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import codec
from .protocol import KEY_SIZE, key_bytes
from .schema import CallKey, ModuleSchema

__all__ = ["PreparedCall", "prepare_call", "with_key"]


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
    return PreparedCall(plan.name, codec.encode_args(plan, *args, **kwargs), plan.takes_call_key)


def with_key(args: bytes, key: CallKey | None) -> bytes:
    """``args`` with ``key`` written over its zero key (unchanged when ``key`` is None)."""
    return args if key is None else key_bytes(key) + args[KEY_SIZE:]
