"""Ready-made handlers, for trying a worker from the command line and for benchmarks.

    python -m inner_universe.features.delegation --uri ... --database ... \\
        --name echoer --capability echo --handler inner_universe.features.delegation.handlers:echo
"""

from __future__ import annotations

import asyncio
from typing import Any

from .worker import TaskContext

__all__ = ["echo", "sleep"]


async def echo(task: TaskContext) -> Any:
    """Returns the payload."""
    return task.payload


async def sleep(task: TaskContext) -> float:
    """Sleeps for ``payload`` seconds (stands for work of that length), returns it."""
    seconds = float(task.payload)
    await asyncio.sleep(seconds)
    return seconds
