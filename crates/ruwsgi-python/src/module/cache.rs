//! Caches (§2.7): the `cache_*` functions, a binding over the host's caches.
//!
//! Types are uWSGI's on Python 3: keys and values are `str` or `bytes` (a `str` is stored
//! as its UTF-8 bytes), cache names are `str`, values come back as `bytes`, and every
//! failure (miss, unknown cache, full cache, `set` of an existing key, empty value, key or
//! value too long) is `None`. Expiry is in seconds from now, 0 for never.
//!
//! A cache name `name@node` (or `@node` for the node's default cache) sends the operation
//! to another node over the uwsgi protocol, with the interpreter released, within
//! `socket-timeout`; a failure to reach the node is logged and gives `None`. Math on a
//! remote cache stores the operand (uWSGI's client does the same), and `cache_keys` is
//! local only.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use ruwsgi_plugin::{
    parse_identifier, CacheBackend, CacheClient, CacheError, Caches, MathOp, Target,
};

use crate::runtime;

/// The bytes of a key or value: `bytes`, or a `str` as UTF-8.
fn data<'a>(o: &'a Bound<'_, PyAny>, what: &str) -> PyResult<&'a [u8]> {
    if let Ok(b) = o.cast::<PyBytes>() {
        return Ok(b.as_bytes());
    }
    if let Ok(s) = o.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes());
    }
    Err(PyTypeError::new_err(format!(
        "cache {what} must be str or bytes, not {}",
        o.get_type().name()?
    )))
}

fn expires(secs: i64) -> u64 {
    u64::try_from(secs).unwrap_or(0)
}

/// Run `f` on the host's caches: `None` when there are none.
fn with_caches<T>(f: impl FnOnce(&Caches) -> Result<T, CacheError>) -> Option<T> {
    runtime::with_host(|host| host.caches().and_then(|c| f(c).ok())).flatten()
}

/// Run `f` on the remote-cache client with the interpreter released; failures to reach
/// the node are logged and give `None`.
fn remote<T: Send>(
    py: Python<'_>,
    f: impl FnOnce(&CacheClient) -> Result<T, ruwsgi_plugin::cache::client::ClientError> + Send,
) -> Option<T> {
    let host = runtime::host()?;
    let client = host.cache_client()?;
    match py.detach(|| f(client)) {
        Ok(v) => Some(v),
        Err(e) => {
            runtime::log(&format!("ruwsgi: {e}"));
            None
        }
    }
}

fn flag(done: Option<()>) -> Option<bool> {
    done.map(|()| true)
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_get<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    cache: Option<&str>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let key = data(key, "key")?;
    let cache = match parse_identifier(cache) {
        Target::Local(name) => name,
        Target::Remote { cache, node } => {
            return Ok(remote(py, |c| c.get(node, cache, key))
                .flatten()
                .map(|item| PyBytes::new(py, &item.value)))
        }
    };
    // The value is copied into a buffer each thread keeps, then once into the result.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    Ok(BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        with_caches(|c| c.get_into(cache, key, &mut buf))
            .flatten()
            .map(|_| PyBytes::new(py, &buf))
    }))
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_exists(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    let key = data(key, "key")?;
    let found = match parse_identifier(cache) {
        Target::Local(name) => with_caches(|c| c.exists(name, key)),
        Target::Remote { cache, node } => remote(py, |c| c.exists(node, cache, key)),
    };
    Ok(found.filter(|&e| e).map(|_| true))
}

fn store(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    secs: i64,
    cache: Option<&str>,
    overwrite: bool,
) -> PyResult<Option<bool>> {
    let key = data(key, "key")?;
    let value = data(value, "value")?;
    let secs = expires(secs);
    Ok(match parse_identifier(cache) {
        Target::Local(name) => flag(with_caches(|c| c.store(name, key, value, secs, overwrite))),
        Target::Remote { cache, node } => remote(py, |c| {
            if overwrite {
                c.update(node, cache, key, value, secs)
            } else {
                c.set(node, cache, key, value, secs)
            }
        })
        .filter(|&done| done),
    })
}

/// `cache_set(key, value[, expires[, cache]])`: True; None if the key exists (set never
/// overwrites) or the value cannot be stored.
#[pyfunction]
#[pyo3(signature = (key, value, expires = 0, cache = None))]
fn cache_set(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: i64,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    store(py, key, value, expires, cache, false)
}

/// `cache_update(key, value[, expires[, cache]])`: creates or overwrites (expiry included).
#[pyfunction]
#[pyo3(signature = (key, value, expires = 0, cache = None))]
fn cache_update(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: i64,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    store(py, key, value, expires, cache, true)
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_del(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    let key = data(key, "key")?;
    let done = match parse_identifier(cache) {
        Target::Local(name) => with_caches(|c| c.delete(name, key)),
        Target::Remote { cache, node } => remote(py, |c| c.del(node, cache, key)),
    };
    Ok(done.filter(|&d| d).map(|_| true))
}

#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_clear(py: Python<'_>, cache: Option<&str>) -> Option<bool> {
    match parse_identifier(cache) {
        Target::Local(name) => flag(with_caches(|c| c.clear(name))),
        Target::Remote { cache, node } => remote(py, |c| c.clear(node, cache)).filter(|&d| d),
    }
}

fn math(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    op: MathOp,
    operand: i64,
    secs: i64,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    let key = data(key, "key")?;
    let secs = expires(secs);
    Ok(match parse_identifier(cache) {
        Target::Local(name) => with_caches(|c| c.math(name, key, op, operand, secs)).map(|_| true),
        Target::Remote { cache, node } => {
            remote(py, |c| c.math(node, cache, key, operand, secs)).filter(|&d| d)
        }
    })
}

/// The math functions differ only in their operation and default operand.
macro_rules! math_function {
    ($name:ident, $op:expr, $operand:ident = $default:literal) => {
        #[pyfunction]
        #[pyo3(signature = (key, $operand = $default, expires = 0, cache = None))]
        fn $name(
            py: Python<'_>,
            key: &Bound<'_, PyAny>,
            $operand: i64,
            expires: i64,
            cache: Option<&str>,
        ) -> PyResult<Option<bool>> {
            math(py, key, $op, $operand, expires, cache)
        }
    };
}

math_function!(cache_inc, MathOp::Add, delta = 1);
math_function!(cache_dec, MathOp::Sub, delta = 1);
math_function!(cache_mul, MathOp::Mul, factor = 2);
math_function!(cache_div, MathOp::Div, divisor = 2);

/// `cache_num(key[, cache])`: the value as a native 8-byte integer, 0 if it is not one.
#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_num(py: Python<'_>, key: &Bound<'_, PyAny>, cache: Option<&str>) -> PyResult<i64> {
    let key = data(key, "key")?;
    let item = match parse_identifier(cache) {
        Target::Local(name) => with_caches(|c| c.get(name, key)).flatten(),
        Target::Remote { cache, node } => remote(py, |c| c.get(node, cache, key)).flatten(),
    };
    Ok(item
        .and_then(|item| <[u8; 8]>::try_from(item.value.as_slice()).ok())
        .map_or(0, i64::from_ne_bytes))
}

/// `cache_keys([cache])`: the live keys, as a list of bytes.
#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_keys<'py>(py: Python<'py>, cache: Option<&str>) -> PyResult<Bound<'py, PyList>> {
    let name = match parse_identifier(cache) {
        Target::Local(name) => name,
        Target::Remote { .. } => {
            return Err(PyValueError::new_err("no local uWSGI cache available"))
        }
    };
    let keys = with_caches(|c| c.keys(name))
        .ok_or_else(|| PyValueError::new_err("no local uWSGI cache available"))?;
    PyList::new(py, keys.iter().map(|k| PyBytes::new(py, k)))
}

pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cache_get, m)?)?;
    m.add_function(wrap_pyfunction!(cache_exists, m)?)?;
    m.add_function(wrap_pyfunction!(cache_set, m)?)?;
    m.add_function(wrap_pyfunction!(cache_update, m)?)?;
    m.add_function(wrap_pyfunction!(cache_del, m)?)?;
    m.add_function(wrap_pyfunction!(cache_clear, m)?)?;
    m.add_function(wrap_pyfunction!(cache_inc, m)?)?;
    m.add_function(wrap_pyfunction!(cache_dec, m)?)?;
    m.add_function(wrap_pyfunction!(cache_mul, m)?)?;
    m.add_function(wrap_pyfunction!(cache_div, m)?)?;
    m.add_function(wrap_pyfunction!(cache_num, m)?)?;
    m.add_function(wrap_pyfunction!(cache_keys, m)?)?;
    Ok(())
}
