"""Helpers for the chat tests: connections and fresh conversations on the real server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from inner_universe.features.chat.inserts import OwnInserts
from inner_universe.spacetime.connection import DbConnection, connect
from tests.conftest import PublishedDatabase

# litellm's pydantic models warn about a typing qualifier when first used; not ours to fix.
READONLY_WARNING = "ignore:Item .* is using the `ReadOnly` qualifier"


@pytest.fixture
async def alice(universe_db: PublishedDatabase) -> AsyncIterator[DbConnection]:
    async with connect(universe_db.uri, universe_db.name) as conn:
        yield conn


@pytest.fixture
async def bob(universe_db: PublishedDatabase) -> AsyncIterator[DbConnection]:
    async with connect(universe_db.uri, universe_db.name) as conn:
        yield conn


async def new_conversation(conn: DbConnection) -> int:
    """A fresh conversation owned by ``conn``'s identity; returns its id."""
    await conn.subscribe("SELECT * FROM conversation")
    row = await OwnInserts(conn).call(
        "create_conversation", "conversation", f"chat test {uuid.uuid4().hex[:8]}"
    )
    return int(row.id)
