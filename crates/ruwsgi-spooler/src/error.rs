//! [`SpoolError`]: why a task could not be spooled or read.

use std::io;
use std::path::PathBuf;

/// A task could not be spooled, or a spool file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// No spooler directory is configured.
    #[error("no spooler configured")]
    NoSpooler,
    /// The `spooler` argument names no configured spooler directory.
    #[error("unknown spooler directory {0:?}")]
    UnknownSpooler(String),
    /// The vars do not fit the 64 KiB of a uwsgi packet.
    #[error("args buffer is limited to 64k, use the 'body' for bigger values ({0} bytes)")]
    TooLarge(usize),
    /// An empty key, or a key or value longer than 65535 bytes.
    #[error("invalid task variables: {0}")]
    BadVars(String),
    /// `priority` is not a plain directory name.
    #[error("invalid priority {0:?}: a directory name is expected")]
    BadPriority(String),
    /// `at` is not a unix timestamp.
    #[error("invalid 'at' {0:?}: a unix timestamp is expected")]
    BadAt(String),
    /// The file is not a spool file (bad header, truncated vars block).
    #[error("not a spool file: {0}")]
    Format(String),
    /// Writing or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

impl SpoolError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> SpoolError {
        SpoolError::Io {
            path: path.into(),
            source,
        }
    }
}
