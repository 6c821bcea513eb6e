"""Shared fixtures: a real local SpacetimeDB with the Inner Universe module published.

They come from the package's own pytest plugin (inner_universe.testing.plugin),
under the names this suite has always used: one server for the whole session
(``local_server``), a fresh database per test module (``universe_db``) or per test
(``fresh_db``). Nothing here stands in for the server: a missing binary or module
fails loudly with the setup command that provides it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from inner_universe.spacetime.server import LocalServer
from inner_universe.testing import PublishedDatabase, publish_fresh, until

# pytest-xdist's workers inherit COLUMNS=80, and rich fixes a console's width from it when
# the console is made (the CLI's, at import): the command tests set their own per call.
os.environ.pop("COLUMNS", None)

# Nothing the suite runs may read or write the user's own identities or server state:
# test servers reuse ports, so a token stored for one under the real config folder would
# be offered to a later server that never issued it (HTTP 401). Each process of the run
# (each xdist worker, and the CLI processes it starts) gets folders of its own.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="iu-home-"))
atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)
os.environ["XDG_CONFIG_HOME"] = str(_SESSION_HOME / "config")
os.environ["XDG_DATA_HOME"] = str(_SESSION_HOME / "data")
for _explicit in ("INNER_UNIVERSE_CONFIG_DIR", "INNER_UNIVERSE_DATA_DIR"):
    os.environ.pop(_explicit, None)

pytest_plugins = ["inner_universe.testing.plugin"]

__all__ = ["PublishedDatabase", "publish_fresh", "until"]


@pytest.fixture(scope="session")
def local_server(spacetimedb_server: LocalServer) -> LocalServer:
    return spacetimedb_server


@pytest.fixture(scope="module")
def module_wasm(spacetimedb_module: bytes) -> bytes:
    return spacetimedb_module


@pytest.fixture(scope="module")
def universe_db(spacetimedb_db: PublishedDatabase) -> PublishedDatabase:
    """A fresh database with the module published, for one test module."""
    return spacetimedb_db


@pytest.fixture
def fresh_db(fresh_spacetimedb_db: PublishedDatabase) -> PublishedDatabase:
    """A fresh database for one test, when a test needs an empty start."""
    return fresh_spacetimedb_db


@pytest.fixture
def user_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's data and config folders of their own (XDG), for the local server and identity.

    Kept short: the server's data directory path ends up in socket paths.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    return home
