"""What every benchmark prints first: the machine and the versions its figures belong to."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version

from inner_universe.spacetime import codec
from inner_universe.spacetime.server import SPACETIMEDB_VERSION


def machine(*packages: str) -> str:
    """One line: CPU, cores, Python, SpacetimeDB, the codec in use, and ``packages``' versions."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    versions = "".join(f"; {name} {version(name)}" for name in packages)
    return (
        f"{platform.machine()} {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"SpacetimeDB {SPACETIMEDB_VERSION}{versions}; codec {codec.IMPLEMENTATION}"
    )
