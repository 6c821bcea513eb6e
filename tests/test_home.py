"""The user's folders: the stored identity file and the local server's state file."""

from __future__ import annotations

import base64
import json
import socket
import stat
from pathlib import Path

import pytest

from inner_universe.errors import ModuleMigrationError, ServerError
from inner_universe.home import (
    LOCAL,
    RunningServer,
    config_home,
    data_home,
    find_running,
    load_identity,
    migration_refused,
    ping,
    save_identity,
    start_local_server,
    token_file,
)
from inner_universe.spacetime.connection import ConnectionBuilder
from inner_universe.spacetime.server import Credentials
from inner_universe.spacetime.types import Identity


def test_folders_follow_xdg_and_the_overrides(
    user_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert data_home() == user_home / "data" / "inner-universe"
    assert config_home() == user_home / "config" / "inner-universe"
    monkeypatch.setenv("INNER_UNIVERSE_CONFIG_DIR", str(user_home / "elsewhere"))
    assert config_home() == user_home / "elsewhere"


def token_for(identity: Identity) -> str:
    """A token of the shape SpacetimeDB issues: the identity is in its payload's claims."""
    claims = json.dumps({"hex_identity": identity.to_hex(), "iss": "localhost"}).encode()
    return f"header.{base64.urlsafe_b64encode(claims).decode().rstrip('=')}.signature"


def test_identities_are_kept_per_server_in_private_token_files(user_home: Path) -> None:
    assert load_identity(LOCAL) is None
    local_id, remote_id = Identity.from_hex("aa" * 32), Identity.from_hex("bb" * 32)
    local = Credentials(local_id, token_for(local_id))
    remote = Credentials(remote_id, token_for(remote_id))
    path = save_identity(LOCAL, local)
    save_identity("http://example:3000", remote)
    assert path == config_home() / "credentials" / "local"
    assert token_file("http://example:3000").path.name == "http-example-3000"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_identity(LOCAL) == local
    assert load_identity("http://example:3000") == remote


def test_a_token_without_an_identity_is_an_error(user_home: Path) -> None:
    token_file(LOCAL).save("not-a-jwt")
    with pytest.raises(ServerError, match="does not name its identity"):
        load_identity(LOCAL)


def test_a_state_file_of_a_dead_owner_is_forgotten(user_home: Path) -> None:
    state = data_home() / "server.json"
    state.parent.mkdir(parents=True)
    dead = 2**22 + 12345  # above the default pid_max: no such process
    record = {
        "uri": "http://127.0.0.1:1",
        "database": "inner-universe",
        "pid": dead,
        "server_pid": dead,
        "module_hash": "0" * 16,
        "data_dir": str(data_home() / "server"),
        "started_at": 0.0,
    }
    state.write_text(json.dumps(record))
    assert find_running() is None
    assert not state.exists()


@pytest.mark.integration
def test_the_local_server_comes_back_on_its_port_unless_it_is_taken(user_home: Path) -> None:
    server, _ = start_local_server()
    port = server.port
    server.stop()
    server, _ = start_local_server()
    try:
        assert server.port == port  # its clients reconnect by themselves
    finally:
        server.stop()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        server, state = start_local_server()
        try:
            assert server.port != port and ping(state.uri)
        finally:
            server.stop()


# What SpacetimeDB 1.2 answered when the module with per-identity provider rows was
# published over a database made by the module before it (its lines repeat).
REFUSED = """PUT /v1/database/inner-universe answered HTTP 400: Database update rejected: \
Errors occurred:
Reordering table provider requires a manual migration

Reordering table provider requires a manual migration

Removing a column spent_nano_usd from table provider requires a manual migration

Adding a column owner to table provider requires a manual migration
"""


def test_a_module_the_server_cannot_migrate_gets_a_clear_error() -> None:
    error = migration_refused(ServerError(REFUSED), "inner-universe")
    assert isinstance(error, ModuleMigrationError) and isinstance(error, ServerError)
    assert error.reasons == (
        "Reordering table provider requires a manual migration",
        "Removing a column spent_nano_usd from table provider requires a manual migration",
        "Adding a column owner to table provider requires a manual migration",
    )
    message = str(error)
    assert "inner-universe up --clear" in message and "--database" in message
    assert "Reordering table provider" in message and "\n" not in message
    assert migration_refused(ServerError("HTTP 500: out of disk"), "inner-universe") is None


@pytest.mark.integration
def test_clear_starts_the_database_afresh_and_rows_survive_otherwise(user_home: Path) -> None:
    def agents(state: RunningServer) -> int:
        [result] = server.sql(state.database, "SELECT * FROM agent")
        return len(result["rows"])

    server, state = start_local_server()
    try:
        builder = ConnectionBuilder().with_uri(state.uri).with_database(state.database)
        with builder.connect_threaded() as conn:
            conn.reducers.register_agent("kept", "r", b"")
    finally:
        server.stop()
    server, state = start_local_server()  # rows survive a restart
    try:
        assert agents(state) == 1
    finally:
        server.stop()
    server, state = start_local_server(clear=True)
    try:
        assert agents(state) == 0
    finally:
        server.stop()
