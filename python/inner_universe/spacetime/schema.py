"""A module's schema (RawModuleDefV9 JSON) turned into ready-to-use table and reducer codecs.

The SDK has no generated code to lean on: it learns a database's tables and
reducers at run time from ``GET /v1/database/{name}/schema?version=9``.
:meth:`ModuleSchema.from_json` reads that document once and compiles, for every
table, a row class and row decoder/encoder, and for every reducer an argument
encoder that checks arguments like a Python call would, before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Final, Literal

from ..errors import ArgumentError, EncodeError, SchemaError
from .bsatn import BsatnReader, BsatnWriter
from .sats import (
    U64,
    U128,
    AlgebraicType,
    Decoder,
    Encoder,
    FixedLayout,
    ProductType,
    RefType,
    Typespace,
    attribute_name,
    compile_decoder,
    compile_encoder,
    fixed_layout,
    parse_product,
    static_size,
)

__all__ = [
    "CALL_KEY_PARAM",
    "CallKey",
    "IndexSchema",
    "Lifecycle",
    "ModuleSchema",
    "ReducerSchema",
    "ScheduleSchema",
    "SequenceSchema",
    "TableSchema",
]

Lifecycle = Literal["Init", "OnConnect", "OnDisconnect"]
_LIFECYCLES: Final[dict[str, Lifecycle]] = {
    "Init": "Init",
    "OnConnect": "OnConnect",
    "OnDisconnect": "OnDisconnect",
}


# ------------------------------------------------------------------- JSON helpers


def _field(obj: Any, key: str, what: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise SchemaError(f"{what}: missing {key!r}")
    return obj[key]


def _option(obj: Any) -> Any:
    """``{"some": x}`` → x, ``{"none": []}`` → None; bare values and null pass through."""
    if isinstance(obj, dict) and len(obj) == 1:
        if "some" in obj:
            return obj["some"]
        if "none" in obj:
            return None
    return obj


def _opt_str(obj: Any, what: str) -> str | None:
    value = _option(obj)
    if value is not None and not isinstance(value, str):
        raise SchemaError(f"{what}: expected a string, got {value!r}")
    return value


def _tag(obj: Any, what: str) -> tuple[str, Any]:
    """A SATS-JSON sum value ``{"Name": payload}`` (a bare ``"Name"`` is accepted too)."""
    if isinstance(obj, str):
        return obj, []
    if isinstance(obj, dict) and len(obj) == 1:
        ((name, payload),) = obj.items()
        return name, payload
    raise SchemaError(f"{what}: expected a variant like {{'Name': ...}}, got {obj!r}")


def _int(obj: Any, what: str) -> int:
    if isinstance(obj, str) and obj.lstrip("-").isdigit():
        return int(obj)  # 128-bit values may come as strings
    if isinstance(obj, bool) or not isinstance(obj, int):
        raise SchemaError(f"{what}: expected an integer, got {obj!r}")
    return int(obj)


# ------------------------------------------------------------------------- tables


@dataclass(frozen=True, slots=True)
class IndexSchema:
    """An index the module declares on a table; ``algorithm`` is "BTree", "Hash" or "Direct"."""

    name: str | None
    accessor_name: str | None
    algorithm: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SequenceSchema:
    """An ``auto_inc`` sequence on ``column``."""

    name: str | None
    column: str
    start: int | None
    increment: int


@dataclass(frozen=True, slots=True)
class ScheduleSchema:
    """The table is a schedule: each row makes ``reducer_name`` run at its ``at_column``."""

    name: str | None
    reducer_name: str
    at_column: str


class TableSchema:
    """One table: its columns, keys and indexes, and the compiled row codec.

    Rows are instances of :attr:`row_class`, a frozen dataclass with one attribute
    per column (a column named like a Python keyword gets a trailing underscore).
    """

    def __init__(
        self,
        *,
        name: str,
        product_type_ref: int,
        typespace: Typespace,
        primary_key: str | None,
        unique_constraints: tuple[tuple[str, ...], ...],
        indexes: tuple[IndexSchema, ...],
        sequences: tuple[SequenceSchema, ...],
        schedule: ScheduleSchema | None,
        is_public: bool,
        is_system: bool,
    ) -> None:
        ref = RefType(product_type_ref)
        row_type = typespace.resolve(ref)
        if not isinstance(row_type, ProductType):
            raise SchemaError(f"table {name!r}: row type {product_type_ref} is not a product")
        row_class = typespace.product_class(product_type_ref)
        if row_class is None:
            raise SchemaError(f"table {name!r}: row type {product_type_ref} has no named columns")
        self.name = name
        self.product_type_ref = product_type_ref
        self.row_type: ProductType = row_type
        self.row_class: type = row_class
        self.columns: tuple[str, ...] = tuple(str(e.name) for e in row_type.elements)
        self.column_types: Mapping[str, AlgebraicType] = MappingProxyType(
            {str(e.name): e.type for e in row_type.elements}
        )
        self.primary_key = primary_key
        self.unique_constraints = unique_constraints
        #: Columns that are unique on their own (the primary key among them).
        self.unique_columns: tuple[str, ...] = tuple(
            cols[0] for cols in unique_constraints if len(cols) == 1
        )
        self.indexes = indexes
        self.sequences = sequences
        self.schedule = schedule
        self.is_public = is_public
        self.is_system = is_system
        self.typespace = typespace
        #: The BSATN size of every row when fixed (then rows arrive as ``FixedSize``).
        self.static_row_size: int | None = static_size(ref, typespace)
        #: One struct for the whole row, when every column is fixed-width.
        self.fixed_layout: FixedLayout | None = fixed_layout(ref, typespace)
        self._decode: Decoder = compile_decoder(ref, typespace)
        self._encode: Encoder = compile_encoder(ref, typespace)
        self._primary_key_getter = (
            attrgetter(attribute_name(primary_key)) if primary_key is not None else None
        )

    def __repr__(self) -> str:
        return f"<TableSchema {self.name} ({', '.join(self.columns)})>"

    def decode_row(self, data: bytes) -> Any:
        """Decode one row that must span exactly ``data``."""
        reader = BsatnReader(data)
        row = self._decode(reader)
        reader.expect_end()
        return row

    def decode_row_at(self, reader: BsatnReader) -> Any:
        """Decode one row at the reader's position, leaving it just after the row."""
        return self._decode(reader)

    def encode_row(self, row: Any) -> bytes:
        """The BSATN bytes of ``row`` (a :attr:`row_class` instance, tuple or mapping)."""
        w = BsatnWriter()
        try:
            self._encode(w, row)
        except EncodeError as exc:
            raise EncodeError(f"table {self.name!r}: {exc}") from None
        return w.getvalue()

    def primary_key_of(self, row: Any) -> Any:
        """The primary-key value of ``row``; SchemaError if the table has no primary key."""
        if self._primary_key_getter is None:
            raise SchemaError(f"table {self.name!r} has no primary key")
        return self._primary_key_getter(row)


# ----------------------------------------------------------------------- reducers


@dataclass(frozen=True, slots=True)
class CallKey:
    """The idempotency key of one reducer call: a client id (0: no key) and a sequence number.

    A module opts in per reducer by declaring a first parameter named ``call_key``
    of a product type ``{client: u128, seq: u64}``; it records the key with the
    call's writes and ignores a repeat, so a call resent after a reconnect takes
    effect once.
    """

    client: int
    seq: int


#: The name of the idempotency-key parameter (when it comes first, with CallKey's shape).
CALL_KEY_PARAM: Final = "call_key"
#: What a keyless call sends: client 0 means "do not deduplicate".
NO_CALL_KEY: Final = CallKey(0, 0)


def _is_call_key(name: str | None, ty: AlgebraicType, typespace: Typespace) -> bool:
    """Whether a parameter is ``call_key: {client: u128, seq: u64}``."""
    if name != CALL_KEY_PARAM:
        return False
    resolved = typespace.resolve(ty)
    if not isinstance(resolved, ProductType):
        return False
    shape = tuple((e.name, typespace.resolve(e.type)) for e in resolved.elements)
    return shape == (("client", U128), ("seq", U64))


class ReducerSchema:
    """One reducer: its parameters and a checked argument encoder.

    When the reducer takes a :class:`CallKey` first (:attr:`takes_call_key`),
    :attr:`params` and :attr:`param_names` leave it out: callers pass only the
    other arguments and the key separately, as ``call_key=``.
    """

    def __init__(
        self, name: str, params: ProductType, lifecycle: Lifecycle | None, typespace: Typespace
    ) -> None:
        self.name = name
        first = params.elements[0] if params.elements else None
        self.takes_call_key: bool = first is not None and _is_call_key(
            first.name, first.type, typespace
        )
        all_params = tuple(
            (e.name if e.name is not None else f"arg{i}", e.type)
            for i, e in enumerate(params.elements)
        )
        self.params: tuple[tuple[str, AlgebraicType], ...] = (
            all_params[1:] if self.takes_call_key else all_params
        )
        self.param_names: tuple[str, ...] = tuple(p for p, _ in self.params)
        self.lifecycle = lifecycle
        self.params_type = params
        #: The parameters a caller passes: all of them but the call key. A keyed call's
        #: argument bytes are the key's 24 bytes followed by these parameters' bytes.
        self.args_type = ProductType(params.elements[1:]) if self.takes_call_key else params
        self.typespace = typespace
        self._encode = compile_encoder(params, typespace)
        self._encode_args = (
            compile_encoder(self.args_type, typespace) if self.takes_call_key else self._encode
        )
        self._decode = compile_decoder(params, typespace)

    def __repr__(self) -> str:
        return f"<ReducerSchema {self.name}({', '.join(self.param_names)})>"

    def bind(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Match positional and keyword arguments to the parameters, as a Python call would."""
        names = self.param_names
        if not kwargs and len(args) == len(names):
            return args  # the common call, every argument in order
        if len(args) > len(names):
            raise ArgumentError(
                f"reducer {self.name!r} takes {len(names)} argument(s) "
                f"({', '.join(names) or 'none'}) but {len(args)} were given"
            )
        values: dict[str, Any] = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise ArgumentError(
                    f"reducer {self.name!r} got an unexpected argument {key!r} "
                    f"(parameters: {', '.join(names) or 'none'})"
                )
            if key in values:
                raise ArgumentError(f"reducer {self.name!r} got multiple values for {key!r}")
            values[key] = value
        missing = [n for n in names if n not in values]
        if missing:
            raise ArgumentError(
                f"reducer {self.name!r} is missing argument(s): {', '.join(map(repr, missing))}"
            )
        return tuple(values[n] for n in names)

    def call_values(
        self, *args: Any, call_key: CallKey | None = None, **kwargs: Any
    ) -> tuple[Any, ...]:
        """The whole parameter tuple of a call, bound like a Python call, key first if taken.

        ``call_key`` is sent first when the reducer takes one ({0, 0}, no key, when
        None); passing one to a reducer that takes none is an ArgumentError.
        """
        values = self.bind(*args, **kwargs)
        if self.takes_call_key:
            key = call_key or NO_CALL_KEY
            return ((key.client, key.seq), *values)
        if call_key is not None:
            raise ArgumentError(f"reducer {self.name!r} takes no call key")
        return values

    def encode_args(self, *args: Any, call_key: CallKey | None = None, **kwargs: Any) -> bytes:
        """The BSATN argument bytes for a call; ArgumentError names the bad parameter."""
        return self.encode_values(self.call_values(*args, call_key=call_key, **kwargs))

    def encode_values(self, values: tuple[Any, ...]) -> bytes:
        """The BSATN bytes of a whole parameter tuple (see :meth:`call_values`)."""
        return self._encode_checked(self._encode, values)

    def encode_bound(self, values: tuple[Any, ...]) -> bytes:
        """The BSATN bytes of a call's arguments bound by :meth:`bind`: the key left out.

        For a reducer taking a call key, the call's whole argument bytes are the
        key's 24 bytes followed by these (:attr:`args_type`); else they are these.
        """
        return self._encode_checked(self._encode_args, values)

    def _encode_checked(self, encode: Encoder, values: tuple[Any, ...]) -> bytes:
        w = BsatnWriter()
        try:
            encode(w, values)
        except EncodeError as exc:
            # The params product prefixes the parameter name: "state: bytes expects bytes".
            raise ArgumentError(f"reducer {self.name!r}, argument {exc}") from None
        return w.getvalue()

    def decode_call(self, data: bytes) -> tuple[dict[str, Any], CallKey | None]:
        """A call's arguments (without the key) and its key, from its BSATN bytes."""
        reader = BsatnReader(data)
        values = self._decode(reader)
        reader.expect_end()
        return self.split_values(values)

    def split_values(self, values: tuple[Any, ...]) -> tuple[dict[str, Any], CallKey | None]:
        """A decoded parameter tuple as (arguments by name, the call key if taken)."""
        key = None
        if self.takes_call_key:
            raw, *rest = values
            values = tuple(rest)
            # A named product decodes to its row class, an anonymous one to a tuple.
            key = CallKey(*raw) if isinstance(raw, tuple) else CallKey(raw.client, raw.seq)
        return dict(zip(self.param_names, values, strict=True)), key

    def decode_args(self, data: bytes) -> dict[str, Any]:
        """The arguments of a call, from its BSATN bytes (e.g. another client's reducer event).

        The call key, if the reducer takes one, is left out (see :meth:`decode_call`).
        """
        return self.decode_call(data)[0]


# ------------------------------------------------------------------------- module


class ModuleSchema:
    """All tables and reducers of one module, from its RawModuleDefV9 JSON."""

    def __init__(
        self,
        typespace: Typespace,
        tables: Mapping[str, TableSchema],
        reducers: Mapping[str, ReducerSchema],
        type_names: Mapping[str, int],
    ) -> None:
        self.typespace = typespace
        self.tables: Mapping[str, TableSchema] = MappingProxyType(dict(tables))
        self.reducers: Mapping[str, ReducerSchema] = MappingProxyType(dict(reducers))
        #: Named types declared by the module: name → typespace index.
        self.type_names: Mapping[str, int] = MappingProxyType(dict(type_names))

    def __repr__(self) -> str:
        return f"<ModuleSchema {len(self.tables)} tables, {len(self.reducers)} reducers>"

    def table(self, name: str) -> TableSchema:
        try:
            return self.tables[name]
        except KeyError:
            known = ", ".join(sorted(self.tables)) or "none"
            raise SchemaError(f"no table named {name!r}; known tables: {known}") from None

    def reducer(self, name: str) -> ReducerSchema:
        try:
            return self.reducers[name]
        except KeyError:
            known = ", ".join(sorted(self.reducers)) or "none"
            raise SchemaError(f"no reducer named {name!r}; known reducers: {known}") from None

    @classmethod
    def from_json(cls, obj: Any) -> ModuleSchema:
        """From the schema endpoint's JSON (parsed, or as text/bytes).

        Accepts the bare RawModuleDefV9 object and the ``{"V9": {...}}`` wrapper.
        """
        if isinstance(obj, (str, bytes, bytearray)):
            try:
                obj = json.loads(obj)
            except ValueError as exc:
                raise SchemaError(f"schema is not valid JSON: {exc}") from None
        if isinstance(obj, dict) and set(obj) == {"V9"}:
            obj = obj["V9"]
        if not isinstance(obj, dict) or "typespace" not in obj:
            raise SchemaError("not a RawModuleDefV9: expected an object with a 'typespace'")

        raw_tables = _list(obj.get("tables", []), "tables")
        raw_reducers = _list(obj.get("reducers", []), "reducers")
        type_names = _type_names(_list(obj.get("types", []), "types"))
        class_names = {index: name for name, index in type_names.items()}
        for raw in raw_tables:  # a row type nobody named is named after its table
            name = _table_name(raw)
            ref = _int(_field(raw, "product_type_ref", f"table {name!r}"), "product_type_ref")
            class_names.setdefault(ref, "".join(p.title() for p in name.split("_")))
        typespace = Typespace.from_json(obj["typespace"], class_names)

        tables = {}
        for raw in raw_tables:
            table = _table(raw, typespace)
            tables[table.name] = table
        reducers = {}
        for raw in raw_reducers:
            reducer = _reducer(raw, typespace)
            reducers[reducer.name] = reducer
        return cls(typespace, tables, reducers, type_names)


def _list(obj: Any, what: str) -> list[Any]:
    if not isinstance(obj, list):
        raise SchemaError(f"{what}: expected a list, got {type(obj).__name__}")
    return obj


def _type_names(raw_types: list[Any]) -> dict[str, int]:
    names = {}
    for raw in raw_types:
        scoped = _field(raw, "name", "type")  # {"scope": [...], "name": "Agent"}
        name = str(scoped["name"] if isinstance(scoped, dict) and "name" in scoped else scoped)
        names[name] = _int(_field(raw, "ty", f"type {name!r}"), "ty")
    return names


def _table_name(raw: Any) -> str:
    name = raw.get("name", raw.get("table_name")) if isinstance(raw, dict) else None
    if not isinstance(name, str):
        raise SchemaError(f"a table needs a string 'name', got {raw!r:.200}")
    return name


def _table(raw: Any, typespace: Typespace) -> TableSchema:
    name = _table_name(raw)
    what = f"table {name!r}"
    ref = _int(_field(raw, "product_type_ref", what), f"{what}: product_type_ref")
    row_type = typespace.resolve(RefType(ref))
    if not isinstance(row_type, ProductType):
        raise SchemaError(f"{what}: row type {ref} is not a product")
    columns = [e.name for e in row_type.elements]

    def column(index: Any) -> str:
        i = _int(index, f"{what}: column")
        if not 0 <= i < len(columns) or columns[i] is None:
            raise SchemaError(f"{what}: no column {i} (it has {len(columns)})")
        return str(columns[i])

    def column_list(obj: Any) -> tuple[str, ...]:
        if isinstance(obj, dict) and len(obj) == 1:  # {"columns": [...]} or {"column": n}
            obj = next(iter(obj.values()))
        cols = obj if isinstance(obj, list) else [obj]
        return tuple(column(c) for c in cols)

    pk = column_list(raw.get("primary_key", []))
    if len(pk) > 1:
        raise SchemaError(f"{what}: multi-column primary keys are not supported: {pk}")

    indexes = []
    for idx in _list(raw.get("indexes", []), f"{what}: indexes"):
        algorithm, cols = _tag(_field(idx, "algorithm", f"{what}: index"), f"{what}: index")
        indexes.append(
            IndexSchema(
                name=_opt_str(idx.get("name"), f"{what}: index name"),
                accessor_name=_opt_str(idx.get("accessor_name"), f"{what}: index accessor"),
                algorithm=algorithm,
                columns=column_list(cols),
            )
        )

    unique: list[tuple[str, ...]] = []
    for con in _list(raw.get("constraints", []), f"{what}: constraints"):
        kind, data = _tag(_field(con, "data", f"{what}: constraint"), f"{what}: constraint")
        if kind == "Unique":
            unique.append(column_list(data))
    if pk and pk not in unique:
        unique.insert(0, pk)

    sequences = []
    for seq in _list(raw.get("sequences", []), f"{what}: sequences"):
        start = _option(seq.get("start"))
        sequences.append(
            SequenceSchema(
                name=_opt_str(seq.get("name"), f"{what}: sequence name"),
                column=column(_field(seq, "column", f"{what}: sequence")),
                start=None if start is None else _int(start, f"{what}: sequence start"),
                increment=_int(seq.get("increment", 1), f"{what}: sequence increment"),
            )
        )

    schedule = None
    raw_schedule = _option(raw.get("schedule"))
    if raw_schedule is not None:
        at = raw_schedule.get("scheduled_at_column", raw_schedule.get("at_column"))
        schedule = ScheduleSchema(
            name=_opt_str(raw_schedule.get("name"), f"{what}: schedule name"),
            reducer_name=str(_field(raw_schedule, "reducer_name", f"{what}: schedule")),
            at_column=column(at),
        )

    table_type, _ = _tag(raw.get("table_type", {"User": []}), f"{what}: table_type")
    access, _ = _tag(raw.get("table_access", {"Private": []}), f"{what}: table_access")
    return TableSchema(
        name=name,
        product_type_ref=ref,
        typespace=typespace,
        primary_key=pk[0] if pk else None,
        unique_constraints=tuple(unique),
        indexes=tuple(indexes),
        sequences=tuple(sequences),
        schedule=schedule,
        is_public=access == "Public",
        is_system=table_type == "System",
    )


def _reducer(raw: Any, typespace: Typespace) -> ReducerSchema:
    name = _field(raw, "name", "reducer")
    if not isinstance(name, str):
        raise SchemaError(f"reducer name must be a string, got {name!r}")
    params = parse_product(_field(raw, "params", f"reducer {name!r}"))
    lifecycle = _option(raw.get("lifecycle"))
    kind: Lifecycle | None = None
    if lifecycle is not None:
        tag, _ = _tag(lifecycle, f"reducer {name!r}: lifecycle")
        kind = _LIFECYCLES.get(tag)
        if kind is None:
            raise SchemaError(f"reducer {name!r}: unknown lifecycle {tag!r}")
    return ReducerSchema(name, params, kind, typespace)
