"""NERV: in-process services over the replicated Inner Universe tables.

They consume the SDK cache's per-transaction diffs; ``adapters`` is the one
module that wires them to a live connection.
"""

from __future__ import annotations

__all__: list[str] = []
