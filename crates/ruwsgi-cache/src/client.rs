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
//! Connections are kept per node and reused, as the RPC client does, made safe the same
//! ways: a kept connection that fails before the first reply byte is retried once on a
//! fresh connection (the node never ran the request); a connection idle for more than
//! [`CHECK_AFTER`] is checked with a non-blocking peek first; connections inherited through
//! fork are dropped unused. The requests carry `keep=1` (see [`ruwsgi_proto::cache`]), so
//! a ruwsgi node answers failures too and keeps the connection. A uWSGI node (2.0.30,
//! measured) ignores `keep`, answers a failure by closing the connection without a word,
//! and closes the connection after every reply; the client notices the second behaviour
//! the first time a kept connection turns out closed within 2 s of a reply while a fresh
//! one gets an answer, and from then on talks to that node on fresh connections only. (A
//! kept connection a ruwsgi node closes on purpose, for a value larger than its largest
//! item, is refused on the fresh connection too, so it does not count.)
//!
//! Math operations (`cache_inc` & co.) cannot be done remotely: like uWSGI's client,
//! [`CacheClient::math`] sends a plain `update` whose value is the operand as an 8-byte
//! native-endian integer, so a remote `cache_inc(key, 5)` stores 5.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::socket::{self, MsgFlags, SockFlag, SockType, UnixAddr};
use ruwsgi_proto::cache::{self, CacheProtoError, Command, MagicCall};
use ruwsgi_proto::uwsgi::HEADER_LEN;

use crate::Item;

/// Largest value accepted in a reply; a node announcing more is misbehaving.
pub const MAX_VALUE: u64 = 1 << 30;
/// Connections kept per node.
const IDLE_PER_NODE: usize = 16;
/// A kept connection found closed this soon after its last reply means the node closes
/// every connection after replying.
const CLOSES_AFTER_REPLY: Duration = Duration::from_secs(2);
/// A connection idle longer than this is checked before it is used again.
pub const CHECK_AFTER: Duration = Duration::from_secs(1);
/// Size of each read.
const READ_CHUNK: usize = 16 * 1024;

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
    /// The node address is not `host:port` or a usable socket path.
    #[error("invalid cache node address '{0}'")]
    BadNode(String),
    /// Connecting failed.
    #[error("cannot connect to cache node {node}: {err}")]
    Connect {
        /// The node.
        node: String,
        /// The error.
        err: io::Error,
    },
    /// Sending or receiving failed.
    #[error("cache exchange with {node} failed: {err}")]
    Io {
        /// The node.
        node: String,
        /// The error.
        err: io::Error,
    },
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
    /// The deadline passed.
    #[error("cache operation on {0} timed out")]
    Timeout(String),
}

/// A connection to a node.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s
                .set_read_timeout(Some(t))
                .and_then(|()| s.set_write_timeout(Some(t))),
            Conn::Unix(s) => s
                .set_read_timeout(Some(t))
                .and_then(|()| s.set_write_timeout(Some(t))),
        }
    }

    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(Some(t)),
            Conn::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    /// Still usable: the node neither closed it nor sent anything unasked.
    fn is_idle(&self) -> bool {
        let fd = match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
        };
        let mut byte = [0u8; 1];
        matches!(
            socket::recv(
                fd.as_raw_fd(),
                &mut byte,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT
            ),
            Err(nix::errno::Errno::EAGAIN)
        )
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection with the read timeout it currently has.
struct Live {
    conn: Conn,
    read_timeout: Duration,
}

impl Live {
    /// Read into `buf`, never past `deadline`; the socket's timeout is lowered only when the
    /// time left is shorter than the one it has.
    fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if left + Duration::from_millis(5) < self.read_timeout {
            self.conn.set_read_timeout(left)?;
            self.read_timeout = left;
        }
        loop {
            match self.conn.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::ErrorKind::TimedOut.into())
                }
                r => return r,
            }
        }
    }

    /// Append to `buf` until it holds at least `need` bytes.
    fn fill(&mut self, buf: &mut Vec<u8>, need: usize, deadline: Instant) -> io::Result<()> {
        while buf.len() < need {
            let start = buf.len();
            let want = (need - start).max(READ_CHUNK);
            buf.resize(start + want, 0);
            match self.read_by(&mut buf[start..], deadline) {
                Ok(0) => {
                    buf.truncate(start);
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(n) => buf.truncate(start + n),
                Err(e) => {
                    buf.truncate(start);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

struct Kept {
    conn: Live,
    since: Instant,
}

#[derive(Default)]
struct Node {
    idle: Vec<Kept>,
    /// The node closes connections after each reply: do not keep them.
    no_reuse: bool,
}

struct Pool {
    /// The fork generation the connections belong to.
    generation: u64,
    nodes: HashMap<String, Node>,
}

/// How a reply read failed: before any byte (the node may never have seen the request), or
/// later.
enum ReadFail {
    Early(io::Error),
    Late(ClientError),
}

/// What came back: the node's answer (`None`: it refused, closing the connection or with a
/// `status` that is not `ok`), and whether the connection can be kept.
struct Outcome {
    reply: Option<(cache::MagicReply, Vec<u8>)>,
    reusable: bool,
}

/// The client side of remote caches: one per process, shared by its threads.
pub struct CacheClient {
    timeout: Duration,
    pool: Mutex<Pool>,
}

impl CacheClient {
    /// A client whose operations each take at most `timeout` (`socket-timeout`).
    pub fn new(timeout: Duration) -> CacheClient {
        CacheClient {
            timeout: timeout.max(Duration::from_millis(1)),
            pool: Mutex::new(Pool {
                generation: ruwsgi_sys::fork::generation(),
                nodes: HashMap::new(),
            }),
        }
    }

    /// The per-operation time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
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

    /// One exchange: `Ok(None)` when the node refused.
    fn run(
        &self,
        node: &str,
        c: MagicCall<'_>,
    ) -> Result<Option<(cache::MagicReply, Vec<u8>)>, ClientError> {
        let mut request = Vec::with_capacity(64 + c.key.len() + c.cache.len() + c.value.len());
        cache::encode_magic_request(&c, &mut request)?;
        let want_value = c.cmd == Command::Get;
        let now = Instant::now();
        let deadline = now + self.timeout;
        let mut kept = self.take(node, now);
        // When a kept connection was found closed: when it had been kept since.
        let mut suspect = None;
        loop {
            let reused = kept.take();
            let since = reused.as_ref().map(|k| k.since);
            let mut conn = match reused {
                Some(k) => k.conn,
                None => self.connect(node, deadline)?,
            };
            if let Err(err) = conn.conn.write_all(&request) {
                match since {
                    // The node closed a fresh connection while the request was going out:
                    // it refused it (a value larger than it takes).
                    None if is_closed(&err) => return Ok(None),
                    None => return Err(io_error(node, err)),
                    Some(since) => {
                        suspect = Some(since);
                        continue;
                    }
                }
            }
            match read_reply(&mut conn, node, deadline, want_value) {
                Ok(out) => {
                    if let Some(since) = suspect {
                        // The node answers on a fresh connection what it did not on the
                        // kept one: it had closed that one by itself.
                        self.closed_by_node(node, since);
                    }
                    if out.reusable {
                        self.give_back(node, conn);
                    }
                    return Ok(out.reply);
                }
                Err(ReadFail::Early(err)) if is_closed(&err) => match since {
                    Some(since) => {
                        suspect = Some(since);
                        continue;
                    }
                    // A fresh connection closed without a word: the node's "no" (after a
                    // kept one closed the same way, that was a "no" too, not a habit).
                    None => return Ok(None),
                },
                Err(ReadFail::Early(err)) => return Err(io_error(node, err)),
                Err(ReadFail::Late(e)) => return Err(e),
            }
        }
    }

    /// A kept connection turned out closed by the node: soon after its last reply means the
    /// node closes every connection after replying, so stop keeping them.
    fn closed_by_node(&self, node: &str, since: Instant) {
        if since.elapsed() >= CLOSES_AFTER_REPLY {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = pool.nodes.get_mut(node) {
            entry.no_reuse = true;
            entry.idle.clear();
        }
    }

    /// A kept connection to `node`, if any (checked first if it was idle a while).
    fn take(&self, node: &str, now: Instant) -> Option<Kept> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let generation = ruwsgi_sys::fork::generation();
        if pool.generation != generation {
            // Inherited through fork: the parent may still use these connections.
            pool.generation = generation;
            let inherited = std::mem::take(&mut pool.nodes);
            drop(pool);
            drop(inherited);
            return None;
        }
        let entry = pool.nodes.get_mut(node)?;
        while let Some(k) = entry.idle.pop() {
            let idle = now.saturating_duration_since(k.since);
            if idle < CHECK_AFTER || k.conn.conn.is_idle() {
                return Some(k);
            }
        }
        None
    }

    fn give_back(&self, node: &str, conn: Live) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.generation != ruwsgi_sys::fork::generation() {
            return;
        }
        let entry = match pool.nodes.get_mut(node) {
            Some(e) => e,
            None => pool.nodes.entry(node.to_string()).or_default(),
        };
        if entry.no_reuse || entry.idle.len() >= IDLE_PER_NODE {
            return;
        }
        entry.idle.push(Kept {
            conn,
            since: Instant::now(),
        });
    }

    fn connect(&self, node: &str, deadline: Instant) -> Result<Live, ClientError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Timeout(node.to_string()));
        }
        let conn = match parse_node(node)? {
            Addr::Tcp(host) => Conn::Tcp(connect_tcp(node, &host, left)?),
            Addr::Unix(addr) => Conn::Unix(connect_unix(node, &addr, left)?),
        };
        conn.set_timeouts(self.timeout)
            .map_err(|err| io_error(node, err))?;
        Ok(Live {
            conn,
            read_timeout: self.timeout,
        })
    }
}

impl std::fmt::Debug for CacheClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheClient")
            .field("timeout", &self.timeout)
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

fn io_error(node: &str, err: io::Error) -> ClientError {
    if matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        ClientError::Timeout(node.to_string())
    } else {
        ClientError::Io {
            node: node.to_string(),
            err,
        }
    }
}

/// The node closed the connection (rather than being slow).
fn is_closed(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Read one magic reply.
fn read_reply(
    conn: &mut Live,
    node: &str,
    deadline: Instant,
    want_value: bool,
) -> Result<Outcome, ReadFail> {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    if let Err(e) = conn.fill(&mut buf, HEADER_LEN, deadline) {
        return Err(if buf.is_empty() {
            ReadFail::Early(e)
        } else {
            ReadFail::Late(io_error(node, e))
        });
    }
    let late = |e: io::Error| ReadFail::Late(io_error(node, e));
    let bad = |err| {
        ReadFail::Late(ClientError::Reply {
            node: node.to_string(),
            err,
        })
    };
    let dict_len = cache::parse_reply_head([buf[0], buf[1], buf[2], buf[3]]).map_err(bad)?;
    let dict_end = HEADER_LEN + dict_len;
    conn.fill(&mut buf, dict_end, deadline).map_err(late)?;
    let reply = cache::parse_magic_reply(&buf[HEADER_LEN..dict_end]).map_err(bad)?;
    if !reply.ok {
        return Ok(Outcome {
            reply: None,
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
    conn.fill(&mut buf, end, deadline).map_err(late)?;
    // More than the reply: the connection is out of step; use the reply, drop it.
    let reusable = buf.len() == end;
    let value = buf[dict_end..end].to_vec();
    Ok(Outcome {
        reply: Some((reply, value)),
        reusable,
    })
}

enum Addr {
    Tcp(String),
    Unix(UnixAddr),
}

/// `host:port` (TCP) or a unix socket path / `@abstract` name.
fn parse_node(node: &str) -> Result<Addr, ClientError> {
    let bad = || ClientError::BadNode(node.to_string());
    if node.is_empty() {
        return Err(bad());
    }
    if let Some(name) = node.strip_prefix('@') {
        return UnixAddr::new_abstract(name.as_bytes())
            .map(Addr::Unix)
            .map_err(|_| bad());
    }
    if node.starts_with('/') || node.starts_with('.') || !node.contains(':') {
        return UnixAddr::new(node).map(Addr::Unix).map_err(|_| bad());
    }
    let (host, port) = node.rsplit_once(':').ok_or_else(bad)?;
    if port.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    Ok(Addr::Tcp(format!("{host}:{port}")))
}

fn connect_tcp(node: &str, hostport: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let err = |err| ClientError::Connect {
        node: node.to_string(),
        err,
    };
    let addrs: Vec<SocketAddr> = hostport.to_socket_addrs().map_err(err)?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                s.set_nodelay(true).map_err(err)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(err(last))
}

/// Connect to a unix socket, waiting at most `timeout` when its backlog is full.
fn connect_unix(node: &str, addr: &UnixAddr, timeout: Duration) -> Result<UnixStream, ClientError> {
    let err = |e: nix::errno::Errno| ClientError::Connect {
        node: node.to_string(),
        err: io::Error::from(e),
    };
    let fd: OwnedFd = socket::socket(
        socket::AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(err)?;
    let tv = nix::sys::time::TimeVal::new(
        timeout.as_secs() as i64,
        timeout.subsec_micros() as nix::libc::suseconds_t,
    );
    socket::setsockopt(&fd, socket::sockopt::SendTimeout, &tv).map_err(err)?;
    loop {
        match socket::connect(fd.as_raw_fd(), addr) {
            Ok(()) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return Err(ClientError::Timeout(node.to_string())),
            Err(e) => return Err(err(e)),
        }
    }
    Ok(UnixStream::from(fd))
}

#[cfg(test)]
mod tests;
