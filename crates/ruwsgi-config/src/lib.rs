//! ruwsgi configuration: one definition per option, many sources, one typed result.
//!
//! The binary calls [`load`] with its arguments and environment and gets a [`Command`]:
//! run with validated [`Settings`], or print help, the version or the effective config.
//! Every failure is a [`ConfigError`] naming the option, the value and its [`Source`].
//!
//! # Layout
//! - [`defs`]: the option table ([`OptionDef`]): name, aliases, short flag, kind, default,
//!   category, help, and whether ruwsgi implements it yet.
//! - [`lowargs`]: the raw layer, collecting `(key, value, source)` from `UWSGI_*` variables,
//!   the command line and config files, with substitutions.
//! - [`formats`]: ini, YAML (subset), JSON and TOML readers.
//! - [`subst`]: `%x` magic variables, `$(ENV)`, `@(file)`, `%(placeholder)`.
//! - [`uwsgi_names`]: every uWSGI option name, so one ruwsgi lacks is refused, not kept as a
//!   custom key.
//! - [`hiargs`]: the high layer, validating values into [`Settings`].
//! - [`settings`]: [`Settings`], the validated typed view every other crate reads.
//! - [`signal_spec`]: values of the signal-framework options (timers, crons, farms, alarms).
//! - [`help`]: `--help` (generated from the table), `--version`, `--show-config`.
//! - `load`: the entry point, [`load`] and [`Command`].
//!
//! # Where ruwsgi differs from uWSGI
//! - Options uWSGI has but ruwsgi lacks ([`Status::NotYet`]) are errors from any source:
//!   silently dropping `harakiri` or `reload-on-rss` would remove a protection.
//! - An unknown key in a config file or in `set` is kept for `uwsgi.opt` and reported in
//!   [`Settings::notices`], as in uWSGI, unless its name is close to an option's
//!   ([`defs::near_option`]): that is taken for a typo and refused.
//! - `UWSGI_*` variables that name no option are skipped with a warning in
//!   [`Settings::warnings`]; uWSGI-internal ones (`UWSGI_RELOADS`, ...) silently.
//! - `$()`, `@()` and `%()` in config paths and `set` are expanded when they are read, so
//!   `ini = $(DIR)/x.ini` works; other values are expanded after collection.
//! - `--chmod-socket 660` takes the next word only when it is an octal mode.
#![warn(missing_docs)]

pub mod cache_spec;
pub mod defs;
pub mod error;
pub mod formats;
pub mod help;
pub mod hiargs;
mod load;
pub mod lowargs;
pub mod settings;
pub mod signal_spec;
pub mod subst;
pub mod uwsgi_names;

pub use defs::{OptionDef, Status, OPTIONS};
pub use error::{ConfigError, Source};
pub use load::{load, Command};
pub use settings::{
    ApiSettings, AreaSize, CacheSpec, HarakiriSettings, LogDate, LogSettings, MuleSpec, OptValue,
    PidfileAction, PluginView, ProcessSettings, Protocol, PythonSettings, RecycleSettings,
    RequestSettings, Settings, SignalSettings, SocketSettings, SocketSpec, SpoolerSettings,
    StatsSettings, SuspendEngine,
};
pub use signal_spec::{
    AlarmLogRule, AlarmPlugin, AlarmSpec, CommandCron, CronSpec, FarmSpec, TimerSpec,
};

/// The version ruwsgi reports (`uwsgi.version`, `--version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The uWSGI API level ruwsgi implements, as apps see it in `uwsgi.version` and
/// `uwsgi.version_info` (2.1 semantics: SIGTERM stops, `need-app` on).
pub const UWSGI_API_VERSION: &str = "2.1.0-ruwsgi";
