"""Where the built Inner Universe module (wasm) lives, keyed by a hash of its sources.

``scripts/setup`` compiles ``server-module/`` once per distinct source tree and
caches the wasm as ``inner_universe_module-<hash>.wasm``; this module computes the
same hash so tests and the demo always publish the module built from the sources
they run with, never a stale one.

Run ``python -m inner_universe.universe.module hash`` to print the hash.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from ..errors import SetupError
from ..spacetime.server import SETUP_COMMAND, cache_dir

__all__ = ["find_module_wasm", "module_source_hash", "repo_root"]


def repo_root() -> Path:
    """The checkout this package runs from (it is installed editable from ``python/``)."""
    return Path(__file__).resolve().parents[3]


def _module_inputs(root: Path) -> list[Path]:
    module = root / "server-module"
    files = [p for p in module.rglob("*.rs") if "target" not in p.parts]
    files += [module / "Cargo.toml", root / "Cargo.toml", root / "Cargo.lock"]
    return sorted(p for p in files if p.is_file())


def module_source_hash(root: Path | None = None) -> str:
    """A short hash of everything that determines the module's wasm."""
    root = root or repo_root()
    digest = hashlib.sha256()
    for path in _module_inputs(root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def find_module_wasm() -> Path:
    """The wasm built from the current sources (or ``$INNER_UNIVERSE_MODULE_WASM``).

    Raises:
        SetupError: it has not been built yet; the message names the setup command.
    """
    explicit = os.environ.get("INNER_UNIVERSE_MODULE_WASM")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise SetupError(f"INNER_UNIVERSE_MODULE_WASM names {path}, which does not exist")
        return path
    path = cache_dir() / "module" / f"inner_universe_module-{module_source_hash()}.wasm"
    if not path.is_file():
        raise SetupError(
            f"the Inner Universe module is not built for the current sources ({path} is "
            f"missing); run `{SETUP_COMMAND}` to build it"
        )
    return path


def main(argv: list[str]) -> int:
    if argv == ["hash"]:
        print(module_source_hash())
        return 0
    if argv == ["path"]:
        print(find_module_wasm())
        return 0
    print("usage: python -m inner_universe.universe.module hash|path", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
