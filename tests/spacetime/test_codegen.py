"""The bindings generator on schemas from files (the live module is tests/universe's)."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

from inner_universe.errors import SchemaError
from inner_universe.spacetime import sats
from inner_universe.spacetime.codegen import generate, main
from inner_universe.spacetime.sats import attribute_name
from inner_universe.spacetime.schema import ModuleSchema

DATA = Path(__file__).parent.parent / "data"
SCHEMAS = sorted(DATA.glob("schema_*_v9.json"))


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_output_is_stable_and_imports(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importing the output registers its row classes: keep that to this test.
    monkeypatch.setattr(sats, "_REGISTERED_CLASSES", dict(sats._REGISTERED_CLASSES))
    schema = ModuleSchema.from_json(path.read_bytes())
    source = generate(schema, "a test module", "regenerate")
    assert source == generate(
        ModuleSchema.from_json(path.read_bytes()), "a test module", "regenerate"
    )
    assert all(len(line) <= 100 for line in source.splitlines())
    target = tmp_path / f"bindings_{path.stem}.py"
    target.write_text(source)
    spec = importlib.util.spec_from_file_location(target.stem, target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[target.stem] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[target.stem]
    for table in schema.tables.values():
        row_class = getattr(module, schema.typespace.product_class(table.product_type_ref).__name__)
        assert list(row_class.__dataclass_fields__) == [attribute_name(c) for c in table.columns]


def test_command_line_writes_the_module(tmp_path: Path) -> None:
    out = tmp_path / "bindings.py"
    assert main(["--schema", str(SCHEMAS[0]), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith('"""Typed bindings for the SpacetimeDB module of')
    assert f"--schema {SCHEMAS[0]} -o {out}" in text


def test_only_frozen_slotted_dataclasses_register() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    with pytest.raises(SchemaError, match="frozen dataclass with slots"):
        sats.register_row_class("NoSlots")(NoSlots)
