"""Worker processes: start ``python -m inner_universe.features.delegation`` and talk to it.

Used by the demo, the benchmark and the tests to run workers in separate processes.
The child prints one JSON line when it is ready (pid, agent id, token) and one when it
stops (what it completed); :class:`WorkerProcess` reads them, so callers wait on the
child's own word rather than on time.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ...errors import InnerUniverseError

__all__ = ["WorkerProcess", "WorkerProcessError"]


class WorkerProcessError(InnerUniverseError):
    """A worker process exited or said something other than what was expected."""


class WorkerProcess:
    """One worker in a child process; ``await WorkerProcess.start(...)`` returns when ready."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.ready: dict[str, Any] = {}
        self.report: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def agent_id(self) -> int:
        return int(self.ready["agent_id"])

    @property
    def token(self) -> str:
        return str(self.ready["token"])

    @classmethod
    async def start(
        cls,
        uri: str,
        database: str,
        name: str,
        capabilities: Sequence[str],
        handler: str,
        *,
        concurrency: int = 1,
        history: bool = True,
        history_readers: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> WorkerProcess:
        """Start the child; ``history_readers`` are identities (hex) that may read its history."""
        args = [
            "-m",
            "inner_universe.features.delegation",
            "--uri",
            uri,
            "--database",
            database,
            "--name",
            name,
            "--handler",
            handler,
            "--concurrency",
            str(concurrency),
        ]
        for capability in capabilities:
            args += ["--capability", capability]
        if not history:
            args.append("--no-history")
        for reader in history_readers:
            args += ["--history-reader", reader]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=asyncio.subprocess.PIPE
        )
        worker = cls(proc, name)
        worker.ready = await worker._expect("ready", timeout)
        return worker

    async def _expect(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                code = await self.proc.wait()
                raise WorkerProcessError(
                    f"worker {self.name!r} exited with {code} before saying {event!r}"
                )
            try:
                message: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                continue  # not one of ours (a handler's print)
            if message.get("event") == event:
                return message

    async def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """SIGTERM, then the child's report of what it did."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            self.report = await self._expect("stopped", timeout)
            await asyncio.wait_for(self.proc.wait(), timeout)
        return self.report

    async def kill(self) -> None:
        """SIGKILL by pid: the child gets no chance to report anything."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
