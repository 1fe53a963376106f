//! Operations on another node's caches, over the magic interface (modifier1 111,
//! modifier2 17).
//!
//! Cache identifiers ([`parse_identifier`]) name where an operation goes: `None` or `""` is
//! this instance's default cache, `"name"` a cache of this instance, `"name@node"` the cache
//! `name` of another node and `"@node"` that node's default cache. A node is `host:port`
//! (an empty host is 127.0.0.1), a unix socket path, or `@name` for an abstract socket
//! (`"cache@@name"`).
//!
//! Every operation is one exchange bounded by one deadline, `socket-timeout` after it
//! started: a dead, slow or misbehaving node costs the caller at most that long, and the
//! operation fails (`None` in Python).
//!
//! Connections are kept per node and reused, made safe as [`ruwsgi_node`] explains (the
//! RPC client uses the same machinery); a value a ruwsgi node refuses by closing the
//! connection (larger than its largest item) is refused on the fresh connection too, so it
//! is not taken for a node that closes after each reply. The requests carry `keep=1` (see [`ruwsgi_proto::cache`]), so
//! a ruwsgi node answers failures too and keeps the connection. A uWSGI node (2.0.30,
//! measured) ignores `keep`, answers a failure by closing the connection without a word,
//! and closes the connection after every reply; the client notices the second behaviour
//! the first time a kept connection turns out closed right after a reply, and from then on
//! talks to that node on fresh connections only.
//!
//! Math operations (`cache_inc` & co.) cannot be done remotely: like uWSGI's client,
//! [`CacheClient::math`] sends a plain `update` whose value is the operand as an 8-byte
//! native-endian integer, so a remote `cache_inc(key, 5)` stores 5.

use std::io;
use std::time::{Duration, Instant};

use ruwsgi_node::{Live, NodeError, Nodes, ReadFail, Reply};
use ruwsgi_proto::cache::{self, CacheProtoError, Command, MagicCall};
use ruwsgi_proto::uwsgi::HEADER_LEN;

use crate::Item;

/// Largest value accepted in a reply; a node announcing more is misbehaving.
pub const MAX_VALUE: u64 = 1 << 30;

/// Where a cache identifier points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A cache of this instance: `None` is the default cache.
    Local(Option<&'a str>),
    /// A cache of another node: `cache` is empty for that node's default cache.
    Remote {
        /// The cache name on the node.
        cache: &'a str,
        /// The node's address.
        node: &'a str,
    },
}

/// Split a cache identifier: `None`/`""` → the local default cache, `"name"` → a local
/// cache, `"name@node"` / `"@node"` → a cache of another node (split at the first `@`, so
/// the node may itself start with `@`, an abstract unix socket).
pub fn parse_identifier(id: Option<&str>) -> Target<'_> {
    match id {
        None | Some("") => Target::Local(None),
        Some(id) => match id.split_once('@') {
            Some((cache, node)) => Target::Remote { cache, node },
            None => Target::Local(Some(id)),
        },
    }
}

/// Why a remote operation could not be done (the node's own "no" is not an error: it is
/// `Ok(None)` / `Ok(false)`).
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The request cannot be encoded (empty key or value, sizes).
    #[error("{0}")]
    Encode(#[from] CacheProtoError),
    /// The node could not be reached, or the exchange failed or timed out.
    #[error("cache: {0}")]
    Node(#[from] NodeError),
    /// The node answered something that is not a cache reply.
    #[error("bad cache reply from {node}: {err}")]
    Reply {
        /// The node.
        node: String,
        /// What was wrong.
        err: CacheProtoError,
    },
    /// The node announced a value larger than [`MAX_VALUE`].
    #[error("cache reply from {node} announces {len} bytes (max {MAX_VALUE})")]
    TooLarge {
        /// The node.
        node: String,
        /// The announced length.
        len: u64,
    },
}

/// The client side of remote caches: one per process, shared by its threads.
pub struct CacheClient {
    nodes: Nodes,
}

impl CacheClient {
    /// A client whose operations each take at most `timeout` (`socket-timeout`).
    pub fn new(timeout: Duration) -> CacheClient {
        CacheClient {
            nodes: Nodes::new(timeout),
        }
    }

    /// The per-operation time limit.
    pub fn timeout(&self) -> Duration {
        self.nodes.timeout()
    }

    /// The item under `key` in `cache` (empty: the node's default cache) on `node`, or
    /// `None` when the node has none (or refused: unknown cache, empty value).
    pub fn get(&self, node: &str, cache: &str, key: &[u8]) -> Result<Option<Item>, ClientError> {
        let reply = self.run(node, call(Command::Get, cache, key, b"", 0))?;
        Ok(reply.and_then(|(r, value)| {
            (r.size > 0).then_some(Item {
                value,
                expires_at: r.expires_at,
            })
        }))
    }

    /// Whether `key` is there.
    pub fn exists(&self, node: &str, cache: &str, key: &[u8]) -> Result<bool, ClientError> {
        self.ok(node, call(Command::Exists, cache, key, b"", 0))
    }

    /// Store `value` unless `key` exists; true when stored.
    pub fn set(
        &self,
        node: &str,
        cache: &str,
        key: &[u8],
        value: &[u8],
        expires: u64,
    ) -> Result<bool, ClientError> {
        self.ok(node, call(Command::Set, cache, key, value, expires))
    }

    /// Store `value`, replacing what is there; true when stored.
    pub fn update(
        &self,
        node: &str,
        cache: &str,
        key: &[u8],
        value: &[u8],
        expires: u64,
    ) -> Result<bool, ClientError> {
        self.ok(node, call(Command::Update, cache, key, value, expires))
    }

    /// A remote math operation (`cache_inc`, `cache_dec`, `cache_mul`, `cache_div`): the
    /// node cannot compute it, so, as uWSGI's client does, this is an `update` of `operand`
    /// as an 8-byte native-endian integer (a remote `cache_inc(key, 5)` stores 5).
    pub fn math(
        &self,
        node: &str,
        cache: &str,
        key: &[u8],
        operand: i64,
        expires: u64,
    ) -> Result<bool, ClientError> {
        self.update(node, cache, key, &operand.to_ne_bytes(), expires)
    }

    /// Remove `key`; true when it was there.
    pub fn del(&self, node: &str, cache: &str, key: &[u8]) -> Result<bool, ClientError> {
        self.ok(node, call(Command::Del, cache, key, b"", 0))
    }

    /// Remove every item; true when the node did.
    pub fn clear(&self, node: &str, cache: &str) -> Result<bool, ClientError> {
        self.ok(node, call(Command::Clear, cache, b"", b"", 0))
    }

    fn ok(&self, node: &str, c: MagicCall<'_>) -> Result<bool, ClientError> {
        Ok(self.run(node, c)?.is_some())
    }

    /// One exchange: `Ok(None)` when the node refused (a uWSGI node refuses by closing a
    /// fresh connection without a word).
    fn run(
        &self,
        node: &str,
        c: MagicCall<'_>,
    ) -> Result<Option<(cache::MagicReply, Vec<u8>)>, ClientError> {
        let mut request = Vec::with_capacity(64 + c.key.len() + c.cache.len() + c.value.len());
        cache::encode_magic_request(&c, &mut request)?;
        let want_value = c.cmd == Command::Get;
        self.nodes.exchange(
            node,
            &request,
            |conn, deadline| read_reply(conn, node, deadline, want_value),
            |_| Ok(None),
        )
    }
}

impl std::fmt::Debug for CacheClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheClient")
            .field("timeout", &self.nodes.timeout())
            .finish()
    }
}

fn call<'a>(
    cmd: Command,
    cache: &'a str,
    key: &'a [u8],
    value: &'a [u8],
    expires: u64,
) -> MagicCall<'a> {
    MagicCall {
        cmd,
        key,
        value,
        expires,
        cache: cache.as_bytes(),
        keep: true,
    }
}

fn late(node: &str, e: io::Error) -> ReadFail<ClientError> {
    ReadFail::Late(NodeError::io(node, e).into())
}

/// Read one magic reply: the node's answer (`None`: a `status` that is not `ok`), and
/// whether the connection can be kept.
#[allow(clippy::type_complexity)]
fn read_reply(
    conn: &mut Live,
    node: &str,
    deadline: Instant,
    want_value: bool,
) -> Result<Reply<Option<(cache::MagicReply, Vec<u8>)>>, ReadFail<ClientError>> {
    let mut buf = Vec::with_capacity(16 * 1024);
    if let Err(e) = conn.fill(&mut buf, HEADER_LEN, deadline) {
        return Err(if buf.is_empty() {
            ReadFail::Early(e)
        } else {
            late(node, e)
        });
    }
    let bad = |err| {
        ReadFail::Late(ClientError::Reply {
            node: node.to_string(),
            err,
        })
    };
    let dict_len = cache::parse_reply_head([buf[0], buf[1], buf[2], buf[3]]).map_err(bad)?;
    let dict_end = HEADER_LEN + dict_len;
    conn.fill(&mut buf, dict_end, deadline)
        .map_err(|e| late(node, e))?;
    let reply = cache::parse_magic_reply(&buf[HEADER_LEN..dict_end]).map_err(bad)?;
    if !reply.ok {
        return Ok(Reply {
            value: None,
            reusable: buf.len() == dict_end,
        });
    }
    let size = if want_value { reply.size } else { 0 };
    if size > MAX_VALUE {
        return Err(ReadFail::Late(ClientError::TooLarge {
            node: node.to_string(),
            len: size,
        }));
    }
    let end = dict_end + size as usize;
    if buf.capacity() < end {
        buf.reserve_exact(end - buf.len());
    }
    conn.fill(&mut buf, end, deadline)
        .map_err(|e| late(node, e))?;
    // More than the reply: the connection is out of step; use the reply, drop it.
    let reusable = buf.len() == end;
    let value = buf[dict_end..end].to_vec();
    Ok(Reply {
        value: Some((reply, value)),
        reusable,
    })
}

#[cfg(test)]
mod tests;
