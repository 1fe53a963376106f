//! Raising a signal on another node: a modifier1 110 packet (`uwsgi.signal(N, "host:port")`).
//!
//! The request is the bare header `(110, 0, N)`; the node answers `(255, 0, status)`,
//! status 1 when it queued the signal to its master and 0 when it could not. A node only
//! answers trusted peers; any other reply, a close or the `socket-timeout` running out is a
//! delivery failure.

use std::io;
use std::time::Duration;

use ruwsgi_node::{NodeError, Nodes, ReadFail, Reply};

/// What became of a remote signal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The node answered that it could not queue the signal.
    #[error("node {node} rejected signal {signum}")]
    Rejected {
        /// The node.
        node: String,
        /// The signal.
        signum: u8,
    },
    /// The node could not be reached, or did not answer a signal reply in time.
    #[error("unable to deliver signal {signum} to node {node}: {err}")]
    Undelivered {
        /// The node.
        node: String,
        /// The signal.
        signum: u8,
        /// Why.
        err: NodeError,
    },
}

/// The client for remote signals of one process (connections are kept per node).
pub struct RemoteSignals {
    nodes: Nodes,
}

impl std::fmt::Debug for RemoteSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSignals")
            .field("timeout", &self.nodes.timeout())
            .finish()
    }
}

impl RemoteSignals {
    /// A client whose raises each take at most `timeout`.
    pub fn new(timeout: Duration) -> RemoteSignals {
        RemoteSignals {
            nodes: Nodes::new(timeout),
        }
    }

    /// Ask `node` (`host:port` or a socket path) to route signal `signum`.
    pub fn raise(&self, node: &str, signum: u8) -> Result<(), RemoteError> {
        let undelivered = |err: NodeError| RemoteError::Undelivered {
            node: node.to_string(),
            signum,
            err,
        };
        let status = self
            .nodes
            .exchange::<u8, NodeError>(
                node,
                &[ruwsgi_proto::uwsgi::modifier::SIGNAL, 0, 0, signum],
                |conn, deadline| {
                    let mut head = [0u8; 4];
                    let first = conn.read_by(&mut head, deadline);
                    match first {
                        Ok(0) => return Err(ReadFail::Early(io::ErrorKind::UnexpectedEof.into())),
                        Err(e) => return Err(ReadFail::Early(e)),
                        Ok(n) if n < head.len() => conn
                            .read_exact_by(&mut head[n..], deadline)
                            .map_err(|e| ReadFail::Late(NodeError::io(node, e)))?,
                        Ok(_) => {}
                    }
                    if head[0] != 255 || head[1] != 0 || head[2] != 0 {
                        return Err(ReadFail::Late(NodeError::io(
                            node,
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("not a signal reply: {head:02x?}"),
                            ),
                        )));
                    }
                    Ok(Reply {
                        value: head[3],
                        reusable: true,
                    })
                },
                |err| Err(NodeError::io(node, err)),
            )
            .map_err(undelivered)?;
        if status == 1 {
            Ok(())
        } else {
            Err(RemoteError::Rejected {
                node: node.to_string(),
                signum,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn node_answering(reply: Vec<u8>) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 4];
            s.read_exact(&mut req).unwrap();
            s.write_all(&reply).unwrap();
            req.to_vec()
        });
        (addr, t)
    }

    #[test]
    fn a_queued_signal_is_ok_and_the_packet_is_uwsgis() {
        let (addr, t) = node_answering(vec![255, 0, 0, 1]);
        RemoteSignals::new(Duration::from_secs(2))
            .raise(&addr, 17)
            .unwrap();
        assert_eq!(t.join().unwrap(), [110, 0, 0, 17]);
    }

    #[test]
    fn status_zero_is_a_rejection_and_garbage_a_failure() {
        let (addr, t) = node_answering(vec![255, 0, 0, 0]);
        let err = RemoteSignals::new(Duration::from_secs(2))
            .raise(&addr, 3)
            .unwrap_err();
        assert_eq!(err.to_string(), format!("node {addr} rejected signal 3"));
        t.join().unwrap();
        let (addr, t) = node_answering(b"HTTP".to_vec());
        let err = RemoteSignals::new(Duration::from_secs(2))
            .raise(&addr, 3)
            .unwrap_err();
        assert!(matches!(err, RemoteError::Undelivered { .. }), "{err}");
        t.join().unwrap();
    }

    #[test]
    fn a_silent_node_fails_within_the_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let started = std::time::Instant::now();
        let err = RemoteSignals::new(Duration::from_millis(300))
            .raise(&addr, 1)
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            err.to_string().starts_with("unable to deliver signal 1"),
            "{err}"
        );
        drop(l);
    }
}
