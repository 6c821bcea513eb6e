"""The TemporalStore's ownership model against a real server, tried as a stranger would.

A store belongs to the identity that opened it first; only the writers its owner
admits append or move its tracking; only members read it; tracking positions
must exist upstream; and reading never imports a module a writer chose.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import DataError, StoredEvent, Tracking
from eventsourcing.utils import get_topic

from inner_universe.errors import ReducerError
from inner_universe.nerv.store import (
    Factory,
    SpacetimeApplicationRecorder,
    SpacetimeProcessRecorder,
    StoreReplica,
    UntrustedTopicError,
    is_trusted_topic,
)
from inner_universe.spacetime.connection import ConnectionBuilder, ThreadedConnection
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration

U64_MAX = 2**64 - 1


class Account(Aggregate):
    @event("Opened")
    def __init__(self, balance: int) -> None:
        self.balance = balance

    @event("Credited")
    def credit(self, amount: int) -> None:
        self.balance += amount


class Bank(Application[UUID]):
    pass


def _connect(db: PublishedDatabase, token: str | None = None) -> ThreadedConnection:
    return (
        ConnectionBuilder()
        .with_uri(db.uri)
        .with_database(db.name)
        .with_token(token)
        .connect_threaded()
    )


@pytest.fixture
def two_replicas(fresh_db: PublishedDatabase) -> Iterator[tuple[StoreReplica, StoreReplica]]:
    """A's replica of store "bank" (A opened it: A owns it) and stranger B's."""
    a = StoreReplica(_connect(fresh_db), "bank", owns_connection=True)
    b = StoreReplica(_connect(fresh_db), "bank", owns_connection=True)
    yield a, b
    a.close()
    b.close()


def test_a_store_belongs_to_its_first_opener(
    two_replicas: tuple[StoreReplica, StoreReplica],
) -> None:
    a, b = two_replicas
    assert a.owner == a.connection.identity
    assert b.owner == a.connection.identity  # B opening it later claims nothing


def test_a_stranger_cannot_forge_events_snapshots_or_tracking(
    two_replicas: tuple[StoreReplica, StoreReplica],
) -> None:
    a, b = two_replicas
    owner = SpacetimeProcessRecorder(a)
    stranger = SpacetimeProcessRecorder(b)
    account = uuid4()
    owner.insert_events([StoredEvent(account, 1, "t:Opened", b"100")])
    forged = StoredEvent(account, 2, "t:Credited", b"-999900")
    with pytest.raises(DataError, match="not one of its writers"):
        stranger.insert_events([forged])
    with pytest.raises(DataError, match="not one of its writers"):
        b.append_snapshots([forged])
    with pytest.raises(DataError, match="not one of its writers"):
        stranger.insert_tracking(Tracking("bank", 1))
    assert [e.originator_version for e in owner.select_events(account)] == [1]
    assert a.select("snapshots", account, None, None, False, None) == []
    assert owner.max_tracking_id("bank") is None


def test_tracking_positions_must_exist_in_the_upstream_log(
    two_replicas: tuple[StoreReplica, StoreReplica],
) -> None:
    a, _ = two_replicas
    recorder = SpacetimeProcessRecorder(a)
    recorder.insert_events([StoredEvent(uuid4(), 1, "t:Opened", b"")])
    for position in (2, 10**9, U64_MAX):
        with pytest.raises(DataError, match="its log ends at 1"):
            recorder.insert_tracking(Tracking("bank", position))
    with pytest.raises(DataError, match="no store of that name"):
        recorder.insert_tracking(Tracking("nowhere", 1))
    recorder.insert_tracking(Tracking("bank", 1))
    assert recorder.max_tracking_id("bank") == 1


def test_the_owner_admits_and_removes_writers(
    two_replicas: tuple[StoreReplica, StoreReplica],
) -> None:
    a, b = two_replicas
    assert b.connection.identity is not None
    with pytest.raises(DataError, match="belongs to another identity"):
        b.set_member(b.connection.identity)  # a stranger cannot admit itself
    a.set_member(b.connection.identity)
    writer = SpacetimeApplicationRecorder(b)
    assert writer.insert_events([StoredEvent(uuid4(), 1, "t:Opened", b"")]) == [1]
    a.set_member(b.connection.identity, writer=False)  # now a reader only
    with pytest.raises(DataError, match="not one of its writers"):
        writer.insert_events([StoredEvent(uuid4(), 1, "t:Opened", b"")])
    a.remove_member(b.connection.identity)
    with pytest.raises(DataError, match="cannot be removed"):
        a.remove_member(a.owner)


def test_a_stranger_cannot_read_a_store(fresh_db: PublishedDatabase) -> None:
    owner = StoreReplica(_connect(fresh_db), "diary", owns_connection=True)
    try:
        SpacetimeApplicationRecorder(owner).insert_events(
            [StoredEvent(uuid4(), 1, "t:Wrote", b"secret")]
        )
        owner.append_snapshots([StoredEvent(uuid4(), 1, "t:Snap", b"secret")])
        with _connect(fresh_db) as stranger:
            tables = ("event_run", "stored_event", "stored_snapshot", "event_tracking")
            for table in tables:
                query = f"SELECT * FROM {table} WHERE store = 'diary'"
                assert stranger.one_off_query(query)[table] == []
                # (Store tables are subscribed to without WHERE: see store.py.)
                stranger.subscribe(f"SELECT * FROM {table}")
                assert stranger.db[table].count() == 0
        [result] = fresh_db.server.sql(fresh_db.name, "SELECT * FROM event_run")
        assert len(result["rows"]) == 1  # it is there; the stranger just cannot see it
    finally:
        owner.close()


def test_reading_never_imports_a_topic_a_writer_chose(fresh_db: PublishedDatabase) -> None:
    env = {
        "PERSISTENCE_MODULE": "inner_universe.nerv.store",
        "SPACETIMEDB_URI": fresh_db.uri,
        "SPACETIMEDB_DATABASE": fresh_db.name,
        "SPACETIMEDB_STORE": "Bank",
    }
    bank = Bank(env=env)
    try:
        account = Account(100)
        bank.save(account)
        factory = bank.factory
        assert isinstance(factory, Factory)
        # A writer the owner admitted turns hostile: it appends an event whose topic
        # names a module this process never imported.
        with _connect(fresh_db) as mallory:
            assert mallory.identity is not None
            factory.replica.set_member(mallory.identity)
            assert "this" not in sys.modules
            mallory.call_reducer(
                "append_events", "Bank", [(str(account.id), 2, "this:s", b"{}")], None
            )
            replica = factory.replica

            def forged_event_arrived() -> bool:
                return len(replica.select("events", account.id, None, None, False, None)) == 2

            assert replica.wait_for(forged_event_arrived, timeout=10)
            with pytest.raises(UntrustedTopicError) as caught:
                bank.repository.get(account.id)
            assert caught.value.topic == "this:s"
            assert caught.value.writers == (mallory.identity,)
            assert str(mallory.identity) in str(caught.value)
            assert "this" not in sys.modules  # refused before anything was imported
    finally:
        bank.close()


def test_trusted_topics_are_imported_event_classes_or_allow_listed() -> None:
    assert is_trusted_topic(get_topic(Account.Credited))  # type: ignore[attr-defined]
    assert not is_trusted_topic(get_topic(Account))  # a class, but not an event
    assert not is_trusted_topic("os:system")  # imported, not a class
    assert not is_trusted_topic("this:s")  # not imported
    assert not is_trusted_topic("no-colon")
    assert is_trusted_topic("this:s", ["this"])
    assert is_trusted_topic("pkg.events:E", ["pkg"])
    assert not is_trusted_topic("pkgx.events:E", ["pkg"])


def test_a_stranger_cannot_call_the_owner_only_reducers(fresh_db: PublishedDatabase) -> None:
    with _connect(fresh_db) as a, _connect(fresh_db) as b:
        a.call_reducer("open_store", "ledger")
        assert b.identity is not None
        with pytest.raises(ReducerError, match="belongs to another identity"):
            b.call_reducer("set_store_member", "ledger", b.identity, True)
        with pytest.raises(ReducerError, match="belongs to another identity"):
            b.call_reducer("remove_store_member", "ledger", a.identity)


def test_an_identity_cannot_open_stores_without_end(fresh_db: PublishedDatabase) -> None:
    with _connect(fresh_db) as a:
        opened = [a.call_reducer_async("open_store", f"store-{i}") for i in range(100)]
        for call in opened:
            call.result(30)
        with pytest.raises(ReducerError, match=r"quota reached: .* holds 100 stores"):
            a.call_reducer("open_store", "one-too-many")
        a.call_reducer("open_store", "store-0")  # opening an existing store costs nothing
