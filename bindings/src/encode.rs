//! Python values to BSATN bytes, walking a compiled [`Node`] list.
//!
//! The native encoder takes the canonical forms (what decoding produces, and tuples or
//! lists for products and arrays) and declines everything else by returning `None`:
//! values of another shape, out-of-range numbers, wrong types. The caller then runs the
//! pure-Python reference, which accepts the conveniences (mappings, datetimes, ...) and
//! raises the informative errors, so results and errors are the reference's by design.

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

use crate::decode::MAX_DEPTH;
use crate::layout::{Classes, Node, Prim, Slot};

/// Writes values of one layout; `None` from any method means "let the reference do it".
pub struct Encoder<'a> {
    nodes: &'a [Node],
    classes: &'a Classes,
    pub out: Vec<u8>,
    depth: u32,
}

fn int<'py, T: FromPyObject<'py>>(v: &Bound<'py, PyAny>) -> Option<T> {
    if !v.is_instance_of::<PyInt>() || v.is_instance_of::<PyBool>() {
        return None;
    }
    v.extract::<T>().ok()
}

fn big_int(v: &Bound<'_, PyAny>, signed: bool) -> Option<Vec<u8>> {
    if !v.is_instance_of::<PyInt>() || v.is_instance_of::<PyBool>() {
        return None;
    }
    let kwargs = PyDict::new(v.py());
    kwargs.set_item("signed", signed).ok()?;
    let bytes = v
        .py()
        .get_type::<PyInt>()
        .call_method("to_bytes", (v, 32, "little"), Some(&kwargs))
        .ok()?;
    Some(bytes.downcast::<PyBytes>().ok()?.as_bytes().to_vec())
}

impl<'a> Encoder<'a> {
    pub fn new(nodes: &'a [Node], classes: &'a Classes) -> Self {
        Encoder {
            nodes,
            classes,
            out: Vec::with_capacity(64),
            depth: 0,
        }
    }

    fn length(&mut self, n: usize) -> Option<()> {
        let n = u32::try_from(n).ok()?;
        self.out.extend_from_slice(&n.to_le_bytes());
        Some(())
    }

    fn prim(&mut self, p: Prim, v: &Bound<'_, PyAny>) -> Option<()> {
        let out = &mut self.out;
        match p {
            Prim::Bool => {
                if !v.is_instance_of::<PyBool>() {
                    return None;
                }
                out.push(v.is_truthy().ok()? as u8);
            }
            Prim::I8 => out.extend_from_slice(&int::<i8>(v)?.to_le_bytes()),
            Prim::U8 => out.extend_from_slice(&int::<u8>(v)?.to_le_bytes()),
            Prim::I16 => out.extend_from_slice(&int::<i16>(v)?.to_le_bytes()),
            Prim::U16 => out.extend_from_slice(&int::<u16>(v)?.to_le_bytes()),
            Prim::I32 => out.extend_from_slice(&int::<i32>(v)?.to_le_bytes()),
            Prim::U32 => out.extend_from_slice(&int::<u32>(v)?.to_le_bytes()),
            Prim::I64 => out.extend_from_slice(&int::<i64>(v)?.to_le_bytes()),
            Prim::U64 => out.extend_from_slice(&int::<u64>(v)?.to_le_bytes()),
            Prim::I128 => out.extend_from_slice(&int::<i128>(v)?.to_le_bytes()),
            Prim::U128 => out.extend_from_slice(&int::<u128>(v)?.to_le_bytes()),
            Prim::I256 => out.extend_from_slice(&big_int(v, true)?),
            Prim::U256 => out.extend_from_slice(&big_int(v, false)?),
            Prim::F32 => {
                let x = v.downcast_exact::<PyFloat>().ok()?.value();
                let y = x as f32;
                if y.is_infinite() && !x.is_infinite() {
                    return None; // out of range for f32: the reference says so
                }
                out.extend_from_slice(&y.to_le_bytes());
            }
            Prim::F64 => {
                let x = v.downcast_exact::<PyFloat>().ok()?.value();
                out.extend_from_slice(&x.to_le_bytes());
            }
            Prim::String => {
                let s = v.downcast::<PyString>().ok()?.to_str().ok()?;
                self.length(s.len())?;
                self.out.extend_from_slice(s.as_bytes());
            }
        }
        Some(())
    }

    /// The items of a list or tuple (subclasses included, as the reference accepts them).
    fn items<'py>(v: &Bound<'py, PyAny>) -> Option<Vec<Bound<'py, PyAny>>> {
        if let Ok(t) = v.downcast::<PyTuple>() {
            return Some(t.iter().collect());
        }
        if let Ok(l) = v.downcast::<PyList>() {
            return Some(l.iter().collect());
        }
        None
    }

    /// The field `slot` of `v` when `v` is exactly a `cls` (else declined).
    fn wrapped<'py>(
        &self,
        v: &Bound<'py, PyAny>,
        cls: &Py<pyo3::types::PyType>,
        slot: &Slot,
    ) -> Option<Bound<'py, PyAny>> {
        if !v.get_type().is(cls.bind(v.py())) {
            return None;
        }
        v.getattr(slot.name.bind(v.py())).ok()
    }

    /// Encode `v` as node `index`; None: declined, nothing useful was written.
    pub fn value(&mut self, index: usize, v: &Bound<'_, PyAny>) -> Option<()> {
        let py = v.py();
        let nodes = self.nodes;
        let classes = self.classes;
        match &nodes[index] {
            Node::Prim(p) => self.prim(*p, v)?,
            Node::Bytes => {
                let bytes = if let Ok(b) = v.downcast::<PyBytes>() {
                    b.as_bytes().to_vec()
                } else {
                    v.downcast::<PyByteArray>().ok()?.to_vec()
                };
                self.length(bytes.len())?;
                self.out.extend_from_slice(&bytes);
            }
            Node::BoolArray | Node::NumberArray(_) => {
                let p = match &nodes[index] {
                    Node::NumberArray(p) => *p,
                    _ => Prim::Bool,
                };
                let items = Self::items(v)?;
                self.length(items.len())?;
                for item in &items {
                    self.prim(p, item)?;
                }
            }
            Node::Array { elem, .. } => {
                let items = Self::items(v)?;
                self.enter()?;
                self.length(items.len())?;
                for item in &items {
                    self.value(*elem, item)?;
                }
                self.depth -= 1;
            }
            Node::Product {
                cls, slots, fields, ..
            } => {
                self.enter()?;
                match cls {
                    Some(cls) if v.get_type().is(cls.bind(py)) => {
                        for (slot, &field) in slots.iter().zip(fields) {
                            let x = v.getattr(slot.name.bind(py)).ok()?;
                            self.value(field, &x)?;
                        }
                    }
                    _ => {
                        let items = Self::items(v)?;
                        if items.len() != fields.len() {
                            return None;
                        }
                        for (item, &field) in items.iter().zip(fields) {
                            self.value(field, item)?;
                        }
                    }
                }
                self.depth -= 1;
            }
            Node::Sum { names, payloads } => {
                if !v.get_type().is(classes.variant.bind(py)) {
                    return None;
                }
                let name = v.getattr(classes.variant_name.name.bind(py)).ok()?;
                let name = name.downcast::<PyString>().ok()?.to_str().ok()?;
                // The reference maps names to tags with a dict: the last duplicate wins.
                let tag = names
                    .iter()
                    .rposition(|n| n.bind(py).to_str().map(|s| s == name).unwrap_or(false))?;
                let payload = v.getattr(classes.variant_value.name.bind(py)).ok()?;
                self.enter()?;
                self.out.push(tag as u8);
                self.value(payloads[tag], &payload)?;
                self.depth -= 1;
            }
            Node::Option(some) => {
                if v.is_none() {
                    self.out.push(1);
                } else {
                    self.enter()?;
                    self.out.push(0);
                    self.value(*some, v)?;
                    self.depth -= 1;
                }
            }
            Node::Identity => {
                let x = self.wrapped(v, &classes.identity, &classes.identity_value)?;
                self.out.extend_from_slice(&big_int(&x, false)?);
            }
            Node::ConnectionId => {
                let x = self.wrapped(v, &classes.connection_id, &classes.connection_id_value)?;
                self.out.extend_from_slice(&int::<u128>(&x)?.to_le_bytes());
            }
            Node::Timestamp => {
                let x = self.wrapped(v, &classes.timestamp, &classes.timestamp_micros)?;
                self.out.extend_from_slice(&int::<i64>(&x)?.to_le_bytes());
            }
            Node::TimeDuration => {
                let x = self.wrapped(v, &classes.time_duration, &classes.time_duration_micros)?;
                self.out.extend_from_slice(&int::<i64>(&x)?.to_le_bytes());
            }
            Node::ScheduleAt => {
                let interval =
                    self.wrapped(v, &classes.schedule_at, &classes.schedule_at_interval)?;
                if !interval.is_none() {
                    let x = self.wrapped(
                        &interval,
                        &classes.time_duration,
                        &classes.time_duration_micros,
                    )?;
                    self.out.push(0);
                    self.out.extend_from_slice(&int::<i64>(&x)?.to_le_bytes());
                } else {
                    let time = v.getattr(classes.schedule_at_time.name.bind(py)).ok()?;
                    let x = self.wrapped(&time, &classes.timestamp, &classes.timestamp_micros)?;
                    self.out.push(1);
                    self.out.extend_from_slice(&int::<i64>(&x)?.to_le_bytes());
                }
            }
            Node::Alias(to) => self.value(*to, v)?,
        }
        Some(())
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }
}
