//! ruwsgi configuration: one definition per option, many sources, one typed result.
//!
//! # Layout
//! - [`settings`]: [`Settings`], the validated typed view every other crate reads.
#![warn(missing_docs)]

pub mod settings;

pub use settings::{OptValue, Protocol, Settings, SocketSpec};

/// The version ruwsgi reports (`uwsgi.version`, `--version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The uWSGI API level ruwsgi implements, as apps see it in `uwsgi.version` and
/// `uwsgi.version_info` (2.1 semantics: SIGTERM stops, `need-app` on).
pub const UWSGI_API_VERSION: &str = "2.1.0-ruwsgi";
