"""A user's own Inner Universe: the local server's data, its running state, the stored identity.

Why a module of its own: ``inner-universe up``, ``down``, ``status`` and every
:class:`~inner_universe.app.Universe` opened without a URI must agree on one
place for the local server (a persistent data directory), on how to tell that
it is running (a state file naming the process that owns it), and on the
identity a user comes back as (the SDK's token file, one per server, readable by
the user alone).

Folders follow the XDG conventions: data under ``$XDG_DATA_HOME/inner-universe``
(``~/.local/share/inner-universe``), the identity under
``$XDG_CONFIG_HOME/inner-universe/credentials`` (``~/.config/inner-universe``);
``INNER_UNIVERSE_DATA_DIR`` / ``INNER_UNIVERSE_CONFIG_DIR`` override them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import ModuleMigrationError, ServerError
from .spacetime.credentials import TokenFile
from .spacetime.server import Credentials, LocalServer
from .spacetime.types import Identity

__all__ = [
    "DEFAULT_DATABASE",
    "LOCAL",
    "RunningServer",
    "config_home",
    "data_home",
    "find_running",
    "forget_running",
    "identity_of",
    "load_identity",
    "ping",
    "save_identity",
    "start_local_server",
    "stop_running",
    "token_file",
]

DEFAULT_DATABASE = "inner-universe"
LOCAL = "local"
"""The identity key of the user's own local server (its signing keys persist in its data dir)."""


def _xdg(env: str, fallback: str, override: str) -> Path:
    explicit = os.environ.get(override)
    if explicit:
        return Path(explicit)
    base = os.environ.get(env) or str(Path.home() / fallback)
    return Path(base) / "inner-universe"


def data_home() -> Path:
    """Where the local server keeps its databases and its state file."""
    return _xdg("XDG_DATA_HOME", ".local/share", "INNER_UNIVERSE_DATA_DIR")


def config_home() -> Path:
    """Where the stored identities live."""
    return _xdg("XDG_CONFIG_HOME", ".config", "INNER_UNIVERSE_CONFIG_DIR")


# --- stored identities -------------------------------------------------------------------
# One token per server, in the SDK's token files (0600, under the config folder).


def token_file(server_key: str) -> TokenFile:
    """The token file of a server: ``local``, or its URI made a plain file name."""
    name = server_key if server_key == LOCAL else re.sub(r"[^A-Za-z0-9._-]+", "-", server_key)
    return TokenFile(name.strip("-.") or "server", config_home() / "credentials")


def identity_of(token: str) -> Identity:
    """The identity a SpacetimeDB token proves (its ``hex_identity`` claim), read offline."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return Identity.from_hex(claims["hex_identity"])
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise ServerError(f"a stored token does not name its identity ({exc})") from None


def load_identity(server_key: str) -> Credentials | None:
    """The identity stored for a server (``LOCAL`` or its URI), if any."""
    token = token_file(server_key).load()
    return None if token is None else Credentials(identity_of(token), token)


def save_identity(server_key: str, credentials: Credentials) -> Path:
    """Store an identity's token for a server, in a file readable by the user alone (0600)."""
    return token_file(server_key).save(credentials.token)


# --- the running local server ------------------------------------------------------------


@dataclass(frozen=True)
class RunningServer:
    """What the process owning the local server records, for other processes to find it."""

    uri: str
    database: str
    pid: int
    """The process that owns the server (``inner-universe up`` or a Universe); stop it to stop."""
    server_pid: int
    module_hash: str
    data_dir: str
    started_at: float


def _state_path() -> Path:
    return data_home() / "server.json"


def _alive(pid: int) -> bool:
    """Is ``pid`` a live process (an exited child not yet reaped counts as gone)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def ping(uri: str, timeout: float = 2.0) -> bool:
    """Does a SpacetimeDB server answer at ``uri``?"""
    try:
        with urllib.request.urlopen(f"{uri}/v1/ping", timeout=timeout):
            return True
    except (urllib.error.URLError, OSError):
        return False


def find_running() -> RunningServer | None:
    """The local server if its owner is alive and it answers; a stale state file is removed."""
    try:
        state = RunningServer(**json.loads(_state_path().read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        _state_path().unlink(missing_ok=True)
        return None
    if _alive(state.pid) and _alive(state.server_pid) and ping(state.uri):
        return state
    if not _alive(state.pid):
        _state_path().unlink(missing_ok=True)
    return None


def _record(state: RunningServer) -> None:
    path = _state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def forget_running(pid: int) -> None:
    """Remove the state file if it is the one ``pid`` wrote."""
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        if json.loads(_state_path().read_text()).get("pid") == pid:
            _state_path().unlink()


def _port_path() -> Path:
    return data_home() / "server-port"


def _last_port() -> int | None:
    """The port the local server listened on last time (None if never started here)."""
    try:
        return int(_port_path().read_text())
    except (OSError, ValueError):
        return None


def _start_server(port: int | None) -> LocalServer:
    """The local server on ``port``; by default on its last port (else a free one).

    Coming back on the same port lets connected clients reconnect by themselves.
    """
    data_dir = data_home() / "server"
    last = _last_port() if port is None else None
    server = None
    if last is not None:
        with contextlib.suppress(ServerError):  # taken by something else since
            server = LocalServer(data_dir=data_dir, in_memory=False, port=last).start()
    if server is None:
        server = LocalServer(data_dir=data_dir, in_memory=False, port=port).start()
    _port_path().write_text(str(server.port))
    return server


def migration_refused(error: ServerError, database: str) -> ModuleMigrationError | None:
    """The clear error for a publish the server refused as needing a manual migration."""
    reasons = tuple(
        dict.fromkeys(
            line.strip()
            for line in str(error).splitlines()
            if line.strip().endswith("requires a manual migration")
        )
    )
    if not reasons:
        return None
    return ModuleMigrationError(
        f"database {database!r} holds tables of an older Inner Universe module that "
        f"SpacetimeDB cannot update in place ({reasons[0]}); start it afresh with "
        f"`inner-universe up --clear` (its rows are deleted) or use another database "
        f"with --database",
        reasons,
    )


def start_local_server(
    database: str = DEFAULT_DATABASE, *, port: int | None = None, clear: bool = False
) -> tuple[LocalServer, RunningServer]:
    """Start the user's local server on its persistent data directory and publish the module.

    The database and its rows survive restarts; publishing again updates the module
    in place. The module is published by the stored local identity (created on first
    start), which so owns the database and can run ``sql`` writes on it. Without a
    ``port``, the server listens where it did last time if that port is free, so the
    clients of a restarted server find it again. ``clear`` deletes the database's rows
    first; without it, a module whose tables cannot be updated in place raises
    :class:`ModuleMigrationError`.
    """
    # Imported here: the module's location is only needed when publishing.
    from .universe.module import find_module_wasm, module_source_hash

    wasm = find_module_wasm()  # before starting anything: a missing build is a SetupError
    server = _start_server(port)
    try:
        owner = load_identity(LOCAL)
        if owner is None:
            assert server.owner is not None
            owner = server.owner
            save_identity(LOCAL, owner)
        try:
            server.publish_module(wasm.read_bytes(), database, token=owner.token, clear=clear)
        except ServerError as exc:
            raise (migration_refused(exc, database) or exc) from exc
        assert server.pid is not None
        state = RunningServer(
            uri=server.uri,
            database=database,
            pid=os.getpid(),
            server_pid=server.pid,
            module_hash=module_source_hash(),
            data_dir=str(server.data_dir),
            started_at=time.time(),
        )
        _record(state)
    except BaseException:
        server.stop()
        raise
    return server, state


def stop_running(timeout: float = 15.0) -> RunningServer | None:
    """Ask the process owning the local server to stop (SIGTERM) and wait until it has.

    Returns what was running, or None if nothing was.
    """
    state = find_running()
    if state is None:
        return None
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(state.pid) or _alive(state.server_pid):
        if time.monotonic() > deadline:
            raise ServerError(
                f"the local server (owner pid {state.pid}, server pid {state.server_pid}) "
                f"did not stop within {timeout:.0f}s"
            )
        time.sleep(0.05)
    return state
