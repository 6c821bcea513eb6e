"""The Inner Universe SpacetimeDB module, as seen from Python."""

from __future__ import annotations
