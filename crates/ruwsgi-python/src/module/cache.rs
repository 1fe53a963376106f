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
use ruwsgi_plugin::{parse_identifier, CacheClient, Host, MathOp, Target};
use std::cell::RefCell;
use std::sync::Arc;

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

/// Local caches this thread has resolved, by name object, for as long as the host they
/// belong to is the current one. The memo holds its own handle on the host, and the name
/// objects, so that no other object can take their address.
struct Memo {
    generation: u64,
    host: Option<Arc<dyn Host>>,
    /// (the name object, `None` for the default cache; its cache's index in the host's).
    names: Vec<(Option<Py<PyAny>>, usize)>,
}

/// Names remembered per thread; the oldest goes first.
const MEMO_NAMES: usize = 8;

thread_local! {
    static MEMO: RefCell<Memo> = const {
        RefCell::new(Memo { generation: 0, host: None, names: Vec::new() })
    };
}

/// What the memo keys on: the name object's address, null for the default cache.
fn key_of(name: Option<&Bound<'_, PyAny>>) -> *mut pyo3::ffi::PyObject {
    name.map_or(std::ptr::null_mut(), |o| o.as_ptr())
}

impl Memo {
    fn find(&self, key: *mut pyo3::ffi::PyObject, generation: u64) -> Option<&Cache> {
        if self.generation != generation {
            return None;
        }
        let (_, index) = self
            .names
            .iter()
            .find(|(n, _)| n.as_ref().map_or(std::ptr::null_mut(), |n| n.as_ptr()) == key)?;
        self.host.as_ref()?.caches()?.list().get(*index)
    }

    /// Remember the cache at `index` (of `host`) under `name`; what it displaces is
    /// returned, to be released once the memo is free again.
    fn remember(
        &mut self,
        generation: u64,
        host: &Arc<dyn Host>,
        name: Option<&Bound<'_, PyAny>>,
        index: usize,
    ) -> Vec<(Option<Py<PyAny>>, usize)> {
        let mut displaced = Vec::new();
        if self.generation != generation {
            displaced = std::mem::take(&mut self.names);
            self.generation = generation;
            self.host = Some(host.clone());
        } else if self.names.len() >= MEMO_NAMES {
            displaced.push(self.names.remove(0));
        }
        self.names.push((name.map(|n| n.clone().unbind()), index));
        displaced
    }
}

/// Run an operation on the cache a cache-name argument designates (`None`: the default
/// cache): `local` on one of this instance's, `remote(cache, node)` on another node's.
/// `Ok(None)`: no such local cache. A name that is not a `str` is a `TypeError`.
fn on_cache<R>(
    name: Name<'_, '_>,
    local: impl FnOnce(&Cache) -> R,
    remote: impl FnOnce(&str, &str) -> R,
) -> PyResult<Option<R>> {
    let name = name.filter(|o| !o.is_none());
    let key = key_of(name);
    let generation = runtime::host_generation();
    let mut local = Some(local);
    let known = MEMO.with(|memo| {
        let memo = memo.try_borrow().ok()?;
        let cache = memo.find(key, generation)?;
        let f = local.take()?;
        Some(f(cache))
    });
    if let Some(r) = known {
        return Ok(Some(r));
    }
    let local = local.expect("the operation runs only on a memo hit");
    let local_name = match name {
        None => None,
        Some(obj) => {
            let Ok(text) = obj.cast::<PyString>() else {
                return Err(PyTypeError::new_err(format!(
                    "cache name must be str, not {}",
                    obj.get_type().name()?
                )));
            };
            match parse_identifier(Some(text.to_str()?)) {
                Target::Remote { cache, node } => return Ok(Some(remote(cache, node))),
                Target::Local(n) => n,
            }
        }
    };
    let Some(host) = runtime::host() else {
        return Ok(None);
    };
    let Some((index, cache)) = host.caches().and_then(|c| {
        let i = c.position(local_name).ok()?;
        Some((i, &c.list()[i]))
    }) else {
        return Ok(None);
    };
    let r = local(cache);
    // Not remembered when a call running inside another one's lookup holds the memo.
    let displaced = MEMO.with(|memo| {
        memo.try_borrow_mut()
            .ok()
            .map(|mut m| m.remember(generation, &host, name, index))
    });
    drop(displaced);
    Ok(Some(r))
}

/// Run `f` on the remote-cache client with the interpreter released (in an async core
/// greenlet the core parks while it waits instead); failures to reach the node are logged
/// and give `None`.
fn remote<T: Send>(
    py: Python<'_>,
    f: impl FnOnce(&CacheClient) -> Result<T, ruwsgi_plugin::cache::client::ClientError> + Send,
) -> Option<T> {
    let host = runtime::host()?;
    let client = host.cache_client()?;
    // An async core waiting for the node parks instead (and needs the interpreter).
    let r = if crate::context::in_core_greenlet() {
        f(client)
    } else {
        py.detach(|| f(client))
    };
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            runtime::log(&format!("ruwsgi: {e}"));
            None
        }
    }
}

/// A cache-name argument: `str` or `None` (see [`on_cache`]).
type Name<'a, 'py> = Option<&'a Bound<'py, PyAny>>;

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_get<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    cache: Name<'_, 'py>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let key = data(key, "key")?;
    on_cache(
        cache,
        // Copied once, from the cache straight into the new bytes object.
        |c| {
            c.table
                .get_with(key, |v| {
                    PyBytes::new_with(py, v.len(), |out| {
                        v.copy_to(out);
                        Ok(())
                    })
                })
                .ok()
                .flatten()
                .transpose()
        },
        |cache, node| {
            Ok(remote(py, |c| c.get(node, cache, key))
                .flatten()
                .map(|item| PyBytes::new(py, &item.value)))
        },
    )?
    .unwrap_or(Ok(None))
}

#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_exists(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    cache: Name<'_, '_>,
) -> PyResult<Option<bool>> {
    let key = data(key, "key")?;
    let found = on_cache(
        cache,
        |c| c.table.exists(key).ok(),
        |cache, node| remote(py, |c| c.exists(node, cache, key)),
    )?;
    Ok(found.flatten().filter(|&e| e))
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
    let done = on_cache(
        cache,
        |c| c.store(key, value, secs, overwrite).is_ok(),
        |cache, node| {
            remote(py, |c| {
                if overwrite {
                    c.update(node, cache, key, value, secs)
                } else {
                    c.set(node, cache, key, value, secs)
                }
            })
            .unwrap_or(false)
        },
    )?;
    Ok(done.filter(|&d| d))
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
    let done = on_cache(
        cache,
        |c| c.table.delete(key).unwrap_or(false),
        |cache, node| remote(py, |c| c.del(node, cache, key)).unwrap_or(false),
    )?;
    Ok(done.filter(|&d| d))
}

#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_clear(py: Python<'_>, cache: Name<'_, '_>) -> PyResult<Option<bool>> {
    let done = on_cache(
        cache,
        |c| c.table.clear().is_ok(),
        |cache, node| remote(py, |c| c.clear(node, cache)).unwrap_or(false),
    )?;
    Ok(done.filter(|&d| d))
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
    let done = on_cache(
        cache,
        |c| c.math(key, op, operand, secs).is_ok(),
        |cache, node| remote(py, |c| c.math(node, cache, key, operand, secs)).unwrap_or(false),
    )?;
    Ok(done.filter(|&d| d))
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
    let value = on_cache(
        cache,
        |c| {
            c.table
                .get_with(key, |v| {
                    let mut word = [0u8; 8];
                    (v.len() == 8).then(|| v.copy_to(&mut word)).map(|()| word)
                })
                .ok()
                .flatten()
                .flatten()
        },
        |cache, node| {
            remote(py, |c| c.get(node, cache, key))
                .flatten()
                .and_then(|item| <[u8; 8]>::try_from(item.value.as_slice()).ok())
        },
    )?;
    Ok(value.flatten().map_or(0, i64::from_ne_bytes))
}

/// `cache_keys([cache])`: the live keys, as a list of bytes.
#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_keys<'py>(py: Python<'py>, cache: Name<'_, 'py>) -> PyResult<Bound<'py, PyList>> {
    let keys = on_cache(cache, |c| c.table.keys().ok(), |_, _| None)?
        .flatten()
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
