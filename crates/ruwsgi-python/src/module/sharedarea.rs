//! Shared areas (§2.9): the `sharedarea_*` functions, a binding over the host's
//! [`SharedArea`](ruwsgi_plugin::SharedArea)s. Present only when `sharedarea` is configured,
//! as in uWSGI.
//!
//! Every function takes the area id first; a bad id, or a position whose bytes are not all
//! inside the area, raises `ValueError("error calling uwsgi_sharedarea_<op>()")` and touches
//! nothing. Integers are native-endian and signed when read.

use pyo3::exceptions::{PyOverflowError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use ruwsgi_plugin::{AreaError, SharedArea};

use crate::runtime;

fn op_error(op: &str) -> PyErr {
    PyValueError::new_err(format!("error calling uwsgi_sharedarea_{op}()"))
}

/// Run `f` on area `id`; range errors become the op's `ValueError`.
fn with_area<T>(
    id: i64,
    op: &str,
    f: impl FnOnce(&SharedArea) -> Result<T, AreaError>,
) -> PyResult<T> {
    let host = runtime::host().ok_or_else(|| op_error(op))?;
    let area = usize::try_from(id)
        .ok()
        .and_then(|i| host.shared_areas().get(i))
        .ok_or_else(|| op_error(op))?;
    f(area).map_err(|e| match e {
        AreaError::OutOfRange { .. } => op_error(op),
        other => PyRuntimeError::new_err(other.to_string()),
    })
}

fn position(pos: i64, op: &str) -> PyResult<u64> {
    u64::try_from(pos).map_err(|_| op_error(op))
}

#[pyfunction]
#[pyo3(signature = (id, pos, len = 0))]
fn sharedarea_read<'py>(
    py: Python<'py>,
    id: i64,
    pos: i64,
    len: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let pos = position(pos, "read")?;
    let len = match len {
        0 => None,
        n => Some(u64::try_from(n).map_err(|_| op_error("read"))?),
    };
    let data = with_area(id, "read", |a| a.read(pos, len))?;
    Ok(PyBytes::new(py, &data))
}

#[pyfunction]
fn sharedarea_write(id: i64, pos: i64, data: &Bound<'_, PyAny>) -> PyResult<()> {
    let pos = position(pos, "write")?;
    let owned;
    let bytes: &[u8] = if let Ok(s) = data.cast::<PyString>() {
        s.to_str()?.as_bytes()
    } else {
        owned = data.extract::<Vec<u8>>().or_else(|_| {
            data.call_method0("__bytes__")
                .and_then(|b| b.extract::<Vec<u8>>())
        })?;
        &owned
    };
    with_area(id, "write", |a| a.write(pos, bytes))
}

macro_rules! int_reader {
    ($name:ident, $op:literal, $ty:ty, $n:literal) => {
        #[pyfunction]
        fn $name(id: i64, pos: i64) -> PyResult<i64> {
            let pos = position(pos, $op)?;
            let raw = with_area(id, $op, |a| a.read_int::<$n>(pos))?;
            Ok(<$ty>::from_ne_bytes(raw) as i64)
        }
    };
}

int_reader!(sharedarea_read8, "read8", i8, 1);
int_reader!(sharedarea_read16, "read16", i16, 2);
int_reader!(sharedarea_read32, "read32", i32, 4);
int_reader!(sharedarea_read64, "read64", i64, 8);

#[pyfunction]
fn sharedarea_write8(id: i64, pos: i64, value: i64) -> PyResult<()> {
    let pos = position(pos, "write8")?;
    let v = u8::try_from(value).map_err(|_| {
        PyOverflowError::new_err("unsigned byte integer is out of range (0 to 255)")
    })?;
    with_area(id, "write8", |a| a.write_int(pos, [v]))
}

#[pyfunction]
fn sharedarea_write16(id: i64, pos: i64, value: i64) -> PyResult<()> {
    let pos = position(pos, "write16")?;
    with_area(id, "write16", |a| {
        a.write_int(pos, (value as u16).to_ne_bytes())
    })
}

#[pyfunction]
fn sharedarea_write32(id: i64, pos: i64, value: i64) -> PyResult<()> {
    let pos = position(pos, "write32")?;
    with_area(id, "write32", |a| {
        a.write_int(pos, (value as u32).to_ne_bytes())
    })
}

#[pyfunction]
fn sharedarea_write64(id: i64, pos: i64, value: i64) -> PyResult<()> {
    let pos = position(pos, "write64")?;
    with_area(id, "write64", |a| a.write_int(pos, value.to_ne_bytes()))
}

macro_rules! counter {
    ($name:ident, $op:literal, $width:literal, $negate:literal) => {
        #[pyfunction]
        #[pyo3(signature = (id, pos, value = 1))]
        fn $name(py: Python<'_>, id: i64, pos: i64, value: i64) -> PyResult<()> {
            let pos = position(pos, $op)?;
            // The area's lock may be held by another process for a moment.
            let delta = if $negate { value.wrapping_neg() } else { value };
            py.detach(|| with_area(id, $op, |a| a.add(pos, $width, delta)))
        }
    };
}

counter!(sharedarea_inc32, "inc32", 4, false);
counter!(sharedarea_dec32, "dec32", 4, true);
counter!(sharedarea_inc64, "inc64", 8, false);
counter!(sharedarea_dec64, "dec64", 8, true);

fn lock_area(py: Python<'_>, id: i64, op: &str) -> PyResult<()> {
    let died = py.detach(|| with_area(id, op, |a| a.lock()))?;
    if died {
        runtime::log(&format!(
            "ruwsgi: shared area {id} lock recovered: its previous holder died holding it"
        ));
    }
    Ok(())
}

/// `sharedarea_rlock(id)`: take the area's lock. Readers take the same exclusive lock as
/// writers (a lock whose holder may die must be recoverable, which a reader count is not).
#[pyfunction]
fn sharedarea_rlock(py: Python<'_>, id: i64) -> PyResult<()> {
    lock_area(py, id, "rlock")
}

/// `sharedarea_wlock(id)`: take the area's lock.
#[pyfunction]
fn sharedarea_wlock(py: Python<'_>, id: i64) -> PyResult<()> {
    lock_area(py, id, "wlock")
}

/// `sharedarea_unlock(id)`: release it (nothing happens if this thread does not hold it).
#[pyfunction]
fn sharedarea_unlock(id: i64) -> PyResult<()> {
    with_area(id, "unlock", |a| a.unlock()).map(|_| ())
}

/// `sharedarea_memoryview(id)`: a writable memoryview over the whole area.
#[pyfunction]
fn sharedarea_memoryview(py: Python<'_>, id: i64) -> PyResult<Bound<'_, PyAny>> {
    let (ptr, len) = with_area(id, "memoryview", |a| Ok((a.as_ptr(), a.size())))?;
    let len = pyo3::ffi::Py_ssize_t::try_from(len).map_err(|_| op_error("memoryview"))?;
    #[allow(unsafe_code)]
    // SAFETY: attached (`py`). The area is mapped before the first fork and never unmapped
    // while the process lives (the host keeps it for the whole process), so the memory
    // outlives any memoryview; its bytes are atomics (interior mutability), so writes from
    // Python are writes to memory that may be written through shared references.
    let view = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyMemoryView_FromMemory(ptr.cast(), len, pyo3::ffi::PyBUF_WRITE),
        )
    }?;
    Ok(view)
}

/// Add the group to the module when the host has shared areas.
pub(crate) fn add_if_configured(m: &Bound<'_, PyModule>) -> PyResult<()> {
    if runtime::host().is_none_or(|h| h.shared_areas().is_empty()) {
        return Ok(());
    }
    let read8 = wrap_pyfunction!(sharedarea_read8, m)?;
    let read64 = wrap_pyfunction!(sharedarea_read64, m)?;
    let write8 = wrap_pyfunction!(sharedarea_write8, m)?;
    let write64 = wrap_pyfunction!(sharedarea_write64, m)?;
    let inc64 = wrap_pyfunction!(sharedarea_inc64, m)?;
    m.add_function(wrap_pyfunction!(sharedarea_read, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_write, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_read16, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_read32, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_write16, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_write32, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_inc32, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_dec32, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_dec64, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_rlock, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_wlock, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_unlock, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_memoryview, m)?)?;
    // uWSGI's aliases are the same functions under a second name.
    m.add("sharedarea_readbyte", &read8)?;
    m.add("sharedarea_readlong", &read64)?;
    m.add("sharedarea_writebyte", &write8)?;
    m.add("sharedarea_writelong", &write64)?;
    m.add("sharedarea_inclong", &inc64)?;
    m.add_function(read8)?;
    m.add_function(read64)?;
    m.add_function(write8)?;
    m.add_function(write64)?;
    m.add_function(inc64)?;
    Ok(())
}
