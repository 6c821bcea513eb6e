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


async def new_conversation(
    conn: DbConnection, *, private: bool = False, speakers: tuple[DbConnection, ...] = ()
) -> int:
    """A fresh conversation owned by ``conn``'s identity, with ``speakers`` admitted to
    post as user and assistant; returns its id."""
    await conn.subscribe("SELECT * FROM conversation")
    reducer = "create_private_conversation" if private else "create_conversation"
    row = await OwnInserts(conn).call(reducer, "conversation", f"chat test {uuid.uuid4().hex[:8]}")
    for speaker in speakers:
        await conn.reducers.admit_participant(row.id, speaker.identity, ["user", "assistant"])
    return int(row.id)
