"""``conn.db``'s table handles: which tables have row callbacks (what the driver asks per reply)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inner_universe.errors import NoSuchNameError, UsageError
from inner_universe.spacetime.cache import ClientCache
from inner_universe.spacetime.schema import ModuleSchema
from inner_universe.spacetime.tables import Tables

DATA = Path(__file__).parents[1] / "data"
SCHEMA = ModuleSchema.from_json(json.loads((DATA / "schema_inner_universe_v9.json").read_text()))


def on_row(ctx: Any, row: Any) -> None:
    pass


def on_change(ctx: Any, old: Any, new: Any) -> None:
    pass


def test_the_watched_set_names_the_tables_with_a_row_callback_as_they_come_and_go() -> None:
    watched: set[str] = set()
    tables = Tables(ClientCache(SCHEMA).tables, watched)
    assert watched == set()
    tables.conversation.on_insert(on_row)
    tables.conversation.on_update(on_change)
    tables.agent.on_delete(on_row)
    assert watched == {"conversation", "agent"}
    tables.conversation.remove_on_insert(on_row)
    assert watched == {"conversation", "agent"}  # its update callback is left
    tables.conversation.remove_on_update(on_change)
    assert watched == {"agent"}
    with pytest.raises(UsageError):
        tables.agent.remove_on_insert(on_row)  # never registered: nothing changes
    assert watched == {"agent"}
    tables.agent.remove_on_delete(on_row)
    assert watched == set()
    assert not any(handle.has_callbacks() for handle in tables)


def test_the_watched_set_is_no_attribute_that_could_hide_a_table() -> None:
    """``conn.db.x`` is table ``x`` whatever its name: the set lives with the connection."""
    tables = Tables(ClientCache(SCHEMA).tables, set())
    for name in ("watched", "_watched"):
        with pytest.raises(NoSuchNameError, match=f"no table named '{name}'"):
            getattr(tables, name)
