"""The plain commands through typer's test runner, against a real server."""

from __future__ import annotations

import json
import signal
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inner_universe.cli.commands import app
from inner_universe.home import config_home, identity_of, load_identity
from inner_universe.spacetime.connection import ConnectionBuilder
from inner_universe.spacetime.types import Identity
from tests.cli.runner import assert_one_line_error, invoke, on
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def with_agents(universe_db: PublishedDatabase) -> PublishedDatabase:
    """The module's database with two agents, registered by another identity."""
    builder = ConnectionBuilder().with_uri(universe_db.uri).with_database(universe_db.name)
    with builder.connect_threaded() as conn:
        conn.reducers.register_agent("planner", "planning", b"")
        conn.reducers.register_agent("researcher", "research", b"")
    return universe_db


def test_sql_prints_a_table_and_json(with_agents: PublishedDatabase, user_home: Path) -> None:
    result = on(with_agents, "sql", "SELECT * FROM agent")
    assert result.exit_code == 0, result.output
    assert "agent: 2 rows" in result.stdout
    assert "planner" in result.stdout and "researcher" in result.stdout

    result = on(with_agents, "sql", "SELECT * FROM agent WHERE name = 'planner'", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["table"], r["row"]["name"], r["row"]["role"]) for r in rows] == [
        ("agent", "planner", "planning")
    ]


def test_status_shows_tables_counts_and_sessions(
    with_agents: PublishedDatabase, user_home: Path
) -> None:
    assert on(with_agents, "identity").exit_code == 0  # the identity the commands use
    stored = load_identity(with_agents.uri)
    assert stored is not None
    builder = ConnectionBuilder().with_uri(with_agents.uri).with_database(with_agents.name)
    with builder.with_token(stored.token).connect_threaded() as other:
        result = on(with_agents, "status", "--json")
        assert result.exit_code == 0, result.output
        info = json.loads(result.stdout)
        assert info["tables"]["agent"] == 2
        assert info["database"] == with_agents.name and info["local"] is False
        # Each identity sees its own sessions: the other connection of this identity.
        assert [s["connection_id"] for s in info["sessions"]] == [str(other.connection_id)]

        text = on(with_agents, "status").stdout
        assert "agent" in text and "1 other connections" in text and with_agents.name in text


def test_identity_is_created_once_in_a_private_file(
    universe_db: PublishedDatabase, user_home: Path
) -> None:
    first = on(universe_db, "identity", "--json")
    assert first.exit_code == 0, first.output
    created = json.loads(first.stdout)
    assert created["created"] is True
    path = Path(created["file"])
    assert path.parent.parent == config_home() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert identity_of(path.read_text().strip()) == Identity.from_hex(created["identity"])

    again = json.loads(on(universe_db, "identity", "--json").stdout)
    assert again["created"] is False and again["identity"] == created["identity"]


def test_bad_input_is_one_line_and_exit_1(universe_db: PublishedDatabase, user_home: Path) -> None:
    assert_one_line_error(on(universe_db, "sql", "SELEC nonsense"), "query failed")
    assert_one_line_error(on(universe_db, "sql", "SELECT * FROM nowhere"), "nowhere")
    assert_one_line_error(on(universe_db, "watch", "nowhere"), "no table named 'nowhere'")
    assert_one_line_error(on(universe_db, "watch", "agent", "--where", "nope ="), "subscription")
    assert_one_line_error(invoke("--uri", universe_db.uri, "-d", "no-such-db", "sql", "SELECT 1"))


def test_no_server_running(user_home: Path) -> None:
    assert_one_line_error(invoke("sql", "SELECT * FROM agent"), "inner-universe up")
    status = invoke("status")
    assert status.exit_code == 3 and "not running" in status.stdout
    assert json.loads(invoke("status", "--json").stdout) == {"running": False}
    assert invoke("down").stdout.strip() == "no local server is running"
    assert_one_line_error(invoke("tui"), "inner-universe up")


def test_up_without_a_built_module_names_the_setup_script(user_home: Path, tmp_path: Path) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    result = CliRunner().invoke(app, ["up"], env={"INNER_UNIVERSE_CACHE": str(tmp_path)})
    assert_one_line_error(result, "not built", "scripts/setup")
    # A failed start puts the signal handlers back (they would turn a later SIGTERM into a
    # KeyboardInterrupt wherever the process happened to be).
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers


def test_logs_only_with_v(universe_db: PublishedDatabase, user_home: Path) -> None:
    quiet = on(universe_db, "sql", "SELECT * FROM agent")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    loud = invoke("-v", "--uri", universe_db.uri, "-d", universe_db.name, "status")
    assert f"INFO inner_universe.app: connected to {universe_db.uri}" in loud.stderr


def test_usage_errors_exit_2() -> None:
    assert invoke("no-such-command").exit_code == 2
    assert invoke("sql").exit_code == 2
