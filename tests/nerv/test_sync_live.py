"""DiffSynchronizer end to end against the real server and module, no mocks.

A user syncs a local file, edits it offline, while their other device and another
user change the server; then the file is reconciled. The server, a third client
watching the tables, the report and the file must all agree on the outcome.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import msgpack
import pytest
import structlog

from inner_universe.nerv.sync import (
    SYNC_QUERIES,
    Change,
    Conflict,
    DiffSynchronizer,
    LocalCopy,
    RowError,
    replica_rows,
)
from inner_universe.nerv.sync.models import ATTRIBUTES, Dataset, Row
from inner_universe.spacetime.connection import ConnectionBuilder, ThreadedConnection
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration

NATURAL = {"agent": "name", "document": "title", "conversation": "title", "message": "content"}


@pytest.fixture(autouse=True)
def quiet_diffsync() -> Iterator[None]:
    """diffsync logs every model at info level through structlog; keep test output readable."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    yield
    structlog.reset_defaults()


def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def connect(
    db: PublishedDatabase, token: str | None = None, *, subscribe: bool = True
) -> ThreadedConnection:
    builder = ConnectionBuilder().with_uri(db.uri).with_database(db.name).with_token(token)
    conn = builder.connect_threaded()
    if subscribe:
        conn.subscribe(*SYNC_QUERIES)
    return conn


class Watcher:
    """Collects a client's row callbacks and reduces them to net changes per row."""

    def __init__(self, conn: ThreadedConnection) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, Any, Any]] = []
        for table in NATURAL:
            handle = conn.db[table]
            handle.on_insert(partial(self._insert, table))
            handle.on_delete(partial(self._delete, table))
            handle.on_update(partial(self._update, table))

    def _insert(self, table: str, ctx: Any, row: Any) -> None:
        self._update(table, ctx, None, row)

    def _delete(self, table: str, ctx: Any, row: Any) -> None:
        self._update(table, ctx, row, None)

    def _update(self, table: str, ctx: Any, old: Any, new: Any) -> None:
        with self.lock:
            self.events.append((table, old, new))

    def saw(self, table: str, name: str) -> bool:
        with self.lock:
            return any(
                t == table and new is not None and getattr(new, NATURAL[t]) == name
                for t, _, new in self.events
            )

    def clear(self) -> None:
        with self.lock:
            self.events.clear()

    def net(self) -> set[tuple[str, str, str]]:
        """(table, create|update|delete, natural name) per row whose compared attributes moved."""
        first: dict[tuple[str, int], Any] = {}
        last: dict[tuple[str, int], Any] = {}
        with self.lock:
            for table, old, new in self.events:
                row_id = (old or new).id
                first.setdefault((table, row_id), old)
                last[table, row_id] = new
        out = set()
        for (table, row_id), before in first.items():
            after = last[table, row_id]
            if before is None and after is not None:
                out.add((table, "create", getattr(after, NATURAL[table])))
            elif after is None and before is not None:
                out.add((table, "delete", getattr(before, NATURAL[table])))
            elif before is not None and _compared(table, before) != _compared(table, after):
                out.add((table, "update", getattr(after, NATURAL[table])))
        return out


def _compared(table: str, row: Any) -> tuple[Any, ...]:
    names = [n if n != "conversation" else "conversation_id" for n in ATTRIBUTES[table]]
    return tuple(getattr(row, n) for n in names)


def projection(changes: list[Change]) -> set[tuple[str, str, str]]:
    return {(c.table, c.action, c.row[NATURAL[c.table]]) for c in changes if c.row is not None}


def content(conn: ThreadedConnection, document_id: int) -> str:
    row = conn.db.document.find("id", document_id)
    return "(missing)" if row is None else str(row.content)


def by(data: Dataset, table: str, **fields: Any) -> Row:
    found = [r for r in data[table].values() if all(r[k] == v for k, v in fields.items())]
    assert len(found) == 1, (table, fields, found)
    return found[0]


def test_offline_edits_reconcile_with_concurrent_remote_changes(
    fresh_db: PublishedDatabase, tmp_path: Path
) -> None:
    a = connect(fresh_db)  # the user syncing a file
    assert a.token is not None
    a2 = connect(fresh_db, a.token)  # the same user on another device
    b = connect(fresh_db)  # another user
    c = connect(fresh_db, a.token)  # a watcher of the tables (as a: agents' state is a's only)
    try:
        watcher = Watcher(c)
        a.reducers.register_agent("alpha", "planner", msgpack.packb({"step": 1}))
        a.reducers.register_agent("beta", "coder", b"")
        a.reducers.register_agent("gamma", "critic", b"")
        a.reducers.create_document("readme", "v1", msgpack.packb({"tags": []}))
        a.reducers.create_document("notes", "n", b"")
        a.reducers.create_conversation("plans")
        plans = a.db.conversation.iter().__next__()
        a.reducers.post_message(plans.id, "user", "hello")
        a.reducers.post_message(plans.id, "assistant", "hi")
        a.reducers.admit_participant(plans.id, b.identity, ["user"])  # b posts later
        b.reducers.register_agent("bravo", "b-role", b"")
        until(lambda: bool(a.db.agent.filter("name", "bravo")))

        # First sync: an empty file pulls everything.
        path = tmp_path / "universe.msgpack"
        first = DiffSynchronizer(a, LocalCopy.open(path), policy="newest").sync()
        assert first.ok and not first.pushed and not first.conflicts
        assert len(first.pulled) == 4 + 2 + 1 + 2
        copy = LocalCopy.open(path)
        assert copy.tables == copy.base == replica_rows(a)

        # Offline edits, saved to the file.
        alpha = copy.find("agent", name="alpha")
        gamma = copy.find("agent", name="gamma")
        bravo = copy.find("agent", name="bravo")
        readme = copy.find("document", title="readme")
        notes = copy.find("document", title="notes")
        hello = copy.find("message", content="hello")
        assert alpha and gamma and bravo and readme and notes and hello
        copy.put("agent", {**alpha, "role": "lead-planner"})
        copy.put("document", {**readme, "content": "v2-local"})
        copy.delete("agent", gamma["key"])
        copy.delete("document", notes["key"])
        copy.put("agent", {"name": "delta", "role": "tester", "status": "busy"})
        copy.put("conversation", {"key": "new:ideas", "title": "ideas"})
        copy.put("message", {"conversation": "new:ideas", "content": "first idea"})
        copy.put("message", {"conversation": str(plans.id), "content": "offline reply"})
        copy.put("message", {**hello, "content": "hello, edited offline"})
        copy.put("conversation", {**copy.tables["conversation"][str(plans.id)],
                                  "title": "plans v2"})  # fmt: skip
        copy.put("agent", {**bravo, "status": "hijacked"})  # not ours: will be refused
        copy.save()

        # Meanwhile, on the server (after the offline edits, so "newest" favours them).
        time.sleep(0.002)
        a2.reducers.update_document(readme["id"], "readme", "v2-remote", readme["metadata"])
        a2.reducers.delete_agent(alpha["id"])
        a2.reducers.set_agent_status(copy.find("agent", name="beta")["id"], "busy")  # type: ignore[index]
        b.reducers.post_message(plans.id, "user", "from b")
        until(lambda: replica_rows(a) == replica_rows(c) == replica_rows(a2))
        # A replica is updated just before its callbacks fire: wait for the last one.
        until(lambda: watcher.saw("message", "from b"))
        watcher.clear()

        report = DiffSynchronizer(a, LocalCopy.open(path), policy="newest").sync()
        print(report.summary())

        # Conflicts, settled by "newest".
        settled = {(x.table, x.label): x.resolution for x in report.conflicts}
        assert settled == {
            ("document", "document 'readme'"): "remote",  # the remote edit is newer
            ("agent", "agent 'alpha'"): "local",  # edited locally, deleted remotely: kept
        }
        # The refused row is reported, and the sync went on.
        assert len(report.errors) == 1
        error = report.errors[0]
        assert (error.table, error.key, error.action) == ("agent", bravo["key"], "update")
        assert "belongs to another identity" in error.message

        # The server holds exactly the reconciled state (seen by a fresh client).
        d = connect(fresh_db, a.token)  # as a: agents' state is readable by its owner only
        try:
            server = replica_rows(d)
        finally:
            d.disconnect()
        assert {r["name"]: (r["role"], r["status"]) for r in server["agent"].values()} == {
            "alpha": ("lead-planner", "idle"),
            "beta": ("coder", "busy"),
            "delta": ("tester", "busy"),
            "bravo": ("b-role", "idle"),
        }
        assert {r["title"]: r["content"] for r in server["document"].values()} == {
            "readme": "v2-remote"
        }
        ideas = by(server, "conversation", title="ideas")
        assert sorted(r["title"] for r in server["conversation"].values()) == ["ideas", "plans v2"]
        messages = {
            (r["conversation"], r["sequence"], r["role"], r["content"])
            for r in server["message"].values()
        }
        assert messages == {
            (str(plans.id), 1, "user", "hello, edited offline"),
            (str(plans.id), 2, "assistant", "hi"),
            (str(plans.id), 3, "user", "from b"),
            (str(plans.id), 4, "user", "offline reply"),
            (ideas["key"], 1, "user", "first idea"),
        }
        sql = fresh_db.server.sql(fresh_db.name, "SELECT name FROM agent WHERE name = 'gamma'")
        assert sql[0]["rows"] == []

        # The bystander saw exactly the pushed changes, nothing more.
        until(lambda: replica_rows(c) == server)
        expected = {
            ("agent", "create", "alpha"),  # re-registered: local won over the remote delete
            ("agent", "create", "delta"),
            ("agent", "delete", "gamma"),
            ("document", "delete", "notes"),
            ("conversation", "create", "ideas"),
            ("conversation", "update", "plans v2"),
            ("message", "create", "first idea"),
            ("message", "create", "offline reply"),
            ("message", "update", "hello, edited offline"),
        }
        assert watcher.net() == expected
        assert projection(report.pushed) == expected

        # The file equals the server, except the refused edit, kept pending.
        after = LocalCopy.open(path)
        pending_key = bravo["key"]
        assert after.tables["agent"][pending_key]["status"] == "hijacked"
        assert after.base["agent"][pending_key] == server["agent"][pending_key]
        after.tables["agent"][pending_key] = server["agent"][pending_key]
        assert after.tables == after.base == server

        # Syncing again changes nothing but retries (and reports) the refused edit.
        again = DiffSynchronizer(a, LocalCopy.open(path), policy="newest").sync()
        assert not again.pushed and not again.pulled and not again.conflicts
        assert again.errors == [
            RowError("agent", pending_key, "update", error.message, error.label)
        ]
    finally:
        for conn in (a, a2, b, c):
            conn.disconnect()


def test_remote_wins_and_a_merging_function(fresh_db: PublishedDatabase, tmp_path: Path) -> None:
    a = connect(fresh_db, subscribe=False)  # the synchronizer subscribes what it needs
    assert a.token is not None
    a2 = connect(fresh_db, a.token)
    try:
        a.reducers.create_document("spec", "one", b"")
        a.reducers.create_document("todo", "x", b"")
        path = tmp_path / "copy.json"  # JSON, as a person would edit it
        assert len(DiffSynchronizer(a, LocalCopy.open(path)).sync().pulled) == 2
        copy = LocalCopy.open(path)
        spec = copy.find("document", title="spec")
        todo = copy.find("document", title="todo")
        assert spec and todo
        copy.put("document", {**spec, "content": "one, local"})
        copy.put("document", {**todo, "content": "x\nlocal line"})
        copy.save()
        a2.reducers.update_document(spec["id"], "spec", "one, remote", b"")
        a2.reducers.update_document(todo["id"], "todo", "x\nremote line", b"")
        until(lambda: content(a, todo["id"]) == "x\nremote line")

        def merge_todo(conflict: Conflict) -> Any:
            """Keep both sides' lines for the todo list; otherwise the server wins."""
            if conflict.local and conflict.remote and conflict.local["title"] == "todo":
                lines = conflict.remote["content"].splitlines()
                lines += [x for x in conflict.local["content"].splitlines() if x not in lines]
                return {"content": "\n".join(lines)}
            return "remote"

        preview = DiffSynchronizer(a, LocalCopy.open(path), policy=merge_todo).preview()
        assert not preview.applied and len(preview.conflicts) == 2
        assert content(a, todo["id"]) == "x\nremote line"  # untouched

        report = DiffSynchronizer(a, LocalCopy.open(path), policy=merge_todo).sync()
        assert {c.label: c.resolution for c in report.conflicts} == {
            "document 'spec'": "remote",
            "document 'todo'": "merged",
        }
        assert content(a, spec["id"]) == "one, remote"
        assert content(a, todo["id"]) == "x\nremote line\nlocal line"
        after = LocalCopy.open(path)
        assert after.tables == after.base == replica_rows(a)
        assert '"format": "inner-universe.sync"' in path.read_text()
    finally:
        a.disconnect()
        a2.disconnect()


def test_offline_drafts_match_rows_created_meanwhile(
    fresh_db: PublishedDatabase, tmp_path: Path
) -> None:
    a = connect(fresh_db)
    assert a.token is not None
    a2 = connect(fresh_db, a.token)
    b = connect(fresh_db)
    try:
        path = tmp_path / "drafts.msgpack"
        DiffSynchronizer(a, LocalCopy.open(path), policy="local").sync()
        copy = LocalCopy.open(path)
        copy.put("agent", {"name": "echo", "role": "same"})  # a2 registers it identically
        copy.put("agent", {"name": "zeta", "role": "mine"})  # b registers it differently
        copy.put("document", {"title": "journal", "content": "draft"})
        copy.save()
        a2.reducers.register_agent("echo", "same", b"")
        b.reducers.register_agent("zeta", "theirs", b"")
        until(lambda: a.db.agent.count() == 2)

        report = DiffSynchronizer(a, LocalCopy.open(path), policy="local").sync()
        # echo: the same row made twice converges; zeta: a conflict the local side wins,
        # but the server refuses to let us change b's agent, so the draft stays pending.
        assert [(c.label, c.resolution) for c in report.conflicts] == [("agent 'zeta'", "local")]
        [error] = report.errors
        assert error.label == "agent 'zeta'" and "belongs to another identity" in error.message
        assert projection(report.pushed) == {("document", "create", "journal")}
        assert sorted(r.name for r in a.db.agent.iter()) == ["echo", "zeta"]
        after = LocalCopy.open(path)
        zeta = after.find("agent", name="zeta")
        assert zeta is not None and zeta["role"] == "mine"  # the local edit is not lost
        assert after.find("agent", name="echo") == by(replica_rows(a), "agent", name="echo")
    finally:
        for conn in (a, a2, b):
            conn.disconnect()
