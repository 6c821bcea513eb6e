"""TokenFile: a client's token kept between runs, in a file only its owner can read."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from inner_universe.errors import UsageError
from inner_universe.spacetime import connect
from inner_universe.spacetime.credentials import TokenFile, credentials_dir
from tests.conftest import PublishedDatabase

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_default_directory_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert credentials_dir() == tmp_path / "xdg" / "inner-universe" / "credentials"
    assert TokenFile("planner").path == credentials_dir() / "planner"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert credentials_dir() == tmp_path / "home" / ".config" / "inner-universe" / "credentials"


def test_save_load_forget(tmp_path: Path) -> None:
    tokens = TokenFile("planner", directory=tmp_path / "creds")
    assert tokens.load() is None
    path = tokens.save(TOKEN)
    assert path == tmp_path / "creds" / "planner"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert tokens.load() == TOKEN
    assert TokenFile("planner", directory=tmp_path / "creds").load() == TOKEN  # another run
    tokens.save(TOKEN + "x")  # replaces
    assert tokens.load() == TOKEN + "x"
    assert sorted(p.name for p in path.parent.iterdir()) == ["planner"]  # no temp file left
    assert tokens.forget() is True
    assert tokens.load() is None
    assert tokens.forget() is False


def test_repr_shows_the_path_not_the_token(tmp_path: Path) -> None:
    tokens = TokenFile("planner", directory=tmp_path)
    tokens.save(TOKEN)
    assert TOKEN not in repr(tokens)
    assert "planner" in repr(tokens)


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    tokens = TokenFile("planner", directory=tmp_path)
    tokens.save(TOKEN)
    tokens.path.chmod(0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        tokens.load()
    tokens.save(TOKEN)  # saving again makes it private
    assert mode(tokens.path) == 0o600
    assert tokens.load() == TOKEN


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", ".hidden", "sp ace"])
def test_names_must_be_plain_file_names(name: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="plain file name"):
        TokenFile(name, directory=tmp_path)


@pytest.mark.parametrize("token", ["", "two words", "line\n"])
def test_bad_tokens_are_refused_and_nothing_is_written(token: str, tmp_path: Path) -> None:
    tokens = TokenFile("planner", directory=tmp_path / "creds")
    with pytest.raises(UsageError, match="token"):
        tokens.save(token)
    assert not (tmp_path / "creds").exists()


@pytest.mark.integration
async def test_a_saved_token_brings_back_the_same_identity(
    universe_db: PublishedDatabase, tmp_path: Path
) -> None:
    tokens = TokenFile("agent", directory=tmp_path)
    async with connect(universe_db.uri, universe_db.name, token=tokens.load()) as first:
        assert first.token is not None
        tokens.save(first.token)
        identity = first.identity
    async with connect(universe_db.uri, universe_db.name, token=tokens.load()) as second:
        assert second.identity == identity
