"""Regenerate the Inner Universe module's typed bindings (``bindings.py``), in one command::

    python -m inner_universe.universe.generate

It publishes the module built from this checkout on a throwaway local server, reads
its schema and writes :mod:`inner_universe.universe.bindings`. A test regenerates
them the same way and fails if the file differs, so rerun this after changing the
module's tables or reducers (and ``scripts/setup``, which rebuilds the module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from ..spacetime.codegen import generate
from ..spacetime.schema import ModuleSchema

__all__ = ["BINDINGS", "COMMAND", "bindings_source", "main"]

BINDINGS: Final = Path(__file__).with_name("bindings.py")
COMMAND: Final = "python -m inner_universe.universe.generate"


def bindings_source(schema: ModuleSchema) -> str:
    """The source of ``bindings.py`` for the module's schema."""
    return generate(schema, "the Inner Universe module (server-module/)", COMMAND)


def main() -> None:
    from ..spacetime.connection import fetch_schema
    from ..spacetime.server import LocalServer
    from . import publish

    with LocalServer() as server:
        schema = fetch_schema(server.uri, publish(server))
    BINDINGS.write_text(bindings_source(schema))
    print(f"wrote {BINDINGS}")


if __name__ == "__main__":
    main()
