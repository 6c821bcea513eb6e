"""SATS, SpacetimeDB's type algebra, and BSATN codecs compiled from it.

A module's schema describes every table row and reducer argument list as an
:data:`AlgebraicType`: primitives, arrays, products (structs), sums (tagged
unions) and references into a :class:`Typespace`. BSATN is not self-describing,
so decoding needs the type; interpreting the type again for every value would
make decoding slow, so :func:`compile_decoder` and :func:`compile_encoder` turn a
type into plain closures once, and the closures are reused for every row.

How values look in Python (decoding produces exactly these; encoding accepts
them, plus the conveniences noted):

==========================  ==========================================================
SATS type                   Python value
==========================  ==========================================================
Bool, integers, F32, F64    ``bool``, ``int``, ``float``
String                      ``str``
Array<U8>                   ``bytes`` (encoding also takes ``bytearray``/``memoryview``)
Array<T>                    ``tuple`` (so rows stay hashable; encoding also takes ``list``)
named product (a Ref with   an instance of a frozen dataclass generated per type and
a name in the typespace)    named after it (see :meth:`Typespace.product_class`)
anonymous product           ``tuple``; the unit product (no fields) is ``()``
Option<T> (sum some/none)   the value, or ``None``
other sums                  :class:`Variant` ``(name, value)``; unit payload ``()``
Identity, ConnectionId,     :class:`~.types.Identity`, :class:`~.types.ConnectionId`,
Timestamp, TimeDuration,    :class:`~.types.Timestamp`, :class:`~.types.TimeDuration`,
ScheduleAt                  :class:`~.types.ScheduleAt`
==========================  ==========================================================

Encoding a product also accepts a tuple/list (positional), a mapping (by field
name), or any object with the fields as attributes. Encoding a sum also accepts a
bare variant name (``str``) for a unit variant. Timestamp and TimeDuration also
take an aware ``datetime`` and a ``timedelta``.

``Option<Option<T>>`` cannot be told apart with ``None``, so a some/none sum whose
payload is itself a some/none sum decodes as a :class:`Variant` instead.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import keyword
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, TypeVar, cast, get_args

from ..errors import DecodeError, EncodeError, SchemaError
from .bsatn import BsatnReader, BsatnWriter
from .types import ConnectionId, Identity, ScheduleAt, TimeDuration, Timestamp

__all__ = [
    "BOOL",
    "CONNECTION_ID",
    "F32",
    "F64",
    "I8",
    "I16",
    "I32",
    "I64",
    "I128",
    "I256",
    "IDENTITY",
    "SCHEDULE_AT",
    "STRING",
    "TIMESTAMP",
    "TIME_DURATION",
    "U8",
    "U16",
    "U32",
    "U64",
    "U128",
    "U256",
    "UNIT",
    "AlgebraicType",
    "ArrayType",
    "Decoder",
    "Encoder",
    "FixedLayout",
    "PrimitiveKind",
    "PrimitiveType",
    "ProductElement",
    "ProductType",
    "RefType",
    "SpecialKind",
    "SumType",
    "SumVariant",
    "Typespace",
    "Variant",
    "array",
    "attribute_name",
    "compile_decoder",
    "compile_encoder",
    "decode_value",
    "encode_value",
    "fixed_layout",
    "fixed_layout_size",
    "min_size",
    "option",
    "parse_product",
    "parse_type",
    "product",
    "register_row_class",
    "special_kind",
    "static_size",
    "sum_type",
    "type_to_json",
]

# --------------------------------------------------------------------------- types

PrimitiveKind = Literal[
    "Bool",
    "I8",
    "U8",
    "I16",
    "U16",
    "I32",
    "U32",
    "I64",
    "U64",
    "I128",
    "U128",
    "I256",
    "U256",
    "F32",
    "F64",
    "String",
]
_PRIMITIVE_KINDS: Final[frozenset[str]] = frozenset(get_args(PrimitiveKind))


@dataclass(frozen=True, slots=True)
class PrimitiveType:
    """A primitive: ``Bool``, an integer of 8..256 bits, ``F32``, ``F64`` or ``String``."""

    kind: PrimitiveKind

    def __repr__(self) -> str:
        return self.kind


@dataclass(frozen=True, slots=True)
class ArrayType:
    """A sequence of ``elem`` values (``Vec<T>``); ``Array<U8>`` is a byte string."""

    elem: AlgebraicType


@dataclass(frozen=True, slots=True)
class ProductElement:
    """One field of a product: its name (``None`` if positional) and type."""

    name: str | None
    type: AlgebraicType


@dataclass(frozen=True, slots=True)
class ProductType:
    """A struct: its fields in wire order. No fields is the unit type."""

    elements: tuple[ProductElement, ...] = ()


@dataclass(frozen=True, slots=True)
class SumVariant:
    """One variant of a sum: its name and payload type (the unit product if it has none)."""

    name: str | None
    type: AlgebraicType


@dataclass(frozen=True, slots=True)
class SumType:
    """A tagged union; the wire tag is the variant's index (so at most 256 variants)."""

    variants: tuple[SumVariant, ...]


@dataclass(frozen=True, slots=True)
class RefType:
    """Entry ``index`` of the module's typespace: how named and recursive types appear."""

    index: int


AlgebraicType: TypeAlias = PrimitiveType | ArrayType | ProductType | SumType | RefType

BOOL: Final = PrimitiveType("Bool")
I8: Final = PrimitiveType("I8")
U8: Final = PrimitiveType("U8")
I16: Final = PrimitiveType("I16")
U16: Final = PrimitiveType("U16")
I32: Final = PrimitiveType("I32")
U32: Final = PrimitiveType("U32")
I64: Final = PrimitiveType("I64")
U64: Final = PrimitiveType("U64")
I128: Final = PrimitiveType("I128")
U128: Final = PrimitiveType("U128")
I256: Final = PrimitiveType("I256")
U256: Final = PrimitiveType("U256")
F32: Final = PrimitiveType("F32")
F64: Final = PrimitiveType("F64")
STRING: Final = PrimitiveType("String")
UNIT: Final = ProductType(())


def product(*fields: tuple[str | None, AlgebraicType]) -> ProductType:
    """``product(("id", U64), ("name", STRING))``: a product type from (name, type) pairs."""
    return ProductType(tuple(ProductElement(name, ty) for name, ty in fields))


def sum_type(*variants: tuple[str | None, AlgebraicType]) -> SumType:
    """``sum_type(("Idle", UNIT), ("Busy", U32))``: a sum type from (name, payload type) pairs."""
    return SumType(tuple(SumVariant(name, ty) for name, ty in variants))


def array(elem: AlgebraicType) -> ArrayType:
    return ArrayType(elem)


def option(some: AlgebraicType) -> SumType:
    """``Option<T>`` as SpacetimeDB spells it: ``some`` is tag 0, ``none`` is tag 1."""
    return sum_type(("some", some), ("none", UNIT))


IDENTITY: Final = product(("__identity__", U256))
CONNECTION_ID: Final = product(("__connection_id__", U128))
TIMESTAMP: Final = product(("__timestamp_micros_since_unix_epoch__", I64))
TIME_DURATION: Final = product(("__time_duration_micros__", I64))
SCHEDULE_AT: Final = sum_type(("Interval", TIME_DURATION), ("Time", TIMESTAMP))


@dataclass(frozen=True, slots=True)
class Variant:
    """A value of a general sum type: the variant's name and its payload (``()`` for unit variants).

    A variant without a name in the schema is named by its tag number (``"0"``, ``"1"``...).
    """

    name: str
    value: Any = ()


# ----------------------------------------------------------------- SATS-JSON types


def _option_json(obj: Any, what: str) -> Any:
    """Unwrap SATS-JSON ``{"some": x}`` / ``{"none": []}``; a bare value or null is accepted."""
    if isinstance(obj, dict) and len(obj) == 1:
        if "some" in obj:
            return obj["some"]
        if "none" in obj:
            return None
    if obj is None or not isinstance(obj, dict):
        return obj
    raise SchemaError(f"{what}: expected an option ({{'some': x}} or {{'none': []}}), got {obj!r}")


def _name_json(obj: Any, what: str) -> str | None:
    name = _option_json(obj, what)
    if name is not None and not isinstance(name, str):
        raise SchemaError(f"{what}: a name must be a string, got {name!r}")
    return name


def parse_type(obj: Any) -> AlgebraicType:
    """Parse an AlgebraicType from SATS-JSON, e.g. ``{"Array": {"U8": []}}`` or ``{"Ref": 3}``.

    Accepts the 1.x form (``{"Array": T}``) and the older ``{"Array": {"elem_ty": T}}``
    and ``{"Builtin": ...}`` wrappers. Raises :class:`SchemaError` on anything else.
    """
    if not isinstance(obj, dict) or len(obj) != 1:
        raise SchemaError(f"not a SATS type: {obj!r}")
    ((key, value),) = obj.items()
    if key in _PRIMITIVE_KINDS:
        return PrimitiveType(cast(PrimitiveKind, key))
    if key == "Ref":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SchemaError(f"type reference must be a non-negative int, got {value!r}")
        return RefType(value)
    if key == "Array":
        if isinstance(value, dict) and set(value) == {"elem_ty"}:
            value = value["elem_ty"]
        return ArrayType(parse_type(value))
    if key == "Product":
        return parse_product(value)
    if key == "Sum":
        variants = value.get("variants") if isinstance(value, dict) else None
        if not isinstance(variants, list):
            raise SchemaError(f"a Sum type needs a 'variants' list, got {value!r}")
        if len(variants) > 256:
            raise SchemaError(f"a sum type has at most 256 variants, got {len(variants)}")
        return SumType(tuple(SumVariant(*_named_type(v, "variant")) for v in variants))
    if key == "Builtin":
        return parse_type(value)
    raise SchemaError(f"unknown SATS type {key!r}")


def parse_product(obj: Any) -> ProductType:
    """Parse the body of a product type, ``{"elements": [...]}`` (as reducer params are given)."""
    elements = obj.get("elements") if isinstance(obj, dict) else None
    if not isinstance(elements, list):
        raise SchemaError(f"a Product type needs an 'elements' list, got {obj!r}")
    return ProductType(tuple(ProductElement(*_named_type(e, "element")) for e in elements))


def _named_type(obj: Any, what: str) -> tuple[str | None, AlgebraicType]:
    if not isinstance(obj, dict) or "algebraic_type" not in obj:
        raise SchemaError(f"a {what} needs 'name' and 'algebraic_type', got {obj!r}")
    return _name_json(obj.get("name"), what), parse_type(obj["algebraic_type"])


def type_to_json(ty: AlgebraicType) -> Any:
    """The SATS-JSON form of ``ty`` (what :func:`parse_type` reads)."""
    if isinstance(ty, PrimitiveType):
        return {ty.kind: []}
    if isinstance(ty, RefType):
        return {"Ref": ty.index}
    if isinstance(ty, ArrayType):
        return {"Array": type_to_json(ty.elem)}

    def named(name: str | None, t: AlgebraicType) -> dict[str, Any]:
        return {
            "name": {"none": []} if name is None else {"some": name},
            "algebraic_type": type_to_json(t),
        }

    if isinstance(ty, ProductType):
        return {"Product": {"elements": [named(e.name, e.type) for e in ty.elements]}}
    return {"Sum": {"variants": [named(v.name, v.type) for v in ty.variants]}}


# ------------------------------------------------------------------------ typespace

Decoder: TypeAlias = Callable[[BsatnReader], Any]
Encoder: TypeAlias = Callable[[BsatnWriter, Any], None]


class Typespace:
    """The module's list of types that :class:`RefType` indexes, plus their names.

    It also caches what is compiled from it (decoders, encoders, row classes), so
    compile against one Typespace per schema: the same named type then always
    decodes to the same dataclass, and rows compare equal across decodes.
    """

    __slots__ = ("_classes", "_decoders", "_encoders", "_layouts", "_min_sizes", "names", "types")

    def __init__(
        self, types: Sequence[AlgebraicType] = (), names: Mapping[int, str] | None = None
    ) -> None:
        self.types: tuple[AlgebraicType, ...] = tuple(types)
        self.names: Mapping[int, str] = dict(names or {})
        self._decoders: dict[AlgebraicType, Decoder] = {}
        self._encoders: dict[AlgebraicType, Encoder] = {}
        self._classes: dict[int, type | None] = {}
        self._layouts: dict[AlgebraicType, FixedLayout | None] = {}
        self._min_sizes: dict[AlgebraicType, int] = {}
        self._check()

    @classmethod
    def from_json(cls, obj: Any, names: Mapping[int, str] | None = None) -> Typespace:
        """From SATS-JSON ``{"types": [...]}``."""
        types = obj.get("types") if isinstance(obj, dict) else None
        if not isinstance(types, list):
            raise SchemaError(f"a typespace needs a 'types' list, got {obj!r}")
        return cls([parse_type(t) for t in types], names)

    def __len__(self) -> int:
        return len(self.types)

    def __getitem__(self, index: int) -> AlgebraicType:
        if not 0 <= index < len(self.types):
            raise SchemaError(f"type reference {index} is outside the typespace (0..{len(self)})")
        return self.types[index]

    def __repr__(self) -> str:
        return f"Typespace({len(self.types)} types)"

    def resolve(self, ty: AlgebraicType) -> AlgebraicType:
        """Follow references until a non-reference type."""
        while isinstance(ty, RefType):
            ty = self[ty.index]
        return ty

    def product_class(self, index: int) -> type | None:
        """The frozen dataclass for the named product at ``index``, or None if values are tuples.

        A product gets a class when the typespace names it and all its fields are
        named; special types (Identity, ...) never do. Field names that are Python
        keywords get a trailing underscore (see :func:`attribute_name`).
        """
        if index in self._classes:
            return self._classes[index]
        ty = self[index]
        if isinstance(ty, RefType):
            cls = self.product_class(ty.index)
        elif (
            isinstance(ty, ProductType)
            and index in self.names
            and all(e.name is not None for e in ty.elements)
            and special_kind(ty, self) is None
        ):
            attrs = tuple(attribute_name(cast(str, e.name)) for e in ty.elements)
            cls = _REGISTERED_CLASSES.get((self.names[index], attrs))
            if cls is None:
                cls = _make_row_class(self.names[index], ty)
        else:
            cls = None
        self._classes[index] = cls
        return cls

    def _check(self) -> None:
        """Reject out-of-range references and references that only point at each other."""

        def walk(ty: AlgebraicType) -> None:
            if isinstance(ty, RefType):
                self[ty.index]
            elif isinstance(ty, ArrayType):
                walk(ty.elem)
            elif isinstance(ty, ProductType):
                for e in ty.elements:
                    walk(e.type)
            elif isinstance(ty, SumType):
                for v in ty.variants:
                    walk(v.type)

        for ty in self.types:
            walk(ty)
        for start in range(len(self.types)):
            seen = {start}
            ty = self.types[start]
            while isinstance(ty, RefType):
                if ty.index in seen:
                    raise SchemaError(f"type reference cycle through {sorted(seen)}")
                seen.add(ty.index)
                ty = self.types[ty.index]


_REGISTERED_CLASSES: dict[tuple[str, tuple[str, ...]], type] = {}

_C = TypeVar("_C", bound=type)


def register_row_class(type_name: str) -> Callable[[_C], _C]:
    """Class decorator: values of the named product type decode into this dataclass.

    Generated bindings (:mod:`.codegen`) register their row classes, so the rows a
    connection holds are instances of exactly the classes the bindings annotate.
    The class must be a frozen dataclass with slots whose fields are the type's, in
    order; a schema whose type has other fields keeps its own generated class.
    Register before connecting: typespaces already compiled keep their classes.
    """

    def register(cls: _C) -> _C:
        params = getattr(cls, "__dataclass_params__", None)
        if params is None or not params.frozen or "__slots__" not in cls.__dict__:
            raise SchemaError(f"{cls.__name__} must be a frozen dataclass with slots=True")
        attrs = tuple(f.name for f in dataclasses.fields(cls))
        _REGISTERED_CLASSES[(type_name, attrs)] = cls
        return cls

    return register


def attribute_name(name: str) -> str:
    """The Python attribute for a column or field name: keywords get a trailing underscore."""
    return f"{name}_" if keyword.iskeyword(name) else name


def _class_name(name: str) -> str:
    """A valid class name from a type name such as ``Agent`` or ``my_mod::Agent``."""
    last = name.replace("::", ".").rsplit(".", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in last) or "Row"
    return f"_{cleaned}" if cleaned[0].isdigit() else cleaned


@functools.cache
def _make_row_class(name: str, ty: ProductType) -> type:
    """One class per distinct (name, type): rows of the same module compare equal across
    connections and schema downloads, which each build their own typespace."""
    attrs = [attribute_name(cast(str, e.name)) for e in ty.elements]
    bad = [a for a in attrs if not a.isidentifier()]
    if bad or len(set(attrs)) != len(attrs):
        raise SchemaError(f"type {name!r} has field names Python cannot use: {attrs}")
    cls = dataclasses.make_dataclass(
        _class_name(name), [(a, Any) for a in attrs], frozen=True, slots=True
    )
    cls.__module__ = __name__
    cls.__doc__ = f"A row of SpacetimeDB type {name!r} (generated from the module schema)."
    return cls


# -------------------------------------------------------------------- special types

SpecialKind = Literal[
    "identity", "connection_id", "timestamp", "time_duration", "option", "schedule_at"
]

_SPECIAL_PRODUCTS: Final[dict[tuple[str, str], SpecialKind]] = {
    ("__identity__", "U256"): "identity",
    ("__connection_id__", "U128"): "connection_id",
    ("__timestamp_micros_since_unix_epoch__", "I64"): "timestamp",
    ("__time_duration_micros__", "I64"): "time_duration",
}


def special_kind(ty: AlgebraicType, typespace: Typespace | None = None) -> SpecialKind | None:
    """Which SpacetimeDB special type ``ty`` is (following references), or None.

    Products with one magic field name are Identity, ConnectionId, Timestamp and
    TimeDuration; the sum ``some(T) | none`` is an Option; ``Interval | Time`` is ScheduleAt.
    """
    ts = typespace if typespace is not None else _EMPTY
    ty = ts.resolve(ty)
    if isinstance(ty, ProductType):
        if len(ty.elements) == 1:
            (e,) = ty.elements
            inner = ts.resolve(e.type)
            if isinstance(inner, PrimitiveType) and e.name is not None:
                return _SPECIAL_PRODUCTS.get((e.name, inner.kind))
        return None
    if isinstance(ty, SumType):
        if _is_some_none(ty, ts):
            return None if _is_some_none(ts.resolve(ty.variants[0].type), ts) else "option"
        names = [v.name for v in ty.variants]
        if (
            names == ["Interval", "Time"]
            and special_kind(ty.variants[0].type, ts) == "time_duration"
            and special_kind(ty.variants[1].type, ts) == "timestamp"
        ):
            return "schedule_at"
    return None


def _is_some_none(ty: AlgebraicType, ts: Typespace) -> bool:
    return (
        isinstance(ty, SumType)
        and [v.name for v in ty.variants] == ["some", "none"]
        and ts.resolve(ty.variants[1].type) == UNIT
    )


# ----------------------------------------------------------------------------- sizes

_PRIMITIVE_SIZES: Final[dict[str, int]] = {
    "Bool": 1,
    "I8": 1,
    "U8": 1,
    "I16": 2,
    "U16": 2,
    "I32": 4,
    "U32": 4,
    "I64": 8,
    "U64": 8,
    "I128": 16,
    "U128": 16,
    "I256": 32,
    "U256": 32,
    "F32": 4,
    "F64": 8,
}


def static_size(ty: AlgebraicType, typespace: Typespace | None = None) -> int | None:
    """The BSATN size of every value of ``ty`` if it is always the same, else None.

    Strings and arrays are never fixed; a sum is fixed when all its payloads have
    the same fixed size (so ``Option`` is not); recursive types are not fixed.
    """
    ts = typespace if typespace is not None else _EMPTY
    by_ref: dict[int, int | None] = {}  # also marks references being sized: cycles → None

    def size(t: AlgebraicType) -> int | None:
        if isinstance(t, PrimitiveType):
            return _PRIMITIVE_SIZES.get(t.kind)
        if isinstance(t, ArrayType):
            return None
        if isinstance(t, RefType):
            if t.index not in by_ref:
                by_ref[t.index] = None
                by_ref[t.index] = size(ts[t.index])
            return by_ref[t.index]
        if isinstance(t, ProductType):
            sizes = [size(e.type) for e in t.elements]
            return None if None in sizes else sum(cast(list[int], sizes))
        payloads = {size(v.type) for v in t.variants}
        if len(payloads) != 1 or None in payloads:
            return None
        return 1 + cast(int, payloads.pop())

    return size(ty)


def min_size(ty: AlgebraicType, ts: Typespace) -> int:
    """A lower bound on the bytes any value of ``ty`` takes, so arrays can refuse absurd counts."""
    cached = ts._min_sizes.get(ty)
    if cached is not None:
        return cached
    by_ref: dict[int, int] = {}  # references being sized count as 0: still a lower bound

    def size(t: AlgebraicType) -> int:
        if isinstance(t, PrimitiveType):
            return _PRIMITIVE_SIZES.get(t.kind, 4)  # a string is at least its length prefix
        if isinstance(t, ArrayType):
            return 4
        if isinstance(t, RefType):
            if t.index not in by_ref:
                by_ref[t.index] = 0
                by_ref[t.index] = size(ts[t.index])
            return by_ref[t.index]
        if isinstance(t, ProductType):
            return sum(size(e.type) for e in t.elements)
        return 1 + min((size(v.type) for v in t.variants), default=0)

    result = size(ty)
    ts._min_sizes[ty] = result
    return result


# ---------------------------------------------------------------------- fixed layouts


def _bool_from_byte(b: int) -> bool:
    if b > 1:
        raise DecodeError(f"invalid bool byte {b}")
    return b == 1


def _uint_from_bytes(b: bytes) -> int:
    return int.from_bytes(b, "little")


def _int_from_bytes(b: bytes) -> int:
    return int.from_bytes(b, "little", signed=True)


def _identity_from_bytes(b: bytes) -> Identity:
    return Identity(int.from_bytes(b, "little"))


def _connection_id_from_bytes(b: bytes) -> ConnectionId:
    return ConnectionId(int.from_bytes(b, "little"))


_Converter: TypeAlias = Callable[[Any], Any]

#: struct format code and post-conversion of each fixed-width primitive.
_STRUCT_CODES: Final[dict[str, tuple[str, _Converter | None]]] = {
    "Bool": ("B", _bool_from_byte),
    "I8": ("b", None),
    "U8": ("B", None),
    "I16": ("h", None),
    "U16": ("H", None),
    "I32": ("i", None),
    "U32": ("I", None),
    "I64": ("q", None),
    "U64": ("Q", None),
    "I128": ("16s", _int_from_bytes),
    "U128": ("16s", _uint_from_bytes),
    "I256": ("32s", _int_from_bytes),
    "U256": ("32s", _uint_from_bytes),
    "F32": ("f", None),
    "F64": ("d", None),
}
_SPECIAL_STRUCT_CODES: Final[dict[str, tuple[str, _Converter]]] = {
    "identity": ("32s", _identity_from_bytes),
    "connection_id": ("16s", _connection_id_from_bytes),
    "timestamp": ("q", Timestamp),
    "time_duration": ("q", TimeDuration),
}


def _struct_code(ty: AlgebraicType, ts: Typespace) -> tuple[str, _Converter | None] | None:
    kind = special_kind(ty, ts)
    if kind is not None:
        return _SPECIAL_STRUCT_CODES.get(kind)
    ty = ts.resolve(ty)
    if isinstance(ty, PrimitiveType):
        return _STRUCT_CODES.get(ty.kind)
    return None


@dataclass(frozen=True, slots=True)
class FixedLayout:
    """How to decode a product whose fields are all fixed-width, with one struct call.

    ``struct.unpack``/``iter_unpack`` the bytes, then ``build`` turns the raw tuple
    into the value (converting bools, 128/256-bit ints and special types).
    ``bools`` lists each Bool field as (index in the raw tuple, byte offset in the
    product), so an invalid bool byte is reported where it is.
    """

    struct: struct.Struct
    build: Callable[[tuple[Any, ...]], Any]
    bools: tuple[tuple[int, int], ...] = ()

    def bool_error(self, raw: tuple[Any, ...], start: int) -> DecodeError:
        """The error for the first invalid bool of ``raw``, a product read at byte ``start``."""
        for index, offset in self.bools:
            if raw[index] > 1:
                return DecodeError(f"invalid bool byte {raw[index]}", start + offset)
        raise AssertionError("bool_error called for a valid product")  # pragma: no cover


def fixed_layout(ty: AlgebraicType, typespace: Typespace | None = None) -> FixedLayout | None:
    """The :class:`FixedLayout` of a product of fixed-width primitives or special types.

    None for anything else (strings, arrays, options, nested products, sums).
    """
    ts = typespace if typespace is not None else Typespace()
    if ty not in ts._layouts:
        resolved = ts.resolve(ty)
        layout = None
        if isinstance(resolved, ProductType) and special_kind(resolved, ts) is None:
            layout = _product_layout(resolved, ts, _class_of(ty, ts))
        ts._layouts[ty] = layout
    return ts._layouts[ty]


def _product_layout(ty: ProductType, ts: Typespace, cls: type | None) -> FixedLayout | None:
    """One struct for all fields of ``ty`` if all are fixed-width; values are built with ``cls``."""
    codes: list[tuple[str, _Converter | None]] = []
    for e in ty.elements:
        code = _struct_code(e.type, ts)
        if code is None:
            return None
        codes.append(code)
    if not codes:
        return None
    layout = struct.Struct("<" + "".join(fmt for fmt, _ in codes))
    conversions = tuple((i, conv) for i, (_, conv) in enumerate(codes) if conv is not None)
    bools = tuple(
        (i, struct.calcsize("<" + "".join(fmt for fmt, _ in codes[:i])))
        for i, (_, conv) in enumerate(codes)
        if conv is _bool_from_byte
    )
    make: Callable[..., Any] = cls if cls is not None else _as_tuple

    if not conversions:
        if cls is None:
            return FixedLayout(layout, tuple)
        return FixedLayout(layout, lambda raw: make(*raw))

    def build(raw: tuple[Any, ...]) -> Any:
        values = list(raw)
        for i, conv in conversions:
            values[i] = conv(values[i])
        return make(*values)

    return FixedLayout(layout, build, bools)


def fixed_layout_size(ty: ProductType, typespace: Typespace) -> int | None:
    """The size of the product when its fields are all read with one struct call, else None.

    The pure decoder then checks the whole product for truncation at once; the
    native codec's layout descriptor records this so that both report the same error.
    """
    layout = _product_layout(ty, typespace, None)
    return None if layout is None else layout.struct.size


def _as_tuple(*values: Any) -> tuple[Any, ...]:
    return values


def _class_of(ty: AlgebraicType, ts: Typespace) -> type | None:
    """The dataclass values of ``ty`` are built with (None: tuples)."""
    return ts.product_class(ty.index) if isinstance(ty, RefType) else None


# --------------------------------------------------------------------------- decoders

_PRIMITIVE_DECODERS: Final[dict[str, Decoder]] = {
    "Bool": BsatnReader.bool,
    "I8": BsatnReader.i8,
    "U8": BsatnReader.u8,
    "I16": BsatnReader.i16,
    "U16": BsatnReader.u16,
    "I32": BsatnReader.i32,
    "U32": BsatnReader.u32,
    "I64": BsatnReader.i64,
    "U64": BsatnReader.u64,
    "I128": BsatnReader.i128,
    "U128": BsatnReader.u128,
    "I256": BsatnReader.i256,
    "U256": BsatnReader.u256,
    "F32": BsatnReader.f32,
    "F64": BsatnReader.f64,
    "String": BsatnReader.string,
}


def compile_decoder(ty: AlgebraicType, typespace: Typespace | None = None) -> Decoder:
    """A function reading one value of ``ty`` from a :class:`BsatnReader`.

    Compiled once per type and cached in the typespace; references (including
    recursive ones) are resolved lazily. The decoder raises :class:`DecodeError`
    for any malformed input; it does not check for trailing bytes (the caller does,
    see :func:`decode_value`).
    """
    return _decoder(ty, typespace if typespace is not None else Typespace())


def decode_value(ty: AlgebraicType, data: bytes, typespace: Typespace | None = None) -> Any:
    """Decode exactly one value of ``ty`` from ``data`` (trailing bytes are an error)."""
    reader = BsatnReader(data)
    value = compile_decoder(ty, typespace)(reader)
    reader.expect_end()
    return value


def _decoder(ty: AlgebraicType, ts: Typespace) -> Decoder:
    cached = ts._decoders.get(ty)
    if cached is not None:
        return cached
    if not isinstance(ty, RefType):
        dec = _build_decoder(ty, ts)
        ts._decoders[ty] = dec
        return dec
    # A reference may be part of a cycle: register a forwarder before compiling the
    # target, so that compiling it again from inside itself finds the forwarder.
    cell: list[Decoder] = []

    def forward(r: BsatnReader) -> Any:
        try:
            return cell[0](r)
        except RecursionError:
            raise DecodeError("value nested too deeply", r.pos) from None

    ts._decoders[ty] = forward
    try:
        target = ts[ty.index]
        cls = None if isinstance(target, RefType) else ts.product_class(ty.index)
        if cls is not None:
            dec = _product_decoder(cast(ProductType, target), ts, cls)
        else:  # not a named product (an alias compiles to its target's decoder)
            dec = _decoder(target, ts)
    except BaseException:
        del ts._decoders[ty]
        raise
    cell.append(dec)
    ts._decoders[ty] = dec
    return dec


def _build_decoder(ty: AlgebraicType, ts: Typespace) -> Decoder:
    kind = special_kind(ty, ts)
    if kind is not None:
        return _special_decoder(kind, ty, ts)
    if isinstance(ty, PrimitiveType):
        return _PRIMITIVE_DECODERS[ty.kind]
    if isinstance(ty, ArrayType):
        return _array_decoder(ty.elem, ts)
    if isinstance(ty, ProductType):
        return _product_decoder(ty, ts, None)
    if isinstance(ty, SumType):
        return _sum_decoder(ty, ts)
    raise SchemaError(f"cannot decode {ty!r}")  # pragma: no cover - RefType handled by caller


def _special_decoder(kind: SpecialKind, ty: AlgebraicType, ts: Typespace) -> Decoder:
    if kind == "identity":
        return lambda r: Identity(r.u256())
    if kind == "connection_id":
        return lambda r: ConnectionId(r.u128())
    if kind == "timestamp":
        return lambda r: Timestamp(r.i64())
    if kind == "time_duration":
        return lambda r: TimeDuration(r.i64())
    if kind == "schedule_at":

        def schedule_at(r: BsatnReader) -> ScheduleAt:
            if r.tag(2, "ScheduleAt") == 0:
                return ScheduleAt(interval=TimeDuration(r.i64()))
            return ScheduleAt(time=Timestamp(r.i64()))

        return schedule_at
    some = _decoder(cast(SumType, ty).variants[0].type, ts)  # an option

    def optional(r: BsatnReader) -> Any:
        return some(r) if r.tag(2, "option") == 0 else None

    return optional


def _array_decoder(elem: AlgebraicType, ts: Typespace) -> Decoder:
    resolved = ts.resolve(elem)
    if resolved == U8:
        return BsatnReader.bytes
    if resolved == BOOL:

        def bools(r: BsatnReader) -> tuple[bool, ...]:
            data = r.take(r.length("array of bool"), "array of bool")
            if data.translate(None, b"\x00\x01"):
                raise DecodeError("invalid bool byte in array", r.pos - len(data))
            return tuple([b == 1 for b in data])

        return bools
    code = _STRUCT_CODES.get(resolved.kind) if isinstance(resolved, PrimitiveType) else None
    if code is not None and code[1] is None:  # plain numbers: one struct call for all
        fmt, size = code[0], struct.calcsize(code[0])

        def numbers(r: BsatnReader) -> tuple[Any, ...]:
            n = r.length("array", size)
            return struct.unpack(f"<{n}{fmt}", r.take(n * size, "array payload"))

        return numbers

    item = _decoder(elem, ts)
    item_min = min_size(elem, ts)  # lets the length check refuse absurd counts up front

    def items(r: BsatnReader) -> tuple[Any, ...]:
        return tuple([item(r) for _ in range(r.length("array", item_min))])

    return items


def _product_decoder(ty: ProductType, ts: Typespace, cls: type | None) -> Decoder:
    if not ty.elements and cls is None:
        return lambda r: ()
    layout = _product_layout(ty, ts, cls)
    if layout is not None:  # fast path: all fields fixed-width, one struct call
        return _fixed_product_decoder(layout)
    fields = tuple(_decoder(e.type, ts) for e in ty.elements)
    if cls is None:
        return lambda r: tuple([f(r) for f in fields])
    make = cls
    return lambda r: make(*[f(r) for f in fields])


def _fixed_product_decoder(layout: FixedLayout) -> Decoder:
    layout_struct, build = layout.struct, layout.build

    def decode(r: BsatnReader) -> Any:
        start = r.pos
        raw = r.unpack(layout_struct)
        try:
            return build(raw)
        except DecodeError:  # an invalid bool byte: say where it is
            raise layout.bool_error(raw, start) from None

    return decode


def _sum_decoder(ty: SumType, ts: Typespace) -> Decoder:
    count = len(ty.variants)
    names = tuple(v.name if v.name is not None else str(i) for i, v in enumerate(ty.variants))
    payloads = tuple(_decoder(v.type, ts) for v in ty.variants)
    what = "sum"

    def variant(r: BsatnReader) -> Variant:
        t = r.tag(count, what)
        return Variant(names[t], payloads[t](r))

    return variant


# --------------------------------------------------------------------------- encoders


class _FieldError(EncodeError):
    """An EncodeError inside a container, carrying the path to the bad field."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _at(exc: EncodeError, segment: str) -> _FieldError:
    """Prefix ``segment`` (a field name or ``[i]``) to the path of ``exc``."""
    if isinstance(exc, _FieldError):
        sep = "" if exc.path.startswith("[") else "."
        return _FieldError(segment + sep + exc.path, exc.reason)
    return _FieldError(segment, str(exc))


_PRIMITIVE_ENCODERS: Final[dict[str, Encoder]] = {
    "Bool": BsatnWriter.bool,
    "I8": BsatnWriter.i8,
    "U8": BsatnWriter.u8,
    "I16": BsatnWriter.i16,
    "U16": BsatnWriter.u16,
    "I32": BsatnWriter.i32,
    "U32": BsatnWriter.u32,
    "I64": BsatnWriter.i64,
    "U64": BsatnWriter.u64,
    "I128": BsatnWriter.i128,
    "U128": BsatnWriter.u128,
    "I256": BsatnWriter.i256,
    "U256": BsatnWriter.u256,
    "F32": BsatnWriter.f32,
    "F64": BsatnWriter.f64,
    "String": BsatnWriter.string,
}


def compile_encoder(ty: AlgebraicType, typespace: Typespace | None = None) -> Encoder:
    """A function writing one value of ``ty`` to a :class:`BsatnWriter`.

    It checks every value and raises :class:`EncodeError` naming the path to the
    bad field, e.g. ``agent.version: -1 does not fit in u64 (range 0..…)``.
    """
    enc = _encoder(ty, typespace if typespace is not None else Typespace())

    def encode(w: BsatnWriter, value: Any) -> None:
        try:
            enc(w, value)
        except _FieldError as exc:
            raise EncodeError(str(exc)) from None

    return encode


def encode_value(ty: AlgebraicType, value: Any, typespace: Typespace | None = None) -> bytes:
    """The BSATN bytes of ``value`` as type ``ty``."""
    w = BsatnWriter()
    compile_encoder(ty, typespace)(w, value)
    return w.getvalue()


def _encoder(ty: AlgebraicType, ts: Typespace) -> Encoder:
    cached = ts._encoders.get(ty)
    if cached is not None:
        return cached
    if not isinstance(ty, RefType):
        enc = _build_encoder(ty, ts)
        ts._encoders[ty] = enc
        return enc
    cell: list[Encoder] = []

    def forward(w: BsatnWriter, value: Any) -> None:
        try:
            cell[0](w, value)
        except RecursionError:
            raise EncodeError("value nested too deeply") from None

    ts._encoders[ty] = forward
    try:
        target = ts[ty.index]
        cls = None if isinstance(target, RefType) else ts.product_class(ty.index)
        if cls is not None:
            enc = _product_encoder(cast(ProductType, target), ts, cls)
        else:
            enc = _encoder(target, ts)
    except BaseException:
        del ts._encoders[ty]
        raise
    cell.append(enc)
    ts._encoders[ty] = enc
    return enc


def _build_encoder(ty: AlgebraicType, ts: Typespace) -> Encoder:
    kind = special_kind(ty, ts)
    if kind is not None:
        return _special_encoder(kind, ty, ts)
    if isinstance(ty, PrimitiveType):
        return _PRIMITIVE_ENCODERS[ty.kind]
    if isinstance(ty, ArrayType):
        return _array_encoder(ty.elem, ts)
    if isinstance(ty, ProductType):
        return _product_encoder(ty, ts, None)
    if isinstance(ty, SumType):
        return _sum_encoder(ty, ts)
    raise SchemaError(f"cannot encode {ty!r}")  # pragma: no cover - RefType handled by caller


def _expected(what: str, value: Any) -> EncodeError:
    return EncodeError(f"expected {what}, got {type(value).__name__}")


def _encode_timestamp(w: BsatnWriter, v: Any) -> None:
    if isinstance(v, _dt.datetime):
        try:
            v = Timestamp.from_datetime(v)
        except ValueError as exc:
            raise EncodeError(str(exc)) from None
    if not isinstance(v, Timestamp):
        raise _expected("Timestamp or an aware datetime", v)
    w.i64(v.micros_since_epoch)


def _encode_time_duration(w: BsatnWriter, v: Any) -> None:
    if isinstance(v, _dt.timedelta):
        v = TimeDuration.from_timedelta(v)
    if not isinstance(v, TimeDuration):
        raise _expected("TimeDuration or timedelta", v)
    w.i64(v.micros)


def _encode_identity(w: BsatnWriter, v: Any) -> None:
    if not isinstance(v, Identity):
        raise _expected("Identity", v)
    w.u256(v.value)


def _encode_connection_id(w: BsatnWriter, v: Any) -> None:
    if not isinstance(v, ConnectionId):
        raise _expected("ConnectionId", v)
    w.u128(v.value)


def _encode_schedule_at(w: BsatnWriter, v: Any) -> None:
    if isinstance(v, TimeDuration):
        v = ScheduleAt(interval=v)
    elif isinstance(v, Timestamp):
        v = ScheduleAt(time=v)
    if not isinstance(v, ScheduleAt):
        raise _expected("ScheduleAt, TimeDuration or Timestamp", v)
    if v.interval is not None:
        w.tag(0)
        _encode_time_duration(w, v.interval)
    else:
        w.tag(1)
        _encode_timestamp(w, v.time)


_SPECIAL_ENCODERS: Final[dict[str, Encoder]] = {
    "identity": _encode_identity,
    "connection_id": _encode_connection_id,
    "timestamp": _encode_timestamp,
    "time_duration": _encode_time_duration,
    "schedule_at": _encode_schedule_at,
}


def _special_encoder(kind: SpecialKind, ty: AlgebraicType, ts: Typespace) -> Encoder:
    if kind != "option":
        return _SPECIAL_ENCODERS[kind]
    some = _encoder(cast(SumType, ty).variants[0].type, ts)  # an option

    def optional(w: BsatnWriter, v: Any) -> None:
        if v is None:
            w.tag(1)
        else:
            w.tag(0)
            some(w, v)

    return optional


def _array_encoder(elem: AlgebraicType, ts: Typespace) -> Encoder:
    if ts.resolve(elem) == U8:
        return BsatnWriter.bytes
    item = _encoder(elem, ts)

    def items(w: BsatnWriter, v: Any) -> None:
        if not isinstance(v, (list, tuple)):
            raise _expected("a list or tuple", v)
        w.length(len(v))
        for i, x in enumerate(v):
            try:
                item(w, x)
            except EncodeError as exc:
                raise _at(exc, f"[{i}]") from None

    return items


def _product_encoder(ty: ProductType, ts: Typespace, cls: type | None) -> Encoder:
    names = tuple(e.name if e.name is not None else str(i) for i, e in enumerate(ty.elements))
    attrs = tuple(attribute_name(n) for n in names)
    all_named = all(e.name is not None for e in ty.elements)
    fields = tuple(_encoder(e.type, ts) for e in ty.elements)
    count = len(fields)
    kind = cls.__name__ if cls is not None else "a product"
    shape = f"{kind} with fields ({', '.join(names)})"

    def values_of(v: Any) -> Sequence[Any]:
        if cls is not None and type(v) is cls:
            return [getattr(v, a) for a in attrs]
        if isinstance(v, (tuple, list)):
            if len(v) != count:
                raise EncodeError(f"expected {shape}, got a sequence of {len(v)} item(s)")
            return v
        if isinstance(v, Mapping):
            missing = [n for n in names if n not in v]
            extra = [repr(k) for k in v if k not in names]
            if missing or extra:
                problems = [f"missing {', '.join(missing)}"] if missing else []
                problems += [f"unexpected {', '.join(extra)}"] if extra else []
                raise EncodeError(f"expected {shape}; {'; '.join(problems)}")
            return [v[n] for n in names]
        if v is None and count == 0:
            return ()
        if all_named and count and all(hasattr(v, a) for a in attrs):
            return [getattr(v, a) for a in attrs]
        raise _expected(shape, v)

    def encode(w: BsatnWriter, v: Any) -> None:
        for name, field, x in zip(names, fields, values_of(v), strict=True):
            try:
                field(w, x)
            except EncodeError as exc:
                raise _at(exc, name) from None

    return encode


def _sum_encoder(ty: SumType, ts: Typespace) -> Encoder:
    names = tuple(v.name if v.name is not None else str(i) for i, v in enumerate(ty.variants))
    tags = {name: i for i, name in enumerate(names)}
    payloads = tuple(_encoder(v.type, ts) for v in ty.variants)
    units = {name for name, v in zip(names, ty.variants, strict=True) if ts.resolve(v.type) == UNIT}
    shape = f"a Variant of ({', '.join(names)})"

    def encode(w: BsatnWriter, v: Any) -> None:
        if isinstance(v, str) and v in units:
            w.tag(tags[v])
            return
        if not isinstance(v, Variant):
            raise _expected(shape, v)
        tag = tags.get(v.name)
        if tag is None:
            raise EncodeError(f"unknown variant {v.name!r}; expected one of {', '.join(names)}")
        w.tag(tag)
        try:
            payloads[tag](w, v.value)
        except EncodeError as exc:
            raise _at(exc, v.name) from None

    return encode


_EMPTY: Final = Typespace()
