"""Fixtures for the module's live tests: two identities on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from inner_universe.spacetime.connection import DbConnection, connect
from tests.conftest import PublishedDatabase


@pytest.fixture
async def ab(fresh_db: PublishedDatabase) -> AsyncIterator[tuple[DbConnection, DbConnection]]:
    """Two connections, each as a new identity of its own ("a" and "b")."""
    async with (
        connect(fresh_db.uri, fresh_db.name) as a,
        connect(fresh_db.uri, fresh_db.name) as b,
    ):
        yield a, b
