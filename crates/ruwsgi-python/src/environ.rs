//! The WSGI environ: a per-core template dict copied for each request.
//!
//! Measured (pyo3-embedding-notes §3): the environ is most of a request's Python-side cost.
//! So the constant entries (`wsgi.version`, `wsgi.errors`, `wsgi.file_wrapper`, ...) live in
//! a presized template that `PyDict_Copy` clones with its capacity (no resize while the vars
//! go in; presizing needs a private CPython call, so it is gated by version: `TemplateAlloc`);
//! keys are interned strings from a per-core cache; values are decoded as latin-1,
//! as PEP 3333 asks. Clients send the same vars in the same order request after request, so
//! each var position remembers its last key and value: a repeated key or value costs a
//! `memcmp` and a reference count instead of a hash lookup or a new string.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyString, PyTuple};
use ruwsgi_plugin::Vars;

/// Keys from clients are arbitrary (`HTTP_X_ANYTHING`): stop caching past this many.
const MAX_CACHED_KEYS: usize = 512;
/// Var positions that remember their last key and value.
const MAX_POSITIONS: usize = 64;
/// Longer values are decoded every time rather than remembered.
const MAX_CACHED_VALUE: usize = 256;

/// How the template dict is allocated: the only difference is speed, never content.
// A build takes one variant, per its cfg; the tests build both everywhere.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TemplateAlloc {
    /// `_PyDict_NewPresized(48)`: copies start with room for a whole request.
    Presized,
    /// `PyDict_New()`: a copy of the small template grows its table once or twice while the
    /// vars go in (601 → 727 ns for 25 inserts, pyo3-embedding-notes §3).
    Plain,
}

/// `_PyDict_NewPresized` is private CPython API that pyo3-ffi does not wrap. It is declared
/// with `PyAPI_FUNC` in `cpython/dictobject.h`, hence exported by libpython, in every CPython
/// this crate was checked against: 3.8 to 3.13 (headers and `nm -D` of each libpython).
/// Newer versions, the limited API and the other implementations are not known to have it,
/// so they take the public `PyDict_New`; the gate is PyO3's version cfgs (see `build.rs`).
/// (No public call presizes a dict: filling one with placeholders and deleting them leaves
/// dummy slots, and `PyDict_Copy` of such a dict takes its slow path, sized by the live
/// entries again, so the per-request copies would not inherit the room.)
#[cfg(not(any(Py_3_14, Py_LIMITED_API, PyPy, GraalPy, RustPython)))]
mod alloc {
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    pub(crate) const TEMPLATE_ALLOC: super::TemplateAlloc = super::TemplateAlloc::Presized;

    /// Entries the template dict is sized for: constants plus a typical request's vars.
    const PRESIZE: pyo3::ffi::Py_ssize_t = 48;

    #[allow(unsafe_code)]
    unsafe extern "C" {
        /// A dict with room for `minused` entries before any resize.
        fn _PyDict_NewPresized(minused: pyo3::ffi::Py_ssize_t) -> *mut pyo3::ffi::PyObject;
    }

    /// An empty dict with room for [`PRESIZE`] entries.
    #[allow(unsafe_code)]
    pub(super) fn presized_dict(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        // SAFETY: we are attached; on the versions this module is compiled for the function
        // exists with this signature (see above) and returns a new reference to a dict, or
        // NULL with an exception set, which `from_owned_ptr_or_err` takes over.
        unsafe {
            let ptr = _PyDict_NewPresized(PRESIZE);
            Bound::from_owned_ptr_or_err(py, ptr).map(|b| b.cast_into_unchecked())
        }
    }
}

/// The public fallback where `_PyDict_NewPresized` cannot be shown to exist.
#[cfg(any(Py_3_14, Py_LIMITED_API, PyPy, GraalPy, RustPython))]
mod alloc {
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    pub(crate) const TEMPLATE_ALLOC: super::TemplateAlloc = super::TemplateAlloc::Plain;

    /// A plain empty dict (no presizing API to call).
    pub(super) fn presized_dict(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        Ok(PyDict::new(py))
    }
}

pub(crate) use alloc::TEMPLATE_ALLOC;

/// An empty template dict made the `how` way (the plain way is always available).
fn template_dict(py: Python<'_>, how: TemplateAlloc) -> PyResult<Bound<'_, PyDict>> {
    match how {
        TemplateAlloc::Presized => alloc::presized_dict(py),
        TemplateAlloc::Plain => Ok(PyDict::new(py)),
    }
}

/// What one var position held last time.
struct Position {
    key_raw: Box<[u8]>,
    key: Py<PyString>,
    value_raw: Vec<u8>,
    value: Option<Py<PyString>>,
}

/// Keys every request is likely to carry, interned when the core starts.
const COMMON_KEYS: &[&str] = &[
    "REQUEST_METHOD",
    "REQUEST_URI",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_PROTOCOL",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SCRIPT_NAME",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "DOCUMENT_ROOT",
    "HTTPS",
    "HTTP_HOST",
    "HTTP_USER_AGENT",
    "HTTP_ACCEPT",
    "HTTP_ACCEPT_ENCODING",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_CONNECTION",
    "HTTP_COOKIE",
    "HTTP_REFERER",
    "HTTP_CACHE_CONTROL",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP",
    "HTTP_AUTHORIZATION",
    "HTTP_ORIGIN",
    "HTTP_UPGRADE_INSECURE_REQUESTS",
];

/// FxHash-style multiplicative hasher: keys are short and not attacker-chosen in a way that
/// matters (the cache is bounded), so speed wins over DoS resistance here.
#[derive(Default)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        self.0 = h;
    }
}

/// Decode `bytes` as latin-1 into a new `str`.
#[allow(unsafe_code)]
pub(crate) fn latin1_str<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = isize::try_from(bytes.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("value too long"))?;
    // SAFETY: the pointer and length describe a live byte slice; latin-1 decoding accepts
    // every byte; the result is a new reference (or NULL with an exception set), which
    // `from_owned_ptr_or_err` takes over. We are attached (`py`).
    unsafe {
        let ptr = pyo3::ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null());
        Bound::from_owned_ptr_or_err(py, ptr).map(|b| b.cast_into_unchecked())
    }
}

/// What the core needs to put in every environ, fixed for its life.
pub(crate) struct EnvironConsts<'a> {
    pub multithread: bool,
    pub multiprocess: bool,
    pub core: Option<u16>,
    pub errors: Py<PyAny>,
    pub file_wrapper: Option<Py<PyAny>>,
    pub version: &'a [u8],
    pub node: &'a [u8],
}

/// Builds environ dicts for one core.
pub(crate) struct EnvironBuilder {
    template: Py<PyDict>,
    positions: Vec<Position>,
    keys: HashMap<Box<[u8]>, Py<PyString>, BuildHasherDefault<FastHasher>>,
    k_input: Py<PyString>,
    k_scheme: Py<PyString>,
    k_script_name: Py<PyString>,
    k_path_info: Py<PyString>,
    http: Py<PyString>,
    https: Py<PyString>,
}

impl EnvironBuilder {
    /// Build the template (allocated the [`TEMPLATE_ALLOC`] way) and the key cache.
    pub fn new(py: Python<'_>, c: EnvironConsts<'_>) -> PyResult<Self> {
        Self::with_alloc(py, c, TEMPLATE_ALLOC)
    }

    /// As [`new`](Self::new), with the template allocated the `how` way.
    pub(crate) fn with_alloc(
        py: Python<'_>,
        c: EnvironConsts<'_>,
        how: TemplateAlloc,
    ) -> PyResult<Self> {
        let t = template_dict(py, how)?;
        t.set_item(intern(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
        t.set_item(intern(py, "wsgi.errors"), c.errors.bind(py))?;
        t.set_item(intern(py, "wsgi.run_once"), PyBool::new(py, false))?;
        t.set_item(
            intern(py, "wsgi.multithread"),
            PyBool::new(py, c.multithread),
        )?;
        t.set_item(
            intern(py, "wsgi.multiprocess"),
            PyBool::new(py, c.multiprocess),
        )?;
        if let Some(fw) = &c.file_wrapper {
            t.set_item(intern(py, "wsgi.file_wrapper"), fw.bind(py))?;
        }
        t.set_item(intern(py, "uwsgi.version"), PyBytes::new(py, c.version))?;
        t.set_item(intern(py, "uwsgi.node"), PyBytes::new(py, c.node))?;
        if let Some(core) = c.core {
            t.set_item(intern(py, "uwsgi.core"), core)?;
        }
        let mut keys = HashMap::default();
        for k in COMMON_KEYS {
            keys.insert(k.as_bytes().into(), intern(py, k).unbind());
        }
        Ok(EnvironBuilder {
            template: t.unbind(),
            positions: Vec::with_capacity(MAX_POSITIONS),
            keys,
            k_input: intern(py, "wsgi.input").unbind(),
            k_scheme: intern(py, "wsgi.url_scheme").unbind(),
            k_script_name: intern(py, "SCRIPT_NAME").unbind(),
            k_path_info: intern(py, "PATH_INFO").unbind(),
            http: intern(py, "http").unbind(),
            https: intern(py, "https").unbind(),
        })
    }

    /// Put `key: value` in every later environ (async mode's `x-wsgiorg.fdevent.*`).
    pub fn set_constant(
        &self,
        py: Python<'_>,
        key: &str,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.template.bind(py).set_item(intern(py, key), value)
    }

    fn key<'py>(&mut self, py: Python<'py>, raw: &[u8]) -> PyResult<Bound<'py, PyString>> {
        if let Some(k) = self.keys.get(raw) {
            return Ok(k.bind(py).clone());
        }
        let k = latin1_str(py, raw)?;
        if self.keys.len() < MAX_CACHED_KEYS {
            let k = PyString::intern(py, k.to_str()?);
            self.keys.insert(raw.into(), k.clone().unbind());
            return Ok(k);
        }
        Ok(k)
    }

    /// The environ of one request: the template, every var (last one wins), the scheme,
    /// `wsgi.input`, and the mount rewrite (`SCRIPT_NAME`, `PATH_INFO`) if any.
    pub fn build<'py>(
        &mut self,
        py: Python<'py>,
        vars: &Vars,
        scheme: &str,
        input: &Bound<'py, PyAny>,
        rewrite: Option<(&[u8], &[u8])>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let env = self.template.bind(py).copy()?;
        for (i, (k, v)) in vars.iter().enumerate() {
            // The server's own entries are not for peers to override.
            if k.starts_with(b"wsgi.") {
                continue;
            }
            if i >= MAX_POSITIONS || i > self.positions.len() {
                let key = self.key(py, k)?;
                env.set_item(key, latin1_str(py, v)?)?;
                continue;
            }
            if i >= self.positions.len() || *self.positions[i].key_raw != *k {
                let key = self.key(py, k)?.unbind();
                let pos = Position {
                    key_raw: k.into(),
                    key,
                    value_raw: Vec::new(),
                    value: None,
                };
                if i < self.positions.len() {
                    self.positions[i] = pos;
                } else {
                    self.positions.push(pos);
                }
            }
            let pos = &mut self.positions[i];
            let value = match &pos.value {
                Some(val) if pos.value_raw == v => val.bind(py).clone(),
                _ => {
                    let val = latin1_str(py, v)?;
                    if v.len() <= MAX_CACHED_VALUE {
                        pos.value_raw.clear();
                        pos.value_raw.extend_from_slice(v);
                        pos.value = Some(val.clone().unbind());
                    } else {
                        pos.value = None;
                    }
                    val
                }
            };
            env.set_item(pos.key.bind(py), value)?;
        }
        let scheme_obj = match scheme {
            "http" => self.http.bind(py).clone(),
            "https" => self.https.bind(py).clone(),
            other => PyString::new(py, other),
        };
        env.set_item(self.k_scheme.bind(py), scheme_obj)?;
        env.set_item(self.k_input.bind(py), input)?;
        if let Some((script_name, path_info)) = rewrite {
            env.set_item(self.k_script_name.bind(py), latin1_str(py, script_name)?)?;
            env.set_item(self.k_path_info.bind(py), latin1_str(py, path_info)?)?;
        }
        Ok(env)
    }
}

fn intern<'py>(py: Python<'py>, s: &str) -> Bound<'py, PyString> {
    PyString::intern(py, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::types::PyList;

    fn consts(py: Python<'_>) -> EnvironConsts<'static> {
        EnvironConsts {
            multithread: false,
            multiprocess: true,
            core: None,
            errors: PyList::empty(py).into_any().unbind(),
            file_wrapper: None,
            version: b"2.0.30",
            node: b"host",
        }
    }

    /// The build's cfg and the interpreter the tests run on agree on which way is taken.
    #[test]
    fn template_alloc_follows_the_python_version() {
        Python::initialize();
        Python::attach(|py| {
            let v = py.version_info();
            let cpython = py
                .import("sys")
                .and_then(|s| s.getattr("implementation"))
                .and_then(|i| i.getattr("name"))
                .and_then(|n| n.extract::<String>())
                .is_ok_and(|n| n == "cpython");
            let known = cpython && (v.major, v.minor) >= (3, 8) && (v.major, v.minor) <= (3, 13);
            let want = if known {
                TemplateAlloc::Presized
            } else {
                TemplateAlloc::Plain
            };
            assert_eq!(TEMPLATE_ALLOC, want, "python {}.{}", v.major, v.minor);
        });
    }

    /// Both allocations are compiled in every build and produce the same environ.
    #[test]
    fn presized_and_plain_templates_build_the_same_environ() {
        Python::initialize();
        Python::attach(|py| {
            let mut vars = Vars::new();
            for i in 0..40 {
                vars.push(format!("HTTP_X_{i}").as_bytes(), b"v\xe9");
            }
            vars.push(b"PATH_INFO", b"/a/b");
            let input = PyList::empty(py).into_any();
            let mut built = Vec::new();
            for how in [TemplateAlloc::Presized, TemplateAlloc::Plain] {
                let mut b = EnvironBuilder::with_alloc(py, consts(py), how).unwrap();
                // Twice: the second build goes through the remembered positions.
                let _ = b.build(py, &vars, "http", &input, None).unwrap();
                let env = b
                    .build(py, &vars, "https", &input, Some((b"/m/", b"/b")))
                    .unwrap();
                // 7 constants, the 41 vars, scheme, input, SCRIPT_NAME.
                assert_eq!(env.len(), 7 + 41 + 3, "{how:?}");
                let get = |k: &str| env.get_item(k).unwrap().unwrap().extract::<String>();
                assert_eq!(get("HTTP_X_39").unwrap(), "v\u{e9}");
                assert_eq!(get("SCRIPT_NAME").unwrap(), "/m/");
                assert_eq!(get("PATH_INFO").unwrap(), "/b");
                assert_eq!(get("wsgi.url_scheme").unwrap(), "https");
                built.push(env);
            }
            assert!(built[0].eq(&built[1]).unwrap());
        });
    }
}
