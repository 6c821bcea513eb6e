"""Inner Universe: persistence and synchronisation for multi-agent Python systems on SpacetimeDB.

Subpackages:
    spacetime   the generic SpacetimeDB client SDK (any module)
    universe    the Inner Universe module: locating its build, a small facade
"""

from __future__ import annotations

__version__ = "0.1.0"
