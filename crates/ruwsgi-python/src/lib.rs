//! The Python language plugin of ruwsgi: embedded CPython, WSGI (PEP 3333) and the built-in
//! `uwsgi` module.
//!
//! [`PythonPlugin`] implements [`ruwsgi_plugin::LanguagePlugin`]: it starts the interpreter
//! from an explicit `PyConfig`, loads the apps, wraps forks in CPython's at-fork hooks and
//! runs cores attached to the interpreter for their thread's whole life. This is the only
//! crate that depends on PyO3; hand-written unsafe is allowed item by item, each block with
//! its `SAFETY:` reasoning.
//!
//! # Layout
//! - `plugin`: [`PythonPlugin`], the `LanguagePlugin` implementation.
//! - `interp`: `PyConfig` initialisation, venv, `env`, `chdir`, `sys.path`.
//! - `apps`: loading `wsgi-file` / `module` / `mount` apps, choosing one per request,
//!   publishing them and counting their requests in the worker's scoreboard slot.
//! - `wsgi`: the core: the request call, body iteration, `close()`, errors → 500.
//! - `async_core`: async mode's cores (`async N`): the greenlet and generator engines.
//! - `environ`: the per-core environ template and the per-request build.
//! - `context`: the request in flight on this thread, as the Python objects reach it.
//! - `response`, `input`, `errors_stream`, `file_wrapper`: `start_response` and `write`,
//!   `wsgi.input`, `wsgi.errors`, `wsgi.file_wrapper`.
//! - `module`: the `uwsgi` module, one file per API area.
//! - `runtime`: the process's host and logging (tracebacks included).
#![warn(missing_docs)]

mod apps;
mod async_core;
mod autoreload;
mod context;
mod environ;
mod errors_stream;
mod file_wrapper;
mod input;
mod interp;
mod module;
mod plugin;
mod response;
mod runtime;
mod wsgi;

pub use plugin::PythonPlugin;
