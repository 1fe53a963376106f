//! [`MasterError`]: why the master could not start (or had to stop), with its exit code.

use std::io;
use std::path::PathBuf;

use ruwsgi_plugin::PluginError;
use ruwsgi_sys::process::PrivilegeError;
use ruwsgi_sys::AddrError;

use crate::types::EXIT_NO_APP;

/// A fatal master error. [`MasterError::exit_code`] is what the binary should exit with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MasterError {
    /// A socket address cannot be parsed or resolved.
    #[error("invalid {option} address {address:?}: {source}")]
    Address {
        /// As configured.
        address: String,
        /// The option.
        option: &'static str,
        /// Why.
        source: AddrError,
    },
    /// Binding failed.
    #[error("cannot bind {option} {address}: {source}")]
    Bind {
        /// As configured.
        address: String,
        /// The option.
        option: &'static str,
        /// Why.
        source: io::Error,
    },
    /// A pidfile could not be written.
    #[error("cannot write pidfile {path}: {source}")]
    Pidfile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `daemonize2` could not detach (log file or fork).
    #[error("daemonize2 ({path}): {source}")]
    Daemonize {
        /// The log file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `uid`/`gid` could not be applied.
    #[error("cannot drop privileges: {0}")]
    Privileges(#[from] PrivilegeError),
    /// The scoreboard could not be mapped.
    #[error("cannot map the scoreboard: {0}")]
    Shm(io::Error),
    /// The plugin failed to initialise.
    #[error("plugin initialisation failed: {0}")]
    PluginInit(PluginError),
    /// No app could be loaded and `need-app` is on (exit code 22).
    #[error("no app loaded and need-app is on: {0}")]
    NoApp(String),
}

impl MasterError {
    /// The process exit code for this error: 22 for [`MasterError::NoApp`] (uWSGI's), 1
    /// otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            MasterError::NoApp(_) => EXIT_NO_APP,
            _ => 1,
        }
    }
}
