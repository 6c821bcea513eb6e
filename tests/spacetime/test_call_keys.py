"""A call's plan: arguments checked and encoded without the key, the key written in front once."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inner_universe import _native
from inner_universe.errors import ArgumentError
from inner_universe.spacetime import codec
from inner_universe.spacetime.call_keys import CallPlan, keyed_args
from inner_universe.spacetime.schema import CallKey, ModuleSchema

from .test_sats import values_for
from .test_schema import KEYED, REAL

MODULE = ModuleSchema.from_json(json.loads(REAL.read_text()))
PYTHON = codec._PythonCodec()
NATIVE = codec._NativeCodec(_native)


def test_a_keyed_call_is_its_key_then_its_arguments() -> None:
    add = KEYED.reducer("add")
    plan = CallPlan(add)
    assert (plan.name, plan.keyed) == ("add", True)
    key = CallKey(2**128 - 1, 7)
    for args, kwargs in (((5,), {}), ((), {"n": 5})):
        assert keyed_args("add", key, plan.encode(args, kwargs)) == add.encode_args(5, call_key=key)
    inline = CallPlan(KEYED.reducer("inline"))
    assert inline.encode((), {}) == b""
    plain = CallPlan(KEYED.reducer("plain"))
    assert not plain.keyed and plain.encode((5,), {}) == KEYED.reducer("plain").encode_args(5)


def test_bad_arguments_and_bad_keys_are_argument_errors() -> None:
    plan = CallPlan(KEYED.reducer("add"))
    with pytest.raises(ArgumentError, match="takes 1 argument"):
        plan.encode((1, 2), {})
    with pytest.raises(ArgumentError, match="unexpected argument 'call_key'"):
        plan.encode((), {"n": 1, "call_key": CallKey(1, 1)})
    with pytest.raises(ArgumentError, match="argument n"):
        plan.encode((-1,), {})
    for key in (CallKey(-1, 1), CallKey(1, 2**64), (1, 2)):
        with pytest.raises(ArgumentError, match="reducer 'add', argument call_key"):
            keyed_args("add", key, b"")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(MODULE.reducers))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_both_codecs_encode_a_call_s_arguments_alike(name: str, data: st.DataObject) -> None:
    reducer = MODULE.reducer(name)
    values = data.draw(values_for(reducer.args_type, MODULE.typespace))
    encoded = NATIVE.args_encoder(reducer)(values)
    assert encoded == PYTHON.args_encoder(reducer)(values)
    if reducer.takes_call_key:
        key = CallKey(3, 9)
        assert keyed_args(name, key, encoded) == reducer.encode_args(*values, call_key=key)
    else:
        assert encoded == reducer.encode_args(*values)
