"""Universe: the server, the connection and the services, opened and closed as one."""

from __future__ import annotations

import base64
import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from inner_universe.app import OFFLINE_MODEL, Universe, register_service
from inner_universe.errors import ConnectRefusedError, InvalidStateError, ServerError, UsageError
from inner_universe.features.chat import ProvidersFailedError
from inner_universe.features.chat.inserts import OwnInserts
from inner_universe.features.delegation import TaskContext, Worker
from inner_universe.home import find_running, load_identity, token_file
from inner_universe.nerv.bus import BusEvent
from inner_universe.spacetime.connection import DbConnection, ThreadedConnection, connect
from inner_universe.spacetime.types import Identity
from tests.conftest import PublishedDatabase, until
from tests.features.chat.test_provider_health_live import fail_with_cooldown
from tests.features.knowledge.test_imports import loaded_after

pytestmark = [
    pytest.mark.integration,
    # litellm's pydantic models warn about a typing qualifier when first used; not ours to fix.
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier"),
]

FEATURES = ("chat", "tasks", "knowledge")


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


def forged_token(identity: Identity) -> str:
    """A token in SpacetimeDB's shape, naming ``identity``, signed by no server's key."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"hex_identity": identity.to_hex(), "sub": "forged", "iss": "localhost"}
    signature = base64.urlsafe_b64encode(bytes(64)).rstrip(b"=").decode()
    return f"{part({'alg': 'ES256', 'typ': 'JWT'})}.{part(claims)}.{signature}"


def test_an_identity_another_server_issued_is_refused_with_what_to_do(
    universe_db: PublishedDatabase, user_home: Path
) -> None:
    path = token_file(universe_db.uri).save(forged_token(Identity(0xC200 << 240)))
    with pytest.raises(ConnectRefusedError, match="was not issued by this server") as refused:
        Universe(universe_db.uri, universe_db.name).open_sync()
    assert refused.value.status == 401 and f"rm {path}" in str(refused.value)
    assert path.is_file()  # the stored identity is the user's to remove, not ours


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
        rows = universe.connection.one_off_query("SELECT * FROM event_run")["event_run"]
        assert {row.store for row in rows} == {"counters"}
        assert sum(len(row.states) for row in rows) == 2
        token = universe.connection.token
        assert token is not None
        assert my_sessions(token) == 2  # the Universe's connection and the application's
    assert my_sessions(token) == 0  # both closed with the Universe


def closed_services(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The services a Universe closed, in the order it closed them (from its debug log)."""
    records = [r for r in caplog.records if r.msg == "closing %s"]
    return [r.args[0] for r in records if isinstance(r.args, tuple)]


async def double(task: TaskContext) -> Any:
    return task.payload["x"] * 2


def test_importing_the_universe_loads_no_feature_dependency() -> None:
    loaded = loaded_after("import inner_universe.app")
    assert not loaded & {"litellm", "wordllama", "tantivy"}


async def test_the_features_as_services(
    universe_db: PublishedDatabase, user_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="inner_universe.app")
    async with Universe(universe_db.uri, universe_db.name) as universe:
        conn = universe.db_connection
        assert all(universe.service(name) is universe.service(name) for name in FEATURES)
        assert universe.chat.conn is conn and universe.tasks.conn is conn

        await universe.subscribe("SELECT * FROM conversation")
        row = await OwnInserts(conn).call("create_conversation", "conversation", "services")
        reply = await universe.chat.send(row.id, "hello from a service")
        assert reply.status == "done" and reply.model == "offline/echo" and reply.text
        assert conn.db.message.find("id", reply.message_id).content == reply.text

        async with (
            connect(universe_db.uri, universe_db.name) as worker_conn,
            Worker(worker_conn, "service-doubler", ["service-double"], double, history=False),
        ):
            assert await universe.tasks.delegate("service-double", {"x": 21}, timeout=15) == 42
        assert any(t.capability == "service-double" for t in await universe.tasks.list())

        added = await universe.knowledge.add_text(
            "Universe services", "A zeppelin of marmalade drifts over the quay at dawn."
        )
        hits = await universe.knowledge.search("marmalade zeppelin", 1)
        assert hits[0].document_id == added.document_id
    assert closed_services(caplog) == ["knowledge", "tasks", "chat"]


async def test_chat_trust_reaches_the_router(
    universe_db: PublishedDatabase, user_home: Path
) -> None:
    with pytest.raises(UsageError, match="chat_trust takes Identity values"):
        Universe(universe_db.uri, universe_db.name, chat_trust=["not an identity"])  # type: ignore[list-item]
    async with connect(universe_db.uri, universe_db.name) as other:
        await fail_with_cooldown(other, OFFLINE_MODEL)  # its report: the offline model is down
        assert other.identity is not None
        trusting = Universe(universe_db.uri, universe_db.name, chat_trust=[other.identity])
        async with trusting as universe:
            assert universe.chat.router.trust == {other.identity}
            await universe.subscribe("SELECT * FROM conversation")
            conn = universe.db_connection
            row = await OwnInserts(conn).call("create_conversation", "conversation", "trust")
            with pytest.raises(ProvidersFailedError, match="cooling down after: down!"):
                await universe.chat.send(row.id, "heeds the report it trusts")


def test_the_features_in_sync_use(
    universe_db: PublishedDatabase, user_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="inner_universe.app")
    with Universe(universe_db.uri, universe_db.name) as universe:
        assert universe.knowledge is universe.knowledge
        added = universe.run(
            universe.knowledge.add_text("Sync services", "Quokkas juggle harpsichords at noon.")
        )
        hits = universe.run(universe.knowledge.search("juggling quokkas", 1))
        assert hits[0].document_id == added.document_id

        universe.connection.subscribe("SELECT * FROM conversation")
        universe.connection.reducers.create_conversation("sync services")
        conversations = universe.connection.db.conversation.iter()
        mine = max(c.id for c in conversations if c.title == "sync services")
        reply = universe.run(universe.chat.send(mine, "hello, synchronously"))
        assert reply.status == "done" and reply.text

        reducers = universe.connection.reducers
        universe.connection.subscribe("SELECT * FROM agent")
        reducers.register_agent("sync-holder", "worker", b"")
        agent = next(a for a in universe.connection.db.agent.iter() if a.name == "sync-holder")
        reducers.set_agent_capabilities(agent.id, ["sync-hold"])  # no worker runs: it stays queued
        task_id = universe.run(universe.tasks.submit("sync-hold", {"x": 1}))
        tasks = universe.run(universe.tasks.list())
        assert [t.status for t in tasks if t.id == task_id] == ["queued"]
    assert closed_services(caplog) == ["tasks", "chat", "knowledge"]


async def test_run_is_for_sync_use(universe_db: PublishedDatabase, user_home: Path) -> None:
    async with Universe(universe_db.uri, universe_db.name) as universe:
        with pytest.raises(InvalidStateError, match="use await"):
            universe.run(universe.tasks.list())
