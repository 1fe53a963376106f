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
//! The apps `uwsgi.workers()` shows live in the shared scoreboard, in this worker's slot: the
//! first core to start publishes them there ([`publish_once`]) and every request bumps its
//! app's counter through [`AppCounters`], so every process sees every worker's apps. An app's
//! index in that table is its load order (`id`), which is dense: a replaced app keeps its id.

use std::ffi::CString;
use std::path::Path;
use std::sync::Once;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyModule};
use ruwsgi_config::PythonSettings;
use ruwsgi_plugin::{
    AppInfo, PluginError, ProcessRole, Scoreboard, Vars, WorkerSlot, Writers, MAX_APPS,
};

use crate::runtime;

/// One loaded app.
pub(crate) struct App {
    /// Load order in this process, from 0: the app's index in the worker's table.
    pub id: usize,
    /// As configured (`/foo/`); `""` for the default app. Becomes `SCRIPT_NAME` as is.
    pub mountpoint: String,
    /// What requests are matched against: the mountpoint without one trailing `/` (so `/`
    /// names the default app, `""`).
    pub key: String,
    /// The WSGI callable.
    pub callable: Py<PyAny>,
    /// Whole seconds the load took.
    pub startup_time: u64,
}

impl App {
    /// App `id`, mounted at `mountpoint` (as written), whose load took `startup`.
    fn new(id: usize, mountpoint: &str, callable: Py<PyAny>, startup: Duration) -> App {
        App {
            id,
            mountpoint: mountpoint.to_string(),
            key: mountpoint_key(mountpoint).to_string(),
            callable,
            startup_time: startup.as_secs(),
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
    /// Copies of the references for a new core.
    pub fn for_core(&self, py: Python<'_>) -> Apps {
        Apps {
            list: self
                .list
                .iter()
                .map(|a| App {
                    id: a.id,
                    mountpoint: a.mountpoint.clone(),
                    key: a.key.clone(),
                    callable: a.callable.clone_ref(py),
                    startup_time: a.startup_time,
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
        let id = old.map_or(self.loaded, |i| self.list[i].id);
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

    /// Publish these apps, in id order, in `slot` (this worker's), as running in the
    /// interpreter at `interpreter`.
    fn publish(&self, slot: &WorkerSlot, interpreter: usize) {
        let mut by_id: Vec<&App> = self.list.iter().collect();
        by_id.sort_by_key(|a| a.id);
        let infos: Vec<AppInfo<'_>> = by_id
            .iter()
            .map(|a| AppInfo {
                mountpoint: a.mountpoint.as_bytes(),
                startup_time: a.startup_time,
                interpreter,
                callable: a.callable.as_ptr() as usize,
            })
            .collect();
        let shown = slot.publish_apps(&infos);
        if shown < infos.len() {
            runtime::log(&format!(
                "{} apps loaded: uwsgi.workers() shows and counts the first {MAX_APPS}",
                infos.len()
            ));
        }
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

/// Where a core counts its requests per app: this worker's slot of the scoreboard. Cloned
/// into each core when it starts, so a request costs no host call and no lock, only the
/// slot lookup and the counter's load and store (or `fetch_add` with several cores).
pub(crate) struct AppCounters {
    board: Scoreboard,
    worker: u32,
    writers: Writers,
}

impl AppCounters {
    /// A request was routed to app `id`.
    pub fn request(&self, id: usize) {
        if let Some(slot) = self.board.get(self.worker) {
            slot.count_app_request(id, self.writers);
        }
    }

    /// A request of app `id` ended in an exception (or an invalid response).
    pub fn exception(&self, id: usize) {
        if let Some(slot) = self.board.get(self.worker) {
            slot.count_app_exception(id, self.writers);
        }
    }
}

/// Address of the interpreter the apps run in (uWSGI shows a pointer too).
#[allow(unsafe_code)]
fn interpreter_addr(_py: Python<'_>) -> usize {
    // SAFETY: attached (`_py`), as PyInterpreterState_Get requires; it only reads the
    // current thread state's interpreter and never fails while attached.
    unsafe { pyo3::ffi::PyInterpreterState_Get() as usize }
}

/// Called by every core of a worker as it starts: the first publishes `apps` in this
/// worker's slot (counters at zero; `published` is the load's own flag, so a worker forked
/// from a master that loaded them publishes in its own process), and each gets the counters
/// it bumps per request. `None` outside a worker or when the host has no scoreboard.
pub(crate) fn publish_once(
    py: Python<'_>,
    apps: &Apps,
    published: &Once,
    cores: usize,
) -> Option<AppCounters> {
    let host = runtime::host()?;
    let ProcessRole::Worker { id } = host.role() else {
        return None;
    };
    let board = host.scoreboard()?;
    let slot = board.get(id)?;
    let interpreter = interpreter_addr(py);
    // No Python inside: the publisher must never give the interpreter up, or a core that
    // took it meanwhile would wait here attached while the publisher waits for it.
    published.call_once(|| apps.publish(slot, interpreter));
    let writers = if cores > 1 {
        Writers::Several
    } else {
        Writers::One
    };
    Some(AppCounters {
        board,
        worker: id,
        writers,
    })
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
