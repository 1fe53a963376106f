//! The sockets that carry signals and mule messages between processes, made by the master
//! before the first fork and inherited by every child.
//!
//! Each is an `AF_UNIX`/`SOCK_SEQPACKET` pair, both ends non-blocking and close-on-exec:
//! whoever sends writes one packet on the `send` end, and whichever process reads the
//! `recv` end first gets it, whole. So one socket serves "any worker" (every worker polls
//! it; the first free one handles the signal), "any mule", the spoolers, each farm, and
//! each mule's private message queue (any process may write a message; only that mule
//! reads). Signals to one given process do not come here: they travel on that child's own
//! command channel to the master ([`ruwsgi_proto::channel::MasterMessage`]).
//!
//! A signal is a one-byte packet; a mule message is a packet of its own bytes. A full
//! socket never blocks a sender: the send fails at once ([`SendError::Full`]), the caller
//! logs it and the packet is dropped, as a full queue must never stall the master or a
//! worker.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recv, send, setsockopt, socketpair, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
};

/// Why a packet was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The socket's buffer is full: the packet was dropped.
    #[error("queue full")]
    Full,
    /// Longer than the socket accepts (`mule-msg-size`).
    #[error("message too long for the queue ({0} bytes)")]
    TooLong(usize),
    /// Another socket error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One delivery socket: a packet sent on [`Self::send`] is read whole by one reader of
/// [`Self::recv_fd`].
#[derive(Debug)]
pub struct Queue {
    send: OwnedFd,
    recv: OwnedFd,
}

impl Queue {
    /// A new pair; `buffer` (bytes, 0 = the kernel's default) sizes both directions.
    pub fn new(buffer: usize) -> io::Result<Queue> {
        let (send, recv) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )?;
        if buffer > 0 {
            for fd in [&send, &recv] {
                setsockopt(fd, sockopt::SndBuf, &buffer)?;
                setsockopt(fd, sockopt::RcvBuf, &buffer)?;
            }
        }
        Ok(Queue { send, recv })
    }

    /// Send one packet without waiting.
    pub fn send(&self, packet: &[u8]) -> Result<(), SendError> {
        send_packet(self.send.as_fd(), packet)
    }

    /// The end senders write.
    pub fn send_fd(&self) -> BorrowedFd<'_> {
        self.send.as_fd()
    }

    /// The end readers poll and read.
    pub fn recv_fd(&self) -> BorrowedFd<'_> {
        self.recv.as_fd()
    }

    /// Read one packet into `buf` if one is waiting: `Ok(None)` when none is (another
    /// reader may have taken it). A packet longer than `buf` is cut to its length.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        try_recv(self.recv.as_fd(), buf)
    }
}

/// Send `packet` on `fd` without waiting and without `SIGPIPE`.
pub fn send_packet(fd: BorrowedFd<'_>, packet: &[u8]) -> Result<(), SendError> {
    loop {
        match send(
            fd.as_raw_fd(),
            packet,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) | Err(Errno::ENOBUFS) => return Err(SendError::Full),
            Err(Errno::EMSGSIZE) => return Err(SendError::TooLong(packet.len())),
            Err(e) => return Err(SendError::Io(e.into())),
        }
    }
}

/// Read one packet from `fd` without waiting: `Ok(None)` when nothing is waiting.
pub fn try_recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => return Ok(Some(n)),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Read one signal (a one-byte packet) from a shared signal socket, if one is waiting.
/// Packets of another length are dropped (nothing but the master writes there).
pub fn try_recv_signal(fd: BorrowedFd<'_>) -> Option<u8> {
    let mut buf = [0u8; 2];
    loop {
        match try_recv(fd, &mut buf) {
            Ok(Some(1)) => return Some(buf[0]),
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

/// A farm: a named group of mules with its own signal socket and message queue.
#[derive(Debug)]
pub struct Farm {
    /// Its name (`farm_NAME`, `farm_msg(NAME, ...)`).
    pub name: String,
    /// Its mules' ids (1-based).
    pub mules: Vec<u32>,
    /// Signals routed to the farm (any member reads).
    pub signals: Queue,
    /// Messages for the farm (any member reads).
    pub messages: Queue,
}

/// Every shared socket of one instance.
#[derive(Debug)]
pub struct Sockets {
    /// Signals for the first free worker (target `""`, `worker`, `worker0`).
    pub any_worker: Queue,
    /// Signals for the first free mule (`mule`, `mule0`).
    pub any_mule: Queue,
    /// Signals for the spoolers (`spooler`: the first free spooler).
    pub spooler: Queue,
    /// Messages for any mule (`mule_msg(msg)`).
    pub mule_messages: Queue,
    /// Each mule's private message queue, by id - 1.
    pub mule_queues: Vec<Queue>,
    /// The farms, in configuration order (`farmN` is `farms[N - 1]`).
    pub farms: Vec<Farm>,
}

impl Sockets {
    /// The sockets for `mules` mules and `farms` (name, member ids); `signal_buffer` and
    /// `message_buffer` size the signal and message sockets (0: the kernel's default).
    pub fn new(
        mules: u32,
        farms: &[(String, Vec<u32>)],
        signal_buffer: usize,
        message_buffer: usize,
    ) -> io::Result<Sockets> {
        Ok(Sockets {
            any_worker: Queue::new(signal_buffer)?,
            any_mule: Queue::new(signal_buffer)?,
            spooler: Queue::new(signal_buffer)?,
            mule_messages: Queue::new(message_buffer)?,
            mule_queues: (0..mules)
                .map(|_| Queue::new(message_buffer))
                .collect::<io::Result<_>>()?,
            farms: farms
                .iter()
                .map(|(name, mules)| {
                    Ok(Farm {
                        name: name.clone(),
                        mules: mules.clone(),
                        signals: Queue::new(signal_buffer)?,
                        messages: Queue::new(message_buffer)?,
                    })
                })
                .collect::<io::Result<_>>()?,
        })
    }

    /// The farm called `name`.
    pub fn farm(&self, name: &str) -> Option<&Farm> {
        self.farms.iter().find(|f| f.name == name)
    }

    /// The farms mule `id` belongs to.
    pub fn farms_of(&self, id: u32) -> impl Iterator<Item = &Farm> {
        self.farms.iter().filter(move |f| f.mules.contains(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_is_read_whole_by_one_reader() {
        let q = Queue::new(0).unwrap();
        q.send(b"hello").unwrap();
        q.send(&[7]).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(q.try_recv(&mut buf).unwrap(), Some(5));
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(try_recv_signal(q.recv_fd()), Some(7));
        assert_eq!(q.try_recv(&mut buf).unwrap(), None);
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let q = Queue::new(4096).unwrap();
        let mut sent = 0;
        let err = loop {
            match q.send(&[1; 512]) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 10_000, "never filled");
        };
        assert!(matches!(err, SendError::Full), "{err:?}");
        assert!(sent > 0);
    }

    #[test]
    fn farms_know_their_members() {
        let s = Sockets::new(3, &[("a".into(), vec![1, 2]), ("b".into(), vec![2])], 0, 0).unwrap();
        assert_eq!(s.mule_queues.len(), 3);
        assert_eq!(s.farm("b").unwrap().mules, vec![2]);
        let names: Vec<_> = s.farms_of(2).map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(s.farm("c").is_none());
    }
}
