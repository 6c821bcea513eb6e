//! The native BSATN codec of `inner_universe`, imported as `inner_universe._native`.
//!
//! The pure-Python codec is the reference; this one must give identical results, and
//! `inner_universe.spacetime.codec` is the one place that chooses between them. Python
//! compiles each SATS type once into a compact layout descriptor ([`layout`]); a
//! [`Layout`] then decodes whole row lists and encodes values in one call each, so
//! the boundary is crossed once per table update, not once per row or field.

mod decode;
mod encode;
mod layout;
mod reply;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use decode::{Decoder, Fail};
use layout::{Classes, Node};

/// The native module, imported as `inner_universe._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(build_profile, m)?)?;
    m.add_function(wrap_pyfunction!(split_rows, m)?)?;
    m.add_class::<Layout>()?;
    m.add_class::<reply::ReplyReader>()?;
    Ok(())
}

/// Whether this extension was compiled with optimisations ("release") or not ("debug").
#[pyfunction]
fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// The rows of `data` that start at `offsets` (a `RowOffsets` hint), one byte string
/// each: a row ends where the next starts, the last at the end of `data`.
///
/// The caller validates the offsets first (`BsatnRowList.validate`, for its errors);
/// offsets that are out of order or out of range are still refused here, with a
/// ValueError, never read past.
#[pyfunction]
fn split_rows<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    offsets: Vec<u64>,
) -> PyResult<Bound<'py, PyList>> {
    with_bytes(data, |data| {
        let size = data.len() as u64;
        list_of(py, offsets.len(), |i| {
            let start = offsets[i];
            let end = offsets.get(i + 1).copied().unwrap_or(size);
            if start > end || end > size {
                return Err(PyValueError::new_err(format!(
                    "row {i} spans bytes {start}..{end} of a {size}-byte row list"
                )));
            }
            Ok(PyBytes::new(py, &data[start as usize..end as usize]).into_any())
        })
    })
}

/// Run `read` on the bytes of `data`: a bytes object, or a read-only contiguous
/// buffer of bytes (a row list's memoryview into the message it came in, which
/// spares copying the rows out of it).
fn with_bytes<T>(data: &Bound<'_, PyAny>, read: impl FnOnce(&[u8]) -> PyResult<T>) -> PyResult<T> {
    if let Ok(bytes) = data.downcast::<PyBytes>() {
        return read(bytes.as_bytes());
    }
    let buffer = PyBuffer::<u8>::get(data)?;
    if !buffer.readonly() || !buffer.is_c_contiguous() {
        return Err(PyTypeError::new_err(
            "row data must be bytes or a read-only contiguous buffer of bytes",
        ));
    }
    if buffer.item_count() == 0 {
        return read(&[]);
    }
    // SAFETY: `buffer` keeps the exporter's memory alive and unmoved until it drops,
    // after `read` returns; it is read-only (nothing writes it meanwhile), C-contiguous,
    // and holds `item_count` u8 items from `buf_ptr`.
    let bytes =
        unsafe { std::slice::from_raw_parts(buffer.buf_ptr() as *const u8, buffer.item_count()) };
    read(bytes)
}

/// One SATS type compiled for the native codec.
///
/// `Layout(nodes, classes)`: `nodes` is the descriptor (node 0 is the type itself),
/// `classes` maps "Identity", "ConnectionId", "Timestamp", "TimeDuration",
/// "ScheduleAt", "Variant" and "DecodeError" to the Python classes to use.
#[pyclass(frozen, module = "inner_universe._native")]
struct Layout {
    nodes: Vec<Node>,
    root: usize,
    classes: Classes,
}

impl Layout {
    fn fail(&self, py: Python<'_>, fail: Fail) -> PyErr {
        fail.into_pyerr(py, &self.classes.decode_error)
    }

    fn decode_fixed_in<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        size: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut d = Decoder::new(py, &self.nodes, &self.classes, data);
        let count = d.len().checked_div(size).unwrap_or(0);
        list_of(py, count, |i| {
            let value = d.value(self.root).map_err(|f| self.fail(py, f))?;
            if d.pos != (i + 1) * size {
                let fail = Fail::Decode {
                    message: format!("row {i} is not {size} bytes long"),
                    offset: Some(d.pos),
                };
                return Err(self.fail(py, fail));
            }
            Ok(value)
        })
    }

    fn decode_offsets_in<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        offsets: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        // Offsets are u64 on the wire: extracting them as such is the fast path; any
        // other int (which can never match a position) still gets its own error.
        match offsets.extract::<Vec<u64>>() {
            Ok(offsets) => self.decode_at(py, data, &offsets),
            Err(_) => self.decode_at(py, data, &offsets.extract::<Vec<i128>>()?),
        }
    }

    fn decode_at<'py, T: Copy + Into<i128> + std::fmt::Display>(
        &self,
        py: Python<'py>,
        data: &[u8],
        offsets: &[T],
    ) -> PyResult<Bound<'py, PyList>> {
        let mut d = Decoder::new(py, &self.nodes, &self.classes, data);
        let values = list_of(py, offsets.len(), |i| {
            let start = offsets[i];
            if d.pos as i128 != start.into() {
                let fail = Fail::Decode {
                    message: format!(
                        "row {i} should start at byte {start}, but the rows before it end at byte {}",
                        d.pos
                    ),
                    offset: None,
                };
                return Err(self.fail(py, fail));
            }
            d.value(self.root).map_err(|f| self.fail(py, f))
        })?;
        d.expect_end().map_err(|f| self.fail(py, f))?;
        Ok(values)
    }
}

#[pymethods]
impl Layout {
    #[new]
    fn new(nodes: &Bound<'_, PyAny>, classes: &Bound<'_, PyDict>) -> PyResult<Self> {
        let (nodes, root) = layout::parse_nodes(nodes)?;
        Ok(Layout {
            nodes,
            root,
            classes: Classes::from_dict(classes)?,
        })
    }

    /// Decode exactly one value spanning `data` (trailing bytes are a DecodeError).
    fn decode<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let mut d = Decoder::new(py, &self.nodes, &self.classes, data);
        let result = d.value(self.root).and_then(|v| d.expect_end().map(|_| v));
        result.map_err(|f| self.fail(py, f))
    }

    /// Decode separately encoded rows, each spanning its whole byte string.
    ///
    /// A malformed row is a DecodeError "row {i}: ..." with the offset inside that row.
    fn decode_each<'py>(
        &self,
        py: Python<'py>,
        rows: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let rows: Vec<Bound<'py, PyBytes>> = rows.extract()?;
        let mut d = Decoder::new(py, &self.nodes, &self.classes, b"");
        list_of(py, rows.len(), |i| {
            d.reset(rows[i].as_bytes());
            d.value(self.root)
                .and_then(|v| d.expect_end().map(|_| v))
                .map_err(|f| self.fail(py, f.prefixed(&format!("row {i}: "))))
        })
    }

    /// Decode rows packed in `data`, each `size` bytes long (a `FixedSize` hint).
    fn decode_fixed<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        size: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        with_bytes(data, |data| self.decode_fixed_in(py, data, size))
    }

    /// Decode rows packed in `data` that start at `offsets` (a `RowOffsets` hint).
    fn decode_offsets<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        offsets: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        with_bytes(data, |data| self.decode_offsets_in(py, data, offsets))
    }

    /// The BSATN bytes of `value`, or None when the value is not in a canonical form
    /// (the pure-Python reference then encodes it or raises the error).
    fn encode<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
    ) -> Option<Bound<'py, PyBytes>> {
        let mut e = encode::Encoder::new(&self.nodes, &self.classes);
        let done = e.value(self.root, value);
        if done.is_none() {
            // A declined value may have left a Python error set by a failed conversion.
            let _ = PyErr::take(py);
            return None;
        }
        Some(PyBytes::new(py, &e.out))
    }
}

/// A list of `len` items made by `item(0)`, `item(1)`, ... in order, built in place
/// (a batch of rows is not collected first and copied into the list after).
fn list_of<'py>(
    py: Python<'py>,
    len: usize,
    mut item: impl FnMut(usize) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    // SAFETY: PyList_New returns a new list of `len` NULL items, or NULL with an error.
    // Each item is stored once, in order, taking over its reference; a list dropped
    // half-filled (an item failed) releases the items it holds and skips the NULLs.
    unsafe {
        let list = Bound::from_owned_ptr_or_err(py, ffi::PyList_New(len as ffi::Py_ssize_t))?;
        for i in 0..len {
            let value = item(i)?;
            ffi::PyList_SET_ITEM(list.as_ptr(), i as ffi::Py_ssize_t, value.into_ptr());
        }
        Ok(list.downcast_into_unchecked())
    }
}
