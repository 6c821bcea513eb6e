"""The Inner Universe SpacetimeDB module, as seen from Python.

:func:`publish` puts the module built from this checkout's ``server-module/``
onto a :class:`~inner_universe.spacetime.LocalServer` (or any server it manages).
"""

from __future__ import annotations

import uuid

from ..spacetime.server import LocalServer

__all__ = ["publish"]


def publish(server: LocalServer, name: str | None = None, *, clear: bool = False) -> str:
    """Publish the Inner Universe module as database ``name`` (a fresh name if omitted).

    Returns the database name to connect to.
    """
    # Imported here so `python -m inner_universe.universe.module` runs it only once.
    from .module import find_module_wasm

    name = name or f"inner-universe-{uuid.uuid4().hex[:8]}"
    server.publish_module(find_module_wasm(), name, clear=clear)
    return name
