//! The ruwsgi worker: an event loop per core serving HTTP/1.1 and uwsgi-protocol requests.
//!
//! A worker is forked by the master with the listening sockets already open. Each core runs
//! [`core::CoreLoop`]: it accepts on the shared sockets, reads and parses request heads
//! without involving the language runtime, and hands each complete request to the plugin's
//! `Core` together with a [`io::ConnIo`] for the body and the response.
//!
//! # Layout
//! - [`worker`]: [`run`], the cores of one process, its stop state and signals.
//! - [`core`]: one core's event loop, keep-alive and timeouts.
//! - [`accept`]: pausing a listener when `accept` runs out of fds or memory.
//! - [`dispatch`]: which handler a uwsgi packet goes to, by its `modifier1`.
//! - [`request`]: HTTP head or uwsgi packet → CGI variables, with peer trust rules.
//! - [`body`]: request bodies (Content-Length, chunked) pulled by the app.
//! - [`response`]: status and header validation, framing, `sendfile`.
//! - [`static_files`]: `static-map`/`static-check` files served before the plugin.
//! - [`io`]: the plugin-facing `RequestIo` implementation.
//! - [`reqlog`]: batched request log lines.
//! - [`buffer`], [`stream`]: read buffers, sockets.
#![warn(missing_docs)]

pub mod accept;
pub mod body;
pub mod buffer;
pub mod core;
pub mod decimal;
pub mod dispatch;
pub mod io;
pub mod reqlog;
pub mod request;
pub mod response;
pub mod static_files;
pub mod stream;
pub mod worker;

pub use stream::{ListenSocket, Peer, Stream};
pub use worker::{current_core, run, WorkerArgs, WorkerExit};
