"""The pytest plugin as a user runs it: in a project of their own, loaded with -p."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inner_universe.universe.module import find_module_wasm

pytestmark = pytest.mark.integration

# The example of docs/cli.md, with the module chosen by the marker.
USER_TESTS = """
import pytest
from inner_universe.testing import PublishedDatabase, until

pytestmark = pytest.mark.spacetimedb_module({wasm!r})


async def test_two_clients_see_each_other(spacetimedb_db: PublishedDatabase) -> None:
    async with spacetimedb_db.universe() as alice, spacetimedb_db.universe() as bob:
        await bob.subscribe("SELECT * FROM agent")
        await alice.connection.reducers.register_agent("alice", "testing", b"")
        await until(lambda: any(a.name == "alice" for a in bob.connection.db.agent.iter()))


def test_each_test_can_have_a_fresh_database(
    spacetimedb_db: PublishedDatabase, fresh_spacetimedb_db: PublishedDatabase
) -> None:
    assert fresh_spacetimedb_db.name != spacetimedb_db.name
    assert fresh_spacetimedb_db.server is spacetimedb_db.server
"""


OPTIONS = ("-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", "test_agents.py")


def test_a_users_tests_get_a_server_and_fresh_databases(tmp_path: Path) -> None:
    (tmp_path / "test_agents.py").write_text(USER_TESTS.format(wasm=str(find_module_wasm())))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "inner_universe.testing.plugin", *OPTIONS],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
