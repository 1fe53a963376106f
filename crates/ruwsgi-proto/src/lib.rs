//! Wire formats of ruwsgi, with no I/O and no runtime.
//!
//! Everything a peer can send is parsed here: uwsgi packets and their vars blocks, and HTTP/1.1
//! request heads and bodies. Parsers work in two phases (check, then build) over byte slices,
//! answer "need more bytes" with a cheap variant, and check every limit before allocating.
//!
//! # Layout
//! - [`vars`]: [`Vars`], the flat CGI variable list both protocols produce.
//! - [`uwsgi`]: the uwsgi binary protocol: packet header, vars blocks, RPC arrays.
//! - [`http`]: strict HTTP/1.1 request heads, targets, chunked bodies, response checks.
//! - [`rpc`]: RPC calls and replies (modifier1 173).
//! - [`cache`]: cache commands and replies (modifier1 111).
//! - [`channel`]: the packets children and the master exchange over their command channel.
//!
//! Both parsers are fuzzed by the `fuzz/` package at the repository root.
#![warn(missing_docs)]

pub mod cache;
pub mod channel;
pub mod http;
pub mod rpc;
pub mod uwsgi;
pub mod vars;

pub use vars::Vars;
