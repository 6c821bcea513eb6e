"""Quiet by default: the DiffSynchronizer prints nothing unless the program asks for logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration

# In a fresh interpreter: structlog's defaults are process-wide.
SYNC = """
import logging, sys
from pathlib import Path
from inner_universe.nerv.sync import DiffSynchronizer, LocalCopy
from inner_universe.spacetime import ConnectionBuilder

uri, database, path, verbose = sys.argv[1:]
if verbose == "yes":
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
builder = ConnectionBuilder().with_uri(uri).with_database(database)
with builder.connect_threaded() as conn:
    conn.reducers.register_agent("quiet-" + verbose, "planning", b"")
    copy = LocalCopy.open(Path(path))
    DiffSynchronizer(conn, copy).sync()
    copy = LocalCopy.open(Path(path))
    copy.put("document", {"title": "notes", "content": "written on a train"})
    copy.save()
    assert DiffSynchronizer(conn, LocalCopy.open(Path(path))).sync().ok
"""


def sync(db: PublishedDatabase, path: Path, verbose: bool) -> subprocess.CompletedProcess[str]:
    args = [db.uri, db.name, str(path), "yes" if verbose else "no"]
    return subprocess.run(
        [sys.executable, "-c", SYNC, *args], capture_output=True, text=True, timeout=60
    )


def test_diffsync_prints_nothing_unless_logging_is_configured(
    universe_db: PublishedDatabase, tmp_path: Path
) -> None:
    quiet = sync(universe_db, tmp_path / "quiet.msgpack", verbose=False)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "" and quiet.stderr == ""

    loud = sync(universe_db, tmp_path / "loud.msgpack", verbose=True)
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout == ""
    assert "Beginning sync" in loud.stderr  # diffsync's own line, through standard logging
