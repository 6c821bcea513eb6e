//! BSATN bytes to Python values, walking a compiled [`Node`] list.
//!
//! Every check, error message and error offset mirrors the pure-Python reference
//! (`inner_universe/spacetime/bsatn.py` and `sats.py`): the differential tests compare
//! the two on random and malformed input.

use std::ffi::c_int;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyTuple, PyType};
use pyo3::IntoPyObjectExt;

use crate::layout::{Classes, Node, Plain, Prim, Slot};

/// Arrays of zero-sized items cannot be bounded by the input size; the pure codec caps them.
const MAX_ZERO_SIZED_ITEMS: u64 = 1 << 24;
/// How deep values may nest before decoding stops with "value nested too deeply".
pub const MAX_DEPTH: u32 = 1000;

/// Why decoding stopped: malformed input (a DecodeError for Python) or a Python error.
pub enum Fail {
    Decode {
        message: String,
        offset: Option<usize>,
    },
    Py(PyErr),
}

impl From<PyErr> for Fail {
    fn from(err: PyErr) -> Self {
        Fail::Py(err)
    }
}

pub type Result<T> = std::result::Result<T, Fail>;

fn malformed<T>(message: String, offset: usize) -> Result<T> {
    Err(Fail::Decode {
        message,
        offset: Some(offset),
    })
}

impl Fail {
    /// The Python exception: an `inner_universe.errors.DecodeError(message, offset)`.
    pub fn into_pyerr(self, py: Python<'_>, decode_error: &Py<PyType>) -> PyErr {
        match self {
            Fail::Py(err) => err,
            Fail::Decode { message, offset } => {
                match decode_error.bind(py).call1((message, offset)) {
                    Ok(exc) => PyErr::from_value(exc),
                    Err(err) => err,
                }
            }
        }
    }

    /// The same failure with `prefix` in front of its message.
    pub fn prefixed(self, prefix: &str) -> Fail {
        match self {
            Fail::Decode { message, offset } => Fail::Decode {
                message: format!("{prefix}{message}"),
                offset,
            },
            other => other,
        }
    }
}

/// A new, empty instance of `cls`, not tracked by the cyclic garbage collector; its
/// fields are filled with [`Slot::fill`].
///
/// Everything the decoder builds is immutable (frozen row classes, tuples, ints,
/// strings, Identities, Timestamps) and refers only to values built after it, so it
/// can never be part of a reference cycle: the collector would only rescan it, on
/// every collection, for as long as the row stays in the cache. Untracking is what
/// CPython does for tuples of atoms, done here at once (a tracked object it refers
/// to still counts as referenced, so nothing is freed early).
fn alloc<'py>(py: Python<'py>, cls: &Py<PyType>) -> PyResult<Bound<'py, PyAny>> {
    let tp = cls.as_ptr().cast::<ffi::PyTypeObject>();
    // SAFETY: cls is a live type object. For a GC type whose instances have fields only
    // (no items, no instance dict) and whose allocator is the generic one,
    // `_PyObject_GC_New` makes what `PyType_GenericAlloc` would, minus the tracking, and
    // leaves the fields uninitialised: they are zeroed here, as GenericAlloc does. Any
    // other type gets GenericAlloc itself, untracked after. Both return a new reference
    // or NULL.
    unsafe {
        let generic = (*tp)
            .tp_alloc
            .is_some_and(|f| std::ptr::fn_addr_eq(f, ffi::PyType_GenericAlloc as ffi::allocfunc));
        let gc = ffi::PyType_IS_GC(tp) != 0;
        let fields_only = (*tp).tp_itemsize == 0 && (*tp).tp_dictoffset == 0;
        let obj = if gc && generic && fields_only {
            let obj = ffi::_PyObject_GC_New(tp);
            if !obj.is_null() {
                let header = std::mem::size_of::<ffi::PyObject>();
                let size = (*tp).tp_basicsize as usize;
                std::ptr::write_bytes(obj.cast::<u8>().add(header), 0, size - header);
            }
            obj
        } else {
            let obj = ffi::PyType_GenericAlloc(tp, 0);
            if gc && !obj.is_null() {
                ffi::PyObject_GC_UnTrack(obj.cast());
            }
            obj
        };
        Bound::from_owned_ptr_or_err(py, obj)
    }
}

/// Builds one instance of `cls` with a single field (Identity, Timestamp, ...).
pub(crate) fn wrap<'py>(
    py: Python<'py>,
    cls: &Py<PyType>,
    slot: &Slot,
    value: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let obj = alloc(py, cls)?;
    slot.fill(&obj, value);
    Ok(obj)
}

/// The int of little-endian `bytes`, as `int.from_bytes(bytes, "little", signed=...)`
/// makes it, through the C function that method calls (a new Identity in each row, as in
/// a table of agents, costs one conversion instead of a method call with keywords).
pub(crate) fn big_int<'py>(
    py: Python<'py>,
    bytes: &[u8],
    signed: bool,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the pointer and length describe a live slice; NULL means a Python error.
    unsafe {
        let int = ffi::_PyLong_FromByteArray(bytes.as_ptr(), bytes.len(), 1, c_int::from(signed));
        Bound::from_owned_ptr_or_err(py, int)
    }
}

/// Reads values of one layout from a buffer, front to back.
pub struct Decoder<'a, 'py> {
    py: Python<'py>,
    nodes: &'a [Node],
    classes: &'a Classes,
    buf: &'a [u8],
    pub pos: usize,
    depth: u32,
    /// The last Identity decoded: rows of one table often repeat a few identities,
    /// and an Identity is immutable, so equal ones share one object.
    last_identity: Option<([u8; 32], Bound<'py, PyAny>)>,
    /// The last Timestamp decoded: a row created and never changed has equal
    /// `created_at` and `updated_at`, and a Timestamp is immutable, so they share one.
    last_timestamp: Option<(i64, Bound<'py, PyAny>)>,
    /// Recently decoded short strings (roles, statuses, names repeat from row to row):
    /// equal ones share one immutable str, as Python shares interned strings.
    short_strings: Vec<Option<(ShortBytes, Bound<'py, PyAny>)>>,
}

/// Strings up to this many bytes are looked up in [`Decoder::short_strings`].
const SHORT_STRING: usize = 16;
const SHORT_STRING_SLOTS: usize = 64;
type ShortBytes = ([u8; SHORT_STRING], usize);

fn short_key(bytes: &[u8]) -> (ShortBytes, usize) {
    let mut key = [0u8; SHORT_STRING];
    key[..bytes.len()].copy_from_slice(bytes);
    // FNV-1a: cheap, and good enough to spread a handful of distinct strings.
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    ((key, bytes.len()), (hash as usize) % SHORT_STRING_SLOTS)
}

macro_rules! fixed {
    ($self:ident, $ty:ty, $what:expr) => {{
        const N: usize = std::mem::size_of::<$ty>();
        let start = $self.need(N, $what)?;
        let mut raw = [0u8; N];
        raw.copy_from_slice(&$self.buf[start..start + N]);
        <$ty>::from_le_bytes(raw)
    }};
}

impl<'a, 'py> Decoder<'a, 'py> {
    pub fn new(py: Python<'py>, nodes: &'a [Node], classes: &'a Classes, buf: &'a [u8]) -> Self {
        Decoder {
            py,
            nodes,
            classes,
            buf,
            pos: 0,
            depth: 0,
            last_identity: None,
            last_timestamp: None,
            short_strings: vec![None; SHORT_STRING_SLOTS],
        }
    }

    /// Continue with another buffer (the next row), keeping what is shared between rows.
    pub fn reset(&mut self, buf: &'a [u8]) {
        self.buf = buf;
        self.pos = 0;
        self.depth = 0;
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn expect_end(&self) -> Result<()> {
        if self.pos != self.buf.len() {
            return malformed(
                format!("{} unexpected trailing byte(s)", self.buf.len() - self.pos),
                self.pos,
            );
        }
        Ok(())
    }

    fn need(&mut self, n: usize, what: &str) -> Result<usize> {
        let start = self.pos;
        let left = self.buf.len() - start;
        if n > left {
            return malformed(
                format!("truncated input: {what} needs {n} byte(s), {left} left"),
                start,
            );
        }
        self.pos = start + n;
        Ok(start)
    }

    fn u8(&mut self) -> Result<u8> {
        let start = self.need(1, "u8")?;
        Ok(self.buf[start])
    }

    fn tag(&mut self, variants: usize, what: &str) -> Result<usize> {
        let start = self.pos;
        let t = self.u8()? as usize;
        if t >= variants {
            return malformed(
                format!("invalid {what} tag {t} (expected < {variants})"),
                start,
            );
        }
        Ok(t)
    }

    /// A u32 count prefix, refusing counts the rest of the input cannot hold.
    fn length(&mut self, what: &str, min_item_size: usize) -> Result<usize> {
        let start = self.pos;
        let n = fixed!(self, u32, "u32") as u64;
        let left = (self.buf.len() - self.pos) as u64;
        if min_item_size > 0 {
            if n * min_item_size as u64 > left {
                return malformed(
                    format!(
                        "truncated input: {what} claims {n} item(s) of at least \
                         {min_item_size} byte(s), but only {left} byte(s) are left"
                    ),
                    start,
                );
            }
        } else if n > MAX_ZERO_SIZED_ITEMS {
            return malformed(
                format!(
                    "{what} of zero-sized items claims {n} items; the limit is {MAX_ZERO_SIZED_ITEMS}"
                ),
                start,
            );
        }
        Ok(n as usize)
    }

    fn int<T: IntoPyObject<'py>>(&self, v: T) -> Result<Bound<'py, PyAny>> {
        Ok(v.into_bound_py_any(self.py)?)
    }

    fn prim(&mut self, p: Prim) -> Result<Bound<'py, PyAny>> {
        let py = self.py;
        match p {
            Prim::Bool => {
                let start = self.need(1, "bool")?;
                let b = self.buf[start];
                if b > 1 {
                    return malformed(format!("invalid bool byte {b}"), start);
                }
                Ok(PyBool::new(py, b == 1).to_owned().into_any())
            }
            Prim::I8 => {
                let v = self.u8()? as i8;
                self.int(v)
            }
            Prim::U8 => {
                let v = self.u8()?;
                self.int(v)
            }
            Prim::I16 => {
                let v = fixed!(self, i16, "i16");
                self.int(v)
            }
            Prim::U16 => {
                let v = fixed!(self, u16, "u16");
                self.int(v)
            }
            Prim::I32 => {
                let v = fixed!(self, i32, "i32");
                self.int(v)
            }
            Prim::U32 => {
                let v = fixed!(self, u32, "u32");
                self.int(v)
            }
            Prim::I64 => {
                let v = fixed!(self, i64, "i64");
                self.int(v)
            }
            Prim::U64 => {
                let v = fixed!(self, u64, "u64");
                self.int(v)
            }
            Prim::I128 => {
                let v = fixed!(self, i128, "i128");
                self.int(v)
            }
            Prim::U128 => {
                let v = fixed!(self, u128, "u128");
                self.int(v)
            }
            Prim::I256 | Prim::U256 => {
                let start = self.need(32, p.name())?;
                Ok(big_int(py, &self.buf[start..start + 32], p == Prim::I256)?)
            }
            Prim::F32 => Ok(PyFloat::new(py, fixed!(self, f32, "f32") as f64).into_any()),
            Prim::F64 => Ok(PyFloat::new(py, fixed!(self, f64, "f64")).into_any()),
            Prim::String => self.string(),
        }
    }

    fn string(&mut self) -> Result<Bound<'py, PyAny>> {
        let n = self.length("string", 1)?;
        let start = self.need(n, "string payload")?;
        let buf = self.buf;
        self.str_of(&buf[start..start + n]).map_err(|err| {
            // Python's own UTF-8 decoder decides, so exactly the same inputs fail.
            let reason = err
                .value(self.py)
                .getattr("reason")
                .and_then(|r| r.extract::<String>())
                .unwrap_or_else(|_| "invalid data".into());
            Fail::Decode {
                message: format!("string is not valid UTF-8: {reason}"),
                offset: Some(start),
            }
        })
    }

    /// The str of `bytes` (the one decoded before when they are short and recent), or
    /// the error Python's UTF-8 decoder raised.
    fn str_of(&mut self, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let short = (bytes.len() <= SHORT_STRING).then(|| short_key(bytes));
        if let Some((key, slot)) = &short {
            if let Some((known, obj)) = &self.short_strings[*slot] {
                if known == key {
                    return Ok(obj.clone());
                }
            }
        }
        // SAFETY: the pointer and length describe a live slice; NULL means a Python error.
        let obj = unsafe {
            Bound::from_owned_ptr_or_err(
                self.py,
                ffi::PyUnicode_DecodeUTF8(
                    bytes.as_ptr().cast(),
                    bytes.len() as ffi::Py_ssize_t,
                    c"strict".as_ptr(),
                ),
            )?
        };
        if let Some((key, slot)) = short {
            self.short_strings[slot] = Some((key, obj.clone()));
        }
        Ok(obj)
    }

    /// The next `N` bytes, or None when fewer are left (the fast path's read).
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.buf.get(self.pos..self.pos + N)?;
        self.pos += N;
        bytes.try_into().ok()
    }

    /// A product of [`Plain`] fields, read straight from the buffer into a new `cls`
    /// instance: one loop over the fields, no recursion, no error built per field.
    ///
    /// None when the input is not a well-formed product here (truncated, an invalid bool
    /// byte, a string that is not UTF-8, nested too deeply): the position is back at
    /// the product's start, and the caller decodes it with the general path, which
    /// raises the reference's error. The values it shares between rows are only reused
    /// by what follows, so a product read twice gets the same values.
    fn plain_product(
        &mut self,
        cls: &Py<PyType>,
        slots: &[Slot],
        plain: &[Plain],
    ) -> Result<Option<Bound<'py, PyAny>>> {
        let start = self.pos;
        if self.depth >= MAX_DEPTH {
            return Ok(None);
        }
        let obj = alloc(self.py, cls)?;
        for (slot, &field) in slots.iter().zip(plain) {
            match self.plain(field)? {
                Some(value) => slot.fill(&obj, value),
                None => {
                    self.pos = start;
                    return Ok(None);
                }
            }
        }
        Ok(Some(obj))
    }

    /// One [`Plain`] field for [`Self::plain_product`]; None when the input is malformed.
    #[inline(always)]
    fn plain(&mut self, field: Plain) -> Result<Option<Bound<'py, PyAny>>> {
        let py = self.py;
        macro_rules! number {
            ($ty:ty) => {
                match self.take() {
                    Some(raw) => <$ty>::from_le_bytes(raw).into_bound_py_any(py)?,
                    None => return Ok(None),
                }
            };
        }
        let value = match field {
            Plain::Prim(Prim::Bool) => match self.take::<1>() {
                Some([b]) if b <= 1 => PyBool::new(py, b == 1).to_owned().into_any(),
                _ => return Ok(None),
            },
            Plain::Prim(Prim::I8) => number!(i8),
            Plain::Prim(Prim::U8) => number!(u8),
            Plain::Prim(Prim::I16) => number!(i16),
            Plain::Prim(Prim::U16) => number!(u16),
            Plain::Prim(Prim::I32) => number!(i32),
            Plain::Prim(Prim::U32) => number!(u32),
            Plain::Prim(Prim::I64) => number!(i64),
            Plain::Prim(Prim::U64) => number!(u64),
            Plain::Prim(Prim::I128) => number!(i128),
            Plain::Prim(Prim::U128) => number!(u128),
            Plain::Prim(Prim::F32) => match self.take() {
                Some(raw) => PyFloat::new(py, f32::from_le_bytes(raw) as f64).into_any(),
                None => return Ok(None),
            },
            Plain::Prim(Prim::F64) => number!(f64),
            Plain::Prim(Prim::String) => {
                let Some(raw) = self.take() else {
                    return Ok(None);
                };
                let n = u32::from_le_bytes(raw) as usize;
                let Some(bytes) = self.buf.get(self.pos..self.pos + n) else {
                    return Ok(None);
                };
                self.pos += n;
                match self.str_of(bytes) {
                    Ok(s) => s,
                    Err(_) => return Ok(None), // the general path raises it
                }
            }
            Plain::Prim(Prim::I256 | Prim::U256) => unreachable!("not plain"),
            Plain::Identity => {
                if self.buf.len() - self.pos < 32 {
                    return Ok(None);
                }
                self.identity()?
            }
            Plain::Timestamp => {
                if self.buf.len() - self.pos < 8 {
                    return Ok(None);
                }
                self.timestamp()?
            }
        };
        Ok(Some(value))
    }

    fn tuple(&self, items: Vec<Bound<'py, PyAny>>) -> Result<Bound<'py, PyAny>> {
        Ok(PyTuple::new(self.py, items)?.into_any())
    }

    /// Decode one value of node `index` at the current position.
    pub fn value(&mut self, index: usize) -> Result<Bound<'py, PyAny>> {
        let py = self.py;
        let nodes = self.nodes;
        let classes = self.classes;
        match &nodes[index] {
            Node::Prim(p) => self.prim(*p),
            Node::Bytes => {
                let n = self.length("bytes", 1)?;
                let start = self.need(n, "bytes payload")?;
                Ok(PyBytes::new(py, &self.buf[start..start + n]).into_any())
            }
            Node::BoolArray => {
                let n = self.length("array of bool", 1)?;
                let start = self.need(n, "array of bool")?;
                let data = &self.buf[start..start + n];
                if data.iter().any(|&b| b > 1) {
                    return malformed("invalid bool byte in array".into(), start);
                }
                let items = data
                    .iter()
                    .map(|&b| PyBool::new(py, b == 1).to_owned().into_any())
                    .collect();
                self.tuple(items)
            }
            Node::NumberArray(p) => {
                let size = p.size().unwrap_or(1);
                let n = self.length("array", size)?;
                self.need(n * size, "array payload")?;
                self.pos -= n * size; // read the items one by one; the bounds are checked
                let items = (0..n).map(|_| self.prim(*p)).collect::<Result<Vec<_>>>()?;
                self.tuple(items)
            }
            Node::Array { elem, min_size } => {
                self.enter()?;
                let n = self.length("array", *min_size)?;
                let mut items = Vec::with_capacity(n.min(self.buf.len()));
                for _ in 0..n {
                    items.push(self.value(*elem)?);
                }
                self.depth -= 1;
                self.tuple(items)
            }
            Node::Product {
                cls,
                slots,
                fields,
                fixed_size,
                plain,
            } => {
                if let (Some(cls), Some(plain)) = (cls, plain) {
                    if let Some(obj) = self.plain_product(cls, slots, plain)? {
                        return Ok(obj);
                    }
                }
                if let Some(n) = fixed_size {
                    let left = self.buf.len() - self.pos;
                    if *n > left {
                        return malformed(
                            format!(
                                "truncated input: fixed-size fields needs {n} byte(s), {left} left"
                            ),
                            self.pos,
                        );
                    }
                }
                self.enter()?;
                let value = match cls {
                    None => {
                        let items = fields
                            .iter()
                            .map(|&f| self.value(f))
                            .collect::<Result<Vec<_>>>()?;
                        self.tuple(items)?
                    }
                    Some(cls) => {
                        let obj = alloc(py, cls)?;
                        for (slot, &field) in slots.iter().zip(fields) {
                            let v = match &nodes[field] {
                                Node::Prim(p) => self.prim(*p)?,
                                Node::Identity => self.identity()?,
                                Node::Timestamp => self.timestamp()?,
                                _ => self.value(field)?,
                            };
                            slot.fill(&obj, v);
                        }
                        obj
                    }
                };
                self.depth -= 1;
                Ok(value)
            }
            Node::Sum { names, payloads } => {
                self.enter()?;
                let t = self.tag(payloads.len(), "sum")?;
                let payload = self.value(payloads[t])?;
                let obj = alloc(py, &classes.variant)?;
                classes
                    .variant_name
                    .fill(&obj, names[t].bind(py).clone().into_any());
                classes.variant_value.fill(&obj, payload);
                self.depth -= 1;
                Ok(obj)
            }
            Node::Option(some) => {
                if self.tag(2, "option")? == 1 {
                    return Ok(py.None().into_bound(py));
                }
                self.enter()?;
                let v = self.value(*some)?;
                self.depth -= 1;
                Ok(v)
            }
            Node::Identity => self.identity(),
            Node::ConnectionId => {
                let v = {
                    let v = fixed!(self, u128, "u128");
                    self.int(v)
                }?;
                Ok(wrap(
                    py,
                    &classes.connection_id,
                    &classes.connection_id_value,
                    v,
                )?)
            }
            Node::Timestamp => self.timestamp(),
            Node::TimeDuration => {
                let v = {
                    let v = fixed!(self, i64, "i64");
                    self.int(v)
                }?;
                Ok(wrap(
                    py,
                    &classes.time_duration,
                    &classes.time_duration_micros,
                    v,
                )?)
            }
            Node::ScheduleAt => {
                let t = self.tag(2, "ScheduleAt")?;
                let micros = {
                    let v = fixed!(self, i64, "i64");
                    self.int(v)
                }?;
                let none = py.None().into_bound(py);
                let obj = alloc(py, &classes.schedule_at)?;
                if t == 0 {
                    let d = wrap(
                        py,
                        &classes.time_duration,
                        &classes.time_duration_micros,
                        micros,
                    )?;
                    classes.schedule_at_interval.fill(&obj, d);
                    classes.schedule_at_time.fill(&obj, none);
                } else {
                    let ts = wrap(py, &classes.timestamp, &classes.timestamp_micros, micros)?;
                    classes.schedule_at_interval.fill(&obj, none);
                    classes.schedule_at_time.fill(&obj, ts);
                }
                Ok(obj)
            }
            Node::Alias(to) => self.value(*to),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return malformed("value nested too deeply".into(), self.pos);
        }
        Ok(())
    }

    fn timestamp(&mut self) -> Result<Bound<'py, PyAny>> {
        let micros = fixed!(self, i64, "i64");
        if let Some((last, obj)) = &self.last_timestamp {
            if *last == micros {
                return Ok(obj.clone());
            }
        }
        let classes = self.classes;
        let value = self.int(micros)?;
        let obj = wrap(
            self.py,
            &classes.timestamp,
            &classes.timestamp_micros,
            value,
        )?;
        self.last_timestamp = Some((micros, obj.clone()));
        Ok(obj)
    }

    fn identity(&mut self) -> Result<Bound<'py, PyAny>> {
        let start = self.need(32, "u256")?;
        let mut raw = [0u8; 32];
        raw.copy_from_slice(&self.buf[start..start + 32]);
        if let Some((last, obj)) = &self.last_identity {
            if *last == raw {
                return Ok(obj.clone());
            }
        }
        let classes = self.classes;
        let value = big_int(self.py, &raw, false)?;
        let obj = wrap(self.py, &classes.identity, &classes.identity_value, value)?;
        self.last_identity = Some((raw, obj.clone()));
        Ok(obj)
    }
}
