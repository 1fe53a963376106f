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
use pyo3::ffi;
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
/// belong to is the current one. The memo holds its own handle on the host, which keeps
/// the caches where they are, and the name objects, so that no other object can take
/// their address.
struct Memo {
    generation: u64,
    host: Option<Arc<dyn Host>>,
    names: Vec<Remembered>,
}

/// One name the memo knows.
struct Remembered {
    /// The name object's address (null for the default cache), compared on lookups.
    key: *mut ffi::PyObject,
    /// The name object itself, held so that its address stays its own.
    _name: Option<Py<PyAny>>,
    /// Its cache, owned by the memo's host.
    cache: *const Cache,
}

/// Names remembered per thread; the oldest goes first.
const MEMO_NAMES: usize = 8;

thread_local! {
    static MEMO: RefCell<Memo> = const {
        RefCell::new(Memo { generation: 0, host: None, names: Vec::new() })
    };
}

/// What the memo keys on: the name object's address, null for the default cache.
fn key_of(name: Option<&Bound<'_, PyAny>>) -> *mut ffi::PyObject {
    name.map_or(std::ptr::null_mut(), |o| o.as_ptr())
}

impl Memo {
    #[allow(unsafe_code)]
    fn find(&self, key: *mut ffi::PyObject, generation: u64) -> Option<&Cache> {
        if self.generation != generation {
            return None;
        }
        let r = self.names.iter().find(|r| r.key == key)?;
        // SAFETY: the cache belongs to `self.host`, which the memo holds for as long as it
        // holds the entry, and a host's caches never move or change.
        Some(unsafe { &*r.cache })
    }

    /// Remember `cache` (one of `host`'s) under `name`; what it displaces is returned, to
    /// be released once the memo is free again.
    fn remember(
        &mut self,
        generation: u64,
        host: &Arc<dyn Host>,
        name: Option<&Bound<'_, PyAny>>,
        cache: &Cache,
    ) -> (Vec<Remembered>, Option<Arc<dyn Host>>) {
        let mut displaced = (Vec::new(), None);
        if self.generation != generation {
            displaced.0 = std::mem::take(&mut self.names);
            displaced.1 = self.host.replace(host.clone());
            self.generation = generation;
        } else if self.names.len() >= MEMO_NAMES {
            displaced.0.push(self.names.remove(0));
        }
        self.names.push(Remembered {
            key: key_of(name),
            _name: name.map(|n| n.clone().unbind()),
            cache,
        });
        displaced
    }
}

/// Run `local` (taken out of its option) on the cache this thread remembers under the name
/// object `key`, if it does.
fn remembered<R>(
    key: *mut ffi::PyObject,
    generation: u64,
    local: &mut Option<impl FnOnce(&Cache) -> R>,
) -> Option<R> {
    MEMO.with(|memo| {
        let memo = memo.try_borrow().ok()?;
        let cache = memo.find(key, generation)?;
        let f = local.take()?;
        Some(f(cache))
    })
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
    let generation = runtime::host_generation();
    let mut local = Some(local);
    if let Some(r) = remembered(key_of(name), generation, &mut local) {
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
    let Some(cache) = host.caches().and_then(|c| c.find(local_name).ok()) else {
        return Ok(None);
    };
    let r = local(cache);
    // Not remembered when a call running inside another one's lookup holds the memo.
    let displaced = MEMO.with(|memo| {
        memo.try_borrow_mut()
            .ok()
            .map(|mut m| m.remember(generation, &host, name, cache))
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

/// The value under `key` in `cache`, as a new bytes object: `Ok(None)` on a miss, or when
/// the key is not one the cache can hold. Copied once, from the cache straight into it.
fn get_local<'py>(
    py: Python<'py>,
    cache: &Cache,
    key: &[u8],
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    cache
        .table
        .get_with(key, |v| {
            PyBytes::new_with(py, v.len(), |out| {
                v.copy_to(out);
                Ok(())
            })
        })
        .ok()
        .flatten()
        .transpose()
}

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
        |c| get_local(py, c, key),
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

/// A new bytes object holding a copy of `v`; null when there is no memory for it (the
/// error is cleared: the caller falls back to the full path). Called with the interpreter
/// attached. A value that a retried read drops is released at once.
#[allow(unsafe_code)]
fn new_bytes(v: ruwsgi_plugin::cache::ValueRef<'_>) -> OwnedObject {
    // SAFETY: the caller holds the interpreter; a fresh bytes object of `len` bytes is
    // ours to fill before anyone else sees it.
    unsafe {
        let len = v.len();
        let p = ffi::PyBytes_FromStringAndSize(std::ptr::null(), len as ffi::Py_ssize_t);
        if p.is_null() {
            ffi::PyErr_Clear();
        } else {
            let out = std::slice::from_raw_parts_mut(ffi::PyBytes_AS_STRING(p) as *mut u8, len);
            v.copy_to(out);
        }
        OwnedObject(p)
    }
}

/// A strong reference to a Python object (or null), released when dropped unless taken
/// with [`OwnedObject::into_ptr`]. Pointer-sized, unlike the interpreter-token types, which
/// matters on the fastest call path.
struct OwnedObject(*mut ffi::PyObject);

impl OwnedObject {
    fn is_null(&self) -> bool {
        self.0.is_null()
    }

    fn into_ptr(self) -> *mut ffi::PyObject {
        let p = self.0;
        std::mem::forget(self);
        p
    }
}

impl Drop for OwnedObject {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: only made on paths that hold the interpreter; the reference is ours.
        unsafe { ffi::Py_XDECREF(self.0) }
    }
}

// The short paths. `cache_get`, `cache_set` and `cache_update` as the module exposes
// them run their commonest calls (positional arguments, `bytes` keys and values, an `int`
// expiry, a local cache this thread has already looked up) without the generic argument
// handling, which costs about a third of a cached read; every other call, and any
// failure, goes to the full function with the same arguments, so both give the same
// results.

/// The exact-`bytes` argument's contents; `None` for anything else.
///
/// # Safety
/// `o` is a valid object and the interpreter is held for as long as the slice is used.
#[allow(unsafe_code)]
unsafe fn bytes_arg<'a>(o: *mut ffi::PyObject) -> Option<&'a [u8]> {
    // SAFETY: see the function's contract; an exact bytes object's buffer is immutable.
    unsafe {
        (ffi::PyBytes_CheckExact(o) != 0).then(|| {
            std::slice::from_raw_parts(
                ffi::PyBytes_AS_STRING(o).cast::<u8>(),
                ffi::Py_SIZE(o) as usize,
            )
        })
    }
}

/// The exact-`int` argument's value; `None` for anything else or out of range.
///
/// # Safety
/// `o` is a valid object and the interpreter is held.
#[allow(unsafe_code)]
unsafe fn int_arg(o: *mut ffi::PyObject) -> Option<i64> {
    // SAFETY: see the function's contract.
    unsafe {
        if ffi::PyLong_CheckExact(o) == 0 {
            return None;
        }
        let v = ffi::PyLong_AsLongLong(o);
        if v == -1 && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(v)
    }
}

/// What the memo keys a cache-name argument on: null for `None` (the default cache).
///
/// # Safety
/// The interpreter is held.
#[allow(unsafe_code)]
unsafe fn name_arg(o: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: see the function's contract.
    if o == unsafe { ffi::Py_None() } {
        std::ptr::null_mut()
    } else {
        o
    }
}

/// Run `short` on a call's positional arguments. A call with keywords, a `None` from
/// `short`, or a panic goes to `full` with the same arguments.
///
/// # Safety
/// The interpreter's vectorcall arguments, with the interpreter held; `full` is a
/// callable.
#[allow(unsafe_code)]
unsafe fn short_or_full(
    full: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    short: impl FnOnce(&[*mut ffi::PyObject]) -> Option<*mut ffi::PyObject>,
) -> *mut ffi::PyObject {
    if kwnames.is_null() {
        // SAFETY: the interpreter passes `nargs` valid borrowed arguments.
        let positional = unsafe {
            let nargs = ffi::PyVectorcall_NARGS(nargsf as usize) as usize;
            if nargs == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(args, nargs)
            }
        };
        if let Ok(Some(result)) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| short(positional)))
        {
            return result;
        }
    }
    // SAFETY: see the function's contract.
    unsafe { ffi::PyObject_Vectorcall(full, args, nargsf as usize, kwnames) }
}

/// A module function's entry point: [`short_or_full`] with `$short`, the full function
/// being the function object's `self`.
macro_rules! short_entry {
    ($entry:ident, $short:ident) => {
        #[allow(unsafe_code)]
        unsafe extern "C" fn $entry(
            full: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargsf: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: called by the interpreter with a vectorcall's arguments and the
            // function object's `self`, the full function.
            unsafe { short_or_full(full, args, nargsf, kwnames, $short) }
        }
    };
}

/// `cache_get(key[, name])`.
#[allow(unsafe_code)]
fn get_short(args: &[*mut ffi::PyObject]) -> Option<*mut ffi::PyObject> {
    // SAFETY: valid borrowed arguments, the interpreter held (see `short_or_full`).
    unsafe {
        let (key, name) = match *args {
            [key] => (key, std::ptr::null_mut()),
            [key, name] => (key, name_arg(name)),
            _ => return None,
        };
        let key = bytes_arg(key)?;
        let mut get = Some(|c: &Cache| c.table.get_with(key, new_bytes));
        match remembered(name, runtime::host_generation(), &mut get)? {
            Ok(Some(value)) if !value.is_null() => Some(value.into_ptr()),
            // Out of memory: the full function tries again, and reports it if it fails too.
            Ok(Some(_)) => None,
            Ok(None) | Err(_) => Some(ffi::Py_NewRef(ffi::Py_None())),
        }
    }
}

/// `cache_set` / `cache_update(key, value[, expires[, name]])`.
#[allow(unsafe_code)]
fn store_short(args: &[*mut ffi::PyObject], overwrite: bool) -> Option<*mut ffi::PyObject> {
    // SAFETY: valid borrowed arguments, the interpreter held (see `short_or_full`).
    unsafe {
        let (key, value, secs, name) = match *args {
            [key, value] => (key, value, 0, std::ptr::null_mut()),
            [key, value, secs] => (key, value, int_arg(secs)?, std::ptr::null_mut()),
            [key, value, secs, name] => (key, value, int_arg(secs)?, name_arg(name)),
            _ => return None,
        };
        let (key, value) = (bytes_arg(key)?, bytes_arg(value)?);
        let mut store = Some(|c: &Cache| c.store(key, value, expires(secs), overwrite).is_ok());
        let done = remembered(name, runtime::host_generation(), &mut store)?;
        Some(ffi::Py_NewRef(if done {
            ffi::Py_True()
        } else {
            ffi::Py_None()
        }))
    }
}

fn set_short(args: &[*mut ffi::PyObject]) -> Option<*mut ffi::PyObject> {
    store_short(args, false)
}

fn update_short(args: &[*mut ffi::PyObject]) -> Option<*mut ffi::PyObject> {
    store_short(args, true)
}

short_entry!(cache_get_entry, get_short);
short_entry!(cache_set_entry, set_short);
short_entry!(cache_update_entry, update_short);

/// Add the function `full` to the module as `entry` in front of it, named `name`, with
/// the text signature and docstring `doc`.
#[allow(unsafe_code)]
fn add_short(
    m: &Bound<'_, PyModule>,
    name: &'static std::ffi::CStr,
    doc: &'static std::ffi::CStr,
    entry: ffi::PyCFunctionFastWithKeywords,
    full: Bound<'_, pyo3::types::PyCFunction>,
) -> PyResult<()> {
    // The definition must outlive the function object, which lives as long as the module.
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: entry,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: doc.as_ptr(),
    }));
    // SAFETY: a valid, leaked definition; the function object keeps `full` as its `self`.
    let f = unsafe {
        Bound::from_owned_ptr_or_err(
            m.py(),
            ffi::PyCFunction_NewEx(def, full.as_ptr(), m.name()?.as_ptr()),
        )?
    };
    m.add(name.to_str().expect("an ASCII name"), f)
}

pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let shorts: [(
        &std::ffi::CStr,
        &std::ffi::CStr,
        ffi::PyCFunctionFastWithKeywords,
        _,
    ); 3] = [
        (
            c"cache_get",
            c"cache_get(key, cache=None)\n--\n\nThe value under key (bytes), or None.",
            cache_get_entry,
            wrap_pyfunction!(cache_get, m)?,
        ),
        (
            c"cache_set",
            c"cache_set(key, value, expires=0, cache=None)\n--\n\n\
              Store value under key unless it is there: True, or None.",
            cache_set_entry,
            wrap_pyfunction!(cache_set, m)?,
        ),
        (
            c"cache_update",
            c"cache_update(key, value, expires=0, cache=None)\n--\n\n\
              Store value under key, replacing it: True, or None.",
            cache_update_entry,
            wrap_pyfunction!(cache_update, m)?,
        ),
    ];
    for (name, doc, entry, full) in shorts {
        add_short(m, name, doc, entry, full)?;
    }
    m.add_function(wrap_pyfunction!(cache_exists, m)?)?;
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
