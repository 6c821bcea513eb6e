"""The pytest plugin: a real local SpacetimeDB and fresh databases, as fixtures.

``pytest -p inner_universe.testing.plugin`` (or automatically, through the
package's ``pytest11`` entry point). Nothing starts until a test asks for a
fixture; one server serves the whole session and stops at its end. See
:mod:`inner_universe.testing` for the fixtures and ``docs/cli.md`` for an example.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..spacetime.server import LocalServer
from . import PublishedDatabase, publish_fresh

MARKER = "spacetimedb_module"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(path): publish this wasm module (path or bytes) for the test or test module",
    )


def _marked_module(node: pytest.Item | pytest.Collector) -> bytes | None:
    marker = node.get_closest_marker(MARKER)
    if marker is None:
        return None
    wasm = marker.args[0]
    return wasm if isinstance(wasm, bytes) else Path(wasm).read_bytes()


def _default_module() -> bytes:
    # Imported here: the Inner Universe module is only looked for when no other is chosen.
    from ..universe.module import find_module_wasm

    return find_module_wasm().read_bytes()


@pytest.fixture(scope="session")
def spacetimedb_server() -> Iterator[LocalServer]:
    """One SpacetimeDB server for the session, on 127.0.0.1, in memory."""
    with LocalServer() as server:
        yield server


@pytest.fixture(scope="module")
def spacetimedb_module(request: pytest.FixtureRequest) -> bytes:
    """The module the databases get: the module's marker, else the Inner Universe module.

    Override this fixture in a conftest.py to publish your own module everywhere.
    """
    return _marked_module(request.node) or _default_module()


@pytest.fixture(scope="module")
def spacetimedb_db(
    spacetimedb_server: LocalServer, spacetimedb_module: bytes
) -> Iterator[PublishedDatabase]:
    """A fresh database for one test module, deleted after its last test."""
    db = publish_fresh(spacetimedb_server, spacetimedb_module)
    yield db
    spacetimedb_server.delete_database(db.name)


@pytest.fixture
def fresh_spacetimedb_db(
    request: pytest.FixtureRequest, spacetimedb_server: LocalServer, spacetimedb_module: bytes
) -> Iterator[PublishedDatabase]:
    """A fresh database for one test (a marker on the test chooses its module)."""
    db = publish_fresh(spacetimedb_server, _marked_module(request.node) or spacetimedb_module)
    yield db
    spacetimedb_server.delete_database(db.name)
