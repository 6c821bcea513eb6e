"""What every command shares: the target server, the consoles, one-line errors, running an action.

The plain commands (commands.py) and each feature's commands (docs.py, tasks.py,
chat.py) use these, so an error reads the same and every command connects the same way.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from ..app import Universe
from ..errors import InnerUniverseError
from ..home import DEFAULT_DATABASE

__all__ = ["Count", "Target", "err", "fail", "friendly_errors", "out", "run_action", "target"]

Count = Annotated[int | None, typer.Option("--count", "-n", help="Stop after this many changes.")]
"""The ``--count`` option of the commands that print changes live."""

P = ParamSpec("P")
R = TypeVar("R")

# No markup: rows and server messages are data, and may hold anything, brackets included.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


class Target:
    """Which server and database the commands act on (from the global options)."""

    def __init__(self, uri: str | None, database: str) -> None:
        self.uri = uri
        self.database = database

    def universe(self) -> Universe:
        return Universe(self.uri, self.database, start_server=False)


target = Target(None, DEFAULT_DATABASE)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(Text.assemble(("error:", "red"), f" {message}"))
    return typer.Exit(code)


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the package's errors into one line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (InnerUniverseError, TimeoutError, OSError) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise fail(text) from None

    return wrapper


def run_action(action: Callable[..., Awaitable[R]], *args: Any) -> R:
    """Open the target's Universe, run one async action in it, close it."""

    async def main() -> R:
        async with target.universe() as universe:
            return await action(universe, *args)

    return asyncio.run(main())
