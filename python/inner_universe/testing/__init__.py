"""Testing with a real SpacetimeDB: a pytest plugin, and the helpers its fixtures use.

Load the plugin with ``pytest -p inner_universe.testing.plugin`` or by
installing the package (it registers a ``pytest11`` entry point); its fixtures:

=============================  ========  ==================================================
``spacetimedb_server``         session   a :class:`LocalServer` on 127.0.0.1 (in memory)
``spacetimedb_module``         module    the wasm to publish (the Inner Universe module, or
                                         ``@pytest.mark.spacetimedb_module(path)``)
``spacetimedb_db``             module    a fresh database with that module, one per test module
``fresh_spacetimedb_db``       function  a fresh database for one test
=============================  ========  ==================================================

Both databases are :class:`PublishedDatabase` (``.uri``, ``.name``, ``.universe()``),
deleted when their scope ends. :func:`until` waits for rows that arrive
asynchronously, without sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..spacetime.server import LocalServer

if TYPE_CHECKING:
    from ..app import Universe

__all__ = ["PublishedDatabase", "publish_fresh", "until"]


@dataclass(frozen=True)
class PublishedDatabase:
    """A database with a module published, on a test server."""

    server: LocalServer
    name: str

    @property
    def uri(self) -> str:
        return self.server.uri

    def universe(self, **kwargs: object) -> Universe:
        """A Universe on this database, with a new identity that is not stored."""
        from ..app import Universe  # imported here: loading the plugin stays light

        return Universe(self.uri, self.name, stored_identity=False, **kwargs)  # type: ignore[arg-type]


def publish_fresh(
    server: LocalServer, wasm: bytes | Path, prefix: str = "iu-test"
) -> PublishedDatabase:
    """Publish ``wasm`` as a database with a new name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    server.publish_module(wasm if isinstance(wasm, bytes) else wasm.read_bytes(), name)
    return PublishedDatabase(server, name)


async def until(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Wait until ``predicate()`` holds: rows from other clients arrive asynchronously."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
