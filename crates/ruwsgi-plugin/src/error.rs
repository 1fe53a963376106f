//! Errors that cross the plugin boundary, each with the disposition it implies.

use std::io;

/// Reading the request body failed. Every variant means the body is not complete: the
/// plugin must surface it to the app as an error (an `IOError` in Python), never as a short
/// body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client closed the connection before the framing said the body ended.
    #[error("client closed the connection before the end of the request body")]
    Truncated,
    /// The client sent a malformed chunked body.
    #[error("malformed chunked request body: {0}")]
    Framing(&'static str),
    /// No body byte arrived within `socket-timeout`.
    #[error("timed out reading the request body")]
    Timeout,
    /// Any other socket error.
    #[error("error reading the request body: {0}")]
    Io(#[from] io::Error),
}

/// The response the app produced cannot be sent as it is, or the client went away.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// The status line is not `NNN reason` with a valid code and clean text.
    #[error("invalid status line {0:?}")]
    BadStatus(String),
    /// A header name is not a token, or a value holds CR, LF or NUL.
    #[error("invalid response header {0:?}")]
    BadHeader(String),
    /// The app sent a hop-by-hop or framing header that conflicts with the response framing.
    #[error("response framing conflict: {0}")]
    Framing(&'static str),
    /// The head was already sent; the response can no longer be replaced.
    #[error("response headers already sent")]
    HeadersSent,
    /// More body bytes than the `Content-Length` the app declared.
    #[error("app wrote more bytes than its Content-Length")]
    TooLong,
    /// Writing to the client failed (it went away, or timed out).
    #[error("error writing the response: {0}")]
    Io(#[from] io::Error),
}

impl ResponseError {
    /// True when the fault is the app's (log it, answer 500 if possible); false when the
    /// client connection failed (log briefly, close).
    pub fn is_app_error(&self) -> bool {
        !matches!(self, ResponseError::Io(_))
    }
}

/// A plugin could not start or load its apps.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The interpreter could not be initialised.
    #[error("cannot initialise the {plugin} runtime: {message}")]
    Init {
        /// Plugin name.
        plugin: &'static str,
        /// What went wrong.
        message: String,
    },
    /// An app failed to load (import error, missing callable, ...).
    #[error("cannot load app {app}: {message}")]
    AppLoad {
        /// The app as configured (file, module, mountpoint).
        app: String,
        /// What went wrong, with the traceback already logged.
        message: String,
    },
    /// No app is configured or loaded and `need-app` is on.
    #[error("no app loaded")]
    NoApp,
    /// The plugin does not implement this capability.
    #[error("the {plugin} plugin does not support {feature}")]
    Unsupported {
        /// Plugin name.
        plugin: &'static str,
        /// What was asked (`mule scripts`).
        feature: &'static str,
    },
}
