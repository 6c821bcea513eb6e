"""The knowledge extra stays out of the way: heavy libraries load only when used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("numpy", "wordllama", "tantivy", "marshmallow", "litellm")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_sdk_imports_none_of_them() -> None:
    assert loaded_after("import inner_universe.spacetime") == set()


def test_the_knowledge_package_loads_the_model_and_tantivy_only_when_used() -> None:
    loaded = loaded_after("import inner_universe.features.knowledge")
    assert "wordllama" not in loaded and "tantivy" not in loaded and "litellm" not in loaded
