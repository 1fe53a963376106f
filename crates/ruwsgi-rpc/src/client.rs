//! Calling a function on another node.
//!
//! A node is `host:port` (TCP, `[v6]:port` too; an empty host is 127.0.0.1) or a unix socket
//! path (`@name` for the abstract namespace). Every step of a call (connect, send, each
//! read) is bounded by one deadline, `socket-timeout` after the call started, so a dead,
//! slow or misbehaving node costs the caller at most that long.
//!
//! Connections are kept per node and reused, safely across node restarts, nodes that close
//! after each reply (uWSGI) and forks: see [`ruwsgi_node`], which the remote-cache client
//! shares. A fresh connection the node closes without a reply is an error here (a ruwsgi
//! node always replies, an empty result included).

use std::io;
use std::time::{Duration, Instant};

use ruwsgi_node::{Live, NodeError, Nodes, ReadFail, Reply};
use ruwsgi_proto::rpc::{self, ReplyHead};
use ruwsgi_proto::uwsgi::HEADER_LEN;

/// Largest result accepted in a large reply; a node announcing more is misbehaving.
pub const MAX_REPLY: u64 = 1 << 30;
/// Room for the reply's header and, most of the time, all of its result.
const FIRST_READ: usize = 16 * 1024;

/// Why a remote call gave no result.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum CallError {
    /// The call cannot be encoded (name, argument count or size).
    #[error("{0}")]
    Encode(#[from] rpc::RpcError),
    /// The node could not be reached, or the exchange failed or timed out.
    #[error("RPC: {0}")]
    Node(#[from] NodeError),
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
}

/// The client side of RPC: one per process, shared by its threads.
pub struct Client {
    nodes: Nodes,
}

impl Client {
    /// A client whose calls each take at most `timeout`.
    pub fn new(timeout: Duration) -> Client {
        Client {
            nodes: Nodes::new(timeout),
        }
    }

    /// The per-call time limit.
    pub fn timeout(&self) -> Duration {
        self.nodes.timeout()
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
        self.nodes.exchange(
            node,
            &request,
            |conn, deadline| read_reply(conn, node, deadline),
            |err| Err(NodeError::io(node, err).into()),
        )
    }
}

fn late(node: &str, e: io::Error) -> ReadFail<CallError> {
    ReadFail::Late(NodeError::io(node, e).into())
}

/// Read one standard reply: the result, and whether the connection is back at a packet
/// boundary.
fn read_reply(
    conn: &mut Live,
    node: &str,
    deadline: Instant,
) -> Result<Reply<Option<Vec<u8>>>, ReadFail<CallError>> {
    // The header and (most often) the whole result arrive in the first read, into a buffer
    // each thread keeps.
    thread_local! {
        static FIRST: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    FIRST.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < FIRST_READ {
                buf.resize(FIRST_READ, 0);
            }
            read_reply_into(conn, node, deadline, &mut buf)
        }
        // Another call on this thread is waiting for its reply (an async core parked in
        // it): this one gets a buffer of its own.
        Err(_) => read_reply_into(conn, node, deadline, &mut vec![0; FIRST_READ]),
    })
}

fn read_reply_into(
    conn: &mut Live,
    node: &str,
    deadline: Instant,
    first: &mut [u8],
) -> Result<Reply<Option<Vec<u8>>>, ReadFail<CallError>> {
    let mut got = 0;
    while got < HEADER_LEN {
        match conn.read_by(&mut first[got..], deadline) {
            Ok(0) if got == 0 => return Err(ReadFail::Early(io::ErrorKind::UnexpectedEof.into())),
            Ok(0) => return Err(late(node, io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if got == 0 => return Err(ReadFail::Early(e)),
            Err(e) => return Err(late(node, e)),
        }
    }
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
            conn.read_exact_by(&mut dict[n..], deadline)
                .map_err(|e| late(node, e))?;
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
        return Ok(Reply {
            value: (len > 0).then(|| have[..len].to_vec()),
            reusable: false,
        });
    }
    if len == 0 {
        return Ok(Reply {
            value: None,
            reusable: true,
        });
    }
    let mut result = vec![0u8; len];
    result[..have.len()].copy_from_slice(have);
    let n = have.len();
    conn.read_exact_by(&mut result[n..], deadline)
        .map_err(|e| late(node, e))?;
    Ok(Reply {
        value: Some(result),
        reusable: true,
    })
}

#[cfg(test)]
mod tests;
