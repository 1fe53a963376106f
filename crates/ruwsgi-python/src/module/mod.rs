//! The built-in `uwsgi` module that apps import.
//!
//! Registered with `append_to_inittab!` before the interpreter starts, so `import uwsgi` works
//! in the master, in workers and in Rust tests alike. Each area of the API lives in its own
//! file and adds itself through an `init_pymodule(m)` function (RPC, user locks, shared
//! areas, caches, ...); areas to come (signals, async) plug in the same way.
//! Values that depend on the configuration are set by [`configure`] once `init` knows the
//! settings.

mod alarm;
mod async_api;
mod cache;
pub(crate) mod harakiri;
mod info;
mod locks;
pub(crate) mod mule;
mod process;
mod request;
mod rpc;
mod sharedarea;
mod signals;
pub(crate) mod spooler;

use pyo3::prelude::*;

pub(crate) use info::configure;
pub(crate) use sharedarea::add_if_configured as add_sharedarea_group;
pub(crate) use spooler::add_if_configured as add_spooler_group;

/// The `uwsgi` module definition.
#[pymodule]
#[pyo3(name = "uwsgi")]
pub fn uwsgi(m: &Bound<'_, PyModule>) -> PyResult<()> {
    alarm::init_pymodule(m)?;
    async_api::init_pymodule(m)?;
    cache::init_pymodule(m)?;
    harakiri::init_pymodule(m)?;
    info::init_pymodule(m)?;
    locks::init_pymodule(m)?;
    process::init_pymodule(m)?;
    request::init_pymodule(m)?;
    rpc::init_pymodule(m)?;
    signals::init_pymodule(m)?;
    mule::init_pymodule(m)?;
    spooler::init_pymodule(m)?;
    Ok(())
}
