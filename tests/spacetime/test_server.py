"""LocalServer: starting, publishing, failing loudly, and leaving no process behind."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inner_universe.errors import ServerError, SetupError
from inner_universe.spacetime import connect
from inner_universe.spacetime.server import LocalServer, find_server_binary
from tests.conftest import PublishedDatabase, until


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state to be sure.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_missing_binary_names_the_setup_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INNER_UNIVERSE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("INNER_UNIVERSE_SPACETIMEDB", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SetupError, match="scripts/setup"):
        find_server_binary()
    with pytest.raises(SetupError, match="scripts/setup"):
        LocalServer().start()


@pytest.mark.integration
def test_start_publish_query_and_stop(module_wasm: bytes) -> None:
    with LocalServer() as server:
        pid = server.pid
        assert pid is not None and _alive(pid)
        assert server.uri.startswith("http://127.0.0.1:")
        identity = server.publish_module(module_wasm, "server-test")
        assert len(identity) == 64
        schema = server.schema("server-test")
        assert {t["name"] for t in schema["tables"]} >= {"agent", "message", "session"}
        assert server.sql("server-test", "SELECT * FROM agent")[0]["rows"] == []
        data_dir = server.data_dir
    assert not _alive(pid)
    assert not data_dir.exists()


@pytest.mark.integration
def test_listens_on_loopback_only(local_server: LocalServer) -> None:
    conns = Path("/proc/net/tcp").read_text().splitlines()[1:]
    port_hex = f"{local_server.port:04X}"
    listening = [line.split() for line in conns if line.split()[3] == "0A"]  # TCP_LISTEN
    ours = [fields[1] for fields in listening if fields[1].endswith(":" + port_hex)]
    assert ours == ["0100007F:" + port_hex]  # 127.0.0.1, little-endian hex


@pytest.mark.integration
def test_a_busy_port_is_an_error(local_server: LocalServer) -> None:
    with pytest.raises(ServerError, match="already in use"):
        LocalServer(port=local_server.port).start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(ServerError, match="already in use"):
            LocalServer(port=sock.getsockname()[1]).start()


@pytest.mark.integration
def test_a_server_that_fails_to_start_reports_its_log(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "id_ecdsa").write_text("this is not a key\n")
    (keys / "id_ecdsa.pub").write_text("nor is this\n")
    server = LocalServer(data_dir=tmp_path, in_memory=True, startup_timeout=30)
    with pytest.raises(ServerError) as failed:
        server.start()
    assert "exited with code" in str(failed.value)
    assert "last lines of its log" in str(failed.value)
    assert not server.is_running()


@pytest.mark.integration
def test_stops_even_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), LocalServer() as server:
        pid = server.pid
        raise RuntimeError("test failure inside the block")
    assert pid is not None and not _alive(pid)


@pytest.mark.integration
def test_module_logs_and_owner_only_sql(universe_db: PublishedDatabase) -> None:
    server = universe_db.server
    assert isinstance(server.logs(universe_db.name), list)
    stranger = server.create_identity()
    with pytest.raises(ServerError, match="HTTP"):
        server.sql(universe_db.name, "DELETE FROM agent", token=stranger.token)


@pytest.mark.integration
def test_the_server_dies_with_a_parent_that_is_killed(tmp_path: Path) -> None:
    """Even SIGKILL of the Python process (no atexit) leaves no server behind."""
    script = (
        "import sys, time\n"
        "from inner_universe.spacetime.server import LocalServer\n"
        "server = LocalServer().start()\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


# --------------------------------------------------------------------------- secrets


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


@pytest.mark.integration
def test_the_data_directory_and_keys_are_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "stdb"
    server = LocalServer(data_dir=data_dir, in_memory=True)
    with server:
        keys = data_dir / "keys"
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(keys.stat().st_mode) == 0o700
        assert stat.S_IMODE((keys / "id_ecdsa").stat().st_mode) == 0o600
        written = [data_dir, *data_dir.rglob("*")]
        assert keys / "id_ecdsa" in written and data_dir / "server.log" in written
        assert [path for path in written if not _private(path)] == []
        assert server.owner is not None
        assert server.owner.token not in server.log_path.read_text()

    # A directory an older run left readable is tightened before the server starts.
    data_dir.chmod(0o755)
    (data_dir / "keys").chmod(0o755)
    (data_dir / "keys" / "id_ecdsa").chmod(0o644)
    with server:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((data_dir / "keys" / "id_ecdsa").stat().st_mode) == 0o600


@pytest.mark.integration
def test_reprs_show_no_token(local_server: LocalServer) -> None:
    owner = local_server.owner
    assert owner is not None and owner.token
    assert owner.token not in repr(owner)
    assert repr(owner.identity) in repr(owner)
    assert owner.token not in repr(local_server)


# --------------------------------------------------------------------------- stop, kill, restart


def _titles(server: LocalServer, database: str) -> set[str]:
    rows = server.sql(database, "SELECT title FROM conversation")[0]["rows"]
    return {row[0] for row in rows}


@pytest.mark.integration
def test_kill_then_start_again_on_the_same_port_and_data(
    tmp_path: Path, module_wasm: bytes
) -> None:
    server = LocalServer(data_dir=tmp_path / "stdb").start()
    try:
        port = server.port
        server.publish_module(module_wasm, "crash-test")

        async def call(title: str) -> None:
            async with connect(server.uri, "crash-test") as conn:
                await conn.reducers.create_conversation(title)

        asyncio.run(call("before the crash"))  # leaves connections in TIME_WAIT after the kill
        assert server.wait_until_durable()
        server.kill()
        assert not server.is_running()
        # The port now has connections in TIME_WAIT: a plain bind, the old probe, fails.
        with socket.socket() as sock, pytest.raises(OSError):
            sock.bind(("127.0.0.1", port))

        server.start()  # at once: the port probe is not fooled by TIME_WAIT
        assert server.port == port
        assert _titles(server, "crash-test") == {"before the crash"}
        asyncio.run(call("after the crash"))

        server.restart()
        assert server.port == port
        assert _titles(server, "crash-test") == {"before the crash", "after the crash"}
    finally:
        server.stop()


CLIENTS, CALLS = 2, 5000


@pytest.mark.integration
def test_stop_under_load_keeps_every_acknowledged_call(tmp_path: Path, module_wasm: bytes) -> None:
    """stop() while two clients' pipelined calls are being acknowledged; after restart,
    every acknowledged call is there (counted with SQL).

    SIGTERM alone (what stop() used to do) loses the server's commit-log queue: in
    trials with this load, 235 acknowledged calls in one stop of three.
    """
    server = LocalServer(data_dir=tmp_path / "stdb").start()
    try:
        server.publish_module(module_wasm, "stop-test")
        acknowledged: list[str] = []

        def on_done(title: str, call: asyncio.Future[object]) -> None:
            if not call.cancelled() and call.exception() is None:
                acknowledged.append(title)

        async def client(number: int, stopped: asyncio.Event) -> None:
            async with connect(server.uri, "stop-test") as conn:
                for i in range(CALLS):
                    title = f"client {number} call {i}"
                    call = conn.reducers.create_conversation(title)
                    call.add_done_callback(functools.partial(on_done, title))
                await stopped.wait()

        async def load_then_stop() -> None:
            stopped = asyncio.Event()
            clients = [asyncio.create_task(client(n, stopped)) for n in range(CLIENTS)]
            await until(lambda: len(acknowledged) >= CLIENTS * CALLS // 3)
            await asyncio.to_thread(server.stop)  # while acknowledgements still arrive
            stopped.set()
            await asyncio.gather(*clients, return_exceptions=True)

        asyncio.run(load_then_stop())
        assert not server.is_running()
        server.start()
        present = _titles(server, "stop-test")
        print(f"{len(acknowledged)} acknowledged, {len(present)} present after restart")
        assert len(acknowledged) >= CLIENTS * CALLS // 3
        assert set(acknowledged) - present == set()
    finally:
        server.stop()
