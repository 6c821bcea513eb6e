//! The compiled form of a SATS type: a flat list of nodes that refer to each other by index.
//!
//! Python compiles a type once into a compact descriptor (see
//! `inner_universe/spacetime/layout.py`): a list of small tuples such as `("u64",)`,
//! `("array", elem, min_size)` or `("product", cls, attrs, fields, fixed_size)`, where
//! `elem` and `fields` are indices into the same list, so recursive types are cycles of
//! indices. This module turns that descriptor into [`Node`]s the codecs walk.

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

/// A fixed-width or length-prefixed primitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prim {
    Bool,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    I128,
    U128,
    I256,
    U256,
    F32,
    F64,
    String,
}

impl Prim {
    fn parse(name: &str) -> Option<Prim> {
        Some(match name {
            "bool" => Prim::Bool,
            "i8" => Prim::I8,
            "u8" => Prim::U8,
            "i16" => Prim::I16,
            "u16" => Prim::U16,
            "i32" => Prim::I32,
            "u32" => Prim::U32,
            "i64" => Prim::I64,
            "u64" => Prim::U64,
            "i128" => Prim::I128,
            "u128" => Prim::U128,
            "i256" => Prim::I256,
            "u256" => Prim::U256,
            "f32" => Prim::F32,
            "f64" => Prim::F64,
            "string" => Prim::String,
            _ => return None,
        })
    }

    /// The name the pure codec uses in its error messages ("u64", "string"...).
    pub fn name(self) -> &'static str {
        match self {
            Prim::Bool => "bool",
            Prim::I8 => "i8",
            Prim::U8 => "u8",
            Prim::I16 => "i16",
            Prim::U16 => "u16",
            Prim::I32 => "i32",
            Prim::U32 => "u32",
            Prim::I64 => "i64",
            Prim::U64 => "u64",
            Prim::I128 => "i128",
            Prim::U128 => "u128",
            Prim::I256 => "i256",
            Prim::U256 => "u256",
            Prim::F32 => "f32",
            Prim::F64 => "f64",
            Prim::String => "string",
        }
    }

    /// The byte size of a fixed-width primitive (None for strings).
    pub fn size(self) -> Option<usize> {
        Some(match self {
            Prim::Bool | Prim::I8 | Prim::U8 => 1,
            Prim::I16 | Prim::U16 => 2,
            Prim::I32 | Prim::U32 | Prim::F32 => 4,
            Prim::I64 | Prim::U64 | Prim::F64 => 8,
            Prim::I128 | Prim::U128 => 16,
            Prim::I256 | Prim::U256 => 32,
            Prim::String => return None,
        })
    }
}

/// One node of a compiled type.
pub enum Node {
    Prim(Prim),
    /// `Array<U8>`: Python `bytes`.
    Bytes,
    /// `Array<Bool>`: a tuple of bools, validated in one pass.
    BoolArray,
    /// An array of plain numbers (no conversion needed): a tuple of ints or floats.
    NumberArray(Prim),
    /// Any other array: a tuple; `min_size` bounds the count a length prefix may claim.
    Array {
        elem: usize,
        min_size: usize,
    },
    /// A struct: an instance of `cls` (a frozen dataclass; `slots` are its fields) or,
    /// without one, a tuple. `fixed_size` is set when the pure codec reads all fields
    /// with one struct call, whose truncation check covers the whole product at once.
    Product {
        cls: Option<Py<PyType>>,
        slots: Vec<Slot>,
        fields: Vec<usize>,
        fixed_size: Option<usize>,
        /// Set when there is a class and every field is [`Plain`] (most table rows):
        /// the decoder's fast path reads them in one loop.
        plain: Option<Vec<Plain>>,
    },
    /// A general sum: a `Variant(name, value)`.
    Sum {
        names: Vec<Py<PyString>>,
        payloads: Vec<usize>,
    },
    /// `some(T) | none`: the value or None.
    Option(usize),
    Identity,
    ConnectionId,
    Timestamp,
    TimeDuration,
    ScheduleAt,
    /// A named type that is not a product class: decodes as its target (resolved away).
    Alias(usize),
}

/// A field the decoder's fast path reads straight from the buffer (see
/// `Decoder::plain_product`): a number, a bool, a string, an Identity or a Timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plain {
    Prim(Prim),
    Identity,
    Timestamp,
}

impl Plain {
    fn of(node: &Node) -> Option<Plain> {
        match node {
            Node::Prim(p) if !matches!(p, Prim::I256 | Prim::U256) => Some(Plain::Prim(*p)),
            Node::Identity => Some(Plain::Identity),
            Node::Timestamp => Some(Plain::Timestamp),
            _ => None,
        }
    }
}

/// One field of a slotted class (every class values are built with is a frozen
/// dataclass with slots): where in the instance its member descriptor keeps it.
///
/// A frozen dataclass's `__init__` sets each field with `object.__setattr__`, which
/// looks the descriptor up and calls its setter; the decoder only ever fills fields
/// of instances it has just allocated, so it stores the value at the field's offset,
/// which is all the setter would do for an empty field (see [`Slot::fill`]).
pub struct Slot {
    pub name: Py<PyString>,
    offset: usize,
}

impl Slot {
    pub fn new(cls: &Bound<'_, PyType>, name: &str) -> PyResult<Slot> {
        let name = PyString::intern(cls.py(), name);
        let descriptor = cls.getattr(&name)?;
        let not_a_slot = || {
            bad(format!(
                "{}.{name} is not a slot (the class needs slots=True)",
                cls.name().map(|n| n.to_string()).unwrap_or_default()
            ))
        };
        if !descriptor
            .get_type()
            .is(py_member_descriptor_type(cls.py()))
        {
            return Err(not_a_slot());
        }
        // SAFETY: the descriptor is a member_descriptor (checked just above), whose C
        // struct is a PyMemberDescrObject pointing at its class's PyMemberDef; pyo3
        // types that pointer as a PyGetSetDef, hence the cast.
        let member = unsafe {
            let descr = descriptor.as_ptr().cast::<ffi::PyMemberDescrObject>();
            &*(*descr).d_member.cast::<ffi::PyMemberDef>()
        };
        let readonly = member.flags & ffi::Py_READONLY != 0;
        if member.type_code != ffi::Py_T_OBJECT_EX || readonly || member.offset <= 0 {
            return Err(not_a_slot());
        }
        let basic_size = cls.getattr("__basicsize__")?.extract::<usize>()?;
        let offset = member.offset as usize;
        if offset + std::mem::size_of::<*mut ffi::PyObject>() > basic_size {
            return Err(not_a_slot());
        }
        Ok(Slot {
            name: name.unbind(),
            offset,
        })
    }

    /// Fill this field of `obj`, a new instance of the slot's class allocated by the
    /// decoder, with `value` (the field takes over the reference).
    ///
    /// The field of a new instance is empty (NULL); were it not, the old value is released,
    /// as the member descriptor's setter would.
    pub fn fill(&self, obj: &Bound<'_, PyAny>, value: Bound<'_, PyAny>) {
        // SAFETY: obj is an instance of the slot's class (the decoder only fills objects
        // it allocated from that class), so `offset` lies inside it (checked against the
        // class's basic size) and holds an object pointer or NULL.
        unsafe {
            let field = obj
                .as_ptr()
                .cast::<u8>()
                .add(self.offset)
                .cast::<*mut ffi::PyObject>();
            let old = std::mem::replace(&mut *field, value.into_ptr());
            ffi::Py_XDECREF(old);
        }
    }
}

/// The type of member descriptors (`type(SomeSlottedClass.field)`).
fn py_member_descriptor_type(py: Python<'_>) -> &Bound<'_, PyType> {
    static TYPE: pyo3::sync::GILOnceCell<Py<PyType>> = pyo3::sync::GILOnceCell::new();
    TYPE.get_or_init(py, || {
        // SAFETY: PyMemberDescr_Type is a static type object that lives forever.
        unsafe {
            Bound::from_borrowed_ptr(py, std::ptr::addr_of_mut!(ffi::PyMemberDescr_Type).cast())
                .downcast_into_unchecked::<PyType>()
                .unbind()
        }
    })
    .bind(py)
}

/// The Python classes values are built with, and their fields.
pub struct Classes {
    pub identity: Py<PyType>,
    pub identity_value: Slot,
    pub connection_id: Py<PyType>,
    pub connection_id_value: Slot,
    pub timestamp: Py<PyType>,
    pub timestamp_micros: Slot,
    pub time_duration: Py<PyType>,
    pub time_duration_micros: Slot,
    pub schedule_at: Py<PyType>,
    pub schedule_at_interval: Slot,
    pub schedule_at_time: Slot,
    pub variant: Py<PyType>,
    pub variant_name: Slot,
    pub variant_value: Slot,
    pub decode_error: Py<PyType>,
}

impl Classes {
    pub fn from_dict(classes: &Bound<'_, PyDict>) -> PyResult<Classes> {
        let get = |key: &str| -> PyResult<Bound<'_, PyType>> {
            match classes.get_item(key)? {
                Some(cls) => Ok(cls.downcast_into::<PyType>()?),
                None => Err(PyValueError::new_err(format!(
                    "layout classes lack {key:?}"
                ))),
            }
        };
        let identity = get("Identity")?;
        let connection_id = get("ConnectionId")?;
        let timestamp = get("Timestamp")?;
        let time_duration = get("TimeDuration")?;
        let schedule_at = get("ScheduleAt")?;
        let variant = get("Variant")?;
        Ok(Classes {
            identity_value: Slot::new(&identity, "value")?,
            identity: identity.unbind(),
            connection_id_value: Slot::new(&connection_id, "value")?,
            connection_id: connection_id.unbind(),
            timestamp_micros: Slot::new(&timestamp, "micros_since_epoch")?,
            timestamp: timestamp.unbind(),
            time_duration_micros: Slot::new(&time_duration, "micros")?,
            time_duration: time_duration.unbind(),
            schedule_at_interval: Slot::new(&schedule_at, "interval")?,
            schedule_at_time: Slot::new(&schedule_at, "time")?,
            schedule_at: schedule_at.unbind(),
            variant_name: Slot::new(&variant, "name")?,
            variant_value: Slot::new(&variant, "value")?,
            variant: variant.unbind(),
            decode_error: get("DecodeError")?.unbind(),
        })
    }
}

fn bad(message: String) -> PyErr {
    PyValueError::new_err(format!("invalid layout descriptor: {message}"))
}

fn parse_node(item: &Bound<'_, PyAny>, count: usize) -> PyResult<Node> {
    let py = item.py();
    let t = item.downcast::<PyTuple>()?;
    let kind: String = t.get_item(0)?.extract()?;
    let index = |i: usize| -> PyResult<usize> {
        let n: usize = t.get_item(i)?.extract()?;
        if n >= count {
            return Err(bad(format!("node index {n} out of range")));
        }
        Ok(n)
    };
    let indices = |i: usize| -> PyResult<Vec<usize>> {
        let list: Vec<usize> = t.get_item(i)?.extract()?;
        if let Some(n) = list.iter().find(|&&n| n >= count) {
            return Err(bad(format!("node index {n} out of range")));
        }
        Ok(list)
    };
    let strings = |i: usize| -> PyResult<Vec<Py<PyString>>> {
        let names: Vec<String> = t.get_item(i)?.extract()?;
        Ok(names
            .iter()
            .map(|n| PyString::intern(py, n).unbind())
            .collect())
    };
    if let Some(p) = Prim::parse(&kind) {
        return Ok(Node::Prim(p));
    }
    Ok(match kind.as_str() {
        "bytes" => Node::Bytes,
        "bool_array" => Node::BoolArray,
        "number_array" => {
            let name: String = t.get_item(1)?.extract()?;
            match Prim::parse(&name) {
                Some(p) if !matches!(p, Prim::Bool | Prim::String) && p.size().unwrap() <= 8 => {
                    Node::NumberArray(p)
                }
                _ => return Err(bad(format!("number_array of {name}"))),
            }
        }
        "array" => Node::Array {
            elem: index(1)?,
            min_size: t.get_item(2)?.extract()?,
        },
        "product" => {
            let cls_item = t.get_item(1)?;
            let attrs: Vec<String> = t.get_item(2)?.extract()?;
            let fields = indices(3)?;
            if attrs.len() != fields.len() {
                return Err(bad("product attrs and fields differ in length".into()));
            }
            let (cls, slots) = if cls_item.is_none() {
                (None, Vec::new())
            } else {
                let cls = cls_item.downcast_into::<PyType>()?;
                let slots = attrs
                    .iter()
                    .map(|a| Slot::new(&cls, a))
                    .collect::<PyResult<Vec<_>>>()?;
                (Some(cls.unbind()), slots)
            };
            Node::Product {
                cls,
                slots,
                fields,
                fixed_size: t.get_item(4)?.extract()?,
                plain: None, // known once every node is parsed (parse_nodes)
            }
        }
        "sum" => {
            let names = strings(1)?;
            let payloads = indices(2)?;
            if names.len() != payloads.len() || names.len() > 256 {
                return Err(bad("sum names and payloads differ, or too many".into()));
            }
            Node::Sum { names, payloads }
        }
        "option" => Node::Option(index(1)?),
        "identity" => Node::Identity,
        "connection_id" => Node::ConnectionId,
        "timestamp" => Node::Timestamp,
        "time_duration" => Node::TimeDuration,
        "schedule_at" => Node::ScheduleAt,
        "alias" => Node::Alias(index(1)?),
        other => return Err(bad(format!("unknown node kind {other:?}"))),
    })
}

/// Parse a descriptor (its root is node 0) and replace every reference to an alias by the
/// alias's target. Returns the nodes and the root's index after that.
pub fn parse_nodes(descriptor: &Bound<'_, PyAny>) -> PyResult<(Vec<Node>, usize)> {
    let items: Vec<Bound<'_, PyAny>> = descriptor.extract()?;
    if items.is_empty() {
        return Err(bad("no nodes".into()));
    }
    let count = items.len();
    let mut nodes = items
        .iter()
        .map(|item| parse_node(item, count))
        .collect::<PyResult<Vec<Node>>>()?;
    let target: Vec<usize> = (0..count)
        .map(|start| {
            let mut i = start;
            for _ in 0..=count {
                match nodes[i] {
                    Node::Alias(next) => i = next,
                    _ => return Ok(i),
                }
            }
            Err(bad("alias cycle".into()))
        })
        .collect::<PyResult<_>>()?;
    for node in nodes.iter_mut() {
        match node {
            Node::Array { elem, .. } => *elem = target[*elem],
            Node::Option(some) => *some = target[*some],
            Node::Product { fields, .. } => fields.iter_mut().for_each(|f| *f = target[*f]),
            Node::Sum { payloads, .. } => payloads.iter_mut().for_each(|p| *p = target[*p]),
            Node::Alias(to) => *to = target[*to],
            _ => {}
        }
    }
    let plain: Vec<Option<Vec<Plain>>> = nodes
        .iter()
        .map(|node| match node {
            Node::Product {
                cls: Some(_),
                fields,
                ..
            } => fields.iter().map(|&f| Plain::of(&nodes[f])).collect(),
            _ => None,
        })
        .collect();
    for (node, fields) in nodes.iter_mut().zip(plain) {
        if let Node::Product { plain, .. } = node {
            *plain = fields;
        }
    }
    Ok((nodes, target[0]))
}
