//! RPC: functions registered by name, called in the same process or from another node over
//! the uwsgi protocol (modifier1 173).
//!
//! One [`Rpc`] per instance, created by the master before any app code runs and inherited
//! by every child through fork. It holds:
//! - the [`Registry`], this process's table of named functions. Functions registered in the
//!   master (apps imported before fork, the default) are inherited by every worker and
//!   mule; functions registered in a worker (with `lazy-apps`) exist in that worker only,
//!   and a call that reaches another worker does not find them. Mules and spoolers call but
//!   do not register. A function is anything implementing [`RpcFunction`]: a closure for
//!   Rust, a wrapped callable for the language plugins;
//! - the [`Client`], which calls functions on other nodes with a bounded time per call and
//!   reuses connections to them ([`client`] explains how that stays safe);
//! - the server side, [`server::answer`], which the worker uses for 173 packets.
//!
//! The table of a process is private to it: the functions are code and objects of that
//! process, and every caller (a local call, a packet landing in that worker) looks in the
//! table of the process it runs in, so a shared-memory copy of the names would add nothing
//! a caller can use.

pub mod client;
mod registry;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

pub use client::{CallError, Client};
pub use registry::{RegisterError, Registry};
pub use ruwsgi_proto::rpc::{MAX_ARGS, MAX_NAME};

/// Default size of the function table (`rpc-max`).
pub const DEFAULT_MAX: usize = 64;

/// A function callable by name.
///
/// `args` are the call's arguments as bytes. Return `Ok(Some(result))`, or `Ok(None)` (or an
/// empty result) for "no result"; `Err` says why the function failed, for the log, and the
/// caller gets no result.
pub trait RpcFunction: Send + Sync {
    /// Run the function.
    fn call(&self, args: &[&[u8]]) -> Result<Option<Vec<u8>>, String>;

    /// The function as `Any`, so that the plugin that registered it can recognise its own
    /// functions and call them without going through bytes (a Python caller calling a Python
    /// function passes its objects as they are).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

impl<F> RpcFunction for F
where
    F: Fn(&[&[u8]]) -> Result<Option<Vec<u8>>, String> + Send + Sync,
{
    fn call(&self, args: &[&[u8]]) -> Result<Option<Vec<u8>>, String> {
        self(args)
    }
}

/// The outcome of a local call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The function's (non-empty) result.
    Result(Vec<u8>),
    /// The function ran and returned nothing (or an empty result).
    NoResult,
    /// No function has this name here.
    NotFound,
    /// The function failed; why.
    Failed(String),
}

impl Reply {
    /// The result, if there is one.
    pub fn into_result(self) -> Option<Vec<u8>> {
        match self {
            Reply::Result(r) => Some(r),
            _ => None,
        }
    }
}

/// The RPC subsystem of one instance: the function table and the client.
pub struct Rpc {
    registry: Registry,
    client: Client,
}

impl Rpc {
    /// A table of `max` functions (`rpc-max`) and a client whose calls take at most
    /// `timeout` (`socket-timeout`).
    pub fn new(max: usize, timeout: Duration) -> Rpc {
        Rpc {
            registry: Registry::new(max),
            client: Client::new(timeout),
        }
    }

    /// This process's function table.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The client for other nodes.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Register `function` as `name` in this process.
    pub fn register(
        &self,
        name: &[u8],
        argc: u8,
        function: Arc<dyn RpcFunction>,
    ) -> Result<(), RegisterError> {
        self.registry.register(name, argc, function)
    }

    /// Call `name` here; failures are logged and give no result.
    pub fn call_local(&self, name: &[u8], args: &[&[u8]]) -> Option<Vec<u8>> {
        match self.registry.call(name, args) {
            Reply::Failed(why) => {
                ruwsgi_sys::log_line(&format!(
                    "ruwsgi: RPC function '{}' failed: {why}",
                    String::from_utf8_lossy(name)
                ));
                None
            }
            other => other.into_result(),
        }
    }

    /// Call `name` on `node`; failures are logged and give no result.
    pub fn call_remote(&self, node: &str, name: &[u8], args: &[&[u8]]) -> Option<Vec<u8>> {
        match self.client.call(node, name, args) {
            Ok(r) => r,
            Err(e) => {
                ruwsgi_sys::log_line(&format!("ruwsgi: {e}"));
                None
            }
        }
    }
}

impl Default for Rpc {
    fn default() -> Self {
        Rpc::new(DEFAULT_MAX, Duration::from_secs(4))
    }
}

impl std::fmt::Debug for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rpc")
            .field("functions", &self.registry.list().len())
            .field("max", &self.registry.capacity())
            .field("timeout", &self.client.timeout())
            .finish()
    }
}
