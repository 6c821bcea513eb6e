"""The TemporalStore against a real local SpacetimeDB: eventsourcing's own conformance
suites, then whole applications (time travel, snapshots, two processes, a system).

Every conformance test gets a freshly published database, because the suites
assume an empty recorder (notification ids 1, 2, 3 and no tracking).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, cast
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, MutableOrImmutableAggregate, event
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    StoredEvent,
    Tracking,
)
from eventsourcing.system import ProcessApplication, SingleThreadedRunner, System
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment, get_topic

from inner_universe.errors import ReducerError
from inner_universe.nerv import store
from inner_universe.nerv.store import (
    Factory,
    SpacetimeAggregateRecorder,
    SpacetimeApplicationRecorder,
    SpacetimeProcessRecorder,
    SpacetimeTrackingRecorder,
    StoreReplica,
)
from inner_universe.spacetime.connection import ConnectionBuilder
from inner_universe.spacetime.schema import ModuleSchema
from inner_universe.spacetime.server import LocalServer
from tests.conftest import PublishedDatabase, publish_fresh

pytestmark = pytest.mark.integration


def seed_store(db: PublishedDatabase, store: str, events: int) -> None:
    """Give ``store`` a log of ``events`` notifications (tracking positions must exist)."""
    builder = ConnectionBuilder().with_uri(db.uri).with_database(db.name)
    with builder.connect_threaded() as conn:
        rows = [("seed", version, "seed", b"") for version in range(1, events + 1)]
        conn.call_reducer("append_events", store, rows, None)


class OnFreshDatabase:
    """Mixin: a fresh database per test, and replicas on it that are closed afterwards."""

    db: PublishedDatabase
    _replicas: list[StoreReplica]
    #: Upstream stores the test tracks, each given this many notifications.
    upstreams: ClassVar[dict[str, int]] = {}

    @pytest.fixture(autouse=True)
    def _fresh_database(self, local_server: LocalServer, module_wasm: bytes) -> Iterator[None]:
        self.db = publish_fresh(local_server, module_wasm, prefix="iu-store")
        self._replicas = []
        for store_name, events in self.upstreams.items():
            seed_store(self.db, store_name, events)
        yield
        for replica in self._replicas:
            replica.close()
        local_server.delete_database(self.db.name)

    def replica(self, name: str = "test") -> StoreReplica:
        connection = (
            ConnectionBuilder().with_uri(self.db.uri).with_database(self.db.name).connect_threaded()
        )
        replica = StoreReplica(connection, name, owns_connection=True)
        self._replicas.append(replica)
        return replica


# --- eventsourcing's conformance suites ----------------------------------------------------


class TestAggregateRecorder(OnFreshDatabase, AggregateRecorderTestCase):
    def create_recorder(self) -> SpacetimeAggregateRecorder:
        return SpacetimeAggregateRecorder(self.replica())


class TestSnapshotRecorder(OnFreshDatabase, AggregateRecorderTestCase):
    """Snapshots are an aggregate recorder too, on their own table."""

    def create_recorder(self) -> SpacetimeAggregateRecorder:
        return SpacetimeAggregateRecorder(self.replica(), "snapshots")


class TestApplicationRecorder(OnFreshDatabase, ApplicationRecorderTestCase):
    def create_recorder(self) -> SpacetimeApplicationRecorder:
        return SpacetimeApplicationRecorder(self.replica())

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestApplicationRecorderTextIds(OnFreshDatabase, ApplicationRecorderTestCase):
    """Originator ids that are plain strings (ORIGINATOR_ID_TYPE=text)."""

    def new_originator_id(self) -> str:
        return f"agent-{uuid4().hex[:8]}"

    def create_recorder(self) -> SpacetimeApplicationRecorder:
        replica = self.replica()
        replica.originator_id_type = "text"
        return SpacetimeApplicationRecorder(replica)

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()

    # The concurrency cases are covered once, above.
    test_concurrent_no_conflicts = None  # type: ignore[assignment]
    test_concurrent_throughput = None  # type: ignore[assignment]
    test_performance = None  # type: ignore[assignment]


class TestNonInterleavingNotificationIDs(OnFreshDatabase, NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> SpacetimeApplicationRecorder:
        return SpacetimeApplicationRecorder(self.replica())


#: The upstream applications eventsourcing's tracking suites record positions of.
SUITE_UPSTREAMS = {"upstream1": 30, "upstream2": 30, "upstream_app": 100}


class TestTrackingRecorder(OnFreshDatabase, TrackingRecorderTestCase):
    upstreams = SUITE_UPSTREAMS

    def create_recorder(self) -> SpacetimeTrackingRecorder:
        return SpacetimeTrackingRecorder(self.replica())


class TestProcessRecorder(OnFreshDatabase, ProcessRecorderTestCase):
    upstreams = SUITE_UPSTREAMS

    def create_recorder(self) -> SpacetimeProcessRecorder:
        return SpacetimeProcessRecorder(self.replica())


class CustomTrackingRecorder(SpacetimeTrackingRecorder):
    """For the factory suite: a tracking recorder class chosen by argument or topic."""


class TestFactory(OnFreshDatabase, InfrastructureFactoryTestCase[Factory]):
    def setUp(self) -> None:
        self.env = Environment(
            "TestApp",
            {
                InfrastructureFactory.PERSISTENCE_MODULE: store.__name__,
                Factory.SPACETIMEDB_URI: self.db.uri,
                Factory.SPACETIMEDB_DATABASE: self.db.name,
            },
        )
        super().setUp()

    def expected_factory_class(self) -> type[Factory]:
        return Factory

    def expected_aggregate_recorder_class(self) -> type[SpacetimeAggregateRecorder]:
        return SpacetimeAggregateRecorder

    def expected_application_recorder_class(self) -> type[SpacetimeApplicationRecorder]:
        return SpacetimeApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[SpacetimeTrackingRecorder]:
        return SpacetimeTrackingRecorder

    def tracking_recorder_subclass(self) -> type[SpacetimeTrackingRecorder]:
        return CustomTrackingRecorder

    def expected_process_recorder_class(self) -> type[SpacetimeProcessRecorder]:
        return SpacetimeProcessRecorder

    def test_store_name_defaults_to_the_application_name(self) -> None:
        assert self.factory.store == "TestApp"
        self.env["TESTAPP_SPACETIMEDB_STORE"] = "agents.v2"
        assert Factory(self.env).store == "agents.v2"

    def test_settings_are_checked(self) -> None:
        with pytest.raises(OSError, match="SPACETIMEDB_URI"):
            Factory({Factory.SPACETIMEDB_DATABASE: "x"})
        with pytest.raises(OSError, match="contains ' '"):
            Factory(Environment("My App", dict(self.env)))
        with pytest.raises(OSError, match="SPACETIMEDB_COMPRESSION must be one of"):
            Factory({**self.env, Factory.SPACETIMEDB_COMPRESSION: "zstd"})
        assert Factory({**self.env, Factory.SPACETIMEDB_COMPRESSION: "gzip"}).compression == "Gzip"
        assert self.factory.compression == "None"


# --- what the conformance suites do not cover ----------------------------------------------


class TestStoreSemantics(OnFreshDatabase):
    upstreams: ClassVar[dict[str, int]] = {"up": 6}

    def test_stores_are_separate_logs(self) -> None:
        a = SpacetimeApplicationRecorder(self.replica("a"))
        b = SpacetimeApplicationRecorder(self.replica("b"))
        oid = uuid4()
        assert a.insert_events([StoredEvent(oid, 1, "t", b"a1")]) == [1]
        # Same originator and version in another store: no conflict, its own id 1.
        assert b.insert_events([StoredEvent(oid, 1, "t", b"b1")]) == [1]
        assert b.insert_events([StoredEvent(oid, 2, "t", b"b2")]) == [2]
        assert [e.state for e in a.select_events(oid)] == [b"a1"]
        assert [n.state for n in b.select_notifications(None, 10)] == [b"b1", b"b2"]

    def test_failed_batch_leaves_no_gap(self) -> None:
        recorder = SpacetimeProcessRecorder(self.replica())
        oid = uuid4()
        assert recorder.insert_events([StoredEvent(oid, 1, "t", b"")]) == [1]
        with pytest.raises(IntegrityError, match="already has event version 1"):
            recorder.insert_events([StoredEvent(oid, 2, "t", b""), StoredEvent(oid, 1, "t", b"")])
        assert recorder.insert_events(
            [StoredEvent(oid, 2, "t", b"")], tracking=Tracking("up", 5)
        ) == [2]
        with pytest.raises(IntegrityError, match="already processed notification 5"):
            recorder.insert_events([StoredEvent(oid, 3, "t", b"")], tracking=Tracking("up", 5))
        assert recorder.max_tracking_id("up") == 5
        assert recorder.insert_events([StoredEvent(oid, 3, "t", b"")]) == [3]
        assert [n.id for n in recorder.select_notifications(None, 10)] == [1, 2, 3]

    def test_conflicts_are_found_anywhere_in_a_batch(self) -> None:
        recorder = SpacetimeApplicationRecorder(self.replica())
        a, b = uuid4(), uuid4()
        assert recorder.insert_events([StoredEvent(a, v, "t", b"") for v in (1, 2, 3)]) == [1, 2, 3]
        batches = {
            "version 2 of originator": [StoredEvent(b, 1, "t", b""), StoredEvent(a, 2, "t", b"")],
            "version 3 of originator": [StoredEvent(a, v, "t", b"") for v in (5, 4, 3)],
            f"version 7 of originator {b}": [StoredEvent(b, v, "t", b"") for v in (7, 8, 7)],
        }
        for message, batch in batches.items():
            with pytest.raises(IntegrityError, match=message):
                recorder.insert_events(batch)
        # Versions far apart, around stored ones, in one batch with another originator.
        sparse = [StoredEvent(a, 1000, "t", b""), StoredEvent(b, 1, "t", b"")]
        assert recorder.insert_events([*sparse, StoredEvent(a, 4, "t", b"")]) == [4, 5, 6]
        assert [e.originator_version for e in recorder.select_events(a)] == [1, 2, 3, 4, 1000]

    def test_a_batch_is_stored_as_runs_and_read_event_by_event(self) -> None:
        replica = self.replica()
        recorder = SpacetimeApplicationRecorder(replica)
        a, b = uuid4(), uuid4()
        batch = [(a, 1, "x"), (a, 2, "y"), (b, 1, "x"), (a, 3, "y"), (b, 2, "x"), (a, 5, "x")]
        events = [StoredEvent(oid, v, topic, f"{oid}/{v}".encode()) for oid, v, topic in batch]
        assert recorder.insert_events(events) == [1, 2, 3, 4, 5, 6]
        # One row per run of consecutive versions of one originator: a1-2, b1, a3, b2, a5.
        [result] = self.db.server.sql(self.db.name, "SELECT * FROM event_run WHERE store = 'test'")
        assert len(result["rows"]) == 5
        # Versions interleaved with the stored ones but distinct: no conflict.
        assert recorder.insert_events([StoredEvent(a, v, "y", b"") for v in (4, 6)]) == [7, 8]
        assert [e.originator_version for e in recorder.select_events(a)] == [1, 2, 3, 4, 5, 6]
        assert [e.originator_version for e in recorder.select_events(a, gt=1, lte=4)] == [2, 3, 4]
        newest = recorder.select_events(a, desc=True, limit=3)
        assert [e.originator_version for e in newest] == [6, 5, 4]
        assert recorder.select_events(a, gt=2, limit=1) == [
            StoredEvent(a, 3, "y", f"{a}/3".encode())
        ]
        # A batch overlapping a stored run anywhere fails whole.
        for versions in ((7, 8, 2), (0, 1), (7, 5)):
            with pytest.raises(IntegrityError, match=f"version {versions[-1]} of originator {a}"):
                recorder.insert_events([StoredEvent(a, v, "x", b"") for v in versions])
        assert recorder.max_notification_id() == 8
        notifications = recorder.select_notifications(2, 4, topics=["x"])
        assert [(n.id, n.originator_id, n.originator_version) for n in notifications] == [
            (3, b, 1),
            (5, b, 2),
            (6, a, 5),
        ]
        assert [n.id for n in recorder.select_notifications(4, 3, stop=5)] == [4, 5]
        # From the middle of a run whose only "x" comes before the start.
        assert [n.id for n in recorder.select_notifications(2, 1, topics=["x"])] == [3]
        # Another identity's replica, admitted as a reader, reads the same log.
        other = self.replica()
        assert other.connection.identity is not None
        replica.set_member(other.connection.identity, writer=False)
        assert other.wait_for(lambda: other.max_notification_id() == 8, timeout=10)
        assert other.select_notifications(1, 10, None, ()) == recorder.select_notifications(1, 10)

    def test_older_clients_append_events_alongside_runs(self) -> None:
        # The store sends runs (append_runs); a client from before them sends one
        # NewEvent per event (append_events). Both number one log and conflict alike.
        replica = self.replica()
        recorder = SpacetimeApplicationRecorder(replica)
        conn = replica.connection
        a = uuid4()
        assert recorder.insert_events([StoredEvent(a, v, "t", b"") for v in (1, 2)]) == [1, 2]
        conn.call_reducer("append_events", "test", [(str(a), 3, "u", b"3")], None)
        assert recorder.insert_events([StoredEvent(a, 4, "t", b"")]) == [4]
        assert [(e.originator_version, e.topic) for e in recorder.select_events(a)] == [
            (1, "t"),
            (2, "t"),
            (3, "u"),
            (4, "t"),
        ]
        with pytest.raises(ReducerError, match=f"integrity error: .*version 2 of originator {a}"):
            conn.call_reducer("append_events", "test", [(str(a), 2, "u", b"")], None)
        with pytest.raises(IntegrityError, match=f"version 3 of originator {a}"):
            recorder.insert_events([StoredEvent(a, 3, "t", b"")])
        # A run must hold a topic for each state, and at least one event.
        for topics, states in ((["t"], [b"", b""]), ([], [])):
            with pytest.raises(ReducerError, match="one of each per event"):
                conn.call_reducer("append_runs", "test", [(str(a), 9, topics, states)], None)
        assert recorder.max_notification_id() == 4

    def test_a_module_without_append_runs_is_sent_one_row_per_event(self) -> None:
        # A module published before append_runs: the replica's connection sees a schema
        # without it (the live module still has append_events, which is what is called).
        connection = (
            ConnectionBuilder().with_uri(self.db.uri).with_database(self.db.name).connect_threaded()
        )
        schema = connection.connection.schema
        reducers = {k: v for k, v in schema.reducers.items() if k != "append_runs"}
        connection.connection.schema = ModuleSchema(
            schema.typespace, schema.tables, reducers, schema.type_names
        )
        called: list[str] = []
        connection.on_reducer("append_events", lambda _ctx, e: called.append(e.reducer))
        replica = StoreReplica(connection, "test", owns_connection=True)
        self._replicas.append(replica)
        recorder = SpacetimeApplicationRecorder(replica)
        a, b = uuid4(), uuid4()
        events = [StoredEvent(a, 1, "t", b"1"), StoredEvent(a, 2, "t", b"2")]
        assert recorder.insert_events([*events, StoredEvent(b, 1, "u", b"3")]) == [1, 2, 3]
        assert called == ["append_events"]
        assert recorder.select_events(a) == events
        with pytest.raises(IntegrityError, match=f"version 2 of originator {a}"):
            recorder.insert_events([StoredEvent(a, 2, "t", b"")])

    def test_events_of_an_earlier_module_are_read_with_new_ones(self) -> None:
        # A database written by a module before event runs holds one stored_event row
        # per event. Write such rows as the database owner, as that module would have.
        replica = self.replica()
        recorder = SpacetimeApplicationRecorder(replica)
        assert replica.connection.identity is not None
        writer = f"0x{replica.connection.identity.to_hex()}"
        old = uuid4()
        for version in (1, 2, 3):
            self.db.server.sql(
                self.db.name,
                "INSERT INTO stored_event (store, notification_id, originator_id, "
                "originator_version, topic, state, writer) VALUES "
                f"('test', {version}, '{old}', {version}, 't{version}', 0x0{version}, {writer})",
            )
        self.db.server.sql(
            self.db.name, "UPDATE event_log SET last_notification_id = 3 WHERE store = 'test'"
        )
        assert replica.wait_for(lambda: recorder.max_notification_id() == 3, timeout=10)
        with pytest.raises(IntegrityError, match=f"version 3 of originator {old}"):
            recorder.insert_events([StoredEvent(old, v, "t", b"") for v in (3, 4)])
        assert recorder.insert_events([StoredEvent(old, v, "t", b"") for v in (4, 5)]) == [4, 5]
        read = recorder.select_events(old, gt=1, lte=4)
        assert read == [
            StoredEvent(old, 2, "t2", b"\x02"),
            StoredEvent(old, 3, "t3", b"\x03"),
            StoredEvent(old, 4, "t", b""),
        ]
        assert [(n.id, n.originator_version) for n in recorder.select_notifications(1, 10)] == [
            (i, i) for i in range(1, 6)
        ]
        assert replica.topic_writers("t1") == [replica.connection.identity]

    def test_bad_input_is_a_data_error_naming_the_field(self) -> None:
        from eventsourcing.persistence import DataError

        recorder = SpacetimeApplicationRecorder(self.replica())
        with pytest.raises(DataError, match="event state is 1048577 bytes"):
            recorder.insert_events([StoredEvent(uuid4(), 1, "t", b"x" * (1024 * 1024 + 1))])
        with pytest.raises(DataError, match=r"runs\[0\]\.first_version: -1 does not fit"):
            recorder.insert_events([StoredEvent(uuid4(), -1, "t", b"")])
        with pytest.raises(ValueError, match="contains"):
            self.replica("it's")

    def test_subscription_wakes_on_another_connections_insert(self) -> None:
        reader = SpacetimeApplicationRecorder(self.replica())
        writer = SpacetimeApplicationRecorder(self.replica())
        assert writer.replica.connection.identity is not None
        reader.replica.set_member(writer.replica.connection.identity)  # the owner admits it
        received: list[tuple[int, float]] = []
        with reader.subscribe(gt=None, topics=["wanted"]) as subscription:

            def consume() -> None:
                for notification in subscription:
                    received.append((notification.id, time.perf_counter()))
                    if len(received) == 2:
                        break

            thread = threading.Thread(target=consume)
            thread.start()
            time.sleep(0.2)  # the consumer is now blocked, with nothing to read
            writer.insert_events([StoredEvent(uuid4(), 1, "other", b"")])
            sent = time.perf_counter()
            writer.insert_events([StoredEvent(uuid4(), 1, "wanted", b"")])
            writer.insert_events([StoredEvent(uuid4(), 1, "wanted", b"")])
            thread.join(5)
        assert [nid for nid, _ in received] == [2, 3]
        assert received[0][1] - sent < 0.5  # pushed, not found by a slow poll


# --- applications on the store -----------------------------------------------------------


class Agent(Aggregate):
    """An agent whose every state change is an event."""

    @event("Registered")
    def __init__(self, name: str, role: str) -> None:
        self.name = name
        self.role = role
        self.status = "idle"
        self.notes: list[str] = []

    @event("StatusChanged")
    def set_status(self, status: str) -> None:
        self.status = status

    @event("NoteAdded")
    def add_note(self, note: str) -> None:
        self.notes.append(note)


class Agents(Application[UUID]):
    def register(self, name: str, role: str) -> UUID:
        agent = Agent(name, role)
        self.save(agent)
        return agent.id

    def set_status(self, agent_id: UUID, status: str) -> None:
        agent: Agent = self.repository.get(agent_id)
        agent.set_status(status)
        self.save(agent)

    def add_notes(self, agent_id: UUID, notes: Sequence[str]) -> None:
        agent: Agent = self.repository.get(agent_id)
        for note in notes:
            agent.add_note(note)
        self.save(agent)


class CountingRecorder(SpacetimeApplicationRecorder):
    """Counts the events an application reads, to show what a snapshot saves."""

    selected: ClassVar[list[int]] = []

    def select_events(self, originator_id: UUID | str, **kwargs: Any) -> Sequence[StoredEvent]:
        events = super().select_events(originator_id, **kwargs)
        CountingRecorder.selected.append(len(events))
        return events


def app_env(db: PublishedDatabase, **extra: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "inner_universe.nerv.store",
        "SPACETIMEDB_URI": db.uri,
        "SPACETIMEDB_DATABASE": db.name,
        **extra,
    }


def test_application_time_travel(fresh_db: PublishedDatabase) -> None:
    app = Agents(env=app_env(fresh_db))
    try:
        agent_id = app.register("planner", "planning")
        app.set_status(agent_id, "busy")
        app.add_notes(agent_id, ["one", "two"])
        app.set_status(agent_id, "done")

        agent: Agent = app.repository.get(agent_id)
        assert (agent.version, agent.status, agent.notes) == (5, "done", ["one", "two"])
        then: Agent = app.repository.get(agent_id, version=2)
        assert (then.status, then.notes) == ("busy", [])
        assert app.repository.get(agent_id, version=4).notes == ["one", "two"]

        # The application-wide log, in commit order.
        topics = [
            n.topic.rsplit(".", 1)[-1] for n in app.notification_log.select(start=1, limit=10)
        ]
        assert topics == ["Registered", "StatusChanged", "NoteAdded", "NoteAdded", "StatusChanged"]

        # A stale copy cannot overwrite: optimistic concurrency is enforced by the module.
        stale: Agent = app.repository.get(agent_id, version=3)
        stale.set_status("stale")
        with pytest.raises(IntegrityError):
            app.save(stale)
    finally:
        app.close()


def test_snapshots_bound_the_cost_of_loading(fresh_db: PublishedDatabase) -> None:
    class SnapshottingAgents(Agents):
        snapshotting_intervals: ClassVar[dict[type[MutableOrImmutableAggregate[Any]], int]] = {
            Agent: 50
        }

    env = app_env(fresh_db, APPLICATION_RECORDER_TOPIC=get_topic(CountingRecorder))
    app = SnapshottingAgents(env=env)
    try:
        agent_id = app.register("long-lived", "memory")
        for batch in range(12):
            app.add_notes(agent_id, [f"note {batch}.{i}" for i in range(20)])
        assert app.snapshots is not None
        snapshots = app.snapshots.recorder.select_events(agent_id)
        assert [s.originator_version for s in snapshots] == [50, 100, 150, 200]

        CountingRecorder.selected.clear()
        agent: Agent = app.repository.get(agent_id)
        assert agent.version == 241 and len(agent.notes) == 240
        assert CountingRecorder.selected == [41]  # events after the newest snapshot only

        CountingRecorder.selected.clear()
        old: Agent = app.repository.get(agent_id, version=120)
        assert len(old.notes) == 119
        assert CountingRecorder.selected == [20]  # from the snapshot at 100
    finally:
        app.close()


CHILD = textwrap.dedent(
    """
    import sys
    from uuid import UUID
    from tests.nerv.test_store import Agents

    app = Agents()   # the identity of SPACETIMEDB_TOKEN, which the parent admitted
    agent_id = app.register("from-child", "worker")
    print("registered", agent_id, flush=True)
    # Follow the log live until the parent changes this agent.
    with app.recorder.subscribe(gt=None, topics=[]) as subscription:
        for notification in subscription:
            if notification.originator_id == agent_id and notification.originator_version == 2:
                break
    print("status", app.repository.get(agent_id).status, flush=True)
    app.close()
    """
)


def test_two_processes_share_the_store_live(fresh_db: PublishedDatabase) -> None:
    app = Agents(env=app_env(fresh_db))  # opens the store first: it owns it
    child_identity = fresh_db.server.create_identity()
    cast(Factory, app.factory).replica.set_member(child_identity.identity)
    env = {**os.environ, **app_env(fresh_db), "SPACETIMEDB_TOKEN": child_identity.token}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        assert line[:1] == ["registered"], child.stderr.read() if child.stderr else line
        child_agent = UUID(line[1])
        # The parent sees the child's events as they arrive on its subscription.
        with app.recorder.subscribe(gt=None) as subscription:
            for notification in subscription:
                if notification.originator_id == child_agent:
                    break
        agent: Agent = app.repository.get(child_agent)
        assert (agent.name, agent.role) == ("from-child", "worker")
        app.set_status(child_agent, "adopted")  # written by another identity, seen by the child
        out, err = child.communicate(timeout=20)
        assert child.returncode == 0, err
        assert out.split() == ["status", "adopted"]
    finally:
        if child.poll() is None:
            child.kill()
        app.close()


class Counters(ProcessApplication[UUID]):
    """Follows Agents: counts registrations, recording its position atomically."""

    def __init__(self, env: Any = None) -> None:
        super().__init__(env)
        self.registered: list[str] = []

    def policy(self, domain_event: Any, processing_event: Any) -> None:
        if isinstance(domain_event, Agent.Registered):  # type: ignore[attr-defined]
            tally = Tally(domain_event.name)
            processing_event.collect_events(tally)


class Tally(Aggregate):
    @event("Counted")
    def __init__(self, name: str) -> None:
        self.name = name


def test_process_application_follows_in_its_own_store(fresh_db: PublishedDatabase) -> None:
    system = System(pipes=[[Agents, Counters]])
    runner: SingleThreadedRunner[UUID] = SingleThreadedRunner(system, env=app_env(fresh_db))
    runner.start()
    try:
        agents = runner.get(Agents)
        counters = runner.get(Counters)
        agents.register("a", "x")
        agents.register("b", "y")
        counted = counters.recorder.select_notifications(None, 10)
        assert [n.topic.rsplit(".", 1)[-1] for n in counted] == ["Counted", "Counted"]
        assert isinstance(counters.recorder, SpacetimeProcessRecorder)
        assert counters.recorder.max_tracking_id("Agents") == 2
        assert agents.recorder.max_notification_id() == 2  # its own log, unmixed
    finally:
        runner.stop()


del AggregateRecorderTestCase, ApplicationRecorderTestCase, TrackingRecorderTestCase
del ProcessRecorderTestCase, NonInterleavingNotificationIDsBaseCase, InfrastructureFactoryTestCase


def test_a_batch_is_sent_as_runs_of_consecutive_versions() -> None:
    a, b = uuid4(), uuid4()
    a_again = UUID(str(a))  # equal, not the same object
    events = [
        StoredEvent(a, 1, "x", b"1"),
        StoredEvent(a_again, 2, "y", b"2"),
        StoredEvent(b, 1, "x", b"3"),
        StoredEvent(a, 3, "x", b"4"),
        StoredEvent(a, 5, "x", b"5"),
        StoredEvent("text-id", 7, "z", b"6"),
    ]
    assert StoreReplica._event_runs(events) == [
        (str(a), 1, ["x", "y"], [b"1", b"2"]),
        (str(b), 1, ["x"], [b"3"]),
        (str(a), 3, ["x"], [b"4"]),
        (str(a), 5, ["x"], [b"5"]),
        ("text-id", 7, ["z"], [b"6"]),
    ]
    assert StoreReplica._event_runs([]) == []
