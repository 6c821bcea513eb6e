"""A SATS type compiled into the compact layout descriptor the native codec reads.

The native codec (``inner_universe._native.Layout``) never sees schema objects: it
gets bytes and, once per type, this descriptor, a list of small tuples where node 0
is the type itself and nodes refer to each other by index (so recursive types are
cycles of indices)::

    ("u64",) ("string",) ...               a primitive, by its lower-case name
    ("bytes",)                             Array<U8>
    ("bool_array",)                        Array<Bool>
    ("number_array", "i32")                an array of plain numbers
    ("array", elem, min_item_size)         any other array
    ("product", cls | None, attrs, fields, fixed_size | None)
    ("sum", names, payloads)               a general sum: Variant(name, value)
    ("option", some)
    ("identity",) ("connection_id",) ("timestamp",) ("time_duration",) ("schedule_at",)
    ("alias", target)                      a named type that is not a row class

Every decision here is the one the pure decoders in :mod:`.sats` make for the same
type (which Python value a type becomes, which arrays are read in one go, which
products are checked for truncation as a whole), so both codecs give the same
values and the same errors.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

from ..errors import DecodeError
from .sats import (
    BOOL,
    U8,
    AlgebraicType,
    ArrayType,
    PrimitiveType,
    ProductType,
    RefType,
    SumType,
    Typespace,
    Variant,
    attribute_name,
    fixed_layout_size,
    min_size,
    special_kind,
)
from .types import ConnectionId, Identity, ScheduleAt, TimeDuration, Timestamp

__all__ = ["CLASSES", "Descriptor", "descriptor"]

Descriptor: TypeAlias = list[tuple[Any, ...]]

#: The classes the native codec builds values with (and raises errors as).
CLASSES: Final[dict[str, type]] = {
    "Identity": Identity,
    "ConnectionId": ConnectionId,
    "Timestamp": Timestamp,
    "TimeDuration": TimeDuration,
    "ScheduleAt": ScheduleAt,
    "Variant": Variant,
    "DecodeError": DecodeError,
}

#: Array elements read with one struct call and no conversion in the pure codec.
_NUMBER_KINDS: Final = frozenset({"I8", "I16", "U16", "I32", "U32", "I64", "U64", "F32", "F64"})


def descriptor(ty: AlgebraicType, typespace: Typespace) -> Descriptor:
    """The layout descriptor of ``ty`` (node 0) over ``typespace``."""
    return _Compiler(typespace).compile(ty)


class _Compiler:
    def __init__(self, typespace: Typespace) -> None:
        self.ts = typespace
        self.nodes: Descriptor = []
        self.index: dict[AlgebraicType, int] = {}

    def compile(self, ty: AlgebraicType) -> Descriptor:
        self.node(ty)
        return self.nodes

    def node(self, ty: AlgebraicType) -> int:
        """The index of ``ty``'s node; registered before its children, so cycles close."""
        known = self.index.get(ty)
        if known is not None:
            return known
        at = len(self.nodes)
        self.index[ty] = at
        self.nodes.append(())
        self.nodes[at] = self.build(ty)
        return at

    def build(self, ty: AlgebraicType) -> tuple[Any, ...]:
        ts = self.ts
        if isinstance(ty, RefType):  # as sats._decoder: a row class, or its target's codec
            target = ts[ty.index]
            cls = None if isinstance(target, RefType) else ts.product_class(ty.index)
            if cls is not None:
                assert isinstance(target, ProductType)
                return self.product(target, cls)
            return ("alias", self.node(target))
        kind = special_kind(ty, ts)
        if kind == "option":
            assert isinstance(ty, SumType)
            return ("option", self.node(ty.variants[0].type))
        if kind is not None:
            return (kind,)
        if isinstance(ty, PrimitiveType):
            return (ty.kind.lower(),)
        if isinstance(ty, ArrayType):
            elem = ts.resolve(ty.elem)
            if elem == U8:
                return ("bytes",)
            if elem == BOOL:
                return ("bool_array",)
            if isinstance(elem, PrimitiveType) and elem.kind in _NUMBER_KINDS:
                return ("number_array", elem.kind.lower())
            return ("array", self.node(ty.elem), min_size(ty.elem, ts))
        if isinstance(ty, ProductType):
            return self.product(ty, None)
        names = tuple(v.name if v.name is not None else str(i) for i, v in enumerate(ty.variants))
        return ("sum", names, tuple(self.node(v.type) for v in ty.variants))

    def product(self, ty: ProductType, cls: type | None) -> tuple[Any, ...]:
        names = (e.name if e.name is not None else str(i) for i, e in enumerate(ty.elements))
        attrs = tuple(attribute_name(n) for n in names)
        fields = tuple(self.node(e.type) for e in ty.elements)
        fixed = None if not ty.elements and cls is None else fixed_layout_size(ty, self.ts)
        return ("product", cls, attrs, fields, fixed)
