//! Loading WSGI apps (`wsgi-file`, `module`, `mount`) and choosing one per request.
//!
//! Apps are keyed by mountpoint, `""` being the default. A mountpoint keeps its spelling for
//! `SCRIPT_NAME` (`/foo/` stays `/foo/`, as uWSGI passes it) but is matched without its
//! trailing `/`, at a path-segment boundary: `/foo/` serves `/foo`, `/foo/` and `/foo/x`
//! (`PATH_INFO` `""`, `/`, `/x`), never `/foox`. A file is executed as the module
//! `uwsgi_file_<mangled path>` (as uWSGI names it) with its directory put on `sys.path`; a
//! module spec is `pkg.mod:callable` or `pkg.mod` plus the `callable` option. Import errors
//! are logged with their traceback and reported as a one-line `PluginError::AppLoad`.

use std::ffi::CString;
use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyModule};
use ruwsgi_config::PythonSettings;
use ruwsgi_plugin::{PluginError, Vars};

use crate::runtime;

/// One loaded app.
pub(crate) struct App {
    /// As configured (`/foo/`); `""` for the default app. Becomes `SCRIPT_NAME` as is.
    pub mountpoint: String,
    /// What requests are matched against: the mountpoint without one trailing `/` (so `/`
    /// names the default app, `""`).
    pub key: String,
    /// The WSGI callable.
    pub callable: Py<PyAny>,
}

impl App {
    /// The app mounted at `mountpoint` (as written).
    pub fn new(mountpoint: &str, callable: Py<PyAny>) -> App {
        App {
            mountpoint: mountpoint.to_string(),
            key: mountpoint
                .strip_suffix('/')
                .unwrap_or(mountpoint)
                .to_string(),
            callable,
        }
    }
}

/// The matching form of a `SCRIPT_NAME`, as [`App::key`] is of a mountpoint: one trailing
/// `/` removed.
fn script_name_key(sn: &[u8]) -> &[u8] {
    sn.strip_suffix(b"/").unwrap_or(sn)
}

/// Every loaded app, longest mountpoint first (so the first prefix match is the longest).
#[derive(Default)]
pub(crate) struct Apps {
    pub list: Vec<App>,
}

impl Apps {
    /// Copies of the references, for a core.
    pub fn clone_ref(&self, py: Python<'_>) -> Apps {
        Apps {
            list: self
                .list
                .iter()
                .map(|a| App {
                    mountpoint: a.mountpoint.clone(),
                    key: a.key.clone(),
                    callable: a.callable.clone_ref(py),
                })
                .collect(),
        }
    }

    pub fn insert(&mut self, app: App) {
        if let Some(old) = self.list.iter_mut().find(|a| a.key == app.key) {
            runtime::log(&format!(
                "replacing the app already mounted at {:?}",
                app.mountpoint
            ));
            *old = app;
        } else {
            self.list.push(app);
        }
        self.list.sort_by_key(|a| std::cmp::Reverse(a.key.len()));
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
        let callable = load_file(py, file, &settings.callable)?;
        apps.insert(App::new("", callable));
    }
    if let Some(spec) = &settings.module {
        let callable = load_module(py, spec, &settings.callable)?;
        apps.insert(App::new("", callable));
    }
    for (mp, spec) in &settings.mounts {
        let callable = if is_file_spec(spec) {
            load_file(py, Path::new(spec), &settings.callable)?
        } else {
            load_module(py, spec, &settings.callable)?
        };
        apps.insert(App::new(mp, callable));
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
