"""LocalServer: run a SpacetimeDB standalone server on this machine and talk to its HTTP API.

It starts ``spacetimedb-standalone start`` on 127.0.0.1 (never 0.0.0.0) at a free
port with its own data directory, waits until ``/v1/ping`` answers, publishes
modules with an owner identity it creates, and stops the process it started,
also at interpreter exit.

Stopping loses nothing. SpacetimeDB 1.2 acknowledges a transaction once it is
committed in memory and queued for the commit log; a background task writes that
queue to the log file one transaction at a time, and fsyncs the file every 500 ms
(``spacetimedb-durability`` 1.2.0). The server handles no signal: SIGINT or SIGTERM
end it at once, and whatever is still queued is lost (under two clients pipelining,
hundreds of acknowledged calls). So :meth:`LocalServer.stop` first waits until the
commit log file has stopped growing for three fsync intervals (the queue is drained
and synced), then terminates the process. :meth:`~LocalServer.kill` is the crash
(SIGKILL, nothing waited for), for fault tests; :meth:`~LocalServer.start` again (or
:meth:`~LocalServer.restart`) brings the same data back on the same port.

Secrets stay private: the data directory is 0700 and the server runs with umask
077, so the token-signing private key (``keys/id_ecdsa``) and everything else it
writes is readable by its owner only; an existing directory is tightened before
the server starts. ``repr`` of :class:`Credentials` leaves the token out.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ServerError, SetupError
from .types import Identity

__all__ = ["SPACETIMEDB_VERSION", "Credentials", "LocalServer", "cache_dir", "find_server_binary"]

SPACETIMEDB_VERSION = "1.2.0"
SETUP_COMMAND = "scripts/setup"
_LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1
#: How often spacetimedb-durability 1.2.0 fsyncs the commit log (its default).
COMMITLOG_SYNC_INTERVAL = 0.5


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
    token: str = field(repr=False)  # a credential: keep it out of logs and tracebacks


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``port``.

    SO_REUSEADDR, as the server itself binds: connections of a stopped server that
    linger in TIME_WAIT do not make the port look taken (on Linux a live listener
    still does).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _make_private(path: Path, mode: int) -> None:
    """Give ``path`` (if it exists) ``mode``: tightening what an earlier run left wider."""
    if path.exists() and not path.is_symlink():
        path.chmod(mode)


def _commitlog_size(data_dir: Path) -> int:
    """Bytes in the server's commit log segments (what has reached the disk)."""
    return sum(path.stat().st_size for path in data_dir.glob("replicas/*/clog/*.stdb.log"))


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

    Lifecycle: :meth:`start`, :meth:`stop` (clean: nothing acknowledged is lost),
    :meth:`kill` (a crash), :meth:`restart`; after stop or kill, :meth:`start` runs
    it again on the same port and data directory.

    Args:
        data_dir: where the server keeps its data (made 0700, its keys 0600); a
            temporary directory (deleted on stop) when omitted.
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
        """Start the process and wait until it answers; raises ServerError with its log tail.

        After :meth:`stop` or :meth:`kill`, ``start()`` runs the server again on the
        same port and data directory (a temporary one is fresh after :meth:`stop`).
        """
        if self.is_running():
            raise ServerError("this LocalServer is already running")
        self._end_process(graceful=False)  # a process that died by itself: forget it
        binary = self._binary or find_server_binary()
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="inner-universe-stdb-"))
            self.owner = None  # new keys: the owner of an earlier directory is unknown here
        self._secure_data_dir()

        port = self.port or self._requested_port
        if port is not None:
            if not _port_is_free(self.host, port):
                raise ServerError(f"port {self.host}:{port} is already in use")
            ports = [port]
        else:
            ports = [_free_port(self.host) for _ in range(3)]

        last_error: ServerError | None = None
        for port in ports:
            try:
                self._launch(binary, port)
                self._wait_until_ready()
            except ServerError as exc:
                last_error = exc
                self._end_process(graceful=False)
                # Another process took the free port between our check and the bind: retry.
                if "Address already in use" in str(exc) and len(ports) > 1:
                    continue
                raise
            if self.owner is None:
                self.owner = self.create_identity()
            return self
        assert last_error is not None
        raise last_error

    def _secure_data_dir(self) -> None:
        """The data directory 0700, its keys 0600; the server's umask keeps new files private."""
        keys = self.data_dir / "keys"
        keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        _make_private(self.data_dir, 0o700)
        _make_private(keys, 0o700)
        for key in ("id_ecdsa", "id_ecdsa.pub"):
            _make_private(keys / key, 0o600)

    def _launch(self, binary: Path, port: int) -> None:
        keys = self.data_dir / "keys"
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
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(log_fd, "ab") as log:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                umask=0o077,  # the keys it generates, its data and logs: owner only
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

    def wait_until_durable(self, timeout: float = 30.0) -> bool:
        """Wait until what the server acknowledged is on disk; returns False after ``timeout``.

        SpacetimeDB 1.2 exposes no durable offset, so this watches the commit log
        file: once it has not grown for three fsync intervals, the queue of
        acknowledged transactions is written out and synced. With writes still
        arriving it never goes quiet; after ``timeout`` it gives up (the queue is
        normally far shorter, so calls acknowledged before this was called are
        written by then). Immediate for in-memory servers.
        """
        if self._in_memory or not self.is_running():
            return True
        quiet_for = 3 * COMMITLOG_SYNC_INTERVAL
        started = last_change = time.monotonic()
        size = _commitlog_size(self.data_dir / "data")
        while time.monotonic() - last_change < quiet_for:
            if time.monotonic() - started > timeout:
                return False
            time.sleep(0.05)
            now_size = _commitlog_size(self.data_dir / "data")
            if now_size != size:
                size, last_change = now_size, time.monotonic()
        return True

    def _end_process(self, *, graceful: bool, timeout: float = 10.0) -> None:
        if self._proc is not None:
            if graceful:
                self.wait_until_durable(timeout)
                _stop_process(self._proc, 5.0)
            else:
                self._proc.kill()
                self._proc.wait()
            if self._finalizer is not None:
                self._finalizer.detach()
                atexit.unregister(self._finalizer)
            self._proc = None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop without losing an acknowledged write, then remove a temporary data directory.

        Waits (up to ``timeout``) for the commit log to reach the disk (see
        :meth:`wait_until_durable`), terminates the process (killed if it does not
        end within 5 s), and deletes the data directory if this object created it.
        """
        self._end_process(graceful=True, timeout=timeout)
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: what its commit log had not yet written is lost.

        For fault tests: :meth:`start` brings it back on the same port and data
        directory (give ``data_dir``: an in-memory server keeps nothing).
        """
        self._end_process(graceful=False)

    def restart(self, timeout: float = 10.0) -> LocalServer:
        """Stop cleanly (losing nothing) and start again on the same port and data directory."""
        self._end_process(graceful=True, timeout=timeout)
        return self.start()

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
