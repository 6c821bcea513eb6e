"""The user's folders: the stored identity file and the local server's state file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from inner_universe.home import (
    LOCAL,
    config_home,
    data_home,
    find_running,
    load_identity,
    save_identity,
)
from inner_universe.spacetime.server import Credentials
from inner_universe.spacetime.types import Identity


def test_folders_follow_xdg_and_the_overrides(
    user_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert data_home() == user_home / "data" / "inner-universe"
    assert config_home() == user_home / "config" / "inner-universe"
    monkeypatch.setenv("INNER_UNIVERSE_CONFIG_DIR", str(user_home / "elsewhere"))
    assert config_home() == user_home / "elsewhere"


def test_identities_are_kept_per_server_in_a_private_file(user_home: Path) -> None:
    assert load_identity(LOCAL) is None
    local = Credentials(Identity.from_hex("aa" * 32), "token-a")
    remote = Credentials(Identity.from_hex("bb" * 32), "token-b")
    path = save_identity(LOCAL, local)
    save_identity("http://example:3000", remote)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_identity(LOCAL) == local
    assert load_identity("http://example:3000") == remote


def test_a_state_file_of_a_dead_owner_is_forgotten(user_home: Path) -> None:
    state = data_home() / "server.json"
    state.parent.mkdir(parents=True)
    dead = 2**22 + 12345  # above the default pid_max: no such process
    record = {
        "uri": "http://127.0.0.1:1",
        "database": "inner-universe",
        "pid": dead,
        "server_pid": dead,
        "module_hash": "0" * 16,
        "data_dir": str(data_home() / "server"),
        "started_at": 0.0,
    }
    state.write_text(json.dumps(record))
    assert find_running() is None
    assert not state.exists()
