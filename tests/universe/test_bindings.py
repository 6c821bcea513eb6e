"""The generated typed bindings of the Inner Universe module: current, typed, and working."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api as mypy_api

from inner_universe.spacetime import connect, fetch_schema
from inner_universe.universe.bindings import Conversation, Message
from inner_universe.universe.generate import BINDINGS, COMMAND, bindings_source

from ..conftest import PublishedDatabase
from .typed_example import post_and_read

EXAMPLE = Path(__file__).with_name("typed_example.py")


@pytest.mark.integration
def test_bindings_are_generated_from_the_current_module(universe_db: PublishedDatabase) -> None:
    schema = fetch_schema(universe_db.uri, universe_db.name)
    assert bindings_source(schema) == BINDINGS.read_text(), (
        f"python/inner_universe/universe/bindings.py is stale: run `{COMMAND}`"
    )


@pytest.mark.integration
async def test_the_typed_example_runs_against_the_module(universe_db: PublishedDatabase) -> None:
    async with connect(universe_db.uri, universe_db.name) as conn:
        conversation, messages = await post_and_read(conn, "hello")
    assert type(conversation) is Conversation  # rows decode into the generated classes
    assert [(type(m), m.content, m.role) for m in messages] == [(Message, "hello", "user")]


def mypy_strict(*files: Path) -> tuple[str, int]:
    out, err, status = mypy_api.run(["--strict", "--no-incremental", *map(str, files)])
    return out + err, status


def test_mypy_strict_accepts_the_example() -> None:
    out, status = mypy_strict(EXAMPLE)
    assert status == 0, out


def test_mypy_strict_rejects_wrong_types(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from inner_universe.spacetime import DbConnection\n"
        "from inner_universe.spacetime.events import ReducerEvent\n"
        "from inner_universe.universe.bindings import Module\n\n\n"
        "def g(event: ReducerEvent) -> None:\n"
        '    event.reducer = "another"\n\n\n'
        "async def f(conn: DbConnection) -> str:\n"
        "    universe = Module(conn)\n"
        '    await universe.reducers.post_message("1", "user", "x")\n'
        "    row = universe.db.agent.find_by_id(1)\n"
        "    print(row.version)\n"
        "    assert row is not None\n"
        "    return row.version\n"
    )
    out, status = mypy_strict(wrong)
    assert status == 1
    assert 'Argument 1 to "post_message" of "Reducers" has incompatible type "str"' in out
    assert 'Item "None" of "Agent | None" has no attribute "version"' in out
    assert 'Incompatible return value type (got "int", expected "str")' in out
    assert 'Property "reducer" defined in "ReducerEvent" is read-only' in out
    assert "Found 4 errors" in out
