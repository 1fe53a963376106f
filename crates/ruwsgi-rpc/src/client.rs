//! Calling a function on another node.
//!
//! A node is `host:port` (TCP, `[v6]:port` too; an empty host is 127.0.0.1) or a unix socket
//! path (`@name` for the abstract namespace). Every step of a call (connect, send, each
//! read) is bounded by one deadline, `socket-timeout` after the call started, so a dead,
//! slow or misbehaving node costs the caller at most that long.
//!
//! Connections are kept per node and reused: a call costs one write and one read instead of
//! a connect and a close. Reuse is made safe three ways:
//! - if a kept connection fails before the first byte of the reply arrives, the node never
//!   ran the call (it had closed the connection), so the call is sent again once, on a fresh
//!   connection. A fresh connection is never retried. A node found to close connections
//!   right after replying (uWSGI does) is then called on fresh connections only;
//! - a connection kept idle for a while (more than [`CHECK_AFTER`]) is first checked with a
//!   non-blocking peek, and dropped if the node closed it or sent stray bytes, so a call does
//!   not start on a connection the node timed out long ago;
//! - the pool belongs to one process: a child that inherited its parent's connections
//!   through fork (ruwsgi's or the application's) drops them unused.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::socket::{self, MsgFlags, SockFlag, SockType, UnixAddr};
use ruwsgi_proto::rpc::{self, ReplyHead};
use ruwsgi_proto::uwsgi::HEADER_LEN;

/// Largest result accepted in a large reply; a node announcing more is misbehaving.
pub const MAX_REPLY: u64 = 1 << 30;
/// Connections kept per node.
const IDLE_PER_NODE: usize = 16;
/// A kept connection found closed this soon after its last reply means the node closes
/// every connection after replying.
const CLOSES_AFTER_REPLY: Duration = Duration::from_secs(2);
/// A connection idle longer than this is checked before it is used again.
pub const CHECK_AFTER: Duration = Duration::from_secs(1);
/// Room for the reply's header and, most of the time, all of its result.
const FIRST_READ: usize = 16 * 1024;

/// Why a remote call gave no result.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum CallError {
    /// The call cannot be encoded (name, argument count or size).
    #[error("{0}")]
    Encode(#[from] rpc::RpcError),
    /// The node address is not `host:port` or a usable socket path.
    #[error("invalid RPC node address '{0}'")]
    BadNode(String),
    /// Connecting failed.
    #[error("cannot connect to {node}: {err}")]
    Connect {
        /// The node.
        node: String,
        /// The error.
        err: io::Error,
    },
    /// Sending or receiving failed.
    #[error("RPC exchange with {node} failed: {err}")]
    Io {
        /// The node.
        node: String,
        /// The error.
        err: io::Error,
    },
    /// The node answered something that is not an RPC reply.
    #[error("bad RPC reply from {node}: {err}")]
    Reply {
        /// The node.
        node: String,
        /// What was wrong.
        err: rpc::RpcError,
    },
    /// The node announced a result larger than [`MAX_REPLY`].
    #[error("RPC reply from {node} announces {len} bytes (max {MAX_REPLY})")]
    TooLarge {
        /// The node.
        node: String,
        /// The announced length.
        len: u64,
    },
    /// The deadline passed.
    #[error("RPC call to {0} timed out")]
    Timeout(String),
}

/// A connection to a node.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(Some(t)),
            Conn::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_write_timeout(Some(t)),
            Conn::Unix(s) => s.set_write_timeout(Some(t)),
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
                std::os::fd::AsRawFd::as_raw_fd(&fd),
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
    /// Read into `buf`, never past `deadline`. The socket's timeout is lowered only when
    /// the time left is shorter than the one it has (a system call saved on most reads).
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

    fn read_exact_by(&mut self, mut buf: &mut [u8], deadline: Instant) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_by(buf, deadline)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => buf = &mut buf[n..],
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

/// The client side of RPC: one per process, shared by its threads.
pub struct Client {
    timeout: Duration,
    pool: Mutex<Pool>,
}

/// How a reply read failed: before any byte (the node may never have seen the call), or
/// later.
enum ReadFail {
    Early(io::Error),
    Late(CallError),
}

impl Client {
    /// A client whose calls each take at most `timeout`.
    pub fn new(timeout: Duration) -> Client {
        Client {
            timeout: timeout.max(Duration::from_millis(1)),
            pool: Mutex::new(Pool {
                generation: ruwsgi_sys::fork::generation(),
                nodes: HashMap::new(),
            }),
        }
    }

    /// The per-call time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Call `name(args)` on `node`: `Ok(Some(result))`, `Ok(None)` when the node had no
    /// result (unknown function, empty result: the node replied with nothing), or why the
    /// call failed.
    pub fn call(
        &self,
        node: &str,
        name: &[u8],
        args: &[&[u8]],
    ) -> Result<Option<Vec<u8>>, CallError> {
        let mut request =
            Vec::with_capacity(8 + name.len() + args.iter().map(|a| a.len() + 2).sum::<usize>());
        rpc::encode_call(name, args, &mut request)?;
        let now = Instant::now();
        let deadline = now + self.timeout;
        let mut kept = self.take(node, now);
        loop {
            let reused = kept.take();
            let since = reused.as_ref().map(|k| k.since);
            let mut conn = match reused {
                Some(k) => k.conn,
                None => self.connect(node, deadline)?,
            };
            if let Err(err) = send(&mut conn, &request) {
                match since {
                    None => return Err(io_error(node, err)),
                    Some(since) => {
                        self.closed_by_node(node, since);
                        continue;
                    }
                }
            }
            match read_reply(&mut conn, node, deadline) {
                Ok((result, reusable)) => {
                    if reusable {
                        self.give_back(node, conn);
                    }
                    return Ok(result);
                }
                Err(ReadFail::Early(err)) if since.is_some() && is_closed(&err) => {
                    self.closed_by_node(node, since.unwrap_or(now));
                    continue;
                }
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

    fn connect(&self, node: &str, deadline: Instant) -> Result<Live, CallError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CallError::Timeout(node.to_string()));
        }
        let conn = match parse_node(node)? {
            Target::Tcp(host) => Conn::Tcp(connect_tcp(node, &host, left)?),
            Target::Unix(addr) => Conn::Unix(connect_unix(node, &addr, left)?),
        };
        let setup = conn
            .set_read_timeout(self.timeout)
            .and_then(|()| conn.set_write_timeout(self.timeout));
        setup.map_err(|err| io_error(node, err))?;
        Ok(Live {
            conn,
            read_timeout: self.timeout,
        })
    }
}

fn io_error(node: &str, err: io::Error) -> CallError {
    if matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        CallError::Timeout(node.to_string())
    } else {
        CallError::Io {
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

fn send(conn: &mut Live, request: &[u8]) -> io::Result<()> {
    conn.conn.write_all(request)
}

/// Read one standard reply. On success: the result, and whether the connection is back at a
/// packet boundary (so it can be kept).
fn read_reply(
    conn: &mut Live,
    node: &str,
    deadline: Instant,
) -> Result<(Option<Vec<u8>>, bool), ReadFail> {
    // The header and (most often) the whole result arrive in the first read, into a buffer
    // each thread keeps.
    thread_local! {
        static FIRST: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    FIRST.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.len() < FIRST_READ {
            buf.resize(FIRST_READ, 0);
        }
        read_reply_into(conn, node, deadline, &mut buf)
    })
}

fn read_reply_into(
    conn: &mut Live,
    node: &str,
    deadline: Instant,
    first: &mut [u8],
) -> Result<(Option<Vec<u8>>, bool), ReadFail> {
    let mut got = 0;
    while got < HEADER_LEN {
        match conn.read_by(&mut first[got..], deadline) {
            Ok(0) if got == 0 => return Err(ReadFail::Early(io::ErrorKind::UnexpectedEof.into())),
            Ok(0) => {
                return Err(ReadFail::Late(io_error(
                    node,
                    io::ErrorKind::UnexpectedEof.into(),
                )))
            }
            Ok(n) => got += n,
            Err(e) if got == 0 => return Err(ReadFail::Early(e)),
            Err(e) => return Err(ReadFail::Late(io_error(node, e))),
        }
    }
    let late = |e: io::Error| ReadFail::Late(io_error(node, e));
    let bad = |err| {
        ReadFail::Late(CallError::Reply {
            node: node.to_string(),
            err,
        })
    };
    let header: [u8; HEADER_LEN] = [first[0], first[1], first[2], first[3]];
    let mut have = &first[HEADER_LEN..got];
    let len = match rpc::parse_reply_head(header).map_err(bad)? {
        ReplyHead::Result(len) => len as u64,
        ReplyHead::Large(dict_len) => {
            let mut dict = vec![0u8; dict_len];
            let n = have.len().min(dict_len);
            dict[..n].copy_from_slice(&have[..n]);
            have = &have[n..];
            conn.read_exact_by(&mut dict[n..], deadline).map_err(late)?;
            rpc::large_reply_length(&dict).map_err(bad)?
        }
    };
    if len > MAX_REPLY {
        return Err(ReadFail::Late(CallError::TooLarge {
            node: node.to_string(),
            len,
        }));
    }
    let len = len as usize;
    if have.len() > len {
        // More than the reply: the connection is out of step; use the result, drop it.
        return Ok(((len > 0).then(|| have[..len].to_vec()), false));
    }
    if len == 0 {
        return Ok((None, true));
    }
    let mut result = vec![0u8; len];
    result[..have.len()].copy_from_slice(have);
    let n = have.len();
    conn.read_exact_by(&mut result[n..], deadline)
        .map_err(late)?;
    Ok((Some(result), true))
}

enum Target {
    Tcp(String),
    Unix(UnixAddr),
}

/// `host:port` (TCP) or a unix socket path / `@abstract` name.
fn parse_node(node: &str) -> Result<Target, CallError> {
    let bad = || CallError::BadNode(node.to_string());
    if node.is_empty() {
        return Err(bad());
    }
    if let Some(name) = node.strip_prefix('@') {
        return UnixAddr::new_abstract(name.as_bytes())
            .map(Target::Unix)
            .map_err(|_| bad());
    }
    if node.starts_with('/') || node.starts_with('.') || !node.contains(':') {
        return UnixAddr::new(node).map(Target::Unix).map_err(|_| bad());
    }
    let (host, port) = node.rsplit_once(':').ok_or_else(bad)?;
    if port.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    Ok(Target::Tcp(format!("{host}:{port}")))
}

fn connect_tcp(node: &str, hostport: &str, timeout: Duration) -> Result<TcpStream, CallError> {
    let err = |err| CallError::Connect {
        node: node.to_string(),
        err,
    };
    let addrs: Vec<SocketAddr> = hostport.to_socket_addrs().map_err(err)?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                // Calls are small request/reply exchanges: never wait for Nagle.
                s.set_nodelay(true).map_err(err)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(err(last))
}

/// Connect to a unix socket, waiting at most `timeout` when its backlog is full.
fn connect_unix(node: &str, addr: &UnixAddr, timeout: Duration) -> Result<UnixStream, CallError> {
    let err = |e: nix::errno::Errno| CallError::Connect {
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
    // A blocking unix connect waits for room in the backlog for up to the send timeout.
    let tv = nix::sys::time::TimeVal::new(
        timeout.as_secs() as i64,
        timeout.subsec_micros() as nix::libc::suseconds_t,
    );
    socket::setsockopt(&fd, socket::sockopt::SendTimeout, &tv).map_err(err)?;
    loop {
        match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), addr) {
            Ok(()) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => {
                return Err(CallError::Timeout(node.to_string()));
            }
            Err(e) => return Err(err(e)),
        }
    }
    Ok(UnixStream::from(fd))
}

#[cfg(test)]
mod tests;
