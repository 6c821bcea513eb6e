"""LocalServer: run a SpacetimeDB standalone server on this machine and talk to its HTTP API.

It starts ``spacetimedb-standalone start`` on 127.0.0.1 (never 0.0.0.0) at a free
port with its own data directory, waits until ``/v1/ping`` answers, publishes
modules with an owner identity it creates, and stops the process it started
(terminate, then kill after a timeout), also at interpreter exit.

Failures are loud: a server that does not come up raises :class:`ServerError`
with the tail of its log; a missing binary raises :class:`SetupError` naming the
setup command; a port that is already taken is reported, never silently shared.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ServerError, SetupError
from .types import Identity

__all__ = ["SPACETIMEDB_VERSION", "Credentials", "LocalServer", "cache_dir", "find_server_binary"]

SPACETIMEDB_VERSION = "1.2.0"
SETUP_COMMAND = "scripts/setup"
_LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1


def cache_dir() -> Path:
    """Where setup caches builds: ``$INNER_UNIVERSE_CACHE`` or ``~/.cache/inner-universe``."""
    explicit = os.environ.get("INNER_UNIVERSE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inner-universe"


def find_server_binary() -> Path:
    """Locate ``spacetimedb-standalone``: ``$INNER_UNIVERSE_SPACETIMEDB``, the cache, or PATH."""
    explicit = os.environ.get("INNER_UNIVERSE_SPACETIMEDB")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(
        cache_dir() / f"spacetimedb-{SPACETIMEDB_VERSION}" / "bin" / "spacetimedb-standalone"
    )
    on_path = shutil.which("spacetimedb-standalone")
    if on_path:
        candidates.append(Path(on_path))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise SetupError(
        f"spacetimedb-standalone {SPACETIMEDB_VERSION} was not found (looked in: "
        f"{', '.join(str(p) for p in candidates)}); run `{SETUP_COMMAND}` to build it"
    )


@dataclass(frozen=True, slots=True)
class Credentials:
    """An identity and the token that proves it (send the token to act as that identity)."""

    identity: Identity
    token: str


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the other safeguards still apply
        return None


# Looked up once in the parent: after fork, the child only calls it (no dlopen there).
_prctl = _load_prctl() if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child, before exec: have the kernel SIGTERM it when its parent dies.

    atexit and finalizers cover normal exits and exceptions; this covers a parent that
    is killed outright (SIGKILL, a crashed test runner), so no server is left behind.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Terminate, wait, then kill: the process is gone when this returns."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class LocalServer:
    """A SpacetimeDB standalone server process owned by this Python process.

    Use it as a context manager::

        with LocalServer() as server:
            db = server.publish_module(Path("module.wasm"), "my-db")
            print(server.uri)

    Args:
        data_dir: where the server keeps its data; a temporary directory (deleted on
            stop) when omitted.
        in_memory: keep databases in memory only; defaults to True when ``data_dir``
            is omitted, so throwaway servers do not touch the disk.
        port: the port on 127.0.0.1; a free one when omitted. A taken port raises.
        binary: the ``spacetimedb-standalone`` executable; found by
            :func:`find_server_binary` when omitted.
        startup_timeout: seconds to wait for ``/v1/ping``.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        data_dir: Path | str | None = None,
        in_memory: bool | None = None,
        port: int | None = None,
        binary: Path | str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self._requested_port = port
        self._binary = Path(binary) if binary else None
        self._owns_data_dir = data_dir is None
        self._data_dir = Path(data_dir) if data_dir else None
        self._in_memory = (data_dir is None) if in_memory is None else in_memory
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, LocalServer] | None = None
        self.port = 0
        self.owner: Credentials | None = None

    # --- lifecycle --------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:41234``."""
        if not self.port:
            raise ServerError("the server has not been started")
        return f"http://{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise ServerError("the server has not been started")
        return self._data_dir

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> LocalServer:
        """Start the process and wait until it answers; raises ServerError with its log tail."""
        if self._proc is not None:
            raise ServerError("this LocalServer was already started")
        binary = self._binary or find_server_binary()
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="inner-universe-stdb-"))
        self._data_dir.mkdir(parents=True, exist_ok=True)

        if self._requested_port is not None:
            if not _port_is_free(self.host, self._requested_port):
                raise ServerError(f"port {self.host}:{self._requested_port} is already in use")
            ports = [self._requested_port]
        else:
            ports = [_free_port(self.host) for _ in range(3)]

        last_error: ServerError | None = None
        for port in ports:
            try:
                self._launch(binary, port)
                self._wait_until_ready()
            except ServerError as exc:
                last_error = exc
                self._kill()
                # Another process took the free port between our check and the bind: retry.
                if "Address already in use" in str(exc) and self._requested_port is None:
                    continue
                raise
            self.owner = self.create_identity()
            return self
        assert last_error is not None
        raise last_error

    def _launch(self, binary: Path, port: int) -> None:
        keys = self.data_dir / "keys"
        keys.mkdir(exist_ok=True)
        args = [
            str(binary),
            "start",
            "--data-dir",
            str(self.data_dir / "data"),
            "--listen-addr",
            f"{self.host}:{port}",
            "--jwt-pub-key-path",
            str(keys / "id_ecdsa.pub"),
            "--jwt-priv-key-path",
            str(keys / "id_ecdsa"),
        ]
        if self._in_memory:
            args.append("--in-memory")
        env = dict(os.environ, SPACETIMEDB_DISABLE_DISK_LOGGING="1")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent if _prctl is not None else None,
            )
        self.port = port
        # Whatever happens to this object or the interpreter, the child does not outlive us.
        self._finalizer = weakref.finalize(self, _stop_process, self._proc, 5.0)
        atexit.register(self._finalizer)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ServerError(
                    f"spacetimedb-standalone exited with code {self._proc.returncode} during "
                    f"startup; last lines of its log:\n{self.log_tail()}"
                )
            try:
                self._request("GET", "/v1/ping", timeout=1.0)
            except ServerError:
                time.sleep(0.1)
                continue
            if self._proc.poll() is None:  # the answer came from our process, still alive
                return
        raise ServerError(
            f"spacetimedb-standalone did not answer /v1/ping within {self._startup_timeout:.0f}s; "
            f"last lines of its log:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines the server process printed (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def _kill(self) -> None:
        if self._proc is not None:
            _stop_process(self._proc, 5.0)
            if self._finalizer is not None:
                self._finalizer.detach()
                atexit.unregister(self._finalizer)
            self._proc = None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process (terminate, then kill after ``timeout``) and remove temp data."""
        if self._proc is not None:
            _stop_process(self._proc, timeout)
        self._kill()
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- HTTP API ---------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        token: str | None = None,
        content_type: str | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.uri + path, data=body, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            raise ServerError(f"{method} {path} answered HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServerError(f"{method} {path} failed: {exc}") from None

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        _, _, data = self._request(method, path, **kwargs)
        return json.loads(data) if data else None

    def _owner_token(self, token: str | None) -> str:
        if token:
            return token
        if self.owner is None:
            raise ServerError("the server has not been started")
        return self.owner.token

    def create_identity(self) -> Credentials:
        """Mint a new identity on this server (``POST /v1/identity``)."""
        data = self._json("POST", "/v1/identity")
        return Credentials(Identity.from_hex(data["identity"]), data["token"])

    def publish_module(
        self,
        wasm: Path | str | bytes,
        name: str,
        *,
        token: str | None = None,
        clear: bool = False,
    ) -> str:
        """Publish (or update) a module as database ``name``; returns the database identity hex.

        The database is owned by ``token``'s identity (the server's owner identity by
        default). ``clear=True`` drops the existing data first.
        """
        body = wasm if isinstance(wasm, bytes) else Path(wasm).read_bytes()
        query = "?clear=true" if clear else ""
        result = self._json(
            "PUT",
            f"/v1/database/{urllib.parse.quote(name)}{query}",
            body=body,
            token=self._owner_token(token),
            content_type="application/wasm",
            timeout=120.0,
        )
        success = result.get("Success") if isinstance(result, dict) else None
        if not success:
            raise ServerError(f"publishing {name!r} failed: {result!r}")
        return str(success["database_identity"])

    def delete_database(self, name: str, *, token: str | None = None) -> None:
        self._request(
            "DELETE", f"/v1/database/{urllib.parse.quote(name)}", token=self._owner_token(token)
        )

    def schema(self, name: str) -> dict[str, Any]:
        """The database's RawModuleDefV9 as JSON (``GET /v1/database/{name}/schema?version=9``)."""
        result = self._json("GET", f"/v1/database/{urllib.parse.quote(name)}/schema?version=9")
        assert isinstance(result, dict)
        return result

    def sql(self, name: str, query: str, *, token: str | None = None) -> list[dict[str, Any]]:
        """Run SQL over HTTP (as the owner by default); returns the per-statement results."""
        result = self._json(
            "POST",
            f"/v1/database/{urllib.parse.quote(name)}/sql",
            body=query.encode(),
            token=self._owner_token(token),
            content_type="text/plain",
        )
        assert isinstance(result, list)
        return result

    def logs(self, name: str, num_lines: int = 100, *, token: str | None = None) -> list[str]:
        """The module's recent log messages (owner only)."""
        _, _, data = self._request(
            "GET",
            f"/v1/database/{urllib.parse.quote(name)}/logs?num_lines={num_lines}",
            token=self._owner_token(token),
        )
        messages = []
        for line in data.decode(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                messages.append(f"{record.get('level', '?')}: {record.get('message', '')}")
        return messages
