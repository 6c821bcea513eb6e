//! Native helpers for `inner_universe`.
//!
//! The pure-Python BSATN codec is the reference; this crate will grow a native
//! codec that must give identical results. For now it exposes only what lets the
//! Python side verify that the build path works and which build it loaded.

use pyo3::prelude::*;

/// The native module, imported as `inner_universe._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(build_profile, m)?)?;
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
