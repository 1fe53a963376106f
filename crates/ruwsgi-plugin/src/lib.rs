//! The contract between the ruwsgi server and its language plugins.
//!
//! The worker knows nothing about Python: it parses a request into CGI [`Vars`], then hands
//! it to a [`Core`] created by a [`LanguagePlugin`], together with a [`RequestIo`] through
//! which the plugin reads the body and writes the response. The plugin reaches the server
//! (identity, counters, logging, reload) through [`Host`].
//!
//! # Layout
//! - [`plugin`]: [`LanguagePlugin`] and [`Core`], what a language implements.
//! - [`io`]: [`RequestIo`], what the worker offers a request in flight.
//! - [`host`]: [`Host`], the server as a plugin sees it, [`ProcessRole`], the worker
//!   counters it reports ([`WorkerSnapshot`], from `ruwsgi-shm`), and the scoreboard types a
//!   plugin uses to publish and count its apps ([`Scoreboard`], [`AppInfo`], [`Writers`]),
//!   and the uWSGI API subsystems it reaches through the host: RPC ([`Rpc`],
//!   [`RpcFunction`], [`Host::register_rpc`], [`Host::rpc_call`], [`Host::rpc_remote`]) and
//!   the user locks ([`UserLocks`], [`Host::user_locks`]), the shared areas
//!   ([`SharedArea`], [`Host::shared_areas`]) and the caches ([`Caches`],
//!   [`CacheBackend`], [`Host::caches`]), and the spooler ([`Spoolers`], [`Host::spool`],
//!   [`Host::spoolers`]; a plugin runs tasks in [`LanguagePlugin::run_spooler_task`]),
//!   and the signal framework ([`signal::Signals`], [`Host::register_signal`],
//!   [`Host::raise_signal`], [`Host::add_timer`], mule messages through [`Host::signals`]).
//! - [`async_core`]: async mode, [`AsyncCore`] (cores a plugin suspends and the worker's
//!   loop resumes) and [`AsyncIo`] (a connection a core owns for a request).
//! - [`error`]: the typed errors crossing the boundary.
#![warn(missing_docs)]

pub mod async_core;
pub mod error;
pub mod host;
pub mod io;
pub mod plugin;

pub use async_core::{AsyncCore, AsyncIo, AsyncStep, Interest, Park, SuspendFn, Wake};
pub use error::{BodyError, PluginError, ResponseError};
pub use host::{
    parse_identifier, AppInfo, AppSnapshot, AreaError, CacheBackend, CacheClient, CacheError,
    Caches, Host, Item, MathOp, ProcessRole, RegisterError, Rpc, RpcFunction, Scoreboard,
    SharedArea, SpoolError, SpoolerOutcome, Spoolers, Target, Task, UserLockError, UserLocks,
    WorkerSlot, WorkerSnapshot, WorkerStatus, Writers, MAX_APPS,
};
pub use io::{Request, RequestIo};
pub use plugin::{Core, ForkOutcome, LanguagePlugin, Outcome};
/// The cache subsystem's crate (tables, remote client, the 111 server).
pub use ruwsgi_cache as cache;
pub use ruwsgi_proto::Vars;
/// The RPC subsystem's crate (limits, client and server details).
pub use ruwsgi_rpc as rpc;
/// The spooler's crate (spool file format, scanning, the process loop).
pub use ruwsgi_spooler as spooler;

/// The signal framework (signal table, handlers, timers, mule queues), re-exported whole.
pub mod signal {
    pub use ruwsgi_config::CronSpec;
    pub use ruwsgi_signal::mules::{MuleMsgError, MuleTarget, Received};
    pub use ruwsgi_signal::registry::AddError;
    pub use ruwsgi_signal::remote::RemoteError;
    pub use ruwsgi_signal::*;
}
