"""Shared fixtures: a real local SpacetimeDB with the Inner Universe module published.

One server process serves the whole session; each test module gets its own
database (a fresh name), deleted when the module's tests are done. Nothing here
stands in for the server: a missing binary or module fails loudly with the setup
command that provides it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from inner_universe.spacetime.server import LocalServer
from inner_universe.universe.module import find_module_wasm


@dataclass(frozen=True)
class PublishedDatabase:
    """A database with the Inner Universe module, on the session's server."""

    server: LocalServer
    name: str

    @property
    def uri(self) -> str:
        return self.server.uri


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@pytest.fixture(scope="session")
def module_wasm() -> bytes:
    return find_module_wasm().read_bytes()


def publish_fresh(server: LocalServer, wasm: bytes, prefix: str = "iu-test") -> PublishedDatabase:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    server.publish_module(wasm, name)
    return PublishedDatabase(server, name)


@pytest.fixture(scope="module")
def universe_db(local_server: LocalServer, module_wasm: bytes) -> Iterator[PublishedDatabase]:
    """A fresh database with the module published, for one test module."""
    db = publish_fresh(local_server, module_wasm)
    yield db
    local_server.delete_database(db.name)


@pytest.fixture
def fresh_db(local_server: LocalServer, module_wasm: bytes) -> Iterator[PublishedDatabase]:
    """A fresh database for one test, when a test needs an empty start."""
    db = publish_fresh(local_server, module_wasm)
    yield db
    local_server.delete_database(db.name)


async def until(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Wait until ``predicate()`` holds: rows from other clients arrive asynchronously."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
