"""Fault tests: a real server killed, frozen and restarted; a client killed and restarted.

Each test runs its own ``spacetimedb-standalone`` with a persistent data
directory on 127.0.0.1, kills it (``LocalServer.kill``, SIGKILL) or freezes it
(SIGSTOP), and restarts it on the same port and data directory. The clients recover by
themselves; at the end every call is counted with SQL: present exactly once.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inner_universe.errors import ConnectError, OutcomeUnknownError
from inner_universe.spacetime.connection import ConnectionBuilder, DbConnection, ReconnectPolicy
from inner_universe.spacetime.events import ReconnectedEvent
from inner_universe.spacetime.server import LocalServer
from inner_universe.spacetime.transport import Transport, WebSocketTransport
from inner_universe.universe.module import find_module_wasm
from tests.conftest import until

pytestmark = pytest.mark.integration

#: Quick recovery for tests: retry every 50..500 ms, ping every second.
FAST = ReconnectPolicy(initial_delay=0.05, max_delay=0.5)


class RestartableServer:
    """A persistent local server that tests kill, freeze and restart on the same port and data."""

    def __init__(self, data_dir: Path) -> None:
        self.server = LocalServer(data_dir=data_dir, in_memory=False).start()
        self.uri = self.server.uri
        self.database = f"faults-{os.getpid()}-{random.randrange(1 << 30):x}"
        self.server.publish_module(find_module_wasm().read_bytes(), self.database)
        assert self.server.wait_until_durable()  # a kill must not take the database with it

    @property
    def pid(self) -> int:
        assert self.server.pid is not None
        return self.server.pid

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye (what a crash or an OOM kill does)."""
        self.server.kill()

    def freeze(self) -> None:
        """SIGSTOP, and wait until every thread of the server has stopped."""
        os.kill(self.pid, signal.SIGSTOP)
        tasks = Path(f"/proc/{self.pid}/task")
        while not all(_thread_state(task) in "Tt" for task in tasks.iterdir()):
            time.sleep(0.001)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Start again on the same port and data directory."""
        self.server.start()

    def count(self, sql: str) -> list[list[Any]]:
        [result] = self.server.sql(self.database, sql)
        return list(result["rows"])

    def stop(self) -> None:
        if self.server.is_running():
            self.thaw()
        self.server.stop()


def _thread_state(task: Path) -> str:
    """The state letter of one thread (R, S, T, ...) from /proc/<pid>/task/<tid>/stat."""
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "T"  # the thread is gone: it runs nothing


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[RestartableServer]:
    server = RestartableServer(tmp_path / "stdb")
    try:
        yield server
    finally:
        server.stop()


def builder(server: RestartableServer) -> ConnectionBuilder:
    return (
        ConnectionBuilder()
        .with_uri(server.uri)
        .with_database(server.database)
        .with_reconnect(FAST)
        .with_keepalive(1.0, 2.0, open_timeout=3.0)
    )


def titles_exactly_once(server: RestartableServer, expected: set[str]) -> tuple[int, int]:
    """(lost, duplicated) among ``expected`` titles, counted with SQL."""
    rows = [row[0] for row in server.count("SELECT title FROM conversation")]
    counts: dict[str, int] = {}
    for title in rows:
        counts[title] = counts.get(title, 0) + 1
    lost = sum(1 for t in expected if t not in counts)
    duplicated = sum(n - 1 for t, n in counts.items() if t in expected and n > 1)
    return lost, duplicated


async def test_a_lost_server_is_reconnected_with_subscriptions_and_an_outbox(
    faulty: RestartableServer,
) -> None:
    """Reconnect: same identity and connection id, rows reconciled, queued calls sent."""
    gate = asyncio.Event()
    gate.set()

    async def gated_link(url: str, token: str | None) -> Transport:
        if not gate.is_set():
            raise ConnectError("the test holds the reconnect back")
        return await WebSocketTransport.open(url, token=token, ping_interval=1.0, ping_timeout=2.0)

    reconnecting: list[int] = []
    reconnected: list[DbConnection] = []
    watcher = await (
        builder(faulty)
        .with_transport(gated_link)
        .on_reconnecting(lambda conn, attempt, error: reconnecting.append(attempt))
        .on_reconnected(reconnected.append)
        .connect()
    )
    async with watcher:
        inserts: list[tuple[str, type]] = []
        applied: list[object] = []
        watcher.db.conversation.on_insert(
            lambda ctx, row: inserts.append((row.title, type(ctx.event)))
        )
        await watcher.subscribe("SELECT * FROM conversation", on_applied=applied.append)
        await watcher.reducers.create_conversation("before")
        identity, connection_id = watcher.identity, watcher.connection_id
        assert faulty.server.wait_until_durable()  # this test is about the reconnect, not loss

        gate.clear()
        faulty.kill()
        await until(lambda: reconnecting and not watcher.is_connected)
        faulty.restart()
        queued = watcher.reducers.create_conversation("made while away")
        async with await builder(faulty).connect() as other:
            await other.reducers.create_conversation("by another while away")
        gate.set()
        event = await asyncio.wait_for(queued, 30)
        assert event is not None and event.committed
        await until(lambda: reconnected)

        assert (watcher.identity, watcher.connection_id) == (identity, connection_id)
        assert len(applied) == 1  # the applied callback ran once, not again on renewal
        titles = sorted(row.title for row in watcher.db.conversation.iter())
        assert titles == ["before", "by another while away", "made while away"]
        # "before" was never re-inserted: only what changed while away fired.
        assert [t for t, _ in inserts].count("before") == 1
        assert ("by another while away", ReconnectedEvent) in inserts
    assert titles_exactly_once(faulty, set(titles)) == (0, 0)


async def pipeline(conn: DbConnection, tag: str, count: int, window: int = 400) -> list[Any]:
    """Make ``count`` calls, at most ``window`` awaiting their outcome at once."""
    calls = conn.reducers.with_options(timeout=90)
    in_flight: list[asyncio.Future[Any]] = []
    outcomes: list[Any] = []
    for i in range(count):
        in_flight.append(calls.create_conversation(f"{tag}-{i}"))
        if len(in_flight) >= window:
            outcomes.append(await in_flight.pop(0))
    outcomes += await asyncio.gather(*in_flight)
    return outcomes


async def test_two_clients_pipelining_through_three_server_kills_apply_each_call_once(
    faulty: RestartableServer,
) -> None:
    per_client = 10_000
    reconnects: list[DbConnection] = []
    clients = [await builder(faulty).on_reconnected(reconnects.append).connect() for _ in range(2)]
    progress = [0]

    def count_commit(ctx: object, event: object) -> None:
        progress[0] += 1

    for conn in clients:
        conn.on_reducer("create_conversation", count_commit)
    rng = random.Random(7)

    async def killer() -> None:
        for round_ in range(3):
            threshold = (round_ + rng.uniform(0.3, 0.9)) * per_client * 2 / 4
            await until(lambda t=threshold: progress[0] >= t, timeout=60)  # type: ignore[misc]
            faulty.kill()
            await asyncio.to_thread(faulty.restart)

    kills = asyncio.ensure_future(killer())
    results = await asyncio.gather(
        *(pipeline(c, f"c{k}", per_client) for k, c in enumerate(clients))
    )
    await kills
    assert all(e is not None and e.committed for outcomes in results for e in outcomes)
    for conn in clients:
        assert reconnects.count(conn) == 3  # each client came back by itself after each kill
        assert not conn._unsettled
        await conn.disconnect()
    expected = {f"c{k}-{i}" for k in range(2) for i in range(per_client)}
    assert titles_exactly_once(faulty, expected) == (0, 0)


async def test_a_frozen_server_is_detected_and_handled_like_a_crash(
    faulty: RestartableServer,
) -> None:
    lost_at: list[float] = []
    conn = await (
        builder(faulty)
        .on_reconnecting(lambda c, attempt, error: lost_at.append(time.monotonic()))
        .connect()
    )
    async with conn:
        await conn.reducers.create_conversation("warm")
        faulty.freeze()
        frozen_at = time.monotonic()
        short = conn.reducers.with_options(timeout=0.5)
        doubtful = [short.create_conversation(f"frozen-{i}") for i in range(20)]
        for call in doubtful:
            with pytest.raises(OutcomeUnknownError):
                await call
        await until(lambda: lost_at, timeout=20)
        detected = lost_at[0] - frozen_at
        faulty.thaw()
        await conn.reducers.with_options(timeout=30).create_conversation("after")
        await conn.flush(30)
    print(f"frozen server detected after {detected:.1f} s")
    assert detected < 10  # ping every 1 s, pong timeout 2 s (plus a busy machine)
    expected = {"warm", "after"} | {f"frozen-{i}" for i in range(20)}
    assert titles_exactly_once(faulty, expected) == (0, 0)


CLIENT = """
import asyncio, sys
from inner_universe.spacetime.connection import ConnectionBuilder, ReconnectPolicy

async def main(uri, database, outbox, count):
    builder = (ConnectionBuilder().with_uri(uri).with_database(database)
               .with_reconnect(ReconnectPolicy(initial_delay=0.05, max_delay=0.5))
               .with_durable_outbox(outbox))
    conn = await builder.connect()
    calls = conn.reducers.with_options(timeout=60)
    start = conn.last_call_seq
    print("start", start, flush=True)
    window = []
    for i in range(start, count):
        window.append(calls.create_conversation(f"d-{i}"))
        if len(window) >= 200:
            await window.pop(0)
            if i % 100 == 0:
                print("done", i, flush=True)
    await asyncio.gather(*window)
    await conn.flush(60)
    await conn.disconnect()
    print("finished", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


def run_client(server: RestartableServer, outbox: Path, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, server.uri, server.database, str(outbox), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_killed_client_with_a_durable_outbox_applies_each_call_once(
    faulty: RestartableServer, tmp_path: Path
) -> None:
    count = 10_000
    outbox = tmp_path / "outbox.sqlite"
    first = run_client(faulty, outbox, count)
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith("done") and int(line.split()[1]) >= count // 3:
            break
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = run_client(faulty, outbox, count)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    assert "finished" in out
    restarted_at = int(out.split()[1])
    assert 0 < restarted_at < count  # the second run resumed where the first was killed
    assert titles_exactly_once(faulty, {f"d-{i}" for i in range(count)}) == (0, 0)
