"""LocalServer: starting, publishing, failing loudly, and leaving no process behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inner_universe.errors import ServerError, SetupError
from inner_universe.spacetime.server import LocalServer, find_server_binary
from tests.conftest import PublishedDatabase


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
