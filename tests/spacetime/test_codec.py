"""The codec seam: which implementation is chosen, and BsatnRowList decoding through it."""

from __future__ import annotations

import gc
import os
import sys
import types
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inner_universe.errors import ArgumentError, DecodeError
from inner_universe.spacetime import codec
from inner_universe.spacetime.sats import RefType
from inner_universe.spacetime.schema import ModuleSchema
from inner_universe.spacetime.types import ConnectionId, Timestamp

from .test_sats import same, values_for
from .test_schema import OWNER, SCHEMA, T0, agent

SESSION = SCHEMA.table("session")
AGENT = SCHEMA.table("agent")


def pack(rows: list[bytes]) -> tuple[bytes, list[int]]:
    offsets, at = [], 0
    for row in rows:
        offsets.append(at)
        at += len(row)
    return b"".join(rows), offsets


# ------------------------------------------------------------------- selection


def test_the_chosen_implementation_is_the_one_in_use() -> None:
    assert codec.select_implementation()[0] == codec.IMPLEMENTATION
    assert codec._codec.name == codec.IMPLEMENTATION


def test_the_codec_in_use_is_the_one_this_run_asks_for() -> None:
    """The test command runs the suite twice; this says which codec each run really used.

    The setup command always builds the extension, so without the variable it is native.
    """
    forced = os.environ.get(codec.PURE_PYTHON_ENV, "") not in ("", "0")
    assert ("python" if forced else "native") == codec.IMPLEMENTATION


def test_environment_variable_forces_python(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("inner_universe._native")
    fake.Layout = fake.ReplyReader = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "inner_universe._native", fake)
    assert codec.select_implementation({}) == ("native", fake)
    assert codec.select_implementation({"INNER_UNIVERSE_PURE_PYTHON": "0"}) == ("native", fake)
    assert codec.select_implementation({"INNER_UNIVERSE_PURE_PYTHON": "1"}) == ("python", None)


def test_extension_without_a_codec_means_python(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("inner_universe._native")
    monkeypatch.setitem(sys.modules, "inner_universe._native", fake)
    assert codec.select_implementation({}) == ("python", None)
    fake.Layout = object  # type: ignore[attr-defined]  # a build older than the reply reader
    assert codec.select_implementation({}) == ("python", None)
    monkeypatch.setitem(sys.modules, "inner_universe._native", None)  # import fails
    assert codec.select_implementation({}) == ("python", None)


# ------------------------------------------------------------------ row lists


def test_fixed_size_rows_use_the_struct_fast_path() -> None:
    rows = [
        SESSION.row_class(connection_id=c, identity=OWNER, connected_at=T0)
        for c in (ConnectionId(1), ConnectionId(2), ConnectionId(3))
    ]
    data = b"".join(SESSION.encode_row(r) for r in rows)
    assert SESSION.static_row_size is not None
    assert codec.decode_rows(SESSION, data, SESSION.static_row_size) == rows
    assert codec.decode_rows(SESSION, b"", SESSION.static_row_size) == []
    _, offsets = pack([SESSION.encode_row(r) for r in rows])
    assert codec.decode_rows(SESSION, data, offsets) == rows  # the hint decides, both work


def test_offsets_rows() -> None:
    rows = [agent(id=i, name=f"a{i}", state=b"x" * i) for i in range(5)]
    data, offsets = pack([AGENT.encode_row(r) for r in rows])
    assert codec.decode_rows(AGENT, data, offsets) == rows
    assert codec.decode_rows(AGENT, data, tuple(offsets)) == rows
    assert codec.decode_rows(AGENT, b"", []) == []


@pytest.mark.skipif(codec.IMPLEMENTATION != "native", reason="the native codec's behaviour")
def test_native_rows_are_not_tracked_by_the_cyclic_garbage_collector() -> None:
    # Decoded values are immutable trees, never cycles: a collection need not rescan
    # the rows a cache holds (reference counting still frees them).
    rows = [agent(id=i, name=f"a{i}", state=b"x" * i) for i in range(300)]
    data, offsets = pack([AGENT.encode_row(r) for r in rows])
    for decoded in (
        codec.decode_rows(AGENT, data, offsets),  # a batch big enough to pause the GC
        codec.decode_row_list(AGENT, [AGENT.encode_row(r) for r in rows[:3]]),
    ):
        assert decoded[: len(decoded)] == rows[: len(decoded)]
        row = decoded[0]
        assert not gc.is_tracked(row)
        assert not gc.is_tracked(row.owner) and not gc.is_tracked(row.created_at)


@pytest.mark.skipif(codec.IMPLEMENTATION != "native", reason="the native codec's behaviour")
def test_native_rows_share_equal_identities_and_timestamps_in_a_batch() -> None:
    # A row created and never changed has equal created_at and updated_at; rows of one
    # owner repeat its Identity. Immutable and equal, they are one object (memory).
    later = Timestamp(T0.micros_since_epoch + 1)
    rows = [agent(id=1), agent(id=2, updated_at=later)]
    data, offsets = pack([AGENT.encode_row(r) for r in rows])
    first, second = codec.decode_rows(AGENT, data, offsets)
    assert [first, second] == rows
    assert first.created_at is first.updated_at and second.updated_at == later
    assert first.owner is second.owner == OWNER


@dataclass(frozen=True)
class FixedSize:  # the shape of messages.FixedSize / messages.RowOffsets
    size: int


@dataclass(frozen=True)
class RowOffsets:
    offsets: tuple[int, ...]


def test_size_hint_objects_are_accepted() -> None:
    rows = [agent(id=1), agent(id=2, name="b")]
    data, offsets = pack([AGENT.encode_row(r) for r in rows])
    assert codec.decode_rows(AGENT, data, RowOffsets(tuple(offsets))) == rows
    assert codec.decode_rows(SESSION, b"", FixedSize(56)) == []
    with pytest.raises(TypeError, match="size_hint"):
        codec.decode_rows(AGENT, data, None)


def test_fixed_size_hint_on_a_table_without_a_struct_layout() -> None:
    # A sum whose payloads share one size is fixed-size but not struct-decodable.
    schema = ModuleSchema.from_json(
        {
            "typespace": {
                "types": [
                    {
                        "Product": {
                            "elements": [
                                {"name": {"some": "id"}, "algebraic_type": {"U32": []}},
                                {
                                    "name": {"some": "v"},
                                    "algebraic_type": {
                                        "Sum": {
                                            "variants": [
                                                {
                                                    "name": {"some": "A"},
                                                    "algebraic_type": {"U16": []},
                                                },
                                                {
                                                    "name": {"some": "B"},
                                                    "algebraic_type": {"I16": []},
                                                },
                                            ]
                                        }
                                    },
                                },
                            ]
                        }
                    }
                ]
            },
            "tables": [{"name": "t", "product_type_ref": 0, "primary_key": [0]}],
            "reducers": [],
            "types": [{"name": {"scope": [], "name": "T"}, "ty": 0, "custom_ordering": True}],
        }
    )
    table = schema.table("t")
    assert table.static_row_size == 7 and table.fixed_layout is None
    data = bytes.fromhex("01000000" + "00" + "0500") + bytes.fromhex("02000000" + "01" + "ffff")
    rows = codec.decode_rows(table, data, 7)
    assert [(r.id, r.v.name, r.v.value) for r in rows] == [(1, "A", 5), (2, "B", -1)]
    with pytest.raises(DecodeError, match="invalid sum tag 2"):
        codec.decode_rows(table, data[:4] + b"\x02" + data[5:], 7)


@pytest.mark.parametrize(
    ("table", "hint", "cut", "message"),
    [
        (SESSION, 56, 1, "not a multiple of the row size 56"),
        (SESSION, 28, 0, "the server's row size 28 differs from the schema's 56"),
        (SESSION, 0, 0, "row size hint 0 with 112 bytes"),
        (AGENT, [0], 0, "1 unexpected trailing byte"),
        (AGENT, [4, 0], 0, "row 0 should start at byte 4"),
        (AGENT, [0, 50, 60], 0, "row 1 should start at byte 50"),
        (AGENT, [0, 0], 0, "should start at byte 0"),
        (AGENT, [0, 1000], 0, "row 1 should start at byte 1000"),
        (AGENT, [], 0, "unexpected trailing byte"),
    ],
)
def test_malformed_row_lists(table: Any, hint: Any, cut: int, message: str) -> None:
    if table is SESSION:
        data = SESSION.encode_row(SESSION.row_class(ConnectionId(1), OWNER, T0)) * 2
        data = data[: len(data) - cut]
    else:
        row = AGENT.encode_row(agent())
        data = row + (row if len(hint) > 1 else b"\x00")
    with pytest.raises(DecodeError, match=f"table '{table.name}': .*{message}"):
        codec.decode_rows(table, data, hint)


def test_truncated_last_row() -> None:
    row = AGENT.encode_row(agent())
    with pytest.raises(DecodeError, match="table 'agent': truncated"):
        codec.decode_rows(AGENT, row + row[:-1], [0, len(row)])


FLAG = ModuleSchema.from_json(
    {
        "typespace": {
            "types": [
                {
                    "Product": {
                        "elements": [
                            {"name": {"some": "id"}, "algebraic_type": {"U32": []}},
                            {"name": {"some": "ok"}, "algebraic_type": {"Bool": []}},
                        ]
                    }
                }
            ]
        },
        "tables": [{"name": "flag", "product_type_ref": 0, "primary_key": [0]}],
    }
).table("flag")
"""A fixed-size table with a bool column: its rows take the struct fast path."""


def test_invalid_bool_in_fixed_size_rows() -> None:
    table = FLAG
    assert table.fixed_layout is not None and table.static_row_size == 5
    rows = codec.decode_rows(table, bytes.fromhex("01000000010200000000"), 5)
    assert [(r.id, r.ok) for r in rows] == [(1, True), (2, False)]
    with pytest.raises(DecodeError, match="table 'flag': invalid bool byte 2") as raised:
        codec.decode_rows(table, bytes.fromhex("01000000010200000002"), 5)
    assert raised.value.offset == 9  # the bool of the second row


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_row_lists_round_trip(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(SCHEMA.tables)))
    table = SCHEMA.table(name)
    rows = data.draw(
        st.lists(values_for(RefType(table.product_type_ref), SCHEMA.typespace), max_size=6)
    )
    encoded = [table.encode_row(r) for r in rows]
    blob, offsets = pack(encoded)
    assert same(tuple(codec.decode_rows(table, blob, offsets)), tuple(rows))
    if table.static_row_size is not None:
        assert same(tuple(codec.decode_rows(table, blob, table.static_row_size)), tuple(rows))


# ------------------------------------------------------------------ pass-throughs


def test_row_and_argument_functions() -> None:
    row = agent()
    data = codec.encode_row(AGENT, row)
    assert codec.decode_row(AGENT, data) == row
    register = SCHEMA.reducer("register_agent")
    args = codec.encode_args(register, "n", role="r", state=b"")
    assert codec.decode_args(register, args) == {"name": "n", "role": "r", "state": b""}
    with pytest.raises(ArgumentError, match="missing"):
        codec.encode_args(register, "n")


def test_garbage_collector_state_is_restored() -> None:
    import gc

    row = AGENT.encode_row(agent())
    assert gc.isenabled()
    codec.decode_rows(AGENT, row, [0])
    assert gc.isenabled()
    with pytest.raises(DecodeError):
        codec.decode_rows(AGENT, row[:-1], [0])
    assert gc.isenabled()
    gc.disable()
    try:
        codec.decode_rows(AGENT, row, [0])
        assert not gc.isenabled()  # the application's choice is kept
    finally:
        gc.enable()
