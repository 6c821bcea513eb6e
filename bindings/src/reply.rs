//! The common reply read natively: a committed, uncompressed `TransactionUpdate` into
//! a `CommittedReply`, in one call.
//!
//! The pure-Python reader (`messages._lean_committed_reply`) is the reference: this one
//! declines (returns None) exactly when it does, and otherwise yields equal values of
//! the same types. The frame is parsed and checked whole in Rust first, with no Python
//! objects; only a frame that is a well-formed committed reply is then built, into a
//! `CommittedReply` allocated here and filled slot by slot (no Python frame runs).

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple, PyType};
use pyo3::IntoPyObjectExt;

use crate::decode::{big_int, wrap};
use crate::layout::{Classes, Slot};
use crate::list_of;

/// The rows a table lost and gained, over all of its query updates (and all of its
/// table updates: a table named twice in one reply has its rows merged, in order).
struct Changes<'a> {
    name: &'a str,
    deletes: Vec<&'a [u8]>,
    inserts: Vec<&'a [u8]>,
}

/// A committed reply parsed and checked, its parts still slices of the frame.
struct Parsed<'a> {
    changes: Vec<Changes<'a>>,
    micros: i64,
    caller: &'a [u8; 48],
    reducer_name: &'a str,
    reducer_id: u32,
    args: &'a [u8],
    request_id: u32,
    energy: u128,
    duration: i64,
}

/// A cursor over a frame; every read is None past its end.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn array<const N: usize>(&mut self) -> Option<&'a [u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(*self.array()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(*self.array()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(*self.array()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(*self.array()?))
    }

    /// A length-prefixed byte string.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(usize::try_from(n).ok()?)
    }

    fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// The rows of the `BsatnRowList` here, appended to `into`; None unless its size
    /// hint cuts its data into rows exactly (`messages._check_fixed_size` and
    /// `_check_offsets`: equal offsets are a legal empty row).
    fn rows(&mut self, into: &mut Vec<&'a [u8]>) -> Option<()> {
        match self.u8()? {
            0 => {
                let size = usize::from(self.u16()?);
                let data = self.bytes()?;
                if size == 0 {
                    return data.is_empty().then_some(());
                }
                if data.len() % size != 0 {
                    return None;
                }
                into.extend(data.chunks_exact(size));
            }
            1 => {
                let count = usize::try_from(self.u32()?).ok()?;
                let offsets = self.take(count.checked_mul(8)?)?;
                let data = self.bytes()?;
                if count == 0 {
                    return data.is_empty().then_some(());
                }
                let mut starts = offsets
                    .chunks_exact(8)
                    .map(|raw| u64::from_le_bytes(raw.try_into().expect("8 bytes")));
                if starts.next() != Some(0) {
                    return None;
                }
                let size = data.len() as u64;
                into.reserve(count);
                let mut start = 0;
                for end in starts.chain(std::iter::once(size)) {
                    if end < start || end > size {
                        return None;
                    }
                    into.push(&data[start as usize..end as usize]);
                    start = end;
                }
            }
            _ => return None,
        }
        Some(())
    }
}

/// `data` parsed as a whole committed reply, or None when the reference reader
/// declines it: another message, a compressed frame or query update, truncated or
/// extended input, bad UTF-8, a malformed row list.
fn parse(data: &[u8]) -> Option<Parsed<'_>> {
    if data.get(..3)? != b"\x00\x01\x00" {
        return None; // not uncompressed, a TransactionUpdate, committed
    }
    let mut c = Cursor { data, pos: 3 };
    let n_tables = c.u32()?;
    let mut changes: Vec<Changes<'_>> = Vec::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for _ in 0..n_tables {
        c.u32()?; // table id
        let name = c.string()?;
        c.u64()?; // num_rows
        let n_updates = c.u32()?;
        let index = *by_name.entry(name).or_insert_with(|| {
            changes.push(Changes {
                name,
                deletes: Vec::new(),
                inserts: Vec::new(),
            });
            changes.len() - 1
        });
        let table = &mut changes[index];
        for _ in 0..n_updates {
            if c.u8()? != 0 {
                return None; // compressed: the reference decompresses within its budget
            }
            c.rows(&mut table.deletes)?;
            c.rows(&mut table.inserts)?;
        }
    }
    let micros = c.i64()?;
    let caller = c.array::<48>()?;
    let reducer_name = c.string()?;
    let reducer_id = c.u32()?;
    let args = c.bytes()?;
    let request_id = c.u32()?;
    let energy_low = c.u64()?;
    let energy_high = c.u64()?;
    let duration = c.i64()?;
    if c.pos != data.len() {
        return None;
    }
    Some(Parsed {
        changes,
        micros,
        caller,
        reducer_name,
        reducer_id,
        args,
        request_id,
        energy: u128::from(energy_high) << 64 | u128::from(energy_low),
        duration,
    })
}

/// The fields of `messages.CommittedReply`, where its instances keep them.
struct ReplyFields {
    changes: Slot,
    timestamp: Slot,
    caller_identity: Slot,
    caller_connection_id: Slot,
    caller_bytes: Slot,
    reducer_name: Slot,
    reducer_id: Slot,
    args: Slot,
    request_id: Slot,
    energy_used: Slot,
    duration: Slot,
}

/// The caller of the last reply read: its 48 wire bytes and the Identity, ConnectionId
/// and bytes objects made of them. A client mostly receives its own calls' replies, so
/// the same immutable objects serve them all (as in the pure reader).
struct Caller {
    raw: [u8; 48],
    identity: Py<PyAny>,
    connection_id: Py<PyAny>,
    bytes: Py<PyAny>,
}

/// Reads committed replies into instances of one `CommittedReply` class.
///
/// `ReplyReader(reply_class, classes)`: `reply_class` is `messages.CommittedReply`
/// (a class with slots), `classes` the codec's class map (`layout.CLASSES`).
#[pyclass(frozen, module = "inner_universe._native")]
pub struct ReplyReader {
    reply: Py<PyType>,
    fields: ReplyFields,
    classes: Classes,
    last_caller: Mutex<Option<Caller>>,
}

#[pymethods]
impl ReplyReader {
    #[new]
    fn new(reply: &Bound<'_, PyType>, classes: &Bound<'_, PyDict>) -> PyResult<Self> {
        let slot = |name: &str| Slot::new(reply, name);
        let fields = ReplyFields {
            changes: slot("changes")?,
            timestamp: slot("timestamp")?,
            caller_identity: slot("caller_identity")?,
            caller_connection_id: slot("caller_connection_id")?,
            caller_bytes: slot("caller_bytes")?,
            reducer_name: slot("reducer_name")?,
            reducer_id: slot("reducer_id")?,
            args: slot("args")?,
            request_id: slot("request_id")?,
            energy_used: slot("energy_used")?,
            duration: slot("duration")?,
        };
        Ok(ReplyReader {
            reply: reply.clone().unbind(),
            fields,
            classes: Classes::from_dict(classes)?,
            last_caller: Mutex::new(None),
        })
    }

    /// `data` (a whole frame) as a `CommittedReply`, or None when it is not a
    /// well-formed, committed, uncompressed `TransactionUpdate`.
    fn read<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyBytes>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        match parse(data.as_bytes()) {
            Some(parsed) => self.build(py, &parsed).map(Some),
            None => Ok(None),
        }
    }
}

impl ReplyReader {
    fn build<'py>(&self, py: Python<'py>, p: &Parsed<'_>) -> PyResult<Bound<'py, PyAny>> {
        let changes = PyDict::new(py);
        for table in &p.changes {
            let deletes = rows_list(py, &table.deletes)?;
            let inserts = rows_list(py, &table.inserts)?;
            changes.set_item(
                PyString::new(py, table.name),
                PyTuple::new(py, [deletes, inserts])?,
            )?;
        }
        let (identity, connection_id, caller_bytes) = self.caller(py, p.caller)?;
        let c = &self.classes;
        let timestamp = wrap(
            py,
            &c.timestamp,
            &c.timestamp_micros,
            p.micros.into_bound_py_any(py)?,
        )?;
        let duration = wrap(
            py,
            &c.time_duration,
            &c.time_duration_micros,
            p.duration.into_bound_py_any(py)?,
        )?;
        let reply = new_instance(py, &self.reply)?;
        let f = &self.fields;
        f.changes.fill(&reply, changes.into_any());
        f.timestamp.fill(&reply, timestamp);
        f.caller_identity.fill(&reply, identity);
        f.caller_connection_id.fill(&reply, connection_id);
        f.caller_bytes.fill(&reply, caller_bytes);
        f.reducer_name
            .fill(&reply, PyString::new(py, p.reducer_name).into_any());
        f.reducer_id
            .fill(&reply, p.reducer_id.into_bound_py_any(py)?);
        f.args.fill(&reply, PyBytes::new(py, p.args).into_any());
        f.request_id
            .fill(&reply, p.request_id.into_bound_py_any(py)?);
        f.energy_used.fill(&reply, p.energy.into_bound_py_any(py)?);
        f.duration.fill(&reply, duration);
        Ok(reply)
    }

    /// The caller's Identity, ConnectionId and wire bytes: the last reply's objects
    /// when it had the same caller. The lock is never held while Python code could run.
    #[allow(clippy::type_complexity)]
    fn caller<'py>(
        &self,
        py: Python<'py>,
        raw: &[u8; 48],
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        {
            let last = self.last_caller.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(last) = last.as_ref().filter(|last| last.raw == *raw) {
                return Ok((
                    last.identity.bind(py).clone(),
                    last.connection_id.bind(py).clone(),
                    last.bytes.bind(py).clone(),
                ));
            }
        }
        let c = &self.classes;
        let identity = wrap(
            py,
            &c.identity,
            &c.identity_value,
            big_int(py, &raw[..32], false)?,
        )?;
        let connection_id = wrap(
            py,
            &c.connection_id,
            &c.connection_id_value,
            big_int(py, &raw[32..], false)?,
        )?;
        let bytes = PyBytes::new(py, raw).into_any();
        let caller = Caller {
            raw: *raw,
            identity: identity.clone().unbind(),
            connection_id: connection_id.clone().unbind(),
            bytes: bytes.clone().unbind(),
        };
        let old = self
            .last_caller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(caller);
        drop(old); // released after the lock: dropping Python objects may run code
        Ok((identity, connection_id, bytes))
    }
}

/// Each row as its own bytes object, in a new list.
fn rows_list<'py>(py: Python<'py>, rows: &[&[u8]]) -> PyResult<Bound<'py, PyAny>> {
    Ok(list_of(py, rows.len(), |i| Ok(PyBytes::new(py, rows[i]).into_any()))?.into_any())
}

/// A new instance of `cls` with every slot empty, tracked by the garbage collector as
/// any instance is (a `CommittedReply` is mutable, unlike the decoder's values).
fn new_instance<'py>(py: Python<'py>, cls: &Py<PyType>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: cls is a live type object; PyType_GenericAlloc returns a new reference
    // (its fields zeroed) or NULL with an error set.
    unsafe {
        let obj = ffi::PyType_GenericAlloc(cls.as_ptr().cast::<ffi::PyTypeObject>(), 0);
        Bound::from_owned_ptr_or_err(py, obj)
    }
}
