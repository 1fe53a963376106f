//! Talking to another uwsgi node: what the RPC client and the remote-cache client share.
//!
//! A node is `host:port` (TCP, `[v6]:port` too; an empty host is 127.0.0.1) or a unix
//! socket path (`@name` for the abstract namespace). [`Nodes::exchange`] sends one request
//! and reads its reply with one deadline for the whole exchange (`socket-timeout` from its
//! start), so a dead, slow or misbehaving node costs the caller at most that long.
//!
//! Connections are kept per node and reused: an exchange then costs one write and one
//! read instead of a connect and a close. Reuse is made safe three ways:
//! - if a kept connection fails before the first byte of the reply arrives, the node never
//!   handled the request (it had closed the connection), so the request is sent again once,
//!   on a fresh connection. A fresh connection is never retried. A node found to close
//!   connections within 2 s of a reply while a fresh one gets an answer (uWSGI does) is
//!   then talked to on fresh connections only (a node that refuses on the fresh connection
//!   too, closing it on purpose, does not count);
//! - a connection kept idle for a while (more than [`CHECK_AFTER`]) is first checked with a
//!   non-blocking peek, and dropped if the node closed it or sent stray bytes;
//! - the kept connections belong to one process: a child that inherited its parent's
//!   through fork (ruwsgi's or the application's) drops them unused.
//!
//! On a thread that installed a [`WaitHook`] (an async worker's cores), a TCP connect, a
//! read or a write that would block asks the hook to wait instead: the calling core parks
//! and the worker serves other requests meanwhile. Without a hook the socket's own timeouts bound it.
//!
//! The one case where a request can be handled twice: the node's worker dies while
//! handling it on a kept connection (the caller cannot tell that from a node that closed an
//! idle connection).

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::socket::{self, MsgFlags, SockFlag, SockType, UnixAddr};

/// Connections kept per node.
const IDLE_PER_NODE: usize = 16;
/// A kept connection found closed this soon after its last reply means the node closes
/// every connection after replying.
const CLOSES_AFTER_REPLY: Duration = Duration::from_secs(2);
/// A connection idle longer than this is checked before it is used again.
pub const CHECK_AFTER: Duration = Duration::from_secs(1);
/// Size of each read of [`Live::fill`].
const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange with a node failed, below the protocol.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum NodeError {
    /// The node address is not `host:port` or a usable socket path.
    #[error("invalid node address '{0}'")]
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
    #[error("exchange with {node} failed: {err}")]
    Io {
        /// The node.
        node: String,
        /// The error.
        err: io::Error,
    },
    /// The deadline passed.
    #[error("request to {0} timed out")]
    Timeout(String),
}

impl NodeError {
    /// An I/O error of an exchange with `node` (a timeout becomes [`NodeError::Timeout`]).
    pub fn io(node: &str, err: io::Error) -> NodeError {
        if matches!(
            err.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            NodeError::Timeout(node.to_string())
        } else {
            NodeError::Io {
                node: node.to_string(),
                err,
            }
        }
    }
}

/// How a node exchange waits on this thread when its socket is not ready: for `fd` to be
/// readable (`false`) or writable (`true`), at most the duration; `Some(Ok(false))` is a
/// timeout, `None` means "block the usual way" (the caller cannot be suspended here).
pub type WaitHook = fn(BorrowedFd<'_>, bool, Duration) -> Option<io::Result<bool>>;

thread_local! {
    static WAIT_HOOK: Cell<Option<WaitHook>> = const { Cell::new(None) };
}

/// Install (or remove) this thread's [`WaitHook`].
pub fn set_wait_hook(hook: Option<WaitHook>) {
    WAIT_HOOK.with(|h| h.set(hook));
}

fn wait_hook() -> Option<WaitHook> {
    WAIT_HOOK.with(Cell::get)
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

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
        }
    }

    /// Write all of `buf`, never past `deadline`, waiting through `hook` whenever the socket
    /// is full (and the usual blocking way when the hook declines).
    fn write_all_by(
        &mut self,
        mut buf: &[u8],
        deadline: Instant,
        hook: WaitHook,
    ) -> io::Result<()> {
        while !buf.is_empty() {
            let sent = socket::send(
                self.fd().as_raw_fd(),
                buf,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            );
            match sent {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    match hook(self.fd(), true, left) {
                        Some(Ok(true)) => {}
                        Some(Ok(false)) => return Err(io::ErrorKind::TimedOut.into()),
                        Some(Err(e)) => return Err(e),
                        None => return self.write_all(buf),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Still usable: the node neither closed it nor sent anything unasked.
    fn is_idle(&self) -> bool {
        let fd = self.fd();
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

/// An open connection to a node, as a reply reader sees it.
pub struct Live {
    conn: Conn,
    read_timeout: Duration,
}

impl Live {
    /// Read into `buf`, never past `deadline`. The socket's timeout is lowered only when
    /// the time left is shorter than the one it has (a system call saved on most reads).
    pub fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if let Some(hook) = wait_hook() {
            loop {
                let got = socket::recv(self.conn.fd().as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT);
                match got {
                    Ok(n) => return Ok(n),
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(nix::errno::Errno::EAGAIN) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Err(io::ErrorKind::TimedOut.into());
                        }
                        match hook(self.conn.fd(), false, left) {
                            Some(Ok(true)) => {}
                            Some(Ok(false)) => return Err(io::ErrorKind::TimedOut.into()),
                            Some(Err(e)) => return Err(e),
                            None => break,
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
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

    /// Fill `buf` entirely, never past `deadline`.
    pub fn read_exact_by(&mut self, mut buf: &mut [u8], deadline: Instant) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_by(buf, deadline)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    /// Append to `buf` until it holds at least `need` bytes, never past `deadline`.
    pub fn fill(&mut self, buf: &mut Vec<u8>, need: usize, deadline: Instant) -> io::Result<()> {
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

/// How reading a reply failed: before any byte (the node may never have seen the request),
/// or later (the caller's own error).
pub enum ReadFail<E> {
    /// Nothing of the reply arrived.
    Early(io::Error),
    /// The reply was broken after it started.
    Late(E),
}

/// A whole reply: what the caller makes of it, and whether the connection is back at a
/// packet boundary (so it can be kept).
pub struct Reply<T> {
    /// The value.
    pub value: T,
    /// The connection can carry the next request.
    pub reusable: bool,
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

/// Exchanges with nodes: one per client, shared by a process's threads.
pub struct Nodes {
    timeout: Duration,
    pool: Mutex<Pool>,
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nodes")
            .field("timeout", &self.timeout)
            .finish()
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

impl Nodes {
    /// Exchanges that each take at most `timeout`.
    pub fn new(timeout: Duration) -> Nodes {
        Nodes {
            timeout: timeout.max(Duration::from_millis(1)),
            pool: Mutex::new(Pool {
                generation: ruwsgi_sys::fork::generation(),
                nodes: HashMap::new(),
            }),
        }
    }

    /// The per-exchange time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Send `request` to `node` and read the reply with `read`. A fresh connection that
    /// the node closes before replying gives `closed_fresh()` (for protocols where that is
    /// the node's "no"); a kept one is retried once on a fresh connection.
    pub fn exchange<T, E: From<NodeError>>(
        &self,
        node: &str,
        request: &[u8],
        mut read: impl FnMut(&mut Live, Instant) -> Result<Reply<T>, ReadFail<E>>,
        closed_fresh: impl FnOnce(io::Error) -> Result<T, E>,
    ) -> Result<T, E> {
        let now = Instant::now();
        let deadline = now + self.timeout;
        let mut kept = self.take(node, now);
        // When a kept connection was found closed: how long it had been kept.
        let mut suspect = None;
        loop {
            let reused = kept.take();
            let since = reused.as_ref().map(|k| k.since);
            let mut conn = match reused {
                Some(k) => k.conn,
                None => self.connect(node, deadline)?,
            };
            let written = match wait_hook() {
                Some(hook) => conn.conn.write_all_by(request, deadline, hook),
                None => conn.conn.write_all(request),
            };
            if let Err(err) = written {
                match since {
                    // The node closed a fresh connection while the request went out: its
                    // refusal (a request larger than it takes).
                    None if is_closed(&err) => return closed_fresh(err),
                    None => return Err(NodeError::io(node, err).into()),
                    Some(since) => {
                        suspect = Some(since);
                        continue;
                    }
                }
            }
            match read(&mut conn, deadline) {
                Ok(reply) => {
                    if let Some(since) = suspect {
                        // The node answers on a fresh connection what it did not on the
                        // kept one: it had closed that one by itself.
                        self.closed_by_node(node, since);
                    }
                    if reply.reusable {
                        self.give_back(node, conn);
                    }
                    return Ok(reply.value);
                }
                Err(ReadFail::Early(err)) if is_closed(&err) => match since {
                    Some(since) => {
                        suspect = Some(since);
                        continue;
                    }
                    // After a kept connection closed the same way, that was a refusal
                    // too, not a habit of the node.
                    None => return closed_fresh(err),
                },
                Err(ReadFail::Early(err)) => return Err(NodeError::io(node, err).into()),
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

    fn connect(&self, node: &str, deadline: Instant) -> Result<Live, NodeError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NodeError::Timeout(node.to_string()));
        }
        let conn = match parse_node(node)? {
            Addr::Tcp(host) => Conn::Tcp(connect_tcp(node, &host, left)?),
            Addr::Unix(addr) => Conn::Unix(connect_unix(node, &addr, left)?),
        };
        conn.set_read_timeout(self.timeout)
            .and_then(|()| conn.set_write_timeout(self.timeout))
            .map_err(|err| NodeError::io(node, err))?;
        Ok(Live {
            conn,
            read_timeout: self.timeout,
        })
    }
}

/// Where a node is.
#[derive(Debug)]
pub enum Addr {
    /// `host:port`, the host filled in.
    Tcp(String),
    /// A unix socket (a path or an abstract name).
    Unix(UnixAddr),
}

/// `host:port` (TCP) or a unix socket path / `@abstract` name.
pub fn parse_node(node: &str) -> Result<Addr, NodeError> {
    let bad = || NodeError::BadNode(node.to_string());
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

fn connect_tcp(node: &str, hostport: &str, timeout: Duration) -> Result<TcpStream, NodeError> {
    let err = |err| NodeError::Connect {
        node: node.to_string(),
        err,
    };
    let addrs: Vec<SocketAddr> = hostport.to_socket_addrs().map_err(err)?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    let started = Instant::now();
    for addr in addrs {
        let left = timeout.saturating_sub(started.elapsed());
        let attempt = match wait_hook() {
            Some(hook) => connect_parked(&addr, left, hook),
            None => TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1))),
        };
        match attempt {
            Ok(s) => {
                // Requests are small request/reply exchanges: never wait for Nagle.
                s.set_nodelay(true).map_err(err)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(err(last))
}

/// Connect to `addr` without blocking the thread: the connection starts non-blocking and the
/// thread's wait hook waits (up to `timeout`) for it to complete, so an async core parks
/// meanwhile. A hook that declines makes it wait the usual blocking way.
fn connect_parked(addr: &SocketAddr, timeout: Duration, hook: WaitHook) -> io::Result<TcpStream> {
    let family = match addr {
        SocketAddr::V4(_) => socket::AddressFamily::Inet,
        SocketAddr::V6(_) => socket::AddressFamily::Inet6,
    };
    let fd: OwnedFd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    let target = socket::SockaddrStorage::from(*addr);
    let pending = loop {
        match socket::connect(fd.as_raw_fd(), &target) {
            Ok(()) => break false,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EINPROGRESS) => break true,
            Err(e) => return Err(e.into()),
        }
    };
    if pending {
        match hook(fd.as_fd(), true, timeout) {
            Some(Ok(true)) => {}
            Some(Ok(false)) => return Err(io::ErrorKind::TimedOut.into()),
            Some(Err(e)) => return Err(e),
            None => {
                let mut fds = [nix::poll::PollFd::new(
                    fd.as_fd(),
                    nix::poll::PollFlags::POLLOUT,
                )];
                let ms = nix::poll::PollTimeout::try_from(timeout)
                    .unwrap_or(nix::poll::PollTimeout::MAX);
                if nix::poll::poll(&mut fds, ms)? == 0 {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
        }
        let status = socket::getsockopt(&fd, socket::sockopt::SocketError)?;
        if status != 0 {
            return Err(io::Error::from_raw_os_error(status));
        }
    }
    let stream = TcpStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Connect to a unix socket, waiting at most `timeout` when its backlog is full.
fn connect_unix(node: &str, addr: &UnixAddr, timeout: Duration) -> Result<UnixStream, NodeError> {
    let err = |e: nix::errno::Errno| NodeError::Connect {
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
        match socket::connect(fd.as_raw_fd(), addr) {
            Ok(()) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return Err(NodeError::Timeout(node.to_string())),
            Err(e) => return Err(err(e)),
        }
    }
    Ok(UnixStream::from(fd))
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A node answering every 4-byte request with the same 4 bytes, on kept connections.
    fn echo_node() -> (String, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut b = [0u8; 4];
                    while s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {}
                });
            }
        });
        (addr, accepted)
    }

    fn ping(nodes: &Nodes, addr: &str, msg: &[u8; 4]) -> [u8; 4] {
        nodes
            .exchange(
                addr,
                msg,
                |conn, deadline| {
                    let mut b = [0u8; 4];
                    conn.read_exact_by(&mut b, deadline)
                        .map_err(ReadFail::Early)?;
                    Ok(Reply {
                        value: b,
                        reusable: true,
                    })
                },
                |e| Err::<_, NodeError>(NodeError::io(addr, e)),
            )
            .unwrap()
    }

    #[test]
    fn connections_are_kept_and_never_shared_across_fork() {
        let (addr, accepted) = echo_node();
        let nodes = Nodes::new(Duration::from_secs(2));
        assert_eq!(&ping(&nodes, &addr, b"abcd"), b"abcd");
        assert_eq!(&ping(&nodes, &addr, b"efgh"), b"efgh");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // as a forked child sees it: the generation moved, the kept connection is not used
        nodes.pool.lock().unwrap().generation = u64::MAX;
        assert_eq!(&ping(&nodes, &addr, b"ijkl"), b"ijkl");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn node_addresses() {
        assert!(matches!(parse_node(""), Err(NodeError::BadNode(_))));
        assert!(matches!(parse_node("host:"), Err(NodeError::BadNode(_))));
        assert!(matches!(
            parse_node("host:99999"),
            Err(NodeError::BadNode(_))
        ));
        assert!(matches!(parse_node(":3031"), Ok(Addr::Tcp(h)) if h == "127.0.0.1:3031"));
        assert!(matches!(parse_node("[::1]:3031"), Ok(Addr::Tcp(h)) if h == "[::1]:3031"));
        assert!(matches!(parse_node("/tmp/x.sock"), Ok(Addr::Unix(_))));
        assert!(matches!(parse_node("relative.sock"), Ok(Addr::Unix(_))));
        assert!(matches!(parse_node("@abstract"), Ok(Addr::Unix(_))));
    }

    thread_local! {
        static HOOK_CALLS: std::cell::RefCell<Vec<bool>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// A hook that records each wait and then waits with poll (as a parked core would be
    /// woken by the loop).
    fn recording_hook(fd: BorrowedFd<'_>, writable: bool, t: Duration) -> Option<io::Result<bool>> {
        HOOK_CALLS.with(|c| c.borrow_mut().push(writable));
        let ms = i32::try_from(t.as_millis()).unwrap_or(i32::MAX);
        Some(ruwsgi_sys::rawfd::poll_one(fd.as_raw_fd(), writable, ms))
    }

    /// A hook that declines: the exchange blocks the usual way.
    fn declining_hook(_: BorrowedFd<'_>, _: bool, _: Duration) -> Option<io::Result<bool>> {
        HOOK_CALLS.with(|c| c.borrow_mut().push(false));
        None
    }

    /// A node that answers after `delay`.
    fn slow_echo_node(delay: Duration) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut b = [0u8; 4];
                    while s.read_exact(&mut b).is_ok() {
                        std::thread::sleep(delay);
                        if s.write_all(&b).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn a_wait_hook_waits_for_replies_and_can_decline() {
        let addr = slow_echo_node(Duration::from_millis(50));
        let nodes = Nodes::new(Duration::from_secs(5));
        set_wait_hook(Some(recording_hook));
        assert_eq!(&ping(&nodes, &addr, b"wxyz"), b"wxyz");
        let calls = HOOK_CALLS.with(|c| std::mem::take(&mut *c.borrow_mut()));
        // the reply was not there at once: the hook waited for readability
        assert!(calls.contains(&false), "{calls:?}");
        set_wait_hook(Some(declining_hook));
        assert_eq!(&ping(&nodes, &addr, b"abcd"), b"abcd");
        assert!(!HOOK_CALLS.with(|c| c.borrow().is_empty()));
        set_wait_hook(None);
        HOOK_CALLS.with(|c| c.borrow_mut().clear());
        assert_eq!(&ping(&nodes, &addr, b"efgh"), b"efgh");
        assert!(HOOK_CALLS.with(|c| c.borrow().is_empty()));
    }

    /// A hook that records the wait and says the time ran out.
    fn expiring_hook(_: BorrowedFd<'_>, writable: bool, _: Duration) -> Option<io::Result<bool>> {
        HOOK_CALLS.with(|c| c.borrow_mut().push(writable));
        Some(Ok(false))
    }

    #[test]
    fn a_connect_in_progress_waits_through_the_hook() {
        // A loopback listener with a full backlog never answers a new SYN: the connect
        // stays in progress, and the hook is asked to wait for writability.
        let l = socket::socket(
            socket::AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        let any = socket::SockaddrIn::new(127, 0, 0, 1, 0);
        socket::bind(l.as_raw_fd(), &any).unwrap();
        socket::listen(&l, socket::Backlog::new(0).unwrap()).unwrap();
        let bound: socket::SockaddrIn = socket::getsockname(l.as_raw_fd()).unwrap();
        let addr = SocketAddr::from(std::net::SocketAddrV4::from(bound));
        // Fill the backlog (a few connections, bounded; none is accepted).
        let mut filled = Vec::new();
        for _ in 0..4 {
            if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                filled.push(c);
            }
        }
        HOOK_CALLS.with(|c| c.borrow_mut().clear());
        let r = connect_parked(&addr, Duration::from_secs(1), expiring_hook);
        let calls = HOOK_CALLS.with(|c| std::mem::take(&mut *c.borrow_mut()));
        assert_eq!(calls, [true], "the hook waited for writability once");
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        // A listener that accepts: the connect completes (at once, or after the hook).
        let ok = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = ok.local_addr().unwrap();
        let s = connect_parked(&target, Duration::from_secs(2), recording_hook).unwrap();
        assert_eq!(s.peer_addr().unwrap(), target);
        drop((filled, l));
    }

    #[test]
    fn a_wait_hook_timeout_is_the_exchange_timeout() {
        let addr = slow_echo_node(Duration::from_secs(3));
        let nodes = Nodes::new(Duration::from_millis(300));
        set_wait_hook(Some(recording_hook));
        let t0 = Instant::now();
        let r = nodes.exchange(
            &addr,
            b"late",
            |conn, deadline| {
                let mut b = [0u8; 4];
                conn.read_exact_by(&mut b, deadline)
                    .map_err(ReadFail::Early)?;
                Ok(Reply {
                    value: b,
                    reusable: true,
                })
            },
            |e| Err::<_, NodeError>(NodeError::io(&addr, e)),
        );
        set_wait_hook(None);
        assert!(matches!(r, Err(NodeError::Timeout(_))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
}
