"""The synchronizer's pure parts, without a server: three-way merge, policies,
matching offline drafts, and the local file format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from inner_universe.nerv.sync import (
    Conflict,
    DiffSynchronizer,
    LocalCopy,
    LocalFormatError,
    SyncReport,
    changes,
    match_drafts,
    three_way,
)
from inner_universe.nerv.sync.merge import resolve
from inner_universe.nerv.sync.models import Dataset, Row, empty_dataset

ME = "aa" * 32
OTHER = "bb" * 32


@pytest.fixture(autouse=True, scope="module")
def quiet_diffsync() -> Iterator[None]:
    """diffsync logs every diff at info level through structlog."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    yield
    structlog.reset_defaults()


def agent(key: str, name: str, role: str = "r", status: str = "idle", at: int = 0) -> Row:
    row_id = int(key) if key.isdigit() else None
    return {"key": key, "id": row_id, "owner": ME, "name": name, "role": role,
            "status": status, "state": b"", "version": 1, "updated_at": at}  # fmt: skip


def data(*rows: tuple[str, Row]) -> Dataset:
    out = empty_dataset()
    for table, row in rows:
        out[table][row["key"]] = row
    return out


BASE = data(("agent", agent("1", "alpha")), ("agent", agent("2", "beta")))


# --- three-way merge ---------------------------------------------------------------------


def test_one_sided_changes_are_taken_without_conflict() -> None:
    local = data(("agent", agent("1", "alpha", role="lead")), ("agent", agent("2", "beta")),
                 ("agent", agent("new:c", "gamma")))  # fmt: skip
    remote = data(("agent", agent("1", "alpha")))  # beta deleted remotely
    plan = three_way(BASE, local, remote, "remote")
    assert plan.conflicts == []
    assert set(plan.merged["agent"]) == {"1", "new:c"}
    assert plan.merged["agent"]["1"]["role"] == "lead"
    assert {(c.action, c.key) for c in plan.local_changes} == {("update", "1"), ("create", "new:c")}
    assert [(c.action, c.key) for c in plan.remote_changes] == [("delete", "2")]


def test_the_same_change_on_both_sides_converges() -> None:
    both = data(("agent", agent("1", "alpha", role="same", at=5)))  # beta deleted on both
    remote = data(("agent", agent("1", "alpha", role="same", at=9)))
    plan = three_way(BASE, both, remote, "local")
    assert plan.conflicts == []
    assert plan.merged["agent"] == {"1": remote["agent"]["1"]}  # remote's metadata kept


@pytest.mark.parametrize(
    ("policy", "local_at", "remote_at", "winner"),
    [
        ("remote", 9, 1, "remote"),
        ("local", 1, 9, "local"),
        ("newest", 9, 1, "local"),
        ("newest", 1, 9, "remote"),
        ("newest", 5, 5, "remote"),  # a tie goes to the server
    ],
)
def test_update_update_conflicts_follow_the_policy(
    policy: str, local_at: int, remote_at: int, winner: str
) -> None:
    local = data(
        ("agent", agent("1", "alpha", role="L", at=local_at)), ("agent", agent("2", "beta"))
    )
    remote = data(("agent", agent("1", "alpha", role="R", at=remote_at)),
                  ("agent", agent("2", "beta")))  # fmt: skip
    plan = three_way(BASE, local, remote, policy)  # type: ignore[arg-type]
    [conflict] = plan.conflicts
    assert (conflict.key, conflict.resolution) == ("1", winner)
    assert conflict.base == BASE["agent"]["1"]
    assert plan.merged["agent"]["1"]["role"] == ("L" if winner == "local" else "R")
    assert "role: local 'L' / remote 'R'" in str(conflict)


@pytest.mark.parametrize("deleted_on", ["local", "remote"])
def test_newest_keeps_an_edit_over_a_deletion(deleted_on: str) -> None:
    edited = data(("agent", agent("1", "alpha", role="edited")), ("agent", agent("2", "beta")))
    deleted = data(("agent", agent("2", "beta")))
    local, remote = (deleted, edited) if deleted_on == "local" else (edited, deleted)
    plan = three_way(BASE, local, remote, "newest")
    [conflict] = plan.conflicts
    assert conflict.resolution == ("remote" if deleted_on == "local" else "local")
    assert plan.merged["agent"]["1"]["role"] == "edited"
    # "remote" as policy lets a remote deletion win.
    if deleted_on == "remote":
        assert "1" not in three_way(BASE, local, remote, "remote").merged["agent"]


def test_rows_created_on_both_sides_conflict_only_if_they_differ() -> None:
    local = data(*[("agent", r) for r in BASE["agent"].values()], ("agent", agent("3", "c", "x")))
    remote = data(*[("agent", r) for r in BASE["agent"].values()], ("agent", agent("3", "c", "y")))
    [conflict] = three_way(BASE, local, remote, "local").conflicts
    assert conflict.base is None and conflict.resolution == "local"
    assert three_way(BASE, local, local, "local").conflicts == []


def test_a_policy_function_can_merge_values() -> None:
    local = data(("agent", agent("1", "alpha", role="L")), ("agent", agent("2", "beta")))
    remote = data(("agent", agent("1", "alpha", status="busy", role="R")),
                  ("agent", agent("2", "beta")))  # fmt: skip
    seen: list[Conflict] = []

    def both(conflict: Conflict) -> Any:
        seen.append(conflict)
        assert conflict.local and conflict.remote
        return {"role": conflict.local["role"] + "+" + conflict.remote["role"]}

    plan = three_way(BASE, local, remote, both)
    assert seen[0].resolution == "merged"
    assert plan.merged["agent"]["1"]["role"] == "L+R"
    assert plan.merged["agent"]["1"]["status"] == "busy"  # unspecified fields: remote's
    with pytest.raises(ValueError, match="policy answered"):
        three_way(BASE, local, remote, lambda c: "both")  # type: ignore[arg-type,return-value]


def test_unknown_policies_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        DiffSynchronizer(None, LocalCopy(), policy="latest")  # type: ignore[arg-type]
    conflict = Conflict("agent", "1", "agent 'a'", None, None, None)
    with pytest.raises(ValueError, match="unknown policy"):
        resolve("oldest", conflict)  # type: ignore[arg-type]


def test_messages_follow_their_conversation_and_lost_edits_are_reported() -> None:
    conv = {"key": "7", "id": 7, "owner": ME, "title": "plans", "updated_at": 0}
    msg = {"key": "70", "id": 70, "conversation": "7", "author": ME, "role": "user",
           "content": "hi", "sequence": 1, "updated_at": 0}  # fmt: skip
    base = data(("conversation", conv), ("message", msg))
    local = data(("conversation", conv), ("message", {**msg, "content": "hi, edited"}))
    remote = empty_dataset()  # the conversation and its messages were deleted remotely
    plan = three_way(base, local, remote, "local")
    assert plan.merged["message"] == {} and plan.merged["conversation"] == {}
    [lost] = plan.conflicts
    assert (lost.key, lost.reason, lost.resolution) == ("70", "its conversation was deleted",
                                                        "remote")  # fmt: skip


def test_changes_name_the_fields_that_moved() -> None:
    side = data(("agent", agent("1", "alpha", role="lead")))
    found = changes(BASE, side)
    assert found["agent", "1"].fields == {"role": ("r", "lead")}
    assert found["agent", "2"].action == "delete" and found["agent", "2"].row == BASE["agent"]["2"]
    assert str(found["agent", "1"]) == "~ agent 'alpha' (role: 'r' -> 'lead')"


rows = st.dictionaries(
    st.sampled_from(["1", "2", "3", "4"]),
    st.tuples(st.sampled_from(["r", "s"]), st.sampled_from(["idle", "busy"])),
    max_size=4,
)


def as_data(spec: dict[str, tuple[str, str]]) -> Dataset:
    return data(*[("agent", agent(k, f"n{k}", role, status)) for k, (role, status) in spec.items()])


@settings(max_examples=150, deadline=None)
@given(rows, rows, rows, st.sampled_from(["remote", "local", "newest"]))
def test_merge_laws(base_spec: Any, local_spec: Any, remote_spec: Any, policy: Any) -> None:
    base, local, remote = as_data(base_spec), as_data(local_spec), as_data(remote_spec)
    # Nothing changed on one side: the other side's state is the result, with no conflict.
    assert three_way(base, base, remote, policy).merged == remote
    only_local = three_way(base, local, base, policy)
    assert only_local.merged == local and not only_local.conflicts
    # Both sides agree: no conflict, and the agreed state.
    assert three_way(base, local, local, policy).conflicts == []
    # Every key changed on both sides to different values is exactly one conflict.
    plan = three_way(base, local, remote, policy)
    both = {
        k for k in {*local["agent"], *remote["agent"], *base["agent"]}
        if local["agent"].get(k) != base["agent"].get(k)
        and remote["agent"].get(k) != base["agent"].get(k)
        and local["agent"].get(k) != remote["agent"].get(k)
    }  # fmt: skip
    assert {c.key for c in plan.conflicts} == both
    if policy == "local":
        assert (
            plan.merged == local
            or both == set()
            or any(c.resolution == "local" for c in plan.conflicts)
        )


# --- matching rows created offline -----------------------------------------------------------


def test_drafts_match_server_rows_by_natural_key() -> None:
    remote = data(
        ("agent", {**agent("5", "planner"), "owner": OTHER}),  # names are global: any owner
        ("conversation", {"key": "8", "id": 8, "owner": ME, "title": "ideas", "updated_at": 0}),
        ("conversation", {"key": "9", "id": 9, "owner": OTHER, "title": "theirs", "updated_at": 0}),
        ("message", {"key": "80", "id": 80, "conversation": "8", "author": ME, "role": "user",
                     "content": "posted before a crash", "sequence": 1, "updated_at": 0}),
    )  # fmt: skip
    local = data(
        ("agent", agent("new:planner", "planner")),
        ("conversation", {"key": "new:ideas", "title": "ideas"}),
        ("conversation", {"key": "new:theirs", "title": "theirs"}),
        ("message", {"key": "new:m1", "conversation": "new:ideas", "role": "user",
                     "content": "posted before a crash"}),
        ("message", {"key": "new:m2", "conversation": "new:ideas", "role": "user",
                     "content": "not yet posted"}),
    )  # fmt: skip
    out = match_drafts(local, remote, ME)
    assert set(out["agent"]) == {"5"}
    assert set(out["conversation"]) == {"8", "new:theirs"}  # not ours: no match
    assert set(out["message"]) == {"80", "new:m2"}
    assert out["message"]["new:m2"]["conversation"] == "8"


def test_a_row_the_local_copy_already_holds_is_not_matched_again() -> None:
    remote = data(("agent", agent("5", "planner")))
    local = data(("agent", agent("5", "planner")), ("agent", agent("new:planner", "planner")))
    assert set(match_drafts(local, remote, ME)["agent"]) == {"5", "new:planner"}


# --- the local file ------------------------------------------------------------------------


def sample_copy(path: Path | None) -> LocalCopy:
    copy = LocalCopy(path, identity=ME)
    copy.put("agent", {"name": "a", "role": "r", "state": msgpack.packb({"k": [1, 2]})})
    copy.put("document", {"title": "doc", "content": "text", "metadata": b"\x80"})
    copy.put("conversation", {"key": "new:c", "title": "c"})
    copy.put("message", {"conversation": "new:c", "content": "hello"})
    copy.base = {t: dict(r) for t, r in copy.tables.items()}
    return copy


@pytest.mark.parametrize("name", ["copy.msgpack", "copy.json"])
def test_the_file_round_trips(tmp_path: Path, name: str) -> None:
    copy = sample_copy(tmp_path / name)
    copy.save()
    again = LocalCopy.open(tmp_path / name)
    assert again.tables == copy.tables and again.base == copy.base
    assert again.identity == ME
    if name.endswith(".json"):
        text = json.loads((tmp_path / name).read_text())
        assert text["tables"]["document"][0]["metadata"] == {"base64": "gA=="}


def test_put_fills_keys_and_stamps_and_delete_cascades() -> None:
    copy = sample_copy(None)
    row = copy.find("agent", name="a")
    assert row and row["key"] == "new:a" and row["updated_at"] > 0 and row["status"] == "idle"
    [message] = copy.rows("message")
    assert message["key"].startswith("new:") and message["role"] == "user"
    copy.delete("conversation", "new:c")
    assert copy.rows("message") == []
    copy.save()  # an in-memory copy: nothing to write, no error


def test_hand_written_json_accepts_msgpack_values(tmp_path: Path) -> None:
    path = tmp_path / "hand.json"
    path.write_text(json.dumps({
        "format": "inner-universe.sync", "version": 1,
        "tables": {"agent": [{"name": "x", "role": "y", "state": {"msgpack": {"step": 3}}}]},
    }))  # fmt: skip
    [row] = LocalCopy.open(path).rows("agent")
    assert msgpack.unpackb(row["state"]) == {"step": 3}


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ({"format": "other"}, "not an inner-universe.sync"),
        ({"format": "inner-universe.sync", "version": 2}, "version 2"),
        ({"format": "inner-universe.sync", "version": 1, "tables": {"task": []}}, "unknown tables"),
        ({"format": "inner-universe.sync", "version": 1,
          "tables": {"agent": [{"name": "x", "role": "y", "colour": 1}]}}, "unknown fields"),
        ({"format": "inner-universe.sync", "version": 1,
          "tables": {"agent": [{"name": "x"}]}}, "bad agent row"),
        ({"format": "inner-universe.sync", "version": 1,
          "tables": {"agent": [{"key": "1", "name": "x", "role": "y"},
                               {"key": "1", "name": "z", "role": "y"}]}}, "two rows keyed"),
    ],
)  # fmt: skip
def test_bad_files_name_the_problem(tmp_path: Path, content: Any, error: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(LocalFormatError, match=error):
        LocalCopy.open(path)
    (tmp_path / "junk.msgpack").write_bytes(b"\xc1\xc1")
    with pytest.raises(LocalFormatError):
        LocalCopy.open(tmp_path / "junk.msgpack")


def test_a_missing_file_is_an_empty_copy(tmp_path: Path) -> None:
    copy = LocalCopy.open(tmp_path / "none.msgpack")
    assert copy.tables == copy.base == empty_dataset()


def test_the_report_reads_and_serialises() -> None:
    plan = three_way(BASE, data(("agent", agent("1", "alpha", role="x"))), BASE, "remote")
    report = SyncReport("remote", False, plan.local_changes, plan.remote_changes, plan.conflicts,
                        pushed=plan.local_changes)  # fmt: skip
    text = report.summary()
    assert text.startswith("would sync with policy 'remote': 2 local and 0 remote changes")
    assert "to push (2):" in text and "- agent 'beta'" in text
    assert json.loads(report.to_json())["pushed"][0]["table"] == "agent"
    assert report.to_dict()["conflicts"] == []
    assert not report.in_sync and report.ok
