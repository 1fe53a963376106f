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
use ruwsgi_plugin::cache::Cache;
use ruwsgi_plugin::{parse_identifier, CacheClient, CacheError, Caches, MathOp, Target};
use std::cell::RefCell;

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

/// Run `f` on the cache at `index` of the host's list: `None` when there is none.
fn with_cache<T>(index: usize, f: impl FnOnce(&Cache) -> Result<T, CacheError>) -> Option<T> {
    with_caches(|c| {
        c.list()
            .get(index)
            .ok_or(CacheError::UnknownCache)
            .and_then(f)
    })
}

/// Where a cache-name argument sends an operation.
enum Place<'a> {
    /// The cache at this index of the host's list.
    Local(usize),
    /// Another node's cache.
    Remote { cache: &'a str, node: &'a str },
}

thread_local! {
    /// The last local cache name this thread resolved: the name object (held, so that no
    /// other object can take its address), the host generation, and the cache's index.
    /// Code that passes the same name object call after call skips the name lookup.
    static LAST_NAME: RefCell<Option<(Py<PyAny>, u64, usize)>> = const { RefCell::new(None) };
}

/// Resolve a cache-name argument (`None`: the default cache). `Ok(None)`: no such local
/// cache (the operation gives `None`); a name that is not a `str` is a `TypeError`.
fn place<'a>(name: Option<&'a Bound<'_, PyAny>>) -> PyResult<Option<Place<'a>>> {
    let Some(obj) = name.filter(|o| !o.is_none()) else {
        return Ok(Some(Place::Local(0)));
    };
    let generation = runtime::host_generation();
    let known = LAST_NAME.with(|last| match &*last.borrow() {
        Some((o, g, index)) if o.as_ptr() == obj.as_ptr() && *g == generation => Some(*index),
        _ => None,
    });
    if let Some(index) = known {
        return Ok(Some(Place::Local(index)));
    }
    let Ok(text) = obj.cast::<PyString>() else {
        return Err(PyTypeError::new_err(format!(
            "cache name must be str, not {}",
            obj.get_type().name()?
        )));
    };
    match parse_identifier(Some(text.to_str()?)) {
        Target::Remote { cache, node } => Ok(Some(Place::Remote { cache, node })),
        Target::Local(name) => {
            let Some(index) = with_caches(|c| c.position(name)) else {
                return Ok(None);
            };
            let memo = Some((obj.clone().unbind(), generation, index));
            // The name it replaces is released once the cell is free again.
            drop(LAST_NAME.with(|last| last.replace(memo)));
            Ok(Some(Place::Local(index)))
        }
    }
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

/// A cache-name argument: `str` or `None`, resolved by [`place`].
type Name<'a, 'py> = Option<&'a Bound<'py, PyAny>>;

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_get<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    cache: Name<'_, 'py>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let key = data(key, "key")?;
    match place(cache)? {
        None => Ok(None),
        // Copied once, from the cache straight into the new bytes object.
        Some(Place::Local(index)) => with_cache(index, |c| {
            c.table.get_with(key, |v| {
                PyBytes::new_with(py, v.len(), |out| {
                    v.copy_to(out);
                    Ok(())
                })
            })
        })
        .flatten()
        .transpose(),
        Some(Place::Remote { cache, node }) => Ok(remote(py, |c| c.get(node, cache, key))
            .flatten()
            .map(|item| PyBytes::new(py, &item.value))),
    }
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_exists(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    cache: Name<'_, '_>,
) -> PyResult<Option<bool>> {
    let key = data(key, "key")?;
    let found = match place(cache)? {
        None => None,
        Some(Place::Local(index)) => with_cache(index, |c| c.table.exists(key)),
        Some(Place::Remote { cache, node }) => remote(py, |c| c.exists(node, cache, key)),
    };
    Ok(found.filter(|&e| e).map(|_| true))
}

fn store(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    secs: i64,
    cache: Name<'_, '_>,
    overwrite: bool,
) -> PyResult<Option<bool>> {
    let key = data(key, "key")?;
    let value = data(value, "value")?;
    let secs = expires(secs);
    Ok(match place(cache)? {
        None => None,
        Some(Place::Local(index)) => {
            flag(with_cache(index, |c| c.store(key, value, secs, overwrite)))
        }
        Some(Place::Remote { cache, node }) => remote(py, |c| {
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
    cache: Name<'_, '_>,
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
    cache: Name<'_, '_>,
) -> PyResult<Option<bool>> {
    store(py, key, value, expires, cache, true)
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_del(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    cache: Name<'_, '_>,
) -> PyResult<Option<bool>> {
    let key = data(key, "key")?;
    let done = match place(cache)? {
        None => None,
        Some(Place::Local(index)) => with_cache(index, |c| c.table.delete(key)),
        Some(Place::Remote { cache, node }) => remote(py, |c| c.del(node, cache, key)),
    };
    Ok(done.filter(|&d| d).map(|_| true))
}

#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_clear(py: Python<'_>, cache: Name<'_, '_>) -> PyResult<Option<bool>> {
    Ok(match place(cache)? {
        None => None,
        Some(Place::Local(index)) => flag(with_cache(index, |c| c.table.clear())),
        Some(Place::Remote { cache, node }) => remote(py, |c| c.clear(node, cache)).filter(|&d| d),
    })
}

fn math(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    op: MathOp,
    operand: i64,
    secs: i64,
    cache: Name<'_, '_>,
) -> PyResult<Option<bool>> {
    let key = data(key, "key")?;
    let secs = expires(secs);
    Ok(match place(cache)? {
        None => None,
        Some(Place::Local(index)) => {
            with_cache(index, |c| c.math(key, op, operand, secs)).map(|_| true)
        }
        Some(Place::Remote { cache, node }) => {
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
            cache: Name<'_, '_>,
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
fn cache_num(py: Python<'_>, key: &Bound<'_, PyAny>, cache: Name<'_, '_>) -> PyResult<i64> {
    let key = data(key, "key")?;
    let value = match place(cache)? {
        None => None,
        Some(Place::Local(index)) => with_cache(index, |c| {
            c.table
                .get_with(key, |v| {
                    let mut word = [0u8; 8];
                    (v.len() == 8).then(|| v.copy_to(&mut word)).map(|()| word)
                })
                .map(Option::flatten)
        })
        .flatten(),
        Some(Place::Remote { cache, node }) => remote(py, |c| c.get(node, cache, key))
            .flatten()
            .and_then(|item| <[u8; 8]>::try_from(item.value.as_slice()).ok()),
    };
    Ok(value.map_or(0, i64::from_ne_bytes))
}

/// `cache_keys([cache])`: the live keys, as a list of bytes.
#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_keys<'py>(py: Python<'py>, cache: Name<'_, 'py>) -> PyResult<Bound<'py, PyList>> {
    let keys = match place(cache)? {
        Some(Place::Local(index)) => with_cache(index, |c| c.table.keys()),
        None | Some(Place::Remote { .. }) => None,
    }
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
