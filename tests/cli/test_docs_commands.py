"""``docs add`` and ``docs search`` through typer's test runner, against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.runner import assert_one_line_error, invoke, on
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration

TRAINS = "# Trains\n\nThe night train to Vienna leaves at ten from platform four.\n"
GARDEN = "Tomatoes need sun, water in the morning, and a stake once they flower.\n"
SECRET = "# Plans\n\nThe launch codename is Marmalade Harbour.\n"


def test_add_then_search(universe_db: PublishedDatabase, user_home: Path, tmp_path: Path) -> None:
    (tmp_path / "trains.md").write_text(TRAINS)
    (tmp_path / "garden.txt").write_text(GARDEN)
    files = [str(tmp_path / "trains.md"), str(tmp_path / "garden.txt")]

    added = on(universe_db, "docs", "add", *files)
    assert added.exit_code == 0, added.output
    assert added.stdout.splitlines()[0].startswith("added trains.md: document ")
    assert added.stdout.splitlines()[1].startswith("added garden.txt: document ")

    again = on(universe_db, "docs", "add", *files)  # unchanged files make no reducer call
    assert [line.split(":")[0] for line in again.stdout.splitlines()] == [
        "unchanged trains.md",
        "unchanged garden.txt",
    ]

    for mode in ("hybrid", "vector", "lexical"):
        found = on(universe_db, "docs", "search", "when does the night train leave", "--json",
                   "--mode", mode, "--limit", "1")  # fmt: skip
        assert found.exit_code == 0, found.output
        hits = [json.loads(line) for line in found.stdout.splitlines()]
        assert [hit["title"] for hit in hits] == ["trains.md"], mode
        assert "platform four" in hits[0]["text"]

    text = on(universe_db, "docs", "search", "tomatoes")
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("[1] garden.txt, chunk 0")


def test_a_private_document_is_found_by_its_owner_only(
    universe_db: PublishedDatabase, user_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "plans.md").write_text(SECRET)
    added = on(universe_db, "docs", "add", "--private", str(tmp_path / "plans.md"))
    assert added.exit_code == 0, added.output

    query = ("docs", "search", "launch codename", "--json", "--mode", "lexical")
    mine = [json.loads(line)["title"] for line in on(universe_db, *query).stdout.splitlines()]
    assert "plans.md" in mine
    stranger = on(universe_db, *query, env={"XDG_CONFIG_HOME": str(tmp_path / "someone-else")})
    assert stranger.exit_code == 0, stranger.output
    assert "plans.md" not in stranger.stdout


def test_bad_input(universe_db: PublishedDatabase, user_home: Path, tmp_path: Path) -> None:
    (tmp_path / "slides.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "ok.md").write_text(TRAINS)
    missing = on(universe_db, "docs", "add", str(tmp_path / "ok.md"), str(tmp_path / "nope.md"))
    assert_one_line_error(missing, "nope.md", "no such file")
    assert_one_line_error(on(universe_db, "docs", "add", str(tmp_path / "slides.pdf")), ".pdf")
    assert_one_line_error(on(universe_db, "docs", "search", "  "), "query is empty")
    bad_mode = on(universe_db, "docs", "search", "trains", "--mode", "fuzzy")
    assert_one_line_error(bad_mode, "unknown search mode 'fuzzy'", code=2)
    # Nothing was stored by the refused add.
    assert "ok.md" not in on(universe_db, "sql", "SELECT * FROM document").stdout
    assert invoke("docs", "add").exit_code == 2
