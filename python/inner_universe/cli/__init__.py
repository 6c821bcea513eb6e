"""The ``inner-universe`` command: plain commands (typer) and a live terminal UI (Textual).

Its dependencies are the ``cli`` extra (``pip install 'inner-universe[cli]'``); the
SDK itself never imports them.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 error, 2 bad usage)."""
    try:
        from .commands import run
    except ModuleNotFoundError as exc:
        if exc.name in ("typer", "rich", "click"):
            print(
                f"error: the command line needs the cli extra ({exc.name} is missing): "
                "pip install 'inner-universe[cli]'",
                file=sys.stderr,
            )
            return 1
        raise
    return run(argv)
