"""StateProjector unit tests: synthetic TransactionDiffs, no server."""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pytest
from pyrsistent import PMap, pmap, pvector

from inner_universe.nerv.projector import (
    Delta,
    GroupBy,
    SortedGroups,
    StateProjector,
    VersionUnavailableError,
)
from inner_universe.spacetime.cache import TableDiff, TransactionDiff


@dataclass(frozen=True)
class Agent:
    id: int
    name: str
    status: str


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    sequence: int
    content: str


KEYS = {"agent": "id", "message": "id", "tag": None}


def tx(*tables: TableDiff) -> TransactionDiff:
    return TransactionDiff({t.table: t for t in tables})


def ins(table: str, *rows: Any) -> TableDiff:
    return TableDiff(table, inserts=rows)


def test_each_transaction_makes_a_version_with_its_delta() -> None:
    p = StateProjector(KEYS)
    assert p.version == 0 and p.state == pmap()
    a, b = Agent(1, "a", "idle"), Agent(2, "b", "idle")
    v1 = p.apply(tx(ins("agent", a, b)), sequence=11, event="e1")
    assert (v1.number, v1.delta.sequence, v1.delta.event) == (1, 11, "e1")
    assert v1.table("agent") == pmap({1: a, 2: b})
    assert v1.delta.inserted("agent") == [a, b]

    busy = replace(a, status="busy")
    v2 = p.apply(tx(TableDiff("agent", deletes=(b,), updates=((a, busy),))), sequence=12)
    assert v2.table("agent") == pmap({1: busy})
    assert v2.delta.updated("agent") == [(a, busy)]
    assert v2.delta.deleted("agent") == [b]
    assert [c.kind for c in v2.delta.changes("agent")] == ["delete", "update"]
    assert [c.key for c in v2.delta.changes("agent")] == [2, 1]
    assert len(v2.delta) == 2

    v3 = p.apply(TransactionDiff())  # a transaction that touched nothing we hold
    assert v3.number == 3 and v3.state is v2.state and len(v3.delta) == 0


def test_old_versions_are_unchanged_and_share_untouched_tables() -> None:
    p = StateProjector(KEYS)
    v1 = p.apply(tx(ins("agent", Agent(1, "a", "x")), ins("message", Message(1, 1, 1, "hi"))))
    v2 = p.apply(tx(ins("agent", Agent(2, "b", "x"))))
    assert p.at(1) is v1 and set(v1.table("agent")) == {1}
    assert set(v2.table("agent")) == {1, 2}
    assert v2.table("message") is v1.table("message")  # structural sharing
    assert p.table("agent", 1) == v1.table("agent")
    assert p.at(1).get("agent", 2) is None and p.current.get("agent", 2) == Agent(2, "b", "x")


def test_tables_without_a_primary_key_are_keyed_by_row() -> None:
    p = StateProjector(KEYS)
    p.apply(tx(ins("tag", ("x", 1), ("y", 2))))
    p.apply(tx(TableDiff("tag", deletes=(("x", 1),))))
    assert dict(p.table("tag")) == {("y", 2): ("y", 2)}


def test_initial_rows_make_version_zero() -> None:
    p = StateProjector(KEYS, initial={"agent": [Agent(5, "e", "x")]}, sequence=3)
    assert p.version == 0 and p.current.delta.sequence == 3
    assert dict(p.table("agent")) == {5: Agent(5, "e", "x")}


def test_time_travel_window_is_bounded() -> None:
    p = StateProjector(KEYS, window=3)
    for i in range(1, 6):
        p.apply(tx(ins("agent", Agent(i, str(i), "x"))))
    assert [v.number for v in p.versions()] == [3, 4, 5] and p.oldest() == 3
    assert len(p.at(3).table("agent")) == 3
    with pytest.raises(VersionUnavailableError, match=r"3\.\.5"):
        p.at(2)
    with pytest.raises(LookupError):
        p.at(6)
    assert [d.version for d in p.deltas_since(3)] == [4, 5]
    assert [d.version for d in p.deltas_since(2)] == [3, 4, 5]
    assert p.deltas_since(5) == []
    with pytest.raises(VersionUnavailableError):
        p.deltas_since(1)
    with pytest.raises(ValueError):
        StateProjector(KEYS, window=0)


def test_deltas_replayed_on_an_old_version_give_the_current_state() -> None:
    p = StateProjector(KEYS, window=50)
    rng = random.Random(1)
    live: dict[int, Agent] = {}
    for step in range(40):
        stream_step(rng, live, p, step)
    base = p.at(20)
    rows = dict(base.table("agent"))
    for delta in p.deltas_since(20):
        for change in delta.changes("agent"):
            if change.new is None:
                del rows[change.key]
            else:
                rows[change.key] = change.new
    assert rows == dict(p.table("agent")) == live


def stream_step(rng: random.Random, live: dict[int, Agent], p: StateProjector, step: int) -> None:
    """One random transaction on the agent table, mirrored in ``live``."""
    inserts: list[Agent] = []
    deletes: list[Agent] = []
    updates: list[tuple[Agent, Agent]] = []
    for _ in range(rng.randint(1, 4)):
        pick = rng.random()
        touched = {a.id for a in inserts} | {a.id for a in deletes} | {o.id for o, _ in updates}
        free = [k for k in live if k not in touched]
        if pick < 0.4 or not free:
            agent = Agent(1000 * step + len(inserts), "n", rng.choice("abc"))
            inserts.append(agent)
        elif pick < 0.8:
            old = live[rng.choice(free)]
            updates.append((old, replace(old, status=rng.choice("abc"))))
        else:
            deletes.append(live[rng.choice(free)])
    for a in deletes:
        del live[a.id]
    for _, new in updates:
        live[new.id] = new
    for a in inserts:
        live[a.id] = a
    p.apply(tx(TableDiff("agent", tuple(inserts), tuple(deletes), tuple(updates))))


def rescan_groups(rows: Mapping[Any, Agent]) -> dict[str, dict[Hashable, Agent]]:
    out: dict[str, dict[Hashable, Agent]] = {}
    for key, row in rows.items():
        out.setdefault(row.status, {})[key] = row
    return out


def test_group_by_follows_deltas_like_a_rescan() -> None:
    p = StateProjector(KEYS, window=10)
    rng = random.Random(7)
    live: dict[int, Agent] = {}
    for step in range(5):
        stream_step(rng, live, p, step)
    initial = p.register("by_status", GroupBy("agent", "status"))
    assert {k: dict(v) for k, v in initial.items()} == rescan_groups(live)
    for step in range(5, 300):
        stream_step(rng, live, p, step)
        value: PMap[str, PMap[Hashable, Agent]] = p.projection("by_status")
        assert {k: dict(v) for k, v in value.items()} == rescan_groups(live)
    earlier = p.projection("by_status", p.version - 3)
    rows_then = dict(p.at(p.version - 3).table("agent"))
    assert {k: dict(v) for k, v in earlier.items()} == rescan_groups(rows_then)


def messages_in_order(rows: Any) -> dict[int, list[Message]]:
    out: dict[int, list[Message]] = {}
    for row in sorted(rows, key=lambda m: (m.sequence, m.id)):
        out.setdefault(row.conversation_id, []).append(row)
    return out


def test_sorted_groups_follow_inserts_edits_moves_and_deletes() -> None:
    p = StateProjector(KEYS)
    p.register("conv", SortedGroups("message", "conversation_id", "sequence", key="id"))
    rng = random.Random(3)
    live: dict[int, Message] = {}
    next_id = 1
    for _ in range(400):
        pick = rng.random()
        if pick < 0.5 or not live:
            conv = rng.randint(1, 4)
            seq = max((m.sequence for m in live.values() if m.conversation_id == conv), default=0)
            seq = seq + 1 if rng.random() < 0.8 else rng.randint(0, seq + 1)  # mostly in order
            row = Message(next_id, conv, seq, "")
            next_id += 1
            live[row.id] = row
            p.apply(tx(ins("message", row)))
        elif pick < 0.8:
            old = live[rng.choice(list(live))]
            new = replace(old, content=old.content + "x")  # streaming: same place
            if rng.random() < 0.2:
                new = replace(new, conversation_id=rng.randint(1, 4), sequence=rng.randint(0, 9))
            live[old.id] = new
            p.apply(tx(TableDiff("message", updates=((old, new),))))
        else:
            old = live.pop(rng.choice(list(live)))
            p.apply(tx(TableDiff("message", deletes=(old,))))
        value = p.projection("conv")
        assert {k: list(v) for k, v in value.items()} == messages_in_order(live.values())


def test_sorted_groups_initial_from_a_snapshot() -> None:
    rows = [Message(3, 1, 2, "b"), Message(1, 1, 1, "a"), Message(2, 2, 1, "c")]
    p = StateProjector(KEYS, initial={"message": rows})
    value = p.register("conv", SortedGroups("message", "conversation_id", "sequence"))
    assert value == pmap({1: pvector([rows[1], rows[0]]), 2: pvector([rows[2]])})


class Exploding:
    """A projection whose apply fails once: the projector rebuilds it from the snapshot."""

    def __init__(self) -> None:
        self.failed = False

    def initial(self, state: PMap[str, Any]) -> int:
        return len(state.get("agent", {}))

    def apply(self, value: int, delta: Delta) -> int:
        if not self.failed:
            self.failed = True
            raise RuntimeError("bug")
        return value + len(delta.inserted("agent"))


def test_a_failing_projection_is_rebuilt_and_the_state_still_advances(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = StateProjector(KEYS)
    p.register("count", Exploding())
    p.apply(tx(ins("agent", Agent(1, "a", "x"))))
    assert p.version == 1 and p.projection("count") == 1 and "rebuilding" in caplog.text
    p.apply(tx(ins("agent", Agent(2, "b", "x"))))
    assert p.projection("count") == 2
    p.unregister("count")
    p.apply(tx(ins("agent", Agent(3, "c", "x"))))
    with pytest.raises(KeyError, match="no projection 'count'"):
        p.projection("count")
    assert p.projection("count", 2) == 2


def synthetic_stream(changes: int, keys: int = 500, per_tx: int = 5) -> Any:
    """Yield transactions totalling ``changes`` row changes over a bounded key space."""
    live: dict[int, Message] = {}
    rng = random.Random(42)
    made = 0
    seq = 0
    while made < changes:
        inserts: list[Message] = []
        deletes: list[Message] = []
        updates: list[tuple[Message, Message]] = []
        touched: set[int] = set()
        for _ in range(per_tx):
            key = rng.randrange(keys)
            if key in touched:
                continue
            touched.add(key)
            old = live.get(key)
            if old is None:
                seq += 1
                live[key] = new = Message(key, key % 20, seq, "")
                inserts.append(new)
            elif rng.random() < 0.2:
                deletes.append(live.pop(key))
            else:
                live[key] = new = replace(old, content=str(rng.random()))
                updates.append((old, new))
            made += 1
        yield tx(TableDiff("message", tuple(inserts), tuple(deletes), tuple(updates)))


def test_memory_stays_bounded_by_the_window_over_100k_row_changes() -> None:
    window = 200
    stream = list(synthetic_stream(100_000, per_tx=10))  # made before tracing: not counted
    changes = sum(len(d.tables["message"].inserts) for d in stream)
    changes += sum(
        len(d.tables["message"].updates) + len(d.tables["message"].deletes) for d in stream
    )
    assert changes >= 100_000
    p = StateProjector(KEYS, window=window)
    p.register("conv", SortedGroups("message", "conversation_id", "sequence", key="id"))
    gc.collect()
    tracemalloc.start()
    try:
        samples: list[int] = []
        for diff in stream:
            p.apply(diff)
            if p.version % 1000 == 0:
                samples.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert len(p.versions()) == window and p.version == len(stream)
    settled = samples[1:]  # the first sample may still be filling the table and the window
    assert max(settled) < 1.25 * min(settled), samples
    # What is kept is the window's worth (a few MB), not the ~10k versions applied.
    assert max(settled) < 16 * 1024 * 1024, samples
