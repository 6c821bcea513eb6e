"""RawModuleDefV9 JSON → ModuleSchema: tables, keys, indexes, row codecs, reducer arguments."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inner_universe.errors import ArgumentError, DecodeError, EncodeError, SchemaError
from inner_universe.spacetime.bsatn import BsatnReader
from inner_universe.spacetime.sats import (
    IDENTITY,
    STRING,
    TIMESTAMP,
    U8,
    U64,
    ArrayType,
    RefType,
    Variant,
    option,
)
from inner_universe.spacetime.schema import (
    CallKey,
    IndexSchema,
    ModuleSchema,
    ReducerSchema,
    ScheduleSchema,
    SequenceSchema,
)
from inner_universe.spacetime.types import Identity, ScheduleAt, TimeDuration, Timestamp

from .test_sats import same, values_for

DATA = Path(__file__).resolve().parents[1] / "data"
HANDWRITTEN = DATA / "schema_handwritten_v9.json"
REAL = DATA / "schema_inner_universe_v9.json"

RAW = json.loads(HANDWRITTEN.read_text())
SCHEMA = ModuleSchema.from_json(RAW)
OWNER = Identity(0xC200 << 240 | 42)
T0 = Timestamp(1_750_000_000_000_000)


def agent(**changes: Any) -> Any:
    fields = dict(
        id=1,
        owner=OWNER,
        name="planner",
        role="planning",
        status="idle",
        state=b"\x81\xa1k\x01",
        version=1,
        created_at=T0,
        updated_at=T0,
    )
    fields.update(changes)
    return SCHEMA.table("agent").row_class(**fields)


# ------------------------------------------------------------------------- tables


def test_tables_and_reducers_are_listed() -> None:
    assert set(SCHEMA.tables) == {
        "agent",
        "conversation",
        "message",
        "document",
        "session",
        "task",
        "task_reminder",
    }
    assert "register_agent" in SCHEMA.reducers and len(SCHEMA.reducers) == 14
    assert SCHEMA.type_names["Agent"] == 0
    assert repr(SCHEMA) == "<ModuleSchema 7 tables, 14 reducers>"


def test_agent_table() -> None:
    table = SCHEMA.table("agent")
    assert table.columns == (
        "id",
        "owner",
        "name",
        "role",
        "status",
        "state",
        "version",
        "created_at",
        "updated_at",
    )
    assert table.column_types["owner"] == IDENTITY
    assert table.column_types["created_at"] == TIMESTAMP
    assert table.column_types["state"] == ArrayType(U8)
    assert table.primary_key == "id"
    assert table.unique_columns == ("id", "name")
    assert IndexSchema("agent_owner_idx_btree", "owner", "BTree", ("owner",)) in table.indexes
    assert table.sequences == (SequenceSchema("agent_id_seq", "id", None, 1),)
    assert table.schedule is None
    assert table.is_public and not table.is_system
    assert table.static_row_size is None and table.fixed_layout is None
    assert table.row_class.__name__ == "Agent"
    assert table.row_type.elements[0].name == "id"


def test_fixed_size_and_scheduled_tables() -> None:
    session = SCHEMA.table("session")
    assert session.static_row_size == 16 + 32 + 8
    assert session.fixed_layout is not None
    assert session.primary_key == "connection_id"
    reminder = SCHEMA.table("task_reminder")
    assert reminder.schedule == ScheduleSchema(
        "task_reminder_sched", "send_task_reminder", "scheduled_at"
    )
    assert not reminder.is_public


def test_row_round_trip_and_identity_of_row_classes() -> None:
    table = SCHEMA.table("agent")
    row = agent()
    data = table.encode_row(row)
    back = table.decode_row(data)
    assert back == row and type(back) is table.row_class and hash(back) == hash(row)
    assert table.primary_key_of(back) == 1
    reader = BsatnReader(data + data)
    assert table.decode_row_at(reader) == row and reader.pos == len(data)
    # A tuple or mapping in column order encodes the same.
    values = [getattr(row, c) for c in table.columns]
    assert table.encode_row(tuple(values)) == data
    assert table.encode_row(dict(zip(table.columns, values, strict=True))) == data


def test_row_with_option_sum_and_schedule() -> None:
    task = SCHEMA.table("task")
    row = task.row_class(
        id=7,
        owner=OWNER,
        assignee=None,
        status=Variant("Running", (50,)),
        tags=("a", "é"),
        priority=0.5,
        urgent=True,
    )
    assert task.decode_row(task.encode_row(row)) == row
    row2 = dataclasses.replace(row, assignee=3, status=Variant("Failed", "boom"))
    assert task.decode_row(task.encode_row(row2)) == row2
    reminder = SCHEMA.table("task_reminder")
    r = reminder.row_class(1, ScheduleAt.every(TimeDuration(60_000_000)), 7, "hi")
    assert reminder.decode_row(reminder.encode_row(r)) == r


def test_decode_row_rejects_trailing_and_missing_bytes() -> None:
    table = SCHEMA.table("agent")
    data = table.encode_row(agent())
    with pytest.raises(DecodeError, match="trailing"):
        table.decode_row(data + b"\x00")
    for end in (0, 8, 40, len(data) - 1):
        with pytest.raises(DecodeError, match="truncated"):
            table.decode_row(data[:end])


def test_encode_row_errors_name_table_and_column() -> None:
    table = SCHEMA.table("agent")
    with pytest.raises(EncodeError, match=r"^table 'agent': version: -1 does not fit in u64"):
        table.encode_row(agent(version=-1))
    with pytest.raises(EncodeError, match=r"^table 'agent': owner: expected Identity, got str"):
        table.encode_row(agent(owner="c200"))
    with pytest.raises(
        EncodeError, match=r"table 'agent': expected Agent with fields \(id, owner, name"
    ):
        table.encode_row((1, 2))


@pytest.mark.parametrize("name", sorted(SCHEMA.tables))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_rows_round_trip(name: str, data: st.DataObject) -> None:
    table = SCHEMA.table(name)
    row = data.draw(values_for(RefType(table.product_type_ref), SCHEMA.typespace))
    encoded = table.encode_row(row)
    assert same(table.decode_row(encoded), row)
    if table.static_row_size is not None:
        assert len(encoded) == table.static_row_size


def test_table_without_primary_key_and_unnamed_row_type() -> None:
    schema = ModuleSchema.from_json(
        {
            "typespace": {
                "types": [
                    {
                        "Product": {
                            "elements": [
                                {
                                    "name": {"some": "name"},
                                    "algebraic_type": {"Builtin": {"String": []}},
                                }
                            ]
                        }
                    }
                ]
            },
            "tables": [
                {
                    "name": "person_log",
                    "product_type_ref": 0,
                    "primary_key": [],
                    "indexes": [],
                    "constraints": [],
                    "sequences": [],
                    "schedule": {"none": []},
                    "table_type": {"User": []},
                    "table_access": {"Public": []},
                }
            ],
            "reducers": [],
        }
    )
    table = schema.table("person_log")
    assert table.primary_key is None and table.unique_columns == ()
    assert table.row_class.__name__ == "PersonLog"
    with pytest.raises(SchemaError, match="has no primary key"):
        table.primary_key_of(table.row_class("x"))
    assert table.decode_row(table.encode_row(table.row_class("x"))) == table.row_class("x")


def test_format_variants_are_accepted() -> None:
    raw = copy.deepcopy(RAW)
    agent_def = raw["tables"][0]
    agent_def["indexes"] = [
        {
            "name": "by_owner",
            "accessor_name": {"none": []},
            "algorithm": {"BTree": {"columns": [1]}},
        },
        {"name": {"some": "direct_id"}, "accessor_name": None, "algorithm": {"Direct": 0}},
    ]
    agent_def["table_type"] = "System"
    raw["tables"][6]["schedule"] = {"some": {"name": "s", "reducer_name": "r", "at_column": 1}}
    schema = ModuleSchema.from_json({"V9": raw})
    table = schema.table("agent")
    assert table.indexes == (
        IndexSchema("by_owner", None, "BTree", ("owner",)),
        IndexSchema("direct_id", None, "Direct", ("id",)),
    )
    assert table.is_system
    assert schema.table("task_reminder").schedule == ScheduleSchema("s", "r", "scheduled_at")
    assert ModuleSchema.from_json(json.dumps(raw)).tables.keys() == SCHEMA.tables.keys()
    assert (
        ModuleSchema.from_json(json.dumps(raw).encode()).reducers.keys() == SCHEMA.reducers.keys()
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw.pop("typespace"), "typespace"),
        (lambda raw: raw["tables"][0].update(product_type_ref=99), "outside the typespace"),
        (lambda raw: raw["tables"][0].update(primary_key=[42]), "no column 42"),
        (lambda raw: raw["tables"][0].update(primary_key=[0, 1]), "multi-column"),
        (lambda raw: raw["tables"][0].update(name=5), "string 'name'"),
        (lambda raw: raw["tables"][0].update(product_type_ref=5), "not a product"),
        (lambda raw: raw["reducers"][0].update(lifecycle={"some": {"OnFire": []}}), "OnFire"),
        (lambda raw: raw["reducers"][0].pop("params"), "params"),
        (lambda raw: raw.update(tables={}), "expected a list"),
        (lambda raw: raw["typespace"]["types"].append({"Nope": []}), "unknown SATS type"),
    ],
)
def test_bad_schemas_are_schema_errors(mutate: Any, message: str) -> None:
    raw = copy.deepcopy(RAW)
    mutate(raw)
    with pytest.raises(SchemaError, match=message):
        ModuleSchema.from_json(raw)


def test_bad_json_text() -> None:
    with pytest.raises(SchemaError, match="not valid JSON"):
        ModuleSchema.from_json("{nope")
    with pytest.raises(SchemaError, match="RawModuleDefV9"):
        ModuleSchema.from_json([])


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(
        SchemaError, match="no table named 'agents'; known tables: agent, conversation"
    ):
        SCHEMA.table("agents")
    with pytest.raises(
        SchemaError, match="no reducer named 'nope'; known reducers: append_message"
    ):
        SCHEMA.reducer("nope")


# ----------------------------------------------------------------------- reducers


def test_reducer_params_and_lifecycles() -> None:
    register = SCHEMA.reducer("register_agent")
    assert register.param_names == ("name", "role", "state")
    assert register.params[2][0] == "state" and register.lifecycle is None
    assert SCHEMA.reducer("init").lifecycle == "Init"
    assert SCHEMA.reducer("client_connected").lifecycle == "OnConnect"
    assert SCHEMA.reducer("client_disconnected").lifecycle == "OnDisconnect"
    assert repr(register) == "<ReducerSchema register_agent(name, role, state)>"


def test_encode_args_binds_like_a_python_call() -> None:
    register = SCHEMA.reducer("register_agent")
    expected = b"\x01\x00\x00\x00a" + b"\x02\x00\x00\x00bc" + b"\x01\x00\x00\x00\xff"
    assert register.encode_args("a", "bc", b"\xff") == expected
    assert register.encode_args("a", state=b"\xff", role="bc") == expected
    assert register.encode_args(name="a", role="bc", state=b"\xff") == expected
    assert register.decode_args(expected) == {"name": "a", "role": "bc", "state": b"\xff"}
    assert SCHEMA.reducer("init").encode_args() == b""
    assert SCHEMA.reducer("init").decode_args(b"") == {}


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (
            ("a", "b", b"", 4),
            {},
            r"'register_agent' takes 3 argument\(s\) \(name, role, state\) but 4 were given",
        ),
        (("a",), {}, r"reducer 'register_agent' is missing argument\(s\): 'role', 'state'"),
        (("a", "b"), {"sate": b""}, r"reducer 'register_agent' got an unexpected argument 'sate'"),
        (
            ("a", "b", b""),
            {"name": "x"},
            r"reducer 'register_agent' got multiple values for 'name'",
        ),
        (
            ("a", "b", "not bytes"),
            {},
            r"reducer 'register_agent', argument state: bytes expects bytes, got str",
        ),
        (
            (1, "b", b""),
            {},
            r"reducer 'register_agent', argument name: string expects a str, got int",
        ),
    ],
)
def test_argument_errors(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ArgumentError, match=message) as info:
        SCHEMA.reducer("register_agent").encode_args(*args, **kwargs)
    assert isinstance(info.value, TypeError) and isinstance(info.value, EncodeError)


def test_argument_errors_with_nested_paths() -> None:
    with pytest.raises(ArgumentError, match=r"'update_agent', argument id: -1 does not fit in u64"):
        SCHEMA.reducer("update_agent").encode_args(-1, "n", "r", "s", b"")
    with pytest.raises(
        ArgumentError, match=r"'create_task', argument tags\[1\]: string expects a str"
    ):
        SCHEMA.reducer("create_task").encode_args(None, ["a", 1], 1.0)
    with pytest.raises(
        ArgumentError, match=r"'set_task_status', argument status.Running.progress: "
    ):
        SCHEMA.reducer("set_task_status").encode_args(1, Variant("Running", {"progress": -5}))
    with pytest.raises(
        ArgumentError, match=r"'init' takes 0 argument\(s\) \(none\) but 1 were given"
    ):
        SCHEMA.reducer("init").encode_args(1)


def test_args_with_options_sums_and_named_types() -> None:
    create = SCHEMA.reducer("create_task")
    data = create.encode_args(None, ("x",), 2.0)
    assert data[:1] == b"\x01"  # none
    assert create.decode_args(data) == {"assignee": None, "tags": ("x",), "priority": 2.0}
    status = SCHEMA.reducer("set_task_status")
    assert status.encode_args(1, "Done") == (1).to_bytes(8, "little") + b"\x02"
    assert status.decode_args(status.encode_args(2, Variant("Running", (9,)))) == {
        "id": 2,
        "status": Variant("Running", (9,)),
    }
    send = SCHEMA.reducer("send_task_reminder")
    row_cls = SCHEMA.table("task_reminder").row_class
    reminder = row_cls(1, ScheduleAt.at(T0), 3, None)
    assert send.decode_args(send.encode_args(reminder)) == {"reminder": reminder}
    remind = SCHEMA.reducer("remind_task")
    args = remind.decode_args(remind.encode_args(5, at=TimeDuration(10), note="n"))
    assert args == {"task_id": 5, "at": ScheduleAt.every(TimeDuration(10)), "note": "n"}


def test_decode_args_rejects_bad_bytes() -> None:
    register = SCHEMA.reducer("register_agent")
    data = register.encode_args("a", "b", b"")
    with pytest.raises(DecodeError, match="trailing"):
        register.decode_args(data + b"\x00")
    with pytest.raises(DecodeError, match="truncated"):
        register.decode_args(data[:-1])


def _param(name: str, ty: Any) -> dict[str, Any]:
    return {"name": {"some": name}, "algebraic_type": ty}


_KEY_TYPE = {"Product": {"elements": [_param("client", {"U128": []}), _param("seq", {"U64": []})]}}


def _keyed_module(*reducers: tuple[str, list[dict[str, Any]]]) -> ModuleSchema:
    """A module whose typespace names CallKey (entry 0), with the given reducers."""
    return ModuleSchema.from_json(
        {
            "typespace": {"types": [_KEY_TYPE]},
            "types": [{"name": {"scope": [], "name": "CallKey"}, "ty": 0, "custom_ordering": True}],
            "tables": [],
            "reducers": [
                {"name": name, "params": {"elements": params}, "lifecycle": {"none": []}}
                for name, params in reducers
            ],
        }
    )


KEYED = _keyed_module(
    ("add", [_param("call_key", {"Ref": 0}), _param("n", {"U32": []})]),
    ("inline", [_param("call_key", _KEY_TYPE)]),
    ("plain", [_param("n", {"U32": []})]),
    ("misnamed", [_param("key", {"Ref": 0}), _param("n", {"U32": []})]),
    ("wrong_shape", [_param("call_key", {"U64": []})]),
    ("second", [_param("n", {"U32": []}), _param("call_key", {"Ref": 0})]),
)


def test_a_first_call_key_parameter_is_hidden_from_callers() -> None:
    add = KEYED.reducer("add")
    assert add.takes_call_key and add.param_names == ("n",)
    assert repr(add) == "<ReducerSchema add(n)>"
    assert KEYED.reducer("inline").takes_call_key
    for name in ("plain", "misnamed", "wrong_shape", "second"):
        assert not KEYED.reducer(name).takes_call_key, name
    assert KEYED.reducer("second").param_names == ("n", "call_key")


def test_call_keys_are_encoded_first_and_default_to_no_key() -> None:
    add = KEYED.reducer("add")
    key = CallKey(client=2**128 - 1, seq=7)
    encoded = add.encode_args(5, call_key=key)
    assert encoded == b"\xff" * 16 + (7).to_bytes(8, "little") + (5).to_bytes(4, "little")
    assert add.decode_call(encoded) == ({"n": 5}, key)
    assert add.decode_args(encoded) == {"n": 5}
    unkeyed = add.encode_args(n=5)
    assert unkeyed == bytes(24) + (5).to_bytes(4, "little")
    assert add.decode_call(unkeyed) == ({"n": 5}, CallKey(0, 0))
    inline = KEYED.reducer("inline")
    assert inline.decode_call(inline.encode_args(call_key=key)) == ({}, key)


def test_call_key_mistakes_are_argument_errors() -> None:
    with pytest.raises(ArgumentError, match="reducer 'plain' takes no call key"):
        KEYED.reducer("plain").encode_args(1, call_key=CallKey(1, 1))
    with pytest.raises(ArgumentError, match="argument call_key"):
        KEYED.reducer("add").encode_args(1, call_key=CallKey(-1, 1))
    with pytest.raises(ArgumentError, match="takes 1 argument"):
        KEYED.reducer("add").encode_args(CallKey(1, 1), 1)


@pytest.mark.parametrize("name", sorted(SCHEMA.reducers))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_reducer_args_round_trip(name: str, data: st.DataObject) -> None:
    reducer = SCHEMA.reducer(name)
    values = data.draw(values_for(reducer.params_type, SCHEMA.typespace))
    assert same(_round_trip(reducer, values), values)


def _round_trip(reducer: ReducerSchema, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Encode drawn values of all parameters (the call key first, if any) and decode them."""
    if not reducer.takes_call_key:
        return tuple(reducer.decode_args(reducer.encode_args(*values)).values())
    raw_key, *args = values
    key = CallKey(raw_key.client, raw_key.seq)
    decoded, decoded_key = reducer.decode_call(reducer.encode_args(*args, call_key=key))
    assert decoded_key == key
    return (raw_key, *decoded.values())


def test_special_column_types_in_the_fixture() -> None:
    assert SCHEMA.table("task").column_types["assignee"] == option(U64)
    assert SCHEMA.table("message").column_types["content"] == STRING


# --------------------------------------------------------------- the real module


@pytest.mark.skipif(not REAL.exists(), reason="schema_inner_universe_v9.json not captured yet")
def test_real_module_schema() -> None:
    schema = ModuleSchema.from_json(REAL.read_text())
    for name in ("agent", "conversation", "message", "document", "session"):
        table = schema.table(name)
        assert table.is_public and not table.is_system
    agent_table = schema.table("agent")
    assert agent_table.primary_key == "id" and agent_table.unique_columns == ("id",)
    assert any(i.columns == ("owner", "name") for i in agent_table.indexes)  # names per owner
    assert any(i.columns == ("owner",) for i in agent_table.indexes)
    assert agent_table.column_types["owner"] == IDENTITY
    assert schema.table("session").primary_key == "connection_id"
    assert schema.reducer("client_connected").lifecycle == "OnConnect"
    assert schema.reducer("register_agent").param_names == ("name", "role", "state")
    assert schema.reducer("register_agent").takes_call_key
    assert not schema.reducer("client_connected").takes_call_key


@pytest.mark.skipif(not REAL.exists(), reason="schema_inner_universe_v9.json not captured yet")
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_real_module_rows_and_args_round_trip(data: st.DataObject) -> None:
    schema = ModuleSchema.from_json(REAL.read_text())
    table = schema.table(data.draw(st.sampled_from(sorted(schema.tables))))
    row = data.draw(values_for(RefType(table.product_type_ref), schema.typespace))
    assert same(table.decode_row(table.encode_row(row)), row)
    reducer = schema.reducer(data.draw(st.sampled_from(sorted(schema.reducers))))
    values = data.draw(values_for(reducer.params_type, schema.typespace))
    assert same(_round_trip(reducer, values), values)
