//! Loading WSGI apps (`wsgi-file`, `module`, `mount`) and choosing one per request.
//!
//! Apps are keyed by mountpoint, `""` being the default. A mountpoint keeps its spelling for
//! `SCRIPT_NAME` (`/foo/` stays `/foo/`, as uWSGI passes it) but is matched without its
//! trailing `/`, at a path-segment boundary: `/foo/` serves `/foo`, `/foo/` and `/foo/x`
//! (`PATH_INFO` `""`, `/`, `/x`), never `/foox`. A file is executed as the module
//! `uwsgi_file_<mangled path>` (as uWSGI names it) with its directory put on `sys.path`; a
//! module spec is `pkg.mod:callable` or `pkg.mod` plus the `callable` option. Import errors
//! are logged with their traceback and reported as a one-line `PluginError::AppLoad`.
//!
//! Each app also has its process-wide facts and counters ([`AppShared`]) for
//! `uwsgi.workers()`. Counters are kept per core and summed when read, so a request costs a
//! plain increment on its own core's counter and no locked instruction.

use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyModule};
use ruwsgi_config::PythonSettings;
use ruwsgi_plugin::{PluginError, Vars};

use crate::runtime;

/// One app's counters as one core keeps them.
#[derive(Debug, Default)]
pub(crate) struct CoreAppStats {
    requests: AtomicU64,
    exceptions: AtomicU64,
}

impl CoreAppStats {
    /// Only the owning core writes, so a load and a store (no read-modify-write) is exact;
    /// atomics only make the reads from `uwsgi.workers()` on other threads sound.
    fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// A request was routed to the app.
    pub fn request(&self) {
        Self::bump(&self.requests);
    }

    /// The app raised (or answered invalidly).
    pub fn exception(&self) {
        Self::bump(&self.exceptions);
    }
}

/// What this process knows of one app, shared by every core (`uwsgi.workers()`).
#[derive(Debug)]
pub(crate) struct AppShared {
    /// Load order in this process, from 0.
    pub id: usize,
    /// As configured.
    pub mountpoint: String,
    /// Whole seconds the load took.
    pub startup_time: u64,
    /// Address of the callable object (its `id()`).
    pub callable: usize,
    /// Each core's counters for this app. A core adds its own when it starts and
    /// `uwsgi.workers()` sums them: the lock is never taken per request.
    cores: Mutex<Vec<Arc<CoreAppStats>>>,
}

impl AppShared {
    /// `(requests, exceptions)` over every core of this process.
    pub fn totals(&self) -> (u64, u64) {
        let cores = self.cores.lock().unwrap_or_else(|e| e.into_inner());
        cores.iter().fold((0, 0), |(r, e), c| {
            (
                r + c.requests.load(Ordering::Relaxed),
                e + c.exceptions.load(Ordering::Relaxed),
            )
        })
    }

    fn new_core(&self) -> Arc<CoreAppStats> {
        let stats = Arc::new(CoreAppStats::default());
        self.cores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stats.clone());
        stats
    }
}

/// One loaded app.
pub(crate) struct App {
    /// As configured (`/foo/`); `""` for the default app. Becomes `SCRIPT_NAME` as is.
    pub mountpoint: String,
    /// What requests are matched against: the mountpoint without one trailing `/` (so `/`
    /// names the default app, `""`).
    pub key: String,
    /// The WSGI callable.
    pub callable: Py<PyAny>,
    /// The process-wide facts and counters.
    pub shared: Arc<AppShared>,
    /// This core's counters (in the loaded list itself: a spare that is never counted).
    pub stats: Arc<CoreAppStats>,
}

impl App {
    /// App `id`, mounted at `mountpoint` (as written), whose load took `startup`.
    fn new(id: usize, mountpoint: &str, callable: Py<PyAny>, startup: Duration) -> App {
        let shared = AppShared {
            id,
            mountpoint: mountpoint.to_string(),
            startup_time: startup.as_secs(),
            callable: callable.as_ptr() as usize,
            cores: Mutex::new(Vec::new()),
        };
        App {
            mountpoint: mountpoint.to_string(),
            key: mountpoint_key(mountpoint).to_string(),
            callable,
            shared: Arc::new(shared),
            stats: Arc::default(),
        }
    }
}

/// The matching form of a mountpoint: one trailing `/` removed.
fn mountpoint_key(mp: &str) -> &str {
    mp.strip_suffix('/').unwrap_or(mp)
}

/// The matching form of a `SCRIPT_NAME`, as [`mountpoint_key`] is of a mountpoint.
fn script_name_key(sn: &[u8]) -> &[u8] {
    sn.strip_suffix(b"/").unwrap_or(sn)
}

/// Every loaded app, longest mountpoint first (so the first prefix match is the longest).
#[derive(Default)]
pub(crate) struct Apps {
    pub list: Vec<App>,
    /// Apps inserted so far (the next id).
    loaded: usize,
}

impl Apps {
    /// Copies of the references for a new core, with counters of its own.
    pub fn for_core(&self, py: Python<'_>) -> Apps {
        Apps {
            list: self
                .list
                .iter()
                .map(|a| App {
                    mountpoint: a.mountpoint.clone(),
                    key: a.key.clone(),
                    callable: a.callable.clone_ref(py),
                    shared: a.shared.clone(),
                    stats: a.shared.new_core(),
                })
                .collect(),
            loaded: self.loaded,
        }
    }

    /// Mount `callable` at `mountpoint` (as written; its load took `startup`), replacing,
    /// and taking the id of, an app mounted at the same place.
    pub fn insert(&mut self, mountpoint: &str, callable: Py<PyAny>, startup: Duration) {
        let key = mountpoint_key(mountpoint);
        let old = self.list.iter().position(|a| a.key == key);
        let id = old.map_or(self.loaded, |i| self.list[i].shared.id);
        let app = App::new(id, mountpoint, callable, startup);
        if let Some(i) = old {
            runtime::log(&format!(
                "replacing the app already mounted at {:?}",
                app.mountpoint
            ));
            self.list[i] = app;
        } else {
            self.loaded += 1;
            self.list.push(app);
        }
        self.list.sort_by_key(|a| std::cmp::Reverse(a.key.len()));
    }

    /// Make these apps the ones `uwsgi.workers()` shows for this process.
    pub fn publish(&self) {
        let mut shown: Vec<_> = self.list.iter().map(|a| a.shared.clone()).collect();
        shown.sort_by_key(|a| a.id);
        *PUBLISHED.write().unwrap_or_else(|e| e.into_inner()) = shown;
    }

    /// The app for a request: `SCRIPT_NAME` naming a mountpoint (trailing `/` or not), else
    /// (with `manage-script-name`) the longest mountpoint prefixing `PATH_INFO` at a segment
    /// boundary, else the default app. Returns its index and, for a `PATH_INFO` match, the
    /// length of the `PATH_INFO` prefix the mountpoint replaces.
    pub fn select(&self, vars: &Vars, manage_script_name: bool) -> Option<(usize, Option<usize>)> {
        if let [only] = self.list.as_slice() {
            if only.key.is_empty() {
                return Some((0, None));
            }
        }
        if let Some(sn) = vars.get(b"SCRIPT_NAME").filter(|s| !s.is_empty()) {
            let sn = script_name_key(sn);
            if let Some(i) = self.list.iter().position(|a| a.key.as_bytes() == sn) {
                return Some((i, None));
            }
        }
        if manage_script_name {
            let path = vars.get(b"PATH_INFO").unwrap_or_default();
            for (i, a) in self.list.iter().enumerate() {
                let mp = a.key.as_bytes();
                if mp.is_empty() {
                    continue;
                }
                if path.starts_with(mp) && (path.len() == mp.len() || path[mp.len()] == b'/') {
                    return Some((i, Some(mp.len())));
                }
            }
        }
        self.list
            .iter()
            .position(|a| a.key.is_empty())
            .map(|i| (i, None))
    }
}

/// The apps of this process as `uwsgi.workers()` shows them; written when apps load (in the
/// master, or in a worker with lazy apps), read by that module function.
static PUBLISHED: RwLock<Vec<Arc<AppShared>>> = RwLock::new(Vec::new());

/// The apps of this process, in load order.
pub(crate) fn published() -> Vec<Arc<AppShared>> {
    PUBLISHED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Module name uWSGI gives an executed file: every non-alphanumeric byte becomes `_`.
pub(crate) fn mangle(path: &str) -> String {
    let body: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("uwsgi_file_{body}")
}

fn app_error(py: Python<'_>, app: &str, err: PyErr) -> PluginError {
    runtime::log(&format!("cannot load app {app}:"));
    runtime::log_exception(py, &err);
    let msg = err.to_string();
    PluginError::AppLoad {
        app: app.to_string(),
        message: msg.lines().next().unwrap_or("").to_string(),
    }
}

fn take_callable(
    py: Python<'_>,
    app: &str,
    module: &Bound<'_, PyModule>,
    name: &str,
) -> Result<Py<PyAny>, PluginError> {
    let missing = || PluginError::AppLoad {
        app: app.to_string(),
        message: format!("callable {name:?} not found"),
    };
    let obj = module
        .getattr_opt(name)
        .map_err(|e| app_error(py, app, e))?
        .ok_or_else(missing)?;
    if !obj.is_callable() {
        return Err(PluginError::AppLoad {
            app: app.to_string(),
            message: format!("{name:?} is not callable"),
        });
    }
    Ok(obj.unbind())
}

/// Put `dir` first on `sys.path` unless it is already there.
pub(crate) fn add_sys_path_front(py: Python<'_>, dir: &str) -> PyResult<()> {
    let path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    if !path.contains(dir)? {
        path.insert(0, dir)?;
    }
    Ok(())
}

/// Execute a WSGI file and take its callable.
pub(crate) fn load_file(
    py: Python<'_>,
    file: &Path,
    callable: &str,
) -> Result<Py<PyAny>, PluginError> {
    let shown = file.display().to_string();
    let code = std::fs::read_to_string(file).map_err(|e| PluginError::AppLoad {
        app: shown.clone(),
        message: format!("cannot read {shown}: {e}"),
    })?;
    let bad = |what: &str| PluginError::AppLoad {
        app: shown.clone(),
        message: format!("{what} contains a NUL byte"),
    };
    let code = CString::new(code).map_err(|_| bad("the file"))?;
    let fname = CString::new(shown.clone()).map_err(|_| bad("the path"))?;
    let mname = CString::new(mangle(&shown)).map_err(|_| bad("the path"))?;
    let dir = file
        .parent()
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .and_then(|d| d.canonicalize().ok());
    if let Some(dir) = dir {
        add_sys_path_front(py, &dir.to_string_lossy()).map_err(|e| app_error(py, &shown, e))?;
    }
    let module =
        PyModule::from_code(py, &code, &fname, &mname).map_err(|e| app_error(py, &shown, e))?;
    take_callable(py, &shown, &module, callable)
}

/// Import `pkg.mod[:callable]` and take its callable.
pub(crate) fn load_module(
    py: Python<'_>,
    spec: &str,
    default_callable: &str,
) -> Result<Py<PyAny>, PluginError> {
    let (name, callable) = match spec.rsplit_once(':') {
        Some((m, c)) if !c.is_empty() => (m, c),
        _ => (spec.trim_end_matches(':'), default_callable),
    };
    let module = py.import(name).map_err(|e| app_error(py, spec, e))?;
    take_callable(py, spec, &module, callable)
}

fn is_file_spec(spec: &str) -> bool {
    spec.contains('/') || spec.ends_with(".py") || spec.ends_with(".wsgi")
}

/// Load every configured app.
pub(crate) fn load_all(py: Python<'_>, settings: &PythonSettings) -> Result<Apps, PluginError> {
    let mut apps = Apps::default();
    if let Some(file) = &settings.wsgi_file {
        let started = Instant::now();
        let callable = load_file(py, file, &settings.callable)?;
        apps.insert("", callable, started.elapsed());
    }
    if let Some(spec) = &settings.module {
        let started = Instant::now();
        let callable = load_module(py, spec, &settings.callable)?;
        apps.insert("", callable, started.elapsed());
    }
    for (mp, spec) in &settings.mounts {
        let started = Instant::now();
        let callable = if is_file_spec(spec) {
            load_file(py, Path::new(spec), &settings.callable)?
        } else {
            load_module(py, spec, &settings.callable)?
        };
        apps.insert(mp, callable, started.elapsed());
    }
    Ok(apps)
}

#[cfg(test)]
mod tests {
    use super::mangle;

    #[test]
    fn file_module_names_are_mangled_like_uwsgi() {
        assert_eq!(mangle("/srv/app/wsgi.py"), "uwsgi_file__srv_app_wsgi_py");
    }
}
