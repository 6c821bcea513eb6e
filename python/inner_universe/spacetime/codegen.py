"""Typed Python bindings generated from a module's schema.

The SDK needs no generated code: it reads the schema at run time. What it cannot
give without code is static types: ``conn.db.agent.find("id", 3)`` is ``Any`` to
mypy. :func:`generate` writes a module with

- a frozen dataclass per named product type (table rows among them), registered so
  that rows decode into exactly these classes (:func:`.sats.register_row_class`);
- a typed handle per table: ``find_by_<column>`` for unique columns and
  ``filter_by_<column>`` for single-column indexes, taking the column's real type;
  ``iter()``, ``count()`` and typed ``on_insert`` / ``on_delete`` / ``on_update``;
- typed reducer methods, once for :class:`.DbConnection` (futures) and once for
  :class:`.ThreadedConnection` (blocking), without the hidden ``call_key``
  parameter the SDK fills itself;
- ``Module(conn)`` / ``ThreadedModule(conn)`` tying them to a connection.

The output is sorted by name and formatted, so regenerating from an unchanged
schema gives the same bytes::

    python -m inner_universe.spacetime.codegen --uri http://127.0.0.1:3000 \\
        --database my-db -o my_bindings.py
    python -m inner_universe.spacetime.codegen --schema schema.json -o my_bindings.py
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from ..errors import SchemaError
from .sats import (
    AlgebraicType,
    ArrayType,
    PrimitiveType,
    ProductType,
    RefType,
    SumType,
    Typespace,
    attribute_name,
    special_kind,
)
from .schema import ModuleSchema, ReducerSchema, TableSchema

__all__ = ["generate", "main"]

_LINE: Final = 100
_PRIMITIVES: Final = {"Bool": "bool", "F32": "float", "F64": "float", "String": "str"}
_SPECIALS: Final = {
    "identity": "Identity",
    "connection_id": "ConnectionId",
    "timestamp": "Timestamp",
    "time_duration": "TimeDuration",
    "schedule_at": "ScheduleAt",
}


def generate(schema: ModuleSchema, module_name: str, command: str) -> str:
    """The source of a typed bindings module for ``schema``.

    ``module_name`` names the module in the docstring ("the SpacetimeDB module x");
    ``command`` is the command line that regenerates the file, written into it.
    """
    return _Generator(schema).module(module_name, command)


class _Generator:
    def __init__(self, schema: ModuleSchema) -> None:
        self.schema = schema
        self.ts: Typespace = schema.typespace
        self.classes: dict[int, str] = {}  # typespace index -> generated class name
        for index in range(len(self.ts)):
            cls = self.ts.product_class(index)
            if cls is not None and not isinstance(self.ts[index], RefType):
                self.classes[index] = cls.__name__
        names = sorted(self.classes.values())
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SchemaError(f"several types would become the class {', '.join(duplicates)}")

    # ----------------------------------------------------------- annotations

    def annotation(
        self, ty: AlgebraicType, seen: frozenset[int] = frozenset(), accept: bool = False
    ) -> str:
        """The Python type of values of ``ty`` (as the codec decodes them).

        With ``accept``, the type an argument may have: arrays take any sequence.
        """
        ts = self.ts
        kind = special_kind(ty, ts)
        if kind == "option":
            some = ts.resolve(ty)
            assert isinstance(some, SumType)
            return f"{self.annotation(some.variants[0].type, seen, accept)} | None"
        if kind is not None:
            return _SPECIALS[kind]
        if isinstance(ty, RefType):
            if ty.index in self.classes:
                return self.classes[ty.index]
            if ty.index in seen:  # a recursive type that is not a class
                return "Any"
            return self.annotation(ts[ty.index], seen | {ty.index}, accept)
        if isinstance(ty, PrimitiveType):
            return _PRIMITIVES.get(ty.kind, "int")
        if isinstance(ty, ArrayType):
            elem = ts.resolve(ty.elem)
            if isinstance(elem, PrimitiveType) and elem.kind == "U8":
                return "bytes"
            item = self.annotation(ty.elem, seen, accept)
            return f"Sequence[{item}]" if accept else f"tuple[{item}, ...]"
        if isinstance(ty, ProductType):
            if not ty.elements:
                return "tuple[()]"
            return f"tuple[{', '.join(self.annotation(e.type, seen, accept) for e in ty.elements)}]"
        return "Variant"

    # -------------------------------------------------------------- sections

    def module(self, module_name: str, command: str) -> str:
        by_name = sorted(self.classes, key=lambda i: self.classes[i])
        row_classes = [self.row_class(i) for i in by_name]
        tables = sorted(
            (t for t in self.schema.tables.values() if not t.is_system), key=lambda t: t.name
        )
        scheduled = {t.schedule.reducer_name for t in tables if t.schedule is not None}
        reducers = sorted(  # what clients call: not lifecycle nor scheduled reducers
            (
                r
                for r in self.schema.reducers.values()
                if r.lifecycle is None and r.name not in scheduled
            ),
            key=lambda r: r.name,
        )
        table_classes = [self.table_class(t) for t in tables]
        body = [
            *row_classes,
            *table_classes,
            self.tables_class(tables),
            self.reducers_class("Reducers", reducers, threaded=False),
            self.reducers_class("ThreadedReducers", reducers, threaded=True),
            _MODULE_CLASSES,
        ]
        code = "\n\n\n".join(body)
        return f"{self.header(module_name, command, code)}\n\n\n{code}\n"

    def header(self, module_name: str, command: str, code: str) -> str:
        """The docstring and the imports ``code`` uses."""

        def uses(name: str) -> bool:
            return re.search(rf"\b{name}\b", code) is not None

        typing = [n for n in ("Any", "cast") if uses(n)]
        abc = [n for n in ("Callable", "Iterator", "Sequence") if uses(n)]
        spacetime = [
            n for n in ("DbConnection", "EventContext", "ReducerEvent", "TableHandle") if uses(n)
        ]
        sats = [n for n in ("Variant", "register_row_class") if uses(n)]
        types = sorted(n for n in _SPECIALS.values() if uses(n))
        imports = ["from __future__ import annotations", ""]
        if uses("asyncio"):
            imports.append("import asyncio")
        if abc:
            imports.append(f"from collections.abc import {', '.join(abc)}")
        imports.append("from dataclasses import dataclass")
        if typing:
            imports.append(f"from typing import {', '.join(typing)}")
        imports.append("")
        spacetime.append("ThreadedConnection")
        imports.append(_wrap_import("from inner_universe.spacetime import ", spacetime))
        if sats:
            imports.append(_wrap_import("from inner_universe.spacetime.sats import ", sats))
        if types:
            imports.append(_wrap_import("from inner_universe.spacetime.types import ", types))
        doc = [
            f'"""Typed bindings for {module_name}.',
            "",
            "Generated from the module's schema by inner_universe.spacetime.codegen: do not edit.",
            "Regenerate with:",
            "",
            f"    {command}",
            '"""',
        ]
        return "\n".join([*doc, "", *imports, "", "__all__ = " + self.all_names()])

    def all_names(self) -> str:
        names = sorted(
            [*self.classes.values(), "Module", "Reducers", "Tables", "ThreadedModule"]
            + ["ThreadedReducers"]
            + [_table_class_name(t.name) for t in self.schema.tables.values() if not t.is_system]
        )
        one_line = "[" + ", ".join(f'"{n}"' for n in names) + "]"
        if len("__all__ = ") + len(one_line) <= _LINE:
            return one_line
        return "[\n" + "".join(f'    "{n}",\n' for n in names) + "]"

    def row_class(self, index: int) -> str:
        name = self.classes[index]
        ty = self.ts[index]
        assert isinstance(ty, ProductType)
        type_name = self.ts.names[index]
        tables = sorted(t.name for t in self.schema.tables.values() if t.product_type_ref == index)
        what = f"A row of table {', '.join(tables)}." if tables else f"The type {type_name}."
        lines = [
            f"@register_row_class({_quote(type_name)})",
            "@dataclass(frozen=True, slots=True)",
            f"class {name}:",
            f'    """{what}"""',
            "",
        ]
        for e in ty.elements:
            lines.append(f"    {attribute_name(str(e.name))}: {self.annotation(e.type)}")
        return "\n".join(lines)

    def table_class(self, table: TableSchema) -> str:
        row = self.classes[table.product_type_ref]
        cls = _table_class_name(table.name)
        unique_set = set(table.unique_columns)
        if table.primary_key is not None:
            unique_set.add(table.primary_key)
        unique = sorted(unique_set)
        indexed = sorted(
            {
                index.columns[0]
                for index in table.indexes
                if len(index.columns) == 1 and index.columns[0] not in unique
            }
        )
        lines = [
            f"class {cls}:",
            f'    """Table {table.name}: the rows this client has, and their callbacks."""',
            "",
            "    def __init__(self, handle: TableHandle) -> None:",
            "        self.handle = handle",
            "",
            "    def __len__(self) -> int:",
            "        return self.handle.count()",
            "",
            f"    def __iter__(self) -> Iterator[{row}]:",
            f"        return cast(Iterator[{row}], self.handle.iter())",
        ]
        for column in unique:
            attr = attribute_name(column)
            lines += [
                "",
                _def(
                    f"find_by_{column}",
                    [f"{attr}: {self.annotation(table.column_types[column])}"],
                    f"{row} | None",
                ),
                f'        return cast("{row} | None", self.handle.find({_quote(column)}, {attr}))',
            ]
        for column in indexed:
            attr = attribute_name(column)
            lines += [
                "",
                _def(
                    f"filter_by_{column}",
                    [f"{attr}: {self.annotation(table.column_types[column])}"],
                    f"list[{row}]",
                ),
                f"        return cast(list[{row}], self.handle.filter({_quote(column)}, {attr}))",
            ]
        callback = f"Callable[[EventContext, {row}], object]"
        for event in ("insert", "delete"):
            lines += [
                "",
                _def(f"on_{event}", [f"callback: {callback}"], callback),
                f"        self.handle.on_{event}(callback)",
                "        return callback",
            ]
        if table.primary_key is not None:
            update = f"Callable[[EventContext, {row}, {row}], object]"
            lines += [
                "",
                _def("on_update", [f"callback: {update}"], update),
                "        self.handle.on_update(callback)",
                "        return callback",
            ]
        return "\n".join(lines)

    def tables_class(self, tables: Iterable[TableSchema]) -> str:
        lines = [
            "class Tables:",
            '    """The tables of a connection, typed."""',
            "",
            "    def __init__(self, conn: DbConnection | ThreadedConnection) -> None:",
        ]
        for table in tables:
            attr, handle = attribute_name(table.name), f"conn.db[{_quote(table.name)}]"
            prefix = f"        self.{attr} = {_table_class_name(table.name)}("
            lines.append(_wrap_call(prefix, handle))
        return "\n".join(lines)

    def reducers_class(self, name: str, reducers: Iterable[ReducerSchema], threaded: bool) -> str:
        conn = "ThreadedConnection" if threaded else "DbConnection"
        result = "ReducerEvent" if threaded else "asyncio.Future[ReducerEvent]"
        how = "blocking until applied" if threaded else "each returns a future of its outcome"
        lines = [
            f"class {name}:",
            f'    """The reducers of the module, typed ({how})."""',
            "",
            f"    def __init__(self, conn: {conn}) -> None:",
            "        self.conn = conn",
        ]
        for reducer in reducers:
            # ReducerSchema.params already leaves out the call key the SDK fills.
            params = [
                (attribute_name(p), self.annotation(ty, accept=True)) for p, ty in reducer.params
            ]
            names = [p for p, _ in params]
            lines += [
                "",
                _def(attribute_name(reducer.name), [f"{p}: {t}" for p, t in params], result),
                _wrap_call("        return self.conn.call_reducer(", _quote(reducer.name), *names),
            ]
        return "\n".join(lines)


_MODULE_CLASSES: Final = '''class Module:
    """A DbConnection's tables and reducers, typed: ``Module(conn).db.<table>``."""

    def __init__(self, conn: DbConnection) -> None:
        self.conn = conn
        self.db = Tables(conn)
        self.reducers = Reducers(conn)


class ThreadedModule:
    """A ThreadedConnection's tables and reducers, typed (reducer calls block)."""

    def __init__(self, conn: ThreadedConnection) -> None:
        self.conn = conn
        self.db = Tables(conn)
        self.reducers = ThreadedReducers(conn)'''


def _quote(text: str) -> str:
    """A double-quoted string literal, as the formatter writes them."""
    return json.dumps(text)


def _table_class_name(table: str) -> str:
    return "".join(part.title() for part in table.split("_")) + "Table"


def _def(name: str, params: list[str], result: str) -> str:
    """A method signature, one parameter per line when it does not fit on one."""
    one_line = f"    def {name}(self{''.join(', ' + p for p in params)}) -> {result}:"
    if len(one_line) <= _LINE:
        return one_line
    inner = "".join(f"        {p},\n" for p in ["self", *params])
    return f"    def {name}(\n{inner}    ) -> {result}:"


def _wrap_call(prefix: str, *args: str) -> str:
    """A call as the formatter writes it: on one line, else the arguments on one indented
    line, else one argument per line with a trailing comma."""
    joined = ", ".join(args)
    if len(prefix) + len(joined) + 1 <= _LINE:
        return f"{prefix}{joined})"
    if len("            ") + len(joined) <= _LINE:
        return f"{prefix}\n            {joined}\n        )"
    return prefix + "\n" + "".join(f"            {a},\n" for a in args) + "        )"


def _wrap_import(prefix: str, names: list[str]) -> str:
    one_line = prefix + ", ".join(names)
    if len(one_line) <= _LINE:
        return one_line
    return prefix + "(\n" + "".join(f"    {n},\n" for n in names) + ")"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inner_universe.spacetime.codegen",
        description="Write typed Python bindings for a SpacetimeDB module.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--uri", help="server URI, with --database: read the live schema")
    source.add_argument("--schema", type=Path, help="a RawModuleDefV9 JSON file instead")
    parser.add_argument("--database", help="database name or identity (with --uri)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .py file to write")
    args = parser.parse_args(argv)
    if args.uri is not None:
        if args.database is None:
            parser.error("--uri needs --database")
        from .connection import fetch_schema

        schema = fetch_schema(args.uri, args.database)
        name = f"the SpacetimeDB module {args.database}"
        command = "python -m inner_universe.spacetime.codegen"
        command += f" --uri {args.uri} --database {args.database}"
    else:
        schema = ModuleSchema.from_json(args.schema.read_bytes())
        name = f"the SpacetimeDB module of {args.schema.name}"
        command = f"python -m inner_universe.spacetime.codegen --schema {args.schema}"
    command += f" -o {args.output}"
    args.output.write_text(generate(schema, name, command))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
