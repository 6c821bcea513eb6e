"""Universe: the server, the connection and the services, opened and closed as one."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from inner_universe.app import Universe, register_service
from inner_universe.errors import InvalidStateError, ServerError
from inner_universe.home import find_running, load_identity, token_file
from inner_universe.nerv.bus import BusEvent
from inner_universe.spacetime.connection import DbConnection, ThreadedConnection
from tests.conftest import PublishedDatabase, until

pytestmark = pytest.mark.integration


class Recorder:
    """A service that notes when it is closed."""

    closed: list[str] = []  # noqa: RUF012 - shared on purpose: the order across services

    def __init__(self, name: str) -> None:
        self.name = name

    def close(self) -> None:
        Recorder.closed.append(self.name)


register_service("first", lambda universe: Recorder("first"))
register_service("second", lambda universe: Recorder("second"))


async def test_services_are_lazy_single_and_closed_in_reverse(
    universe_db: PublishedDatabase, user_home: Path
) -> None:
    Recorder.closed = []
    async with Universe(universe_db.uri, universe_db.name) as universe:
        assert isinstance(universe.connection, DbConnection)
        assert universe.service("first") is universe.service("first")
        universe.service("second")
        seen: list[BusEvent] = []
        universe.bus.connect("agent.insert", lambda sender, event: seen.append(event), weak=False)
        projector = universe.projector
        await universe.subscribe("SELECT * FROM agent")
        await universe.connection.reducers.register_agent("app-test", "testing", b"")
        await until(lambda: seen)
        assert seen[0].row.name == "app-test"
        assert any(a.name == "app-test" for a in projector.table("agent").values())
        with pytest.raises(InvalidStateError, match="no service named 'missing'"):
            universe.service("missing")
    assert Recorder.closed == ["second", "first"]
    with pytest.raises(InvalidStateError):
        universe.connection  # noqa: B018


def test_sync_use_and_the_stored_identity(universe_db: PublishedDatabase, user_home: Path) -> None:
    with Universe(universe_db.uri, universe_db.name) as universe:
        assert isinstance(universe.connection, ThreadedConnection)
        first = universe.identity
        universe.connection.subscribe("SELECT * FROM agent")
        universe.connection.reducers.register_agent("sync-app", "testing", b"")
        assert any(a.name == "sync-app" for a in universe.connection.db.agent.iter())
    stored = load_identity(universe_db.uri)
    assert stored is not None and stored.identity == first
    path = token_file(universe_db.uri).path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Universe(universe_db.uri, universe_db.name) as again:
        assert again.identity == first  # the same identity comes back


def test_without_a_uri_it_starts_the_local_server_or_reuses_it(user_home: Path) -> None:
    with pytest.raises(ServerError, match="inner-universe up"):
        Universe(start_server=False).open_sync()
    with Universe() as owner:
        running = find_running()
        assert owner.server is not None and running is not None
        assert running.data_dir.startswith(str(user_home))
        with Universe(start_server=False) as guest:
            assert guest.server is None and guest.uri == owner.uri
            assert guest.identity == owner.identity  # the stored local identity
        agents: Any = owner.connection.one_off_query("SELECT * FROM agent")
        assert agents == {"agent": []}
    assert find_running() is None


class Counter(Aggregate):
    @event("Created")
    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


def test_an_event_sourced_application_on_the_temporal_store(
    universe_db: PublishedDatabase, user_home: Path
) -> None:
    def my_sessions(token: str) -> int:
        """Sessions of this identity (a client sees its own identity's sessions only)."""
        with Universe(universe_db.uri, universe_db.name, token=token) as observer:
            rows = observer.connection.one_off_query("SELECT * FROM session")["session"]
        return len(rows) - 1  # not the observer's own

    with Universe(universe_db.uri, universe_db.name) as universe:
        counters = universe.application(Application, store="counters")
        counter = Counter()
        counter.increment()
        counters.save(counter)
        assert counters.repository.get(counter.id).count == 1
        rows = universe.connection.one_off_query("SELECT * FROM stored_event")["stored_event"]
        assert {row.store for row in rows} == {"counters"} and len(rows) == 2
        token = universe.connection.token
        assert token is not None
        assert my_sessions(token) == 2  # the Universe's connection and the application's
    assert my_sessions(token) == 0  # both closed with the Universe
