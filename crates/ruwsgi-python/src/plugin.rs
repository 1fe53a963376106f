//! [`PythonPlugin`]: the `LanguagePlugin` the server drives.
//!
//! The plugin holds what `init` and `load_apps` produced behind `RwLock`s: they are written
//! once per phase (in the master, or again in a worker for lazy apps) and only read by the
//! cores, which copy the references they need when they start, so no lock is taken per
//! request. Every `Py` reference is created and dropped while attached.

use std::path::Path;
use std::sync::{Arc, Once, RwLock};
use std::time::Duration;

use pyo3::exceptions::PySystemExit;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyModule, PyString};
use ruwsgi_config::{PluginView, PythonSettings, SuspendEngine};
use ruwsgi_plugin::{
    AsyncCore, Core, ForkOutcome, Host, LanguagePlugin, PluginError, ProcessRole, SpoolerOutcome,
    Task,
};

use crate::apps::{self, Apps};
use crate::async_core::PyAsyncCore;
use crate::autoreload;
use crate::response::{StartResponse, Writer};
use crate::wsgi::PyCore;
use crate::{interp, module, runtime};

/// What `init` set up.
pub(crate) struct Shared {
    /// The plugin's own settings section.
    pub python: PythonSettings,
    /// Cores per worker (`threads`, at least 1).
    pub threads: usize,
    /// Worker processes.
    pub workers: usize,
    /// The built-in `uwsgi` module.
    pub module: Py<PyModule>,
    /// The process's single (stateless) `start_response`.
    pub start_response: Py<StartResponse>,
    /// `uwsgi.node` / `uwsgi.hostname`.
    pub hostname: Vec<u8>,
    /// `plugins = notfound`: a request no app serves gets 404 instead of 500.
    pub notfound: bool,
    /// How async cores suspend (`greenlet`/`ugreen`, or none).
    pub suspend_engine: SuspendEngine,
}

/// What `load_apps` produced.
pub(crate) struct Loaded {
    pub apps: Apps,
    /// Run once by the first core of a worker to publish `apps` in its scoreboard slot
    /// (`apps::publish_once`). Preloaded apps are loaded in the master, which never runs
    /// it, so each forked worker starts with it not yet run and publishes in its own process.
    pub published: Once,
    /// `uwsgi.after_req_hook`, looked up once right after the apps loaded.
    pub after_req_hook: Option<Py<PyAny>>,
    /// `py-autoreload`: the modules' file mtimes right after the apps loaded.
    pub autoreload_baseline: Option<Py<PyAny>>,
}

/// The Python (WSGI) language plugin.
///
/// Create one per process with [`PythonPlugin::new`], before anything else touches Python.
/// `init` starts CPython (once per process; a later `init` re-applies the settings to the
/// running interpreter, which tests rely on).
pub struct PythonPlugin {
    /// The plugin's section of the settings, given at construction.
    python: PythonSettings,
    /// Written by `init`, read by every later call.
    shared: RwLock<Option<Arc<Shared>>>,
    /// Written by `load_apps`, read by `run_core` when a core starts.
    loaded: RwLock<Option<Arc<Loaded>>>,
}

fn init_error(message: impl Into<String>) -> PluginError {
    PluginError::Init {
        plugin: "python",
        message: message.into(),
    }
}

impl PythonPlugin {
    /// A plugin for `python` (its settings section) that has not started the interpreter
    /// yet.
    pub fn new(python: PythonSettings) -> Self {
        PythonPlugin {
            python,
            shared: RwLock::new(None),
            loaded: RwLock::new(None),
        }
    }

    fn shared(&self) -> Option<Arc<Shared>> {
        self.shared
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn loaded(&self) -> Option<Arc<Loaded>> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Call the user hook `uwsgi.<name>` if the app set one.
    fn call_module_hook(&self, name: &str) {
        let Some(shared) = self.shared() else { return };
        Python::attach(|py| {
            match shared.module.bind(py).getattr_opt(name) {
                Ok(Some(hook)) if !hook.is_none() => runtime::call_hook(py, name, &hook),
                Ok(_) => {}
                Err(e) => runtime::log_exception(py, &e),
            }
            drop(shared);
        });
    }
}

fn hostname(py: Python<'_>) -> PyResult<Vec<u8>> {
    let node = py
        .import("os")?
        .call_method0("uname")?
        .getattr("nodename")?;
    Ok(node.extract::<String>()?.into_bytes())
}

/// Apps the user put in `uwsgi.applications` (mountpoint → callable) at import time.
fn user_applications(
    py: Python<'_>,
    module: &Bound<'_, PyModule>,
    apps: &mut Apps,
) -> PyResult<()> {
    let Some(d) = module.getattr_opt("applications")? else {
        return Ok(());
    };
    let Ok(d) = d.cast::<PyDict>() else {
        return Ok(());
    };
    for (k, v) in d.iter() {
        let mountpoint = if let Ok(b) = k.cast::<PyBytes>() {
            String::from_utf8_lossy(b.as_bytes()).into_owned()
        } else if let Ok(s) = k.cast::<PyString>() {
            s.to_cow()?.into_owned()
        } else {
            continue;
        };
        if v.is_callable() {
            // Defined by another app's import: no load time of its own.
            apps.insert(&mountpoint, v.unbind(), Duration::ZERO);
        } else {
            runtime::log(&format!(
                "uwsgi.applications[{mountpoint:?}] is not callable, ignored"
            ));
        }
    }
    let _ = py;
    Ok(())
}

impl LanguagePlugin for PythonPlugin {
    fn name(&self) -> &'static str {
        "python"
    }

    fn init(&self, server: PluginView<'_>, host: Arc<dyn Host>) -> Result<(), PluginError> {
        let host_fds = host.socket_fds();
        runtime::set_host(host);
        interp::start(server, &self.python)?;
        Python::attach(|py| {
            let built = (|| -> PyResult<Shared> {
                let module = py.import("uwsgi")?;
                let hostname = hostname(py).unwrap_or_default();
                module::configure(py, &module, server, &hostname, &host_fds)?;
                module::add_sharedarea_group(&module)?;
                module::add_spooler_group(&module)?;
                if server.processes.async_cores > 0
                    && server.processes.suspend_engine == SuspendEngine::Greenlet
                {
                    // Checked here, so that a missing package stops the start, not each worker.
                    py.import("greenlet").map_err(|e| {
                        pyo3::exceptions::PyImportError::new_err(format!(
                            "the greenlet suspend engine needs the greenlet package \
                             (pip install greenlet): {e}"
                        ))
                    })?;
                }
                let writer = Py::new(py, Writer)?;
                let start_response = Py::new(py, StartResponse { writer })?;
                module.setattr("start_response", &start_response)?;
                Ok(Shared {
                    python: self.python.clone(),
                    threads: server.processes.threads.max(1),
                    workers: server.processes.workers,
                    module: module.unbind(),
                    start_response,
                    hostname,
                    notfound: server.requests.notfound,
                    suspend_engine: server.processes.suspend_engine,
                })
            })();
            match built {
                Ok(shared) => {
                    let old = self
                        .shared
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .replace(Arc::new(shared));
                    let old_apps = self
                        .loaded
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    drop((old, old_apps));
                    Ok(())
                }
                Err(e) => {
                    runtime::log_exception(py, &e);
                    Err(init_error(format!("cannot set up the uwsgi module: {e}")))
                }
            }
        })
    }

    fn load_apps(&self) -> Result<usize, PluginError> {
        let shared = self
            .shared()
            .ok_or_else(|| init_error("load_apps called before init"))?;
        Python::attach(|py| {
            let module = shared.module.bind(py);
            let mut apps = apps::load_all(py, &shared.python)?;
            if let Err(e) = user_applications(py, module, &mut apps) {
                runtime::log_exception(py, &e);
            }
            let after_req_hook = match module.getattr_opt("after_req_hook") {
                Ok(Some(h)) if !h.is_none() => Some(h.unbind()),
                Ok(_) => None,
                Err(e) => {
                    runtime::log_exception(py, &e);
                    None
                }
            };
            let n = apps.list.len();
            let python = &shared.python;
            let autoreload_baseline = (!python.autoreload.is_zero())
                .then(|| autoreload::snapshot(py, &python.autoreload_ignore))
                .flatten();
            // Lazy apps: the worker that loaded them watches from here.
            if !python.autoreload.is_zero() && is_watcher(runtime::host().map(|h| h.role())) {
                autoreload::start(
                    py,
                    python.autoreload,
                    &python.autoreload_ignore,
                    autoreload_baseline.as_ref(),
                );
            }
            let old = self
                .loaded
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .replace(Arc::new(Loaded {
                    apps,
                    published: Once::new(),
                    after_req_hook,
                    autoreload_baseline,
                }));
            drop((old, shared));
            Ok(n)
        })
    }

    #[allow(unsafe_code)]
    fn around_fork(&self, fork: &mut dyn FnMut() -> ForkOutcome) -> ForkOutcome {
        if !interp::is_initialized() {
            return fork();
        }
        Python::attach(|_py| {
            // SAFETY: we are attached (hold the GIL), as PyOS_BeforeFork requires; it is
            // paired below with exactly one AfterFork call in each process, whatever the
            // outcome (the measured recipe of pyo3-embedding-notes §2).
            unsafe { ffi::PyOS_BeforeFork() };
            let outcome = fork();
            match outcome {
                // SAFETY: in the new child, right after fork, still attached: re-initialises
                // the GIL, threading and import lock and runs the after-fork hooks.
                ForkOutcome::Child => unsafe { ffi::PyOS_AfterFork_Child() },
                // SAFETY: in the parent (or after a failed fork), attached, after BeforeFork.
                ForkOutcome::Parent(_) | ForkOutcome::Failed(_) => unsafe {
                    ffi::PyOS_AfterFork_Parent()
                },
            }
            outcome
        })
    }

    fn post_fork(&self, role: ProcessRole) {
        Python::attach(crate::module::harakiri::write_stacks_on_signal);
        self.call_module_hook("post_fork_hook");
        // Preloaded apps: the watcher compares with the master's snapshot. (Lazy apps
        // start it from `load_apps`, which runs after this in the worker.)
        if self.python.autoreload.is_zero() || !is_watcher(Some(role)) {
            return;
        }
        if let Some(loaded) = self.loaded() {
            Python::attach(|py| {
                autoreload::start(
                    py,
                    self.python.autoreload,
                    &self.python.autoreload_ignore,
                    loaded.autoreload_baseline.as_ref(),
                );
                drop(loaded);
            });
        }
    }

    fn run_core(&self, core_id: u16, body: &mut dyn FnMut(&mut dyn Core)) {
        let Some(shared) = self.shared() else {
            runtime::log("python: run_core called before init");
            return;
        };
        let loaded = self.loaded();
        Python::attach(|py| {
            match PyCore::new(py, &shared, loaded.as_deref(), core_id) {
                Ok(mut core) => {
                    body(&mut core);
                    drop(core);
                }
                Err(e) => {
                    runtime::log(&format!("python: cannot start core {core_id}:"));
                    runtime::log_exception(py, &e);
                }
            }
            drop((shared, loaded));
        });
    }

    fn run_async(
        &self,
        cores: u16,
        body: &mut dyn FnMut(&mut dyn AsyncCore),
    ) -> Result<(), PluginError> {
        let shared = self
            .shared()
            .ok_or_else(|| init_error("run_async called before init"))?;
        let loaded = self.loaded();
        Python::attach(|py| {
            let r = match PyAsyncCore::new(py, &shared, loaded.as_deref(), cores) {
                Ok(mut core) => {
                    body(&mut core);
                    drop(core);
                    Ok(())
                }
                Err(e) => {
                    runtime::log_exception(py, &e);
                    Err(init_error(format!("cannot start the async cores: {e}")))
                }
            };
            drop((shared, loaded));
            r
        })
    }

    fn at_exit(&self) {
        self.call_module_hook("atexit");
    }

    fn spooler_import(&self, what: &str) -> Result<(), PluginError> {
        Python::attach(|py| {
            let imported = if what.ends_with(".py") {
                import_file(py, Path::new(what))
            } else {
                py.import(what).map(drop)
            };
            imported.map_err(|e| {
                runtime::log_exception(py, &e);
                PluginError::AppLoad {
                    app: what.to_string(),
                    message: format!("spooler-import failed: {e}"),
                }
            })
        })
    }

    fn run_spooler_task(&self, path: &Path, task: &Task) -> SpoolerOutcome {
        let Some(shared) = self.shared() else {
            return SpoolerOutcome::Ignore;
        };
        Python::attach(|py| {
            let outcome = module::spooler::run_task(py, shared.module.bind(py), path, task);
            drop(shared);
            outcome
        })
    }

    fn run_mule_callable(&self, spec: &str) -> Result<i32, PluginError> {
        let (module, function) = spec.split_once(':').unwrap_or((spec, ""));
        Python::attach(|py| {
            let callable = py
                .import(module)
                .and_then(|m| m.getattr(function))
                .map_err(|e| {
                    runtime::log_exception(py, &e);
                    PluginError::AppLoad {
                        app: spec.to_string(),
                        message: "cannot import the mule callable".into(),
                    }
                })?;
            match callable.call0() {
                Ok(_) => Ok(0),
                Err(e) if e.is_instance_of::<PySystemExit>(py) => Ok(exit_code(py, &e)),
                Err(e) => {
                    runtime::log(&format!("mule callable {spec} raised:"));
                    runtime::log_exception(py, &e);
                    Ok(1)
                }
            }
        })
    }

    fn mule_message(&self, msg: &[u8]) -> bool {
        let Some(shared) = self.shared() else {
            return false;
        };
        Python::attach(|py| {
            let module = shared.module.bind(py);
            let mut hooks = Vec::new();
            match module.getattr_opt("mule_msg_hook") {
                Ok(Some(hook)) if !hook.is_none() => hooks.push(hook),
                Ok(_) => {}
                Err(e) => runtime::log_exception(py, &e),
            }
            hooks.extend(crate::module::mule::extra_hooks(py));
            if hooks.is_empty() {
                return false;
            }
            let message = pyo3::types::PyBytes::new(py, msg);
            for hook in hooks {
                if let Err(e) = hook.call1((&message,)) {
                    runtime::log_exception(py, &e);
                }
            }
            drop(shared);
            true
        })
    }

    fn run_mule(&self, script: &Path) -> Result<i32, PluginError> {
        let name = script.display().to_string();
        let source = std::fs::read_to_string(script).map_err(|e| PluginError::AppLoad {
            app: name.clone(),
            message: format!("cannot read the mule script: {e}"),
        })?;
        Python::attach(|py| match run_main_script(py, script, &name, &source) {
            Ok(()) => Ok(0),
            Err(e) if e.is_instance_of::<PySystemExit>(py) => Ok(exit_code(py, &e)),
            Err(e) => {
                runtime::log(&format!("mule script {name} raised:"));
                runtime::log_exception(py, &e);
                Ok(1)
            }
        })
    }
}

/// Whether this process runs the `py-autoreload` watcher: worker 1 only.
fn is_watcher(role: Option<ProcessRole>) -> bool {
    role == Some(ProcessRole::Worker { id: 1 })
}

/// Run `source` (read from `script`) as `__main__`, its directory first on `sys.path`, as
/// `python script.py` would.
fn run_main_script(py: Python<'_>, script: &Path, name: &str, source: &str) -> PyResult<()> {
    if let Some(dir) = script.parent().filter(|d| !d.as_os_str().is_empty()) {
        apps::add_sys_path_front(py, &dir.to_string_lossy())?;
    }
    let builtins = py.import("builtins")?;
    let code = builtins.call_method1("compile", (source, name, "exec"))?;
    let main = py.import("__main__")?;
    let globals = main.dict();
    globals.set_item("__file__", name)?;
    builtins.call_method1("exec", (code, globals))?;
    Ok(())
}

/// Import the file `path` as a module named after its stem (registered in `sys.modules`).
fn import_file(py: Python<'_>, path: &Path) -> PyResult<()> {
    let name = path
        .file_stem()
        .map_or_else(|| "spooler_import".into(), |s| s.to_string_lossy());
    let util = py.import("importlib.util")?;
    let spec = util.call_method1(
        "spec_from_file_location",
        (name.as_ref(), path.to_string_lossy().as_ref()),
    )?;
    if spec.is_none() {
        return Err(pyo3::exceptions::PyImportError::new_err(format!(
            "cannot import {}",
            path.display()
        )));
    }
    let module = util.call_method1("module_from_spec", (&spec,))?;
    py.import("sys")?
        .getattr("modules")?
        .set_item(name.as_ref(), &module)?;
    spec.getattr("loader")?
        .call_method1("exec_module", (&module,))?;
    Ok(())
}

/// The exit code a `SystemExit` asks for: its int code, 0 for `None`, else 1.
fn exit_code(py: Python<'_>, e: &PyErr) -> i32 {
    match e.value(py).getattr("code") {
        Ok(code) if code.is_none() => 0,
        Ok(code) => code.extract::<i32>().unwrap_or(1),
        Err(_) => 1,
    }
}
