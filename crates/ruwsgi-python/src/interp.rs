//! Starting the embedded interpreter and preparing the process for the apps.
//!
//! CPython is initialised once per process from an explicit `PyConfig` (pyo3-embedding-notes
//! §1): no Python signal handlers (the server owns signals), no argv parsing, and an explicit
//! `executable` — `<home>/bin/python` for a virtualenv (so its site-packages and `.pth` files
//! work), else the interpreter this crate was built against — because leaving it unset makes
//! CPython resolve `python3` through `PATH`. The GIL is released right after; every later
//! use attaches. `env` and `chdir` are applied before the interpreter starts, `sys.path` and
//! `sys.argv` after.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;
use ruwsgi_config::{PluginView, PythonSettings};
use ruwsgi_plugin::PluginError;

use crate::apps::add_sys_path_front;

/// The interpreter the build was made against (from `build.rs`), empty if unknown.
const BUILD_EXECUTABLE: &str = env!("RUWSGI_PYTHON_EXECUTABLE");

fn init_error(message: impl Into<String>) -> PluginError {
    PluginError::Init {
        plugin: "python",
        message: message.into(),
    }
}

/// The `executable` to give `PyConfig`.
pub(crate) fn executable_for(home: Option<&Path>) -> Option<PathBuf> {
    match home {
        Some(h) => Some(h.join("bin").join("python")),
        None if !BUILD_EXECUTABLE.is_empty() => Some(PathBuf::from(BUILD_EXECUTABLE)),
        None => None,
    }
}

/// True once CPython runs in this process.
#[allow(unsafe_code)]
pub(crate) fn is_initialized() -> bool {
    // SAFETY: Py_IsInitialized may be called at any time, with or without the GIL.
    unsafe { ffi::Py_IsInitialized() != 0 }
}

/// Prepare the process and start CPython if it is not running yet. A second call (tests, an
/// in-process re-init) applies `env`, `chdir` and `sys.path` again but keeps the interpreter.
pub(crate) fn start(server: PluginView<'_>, python: &PythonSettings) -> Result<(), PluginError> {
    let running = is_initialized();
    for (k, v) in &server.processes.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(init_error(format!("invalid env entry {k:?}={v:?}")));
        }
        std::env::set_var(k, v);
    }
    if let Some(dir) = &server.processes.chdir {
        std::env::set_current_dir(dir)
            .map_err(|e| init_error(format!("chdir({}): {e}", dir.display())))?;
    }
    if !running {
        if let Some(home) = &python.home {
            if !home.join("bin").join("python").exists() {
                crate::runtime::log(&format!(
                    "warning: virtualenv {} has no bin/python; sys.prefix may be wrong",
                    home.display()
                ));
            }
        }
        let exe = executable_for(python.home.as_deref());
        initialize(exe.as_deref())?;
    }
    Python::attach(|py| prepare_sys(py, server, python, running))
        .map_err(|e| init_error(format!("cannot prepare sys: {e}")))
}

/// `Py_InitializeFromConfig` with the built-in `uwsgi` module registered, then release the
/// GIL.
#[allow(unsafe_code)]
fn initialize(executable: Option<&Path>) -> Result<(), PluginError> {
    use crate::module::uwsgi;
    pyo3::append_to_inittab!(uwsgi);

    let exe = match executable {
        Some(p) => Some(
            CString::new(p.as_os_str().as_encoded_bytes())
                .map_err(|_| init_error("the python executable path contains a NUL byte"))?,
        ),
        None => None,
    };
    // SAFETY: PyConfig is a plain C struct that PyConfig_InitPythonConfig fully initialises
    // before any other use; every PyConfig_* call gets a pointer to that live struct, and
    // PyConfig_Clear releases what they allocated on every path. Nothing else runs Python
    // yet (checked by the caller), so this thread may initialise it; PyEval_SaveThread then
    // releases the GIL this thread got from initialisation.
    unsafe {
        let mut config: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut config);
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        if let Some(exe) = &exe {
            let st =
                ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, exe.as_ptr());
            if ffi::PyStatus_Exception(st) != 0 {
                ffi::PyConfig_Clear(&mut config);
                return Err(init_error(status_message(&st, "cannot set the executable")));
            }
        }
        let st = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(st) != 0 {
            return Err(init_error(status_message(
                &st,
                "Py_InitializeFromConfig failed",
            )));
        }
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

#[allow(unsafe_code)]
fn status_message(st: &ffi::PyStatus, fallback: &str) -> String {
    if st.err_msg.is_null() {
        return fallback.to_string();
    }
    // SAFETY: a non-NULL err_msg of a PyStatus is a static NUL-terminated C string.
    let msg = unsafe { CStr::from_ptr(st.err_msg) };
    format!("{fallback}: {}", msg.to_string_lossy())
}

/// `sys.argv`, `sys.path` (the current directory, then `pythonpath` in order in front) and,
/// on a re-init, `os.environ`.
fn prepare_sys(
    py: Python<'_>,
    server: PluginView<'_>,
    python: &PythonSettings,
    running: bool,
) -> PyResult<()> {
    let sys = py.import("sys")?;
    sys.setattr("argv", PyList::new(py, ["ruwsgi"])?)?;
    if running && !server.processes.env.is_empty() {
        let environ = py.import("os")?.getattr("environ")?;
        for (k, v) in &server.processes.env {
            environ.set_item(k, v)?;
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        add_sys_path_front(py, &cwd.to_string_lossy())?;
    }
    for p in python.pythonpath.iter().rev() {
        let path = sys.getattr("path")?.cast_into::<PyList>()?;
        path.insert(0, p.to_string_lossy().as_ref())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_prefers_the_venv_then_the_build_interpreter() {
        assert_eq!(
            executable_for(Some(Path::new("/srv/venv"))),
            Some(PathBuf::from("/srv/venv/bin/python"))
        );
        let built = executable_for(None).expect("build.rs recorded the interpreter");
        assert!(built.is_absolute(), "{}", built.display());
        assert!(
            !built.to_string_lossy().contains("shims"),
            "{}",
            built.display()
        );
    }
}
