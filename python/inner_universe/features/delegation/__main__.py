"""Run a worker process: ``python -m inner_universe.features.delegation --help``.

It connects, registers its agent with the given capabilities, runs the handler
(``package.module:function``, an ``async def handler(task: TaskContext)``) for
every task it takes, and prints one JSON line when ready (with its pid, agent id
and token) and one when it stops (on SIGTERM or SIGINT) with what it did.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import sys
from typing import cast

from ...spacetime.connection import connect
from ...spacetime.types import Identity
from .worker import Handler, Worker


def load_handler(path: str) -> Handler:
    """``package.module:function`` -> the function."""
    module_name, _, function = path.partition(":")
    if not function:
        raise SystemExit(f"--handler must look like package.module:function, not {path!r}")
    return cast(Handler, getattr(importlib.import_module(module_name), function))


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def serve(args: argparse.Namespace) -> None:
    handler = load_handler(args.handler)
    async with connect(args.uri, args.database) as conn:
        worker = Worker(
            conn,
            args.name,
            args.capability,
            handler,
            concurrency=args.concurrency,
            history=not args.no_history,
            history_readers=[Identity.from_hex(h) for h in args.history_reader],
            uri=args.uri,
            database=args.database,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await worker.start()
        emit("ready", pid=os.getpid(), agent_id=worker.agent_id, token=conn.token)
        await stop.wait()
        await worker.stop()
        emit(
            "stopped",
            completed=worker.stats.completed,
            failed=worker.stats.failed,
            stopped=worker.stats.stopped,
            refused=worker.stats.refused,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inner_universe.features.delegation", description=__doc__
    )
    parser.add_argument("--uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--name", required=True, help="the agent's name (unique)")
    parser.add_argument("--capability", action="append", default=[], help="repeatable")
    parser.add_argument("--handler", required=True, help="package.module:function")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--no-history", action="store_true", help="do not record transitions")
    parser.add_argument(
        "--history-reader", action="append", default=[], help="identity (hex) that may read it"
    )
    asyncio.run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
