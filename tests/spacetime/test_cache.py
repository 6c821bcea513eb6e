"""The client cache: multiplicity, updates by primary key, indexes, and per-transaction diffs.

Rows are encoded with the real module schema captured from the server.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inner_universe.errors import DecodeError, SchemaError
from inner_universe.spacetime import codec
from inner_universe.spacetime.cache import ClientCache, TableCache
from inner_universe.spacetime.schema import ModuleSchema
from inner_universe.spacetime.types import Identity, Timestamp

# The handwritten schema: its agent table has a unique name column (the real
# module's names are unique per owner only), which the unique-index tests need.
SCHEMA = ModuleSchema.from_json(
    json.loads((Path(__file__).parents[1] / "data" / "schema_handwritten_v9.json").read_text())
)
ALICE, BOB = Identity(1), Identity(2)


def agent(
    id: int, name: str, status: str = "idle", version: int = 1, owner: Identity = ALICE
) -> Any:
    table = SCHEMA.table("agent")
    return table.row_class(
        id=id,
        owner=owner,
        name=name,
        role="r",
        status=status,
        state=b"",
        version=version,
        created_at=Timestamp(0),
        updated_at=Timestamp(version),
    )


def enc(row: Any) -> bytes:
    return codec.encode_row(SCHEMA.table("agent"), row)


def test_insert_update_delete_diffs() -> None:
    cache = ClientCache(SCHEMA)
    a1, b1 = agent(1, "a"), agent(2, "b")
    diff = cache.apply({"agent": ([], [enc(a1), enc(b1)])})
    assert set(diff["agent"].inserts) == {a1, b1}
    assert cache.table("agent").find("id", 1) == a1

    a2 = agent(1, "a", "busy", 2)
    diff = cache.apply({"agent": ([enc(a1)], [enc(a2)])})
    assert diff["agent"].updates == ((a1, a2),)
    assert diff["agent"].inserts == () and diff["agent"].deletes == ()
    assert cache.table("agent").find("name", "a") == a2

    diff = cache.apply({"agent": ([enc(b1)], [])})
    assert diff["agent"].deletes == (b1,)
    assert cache.table("agent").count() == 1
    assert cache.table("agent").find("id", 2) is None
    assert diff["conversation"].is_empty()


def test_overlapping_queries_keep_a_row_until_the_last_holder_goes() -> None:
    cache = ClientCache(SCHEMA)
    row = enc(agent(1, "a"))
    assert not cache.apply({"agent": ([], [row])}).is_empty()
    assert cache.apply({"agent": ([], [row])}).is_empty()  # second query: no new row
    assert cache.table("agent").multiplicity(row) == 2
    assert cache.apply({"agent": ([row], [])}).is_empty()  # one holder left
    assert cache.table("agent").count() == 1
    diff = cache.apply({"agent": ([row], [])})
    assert len(diff["agent"].deletes) == 1 and cache.table("agent").count() == 0


def test_delete_and_reinsert_of_the_same_row_in_one_transaction_does_not_flicker() -> None:
    cache = ClientCache(SCHEMA)
    row = enc(agent(1, "a"))
    cache.apply({"agent": ([], [row])})
    assert cache.apply({"agent": ([row], [row])}).is_empty()
    assert cache.table("agent").count() == 1


def test_a_unique_value_moves_between_rows_in_one_transaction() -> None:
    cache = ClientCache(SCHEMA)
    old = agent(1, "shared-name")
    cache.apply({"agent": ([], [enc(old)])})
    renamed, taker = agent(1, "other", version=2), agent(2, "shared-name")
    diff = cache.apply({"agent": ([enc(old)], [enc(renamed), enc(taker)])})
    assert diff["agent"].updates == ((old, renamed),)
    assert diff["agent"].inserts == (taker,)
    assert cache.table("agent").find("name", "shared-name") == taker


def test_excess_deletes_are_ignored_not_negative() -> None:
    cache = ClientCache(SCHEMA)
    row = enc(agent(1, "a"))
    assert cache.apply({"agent": ([row], [])}).is_empty()
    assert cache.table("agent").multiplicity(row) == 0
    cache.apply({"agent": ([], [row])})
    assert cache.table("agent").count() == 1


def test_filter_uses_indexes_and_falls_back_to_a_scan() -> None:
    cache = ClientCache(SCHEMA)
    rows = [agent(i, f"n{i}", owner=ALICE if i % 2 else BOB) for i in range(1, 7)]
    cache.apply({"agent": ([], [enc(r) for r in rows])})
    table = cache.table("agent")
    assert sorted(r.id for r in table.filter("owner", ALICE)) == [1, 3, 5]  # btree index
    assert [r.id for r in table.filter("status", "idle")] != []  # no index: scan
    assert table.filter("name", "n4") == [rows[3]]  # unique column
    with pytest.raises(SchemaError):
        table.filter("no_such_column", 1)
    with pytest.raises(SchemaError):
        table.find("owner", ALICE)  # not unique
    with pytest.raises(SchemaError):
        cache.table("no_such_table")


def test_a_first_batch_holding_a_row_twice_counts_both_holders() -> None:
    """An empty table filled in one go (the fast path) keeps multiplicities exact."""
    cache = ClientCache(SCHEMA)
    a, b = enc(agent(1, "a")), enc(agent(2, "b"))
    diff = cache.apply({"agent": ([], [a, b, a])})
    assert sorted(row.id for row in diff["agent"].inserts) == [1, 2]
    table = cache.table("agent")
    assert (table.multiplicity(a), table.multiplicity(b)) == (2, 1)
    assert cache.apply({"agent": ([a], [])}).is_empty()  # one holder left
    assert [row.id for row in cache.apply({"agent": ([a, b], [])})["agent"].deletes] == [1, 2]
    assert table.count() == 0 and table.multiplicity(a) == 0


def test_new_rows_only_into_a_held_table_keep_every_multiplicity() -> None:
    """Inserts of rows not held yet skip the netting (the fast path) and keep counts exact."""
    cache = ClientCache(SCHEMA)
    table = cache.table("agent")
    a, b, c = enc(agent(1, "a")), enc(agent(2, "b")), enc(agent(3, "c"))
    cache.apply({"agent": ([], [a, a])})
    diff = cache.apply({"agent": ([], [b, c, b])})  # b held by two queries at once
    assert [row.id for row in diff["agent"].inserts] == [2, 3]
    assert [table.multiplicity(k) for k in (a, b, c)] == [2, 2, 1]
    assert cache.table("agent").find("id", 3) == agent(3, "c")
    assert cache.apply({"agent": ([], [c])}).is_empty()  # held already: the general path
    assert [table.multiplicity(k) for k in (a, b, c)] == [2, 2, 2]


def test_an_index_built_by_the_first_filter_follows_later_changes() -> None:
    cache = ClientCache(SCHEMA)
    table = cache.table("agent")
    rows = [agent(i, f"n{i}", owner=ALICE if i % 2 else BOB) for i in range(1, 7)]
    cache.apply({"agent": ([], [enc(r) for r in rows])})
    assert sorted(r.id for r in table.filter("owner", BOB)) == [2, 4, 6]  # builds the index
    moved = agent(2, "n2", version=2, owner=ALICE)
    cache.apply({"agent": ([enc(rows[1]), enc(rows[3])], [enc(moved), enc(agent(7, "n7"))])})
    assert sorted(r.id for r in table.filter("owner", BOB)) == [6]
    assert sorted(r.id for r in table.filter("owner", ALICE)) == [1, 2, 3, 5, 7]
    assert table.filter("owner", Identity(99)) == []


def test_a_unique_index_built_by_the_first_find_follows_later_changes() -> None:
    cache = ClientCache(SCHEMA)
    table = cache.table("agent")
    old, other = agent(1, "shared-name"), agent(2, "b")
    cache.apply({"agent": ([], [enc(old), enc(other)])})
    assert table.find("name", "shared-name") == old  # builds the name index
    assert table.find("id", 2) == other  # and the primary key's
    renamed, taker = agent(1, "other", version=2), agent(3, "shared-name")
    cache.apply({"agent": ([enc(old), enc(other)], [enc(renamed), enc(taker)])})
    assert table.find("name", "shared-name") == taker
    assert table.find("name", "other") == renamed
    assert table.find("name", "b") is None and table.find("id", 2) is None
    assert table.find("id", 3) == taker


def test_replace_with_reports_only_what_changed_while_away() -> None:
    """After a reconnect the cache is rebuilt from fresh rows: only the difference fires."""
    cache = ClientCache(SCHEMA)
    kept, renamed, gone = agent(1, "kept"), agent(2, "old"), agent(3, "gone")
    cache.apply({"agent": ([], [enc(kept), enc(renamed), enc(gone)])})
    kept_object = cache.table("agent").find("id", 1)

    fresh = ClientCache(SCHEMA)
    new_name, added = agent(2, "new", version=2), agent(4, "added")
    fresh.apply({"agent": ([], [enc(kept), enc(new_name), enc(added)])})
    diff = cache.replace_with(fresh)

    assert diff["agent"].updates == ((renamed, new_name),)
    assert diff["agent"].inserts == (added,) and diff["agent"].deletes == (gone,)
    assert sorted(r.name for r in cache.table("agent").iter()) == ["added", "kept", "new"]
    assert cache.table("agent").find("id", 1) is kept_object  # unchanged rows keep their object
    assert cache.table("agent").multiplicity(enc(kept)) == 1
    assert cache.replace_with(fresh).is_empty()


def test_reads_from_another_thread_never_see_a_dictionary_change() -> None:
    """A reader thread iterates and looks up while transactions apply (issue: KeyError races)."""
    cache = ClientCache(SCHEMA)
    table = cache.table("agent")
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                rows = list(table.iter())
                for row in rows[:5]:
                    table.find("id", row.id)
                table.filter("owner", ALICE)
                reads += 1
            except BaseException as exc:  # anything at all is a failure here
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(3000):
            old, new = agent(i, f"a{i}"), agent(i, f"a{i}", "busy", 2)
            cache.apply({"agent": ([], [enc(old)])})
            cache.apply({"agent": ([enc(old)], [enc(new)])})
            if i >= 50:
                cache.apply({"agent": ([enc(agent(i - 50, f"a{i - 50}", "busy", 2))], [])})
    finally:
        stop.set()
        thread.join()
    assert errors == [] and reads > 0
    assert table.count() == 50


# ------------------------------------------------ the short paths against the general one

# Rows of one table sharing primary keys (updates), unique names and owners in every mix.
POOL = [
    agent(1, "a"),
    agent(1, "a", "busy", 2),
    agent(1, "b", "busy", 3),
    agent(2, "b"),
    agent(2, "a", owner=BOB),
    agent(3, "c", owner=BOB),
]


def state(table: TableCache, indexed: bool) -> tuple[Any, ...]:
    """Everything a reader can see of ``table`` (``indexed``: through its indexes too)."""
    rows = sorted((r.id, r.name, r.version, r.owner.to_bytes()) for r in table.iter())
    counts = [table.multiplicity(enc(row)) for row in POOL]
    if not indexed:
        return rows, counts
    found = [table.find("id", i) for i in (1, 2, 3)] + [table.find("name", n) for n in "abc"]
    owners = [sorted(r.id for r in table.filter("owner", o)) for o in (ALICE, BOB)]
    return rows, counts, found, owners


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(0, len(POOL) - 1), max_size=3),
            st.lists(st.integers(0, len(POOL) - 1), max_size=3),
            st.booleans(),
        ),
        max_size=10,
    )
)
def test_every_transaction_matches_the_general_netting(
    transactions: list[tuple[list[int], list[int], bool]],
) -> None:
    """Whatever path a transaction takes, diffs, counts and indexes are the netting's."""
    fast = ClientCache(SCHEMA).table("agent")
    general = ClientCache(SCHEMA).table("agent")
    indexed = False
    for delete_ids, insert_ids, look in transactions:
        deletes = [enc(POOL[i]) for i in delete_ids]
        inserts = [enc(POOL[i]) for i in insert_ids]
        assert fast.apply(deletes, inserts) == general._diff(*general._net(deletes, inserts))
        indexed = indexed or look  # the first look builds the indexes, later steps keep them
        assert state(fast, indexed) == state(general, indexed)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(0, len(POOL) - 1), max_size=3),
            st.lists(st.integers(0, len(POOL) - 1), max_size=3),
        ),
        max_size=10,
    )
)
def test_applying_unseen_changes_the_cache_as_applying_does(
    transactions: list[tuple[list[int], list[int]]],
) -> None:
    """A transaction no callback sees (no diff made) leaves the same rows, counts, indexes."""
    seen, unseen = ClientCache(SCHEMA), ClientCache(SCHEMA)
    for table in (seen.table("agent"), unseen.table("agent")):
        state(table, indexed=True)  # build every index, so that both keep them up
    for delete_ids, insert_ids in transactions:
        changes = {
            "agent": ([enc(POOL[i]) for i in delete_ids], [enc(POOL[i]) for i in insert_ids])
        }
        seen.apply(changes)
        assert unseen.apply_unseen(changes) is None
        assert state(unseen.table("agent"), True) == state(seen.table("agent"), True)


def test_applying_unseen_rows_of_an_unknown_table_raises_as_applying_does() -> None:
    cache = ClientCache(SCHEMA)
    with pytest.raises(SchemaError, match="no table named 'nope'"):
        cache.apply_unseen({"nope": ([], [b"x"])})


def test_the_commonest_shapes_take_a_short_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """New rows into a held table, and one row replaced by another, skip the netting."""
    cache = ClientCache(SCHEMA)
    table = cache.table("agent")
    a1, b1 = agent(1, "a"), agent(2, "b")
    cache.apply({"agent": ([], [enc(a1)])})
    assert table.find("name", "a") == a1  # builds the name index, kept up from here

    def no_netting(*args: Any) -> None:
        raise AssertionError("the general path ran")

    monkeypatch.setattr(TableCache, "_net", no_netting)
    assert cache.apply({"agent": ([], [enc(b1)])})["agent"].inserts == (b1,)
    a2 = agent(1, "renamed", "busy", 2)
    diff = cache.apply({"agent": ([enc(a1)], [enc(a2)])})["agent"]
    assert (diff.updates, diff.inserts, diff.deletes) == (((a1, a2),), (), ())
    assert table.find("name", "a") is None and table.find("name", "renamed") == a2
    # a delete and an insert of different primary keys stay a delete and an insert
    c3 = agent(3, "b-renamed")
    diff = cache.apply({"agent": ([enc(b1)], [enc(c3)])})["agent"]
    assert (diff.updates, diff.inserts, diff.deletes) == ((), (c3,), (b1,))
    assert table.find("name", "b") is None and table.find("id", 3) == c3
    assert [table.multiplicity(enc(r)) for r in (a1, a2, b1, c3)] == [0, 1, 0, 1]


def test_a_replaced_row_held_by_two_queries_stays() -> None:
    """One of two holders deleting a row while another row comes is no update."""
    cache = ClientCache(SCHEMA)
    table = cache.table("agent")
    a1, a2 = agent(1, "a"), agent(1, "a", "busy", 2)
    cache.apply({"agent": ([], [enc(a1), enc(a1)])})
    diff = cache.apply({"agent": ([enc(a1)], [enc(a2)])})["agent"]
    assert (diff.updates, diff.inserts, diff.deletes) == ((), (a2,), ())
    assert (table.multiplicity(enc(a1)), table.multiplicity(enc(a2))) == (1, 1)


@pytest.mark.parametrize("shape", ["inserts", "update"])
def test_a_malformed_row_leaves_the_table_unchanged(shape: str) -> None:
    cache = ClientCache(SCHEMA)
    table = cache.table("agent")
    a1 = agent(1, "a")
    cache.apply({"agent": ([], [enc(a1)])})
    assert table.find("name", "a") == a1
    bad = enc(agent(2, "b"))[:-3]
    deletes = [enc(a1)] if shape == "update" else []
    with pytest.raises(DecodeError, match="table 'agent': row 0"):
        cache.apply({"agent": (deletes, [bad])})
    assert list(table.iter()) == [a1] and table.multiplicity(enc(a1)) == 1
    assert table.find("name", "a") == a1 and table.find("id", 1) == a1
    assert table.multiplicity(bad) == 0
