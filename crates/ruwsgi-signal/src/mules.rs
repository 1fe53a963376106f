//! Mule messages: `mule_msg` / `farm_msg` on the sending side, and a mule's inbox, which
//! waits on its message queues and its signal sources together ([`Inbox::wait`]).
//!
//! Messages go straight from the sender to the queue socket (no trip through the master):
//! the shared mule queue (any mule reads), a mule's private queue, or a farm's queue (any
//! member reads). A full queue refuses at once ([`MuleMsgError::Full`]).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use ruwsgi_proto::channel::MasterMessage;

use crate::sockets::{try_recv, try_recv_signal, SendError, Sockets};

/// Where `mule_msg` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuleTarget<'a> {
    /// The shared queue: whichever mule reads first (`mule_msg(msg)`, target 0).
    Any,
    /// Mule N's private queue (1-based).
    Mule(u32),
    /// A farm's queue, by name.
    Farm(&'a str),
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MuleMsgError {
    /// The instance has no mules.
    #[error("no mule configured")]
    NoMules,
    /// No mule has this id.
    #[error("invalid mule {0}")]
    InvalidMule(u32),
    /// No farm has this name.
    #[error("unknown farm")]
    UnknownFarm,
    /// The queue could not take it.
    #[error("{0}")]
    Send(#[from] SendError),
}

impl Sockets {
    /// Send `msg` to `target`.
    pub fn mule_msg(&self, target: MuleTarget<'_>, msg: &[u8]) -> Result<(), MuleMsgError> {
        if self.mule_queues.is_empty() {
            return Err(MuleMsgError::NoMules);
        }
        let queue = match target {
            MuleTarget::Any => &self.mule_messages,
            MuleTarget::Mule(id) => id
                .checked_sub(1)
                .and_then(|i| self.mule_queues.get(i as usize))
                .ok_or(MuleMsgError::InvalidMule(id))?,
            MuleTarget::Farm(name) => &self.farm(name).ok_or(MuleMsgError::UnknownFarm)?.messages,
        };
        Ok(queue.send(msg)?)
    }
}

/// What a mule's wait produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A message (cut to the receive size).
    Message(Vec<u8>),
    /// A uWSGI signal for this mule to handle.
    Signal(u8),
    /// The time ran out.
    Timeout,
    /// The master is gone (end-of-file on the command channel): the mule should leave.
    MasterGone,
    /// The stop descriptor ([`Inbox::stop_on`]) became readable.
    Stop,
}

/// What mule `id` waits on.
#[derive(Debug, Clone, Copy)]
pub struct Inbox<'a> {
    sockets: &'a Sockets,
    id: u32,
    channel: Option<BorrowedFd<'a>>,
    stop: Option<BorrowedFd<'a>>,
}

/// Which source a polled descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Channel,
    SharedSignal,
    Messages,
    Stop,
}

impl<'a> Inbox<'a> {
    /// The inbox of mule `id`, whose command channel to the master is `channel`.
    pub fn new(sockets: &'a Sockets, id: u32, channel: Option<BorrowedFd<'a>>) -> Inbox<'a> {
        Inbox {
            sockets,
            id,
            channel,
            stop: None,
        }
    }

    /// Also end a wait with [`Received::Stop`] when `fd` becomes readable (a signal
    /// self-pipe); the caller drains it.
    pub fn stop_on(mut self, fd: BorrowedFd<'a>) -> Inbox<'a> {
        self.stop = Some(fd);
        self
    }

    /// The mule's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Wait up to `timeout` (`None`: forever) for a message on the mule's queues (its own,
    /// the shared one, and with `farms` its farms'), and with `signals` for a signal on its
    /// sources (the master's channel, the shared mule socket, its farms' signal sockets).
    /// Signals come first when both are waiting. Messages longer than `max` are cut.
    pub fn wait(
        &self,
        farms: bool,
        signals: bool,
        timeout: Option<Duration>,
        max: usize,
    ) -> io::Result<Received> {
        self.wait_on(true, farms, signals, timeout, max)
    }

    /// As [`Self::wait`], for messages of the mule's farms only (`farm_get_msg`).
    pub fn wait_farms(
        &self,
        signals: bool,
        timeout: Option<Duration>,
        max: usize,
    ) -> io::Result<Received> {
        self.wait_on(false, true, signals, timeout, max)
    }

    fn wait_on(
        &self,
        own: bool,
        farms: bool,
        signals: bool,
        timeout: Option<Duration>,
        max: usize,
    ) -> io::Result<Received> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let s = self.sockets;
        let mut sources: Vec<(BorrowedFd<'_>, Source)> = Vec::new();
        if let Some(fd) = self.stop {
            sources.push((fd, Source::Stop));
        }
        if signals {
            if let Some(c) = self.channel {
                sources.push((c, Source::Channel));
            }
            sources.push((s.any_mule.recv_fd(), Source::SharedSignal));
            for f in s.farms_of(self.id) {
                sources.push((f.signals.recv_fd(), Source::SharedSignal));
            }
        }
        if own {
            if let Some(q) = (self.id as usize)
                .checked_sub(1)
                .and_then(|i| s.mule_queues.get(i))
            {
                sources.push((q.recv_fd(), Source::Messages));
            }
            sources.push((s.mule_messages.recv_fd(), Source::Messages));
        }
        if farms {
            for f in s.farms_of(self.id) {
                sources.push((f.messages.recv_fd(), Source::Messages));
            }
        }
        let mut buf = vec![0u8; max.max(1)];
        loop {
            let left = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
                        .unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            let mut fds: Vec<PollFd<'_>> = sources
                .iter()
                .map(|(fd, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, left) {
                Ok(0) => return Ok(Received::Timeout),
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready: Vec<usize> = fds
                .iter()
                .enumerate()
                .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
                .map(|(i, _)| i)
                .collect();
            drop(fds);
            for i in ready {
                let (fd, source) = sources[i];
                match source {
                    Source::Stop => return Ok(Received::Stop),
                    Source::Channel => {
                        let mut packet = [0u8; ruwsgi_proto::channel::MAX_MESSAGE + 1];
                        match try_recv(fd, &mut packet) {
                            Ok(Some(0)) | Err(_) => return Ok(Received::MasterGone),
                            Ok(Some(n)) => {
                                if let Ok(MasterMessage::Signal(n)) =
                                    MasterMessage::decode(&packet[..n])
                                {
                                    return Ok(Received::Signal(n));
                                }
                            }
                            Ok(None) => {}
                        }
                    }
                    Source::SharedSignal => {
                        if let Some(n) = try_recv_signal(fd) {
                            return Ok(Received::Signal(n));
                        }
                    }
                    Source::Messages => {
                        if let Some(n) = try_recv(fd, &mut buf)? {
                            buf.truncate(n.min(max));
                            return Ok(Received::Message(buf));
                        }
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Received::Timeout);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn sockets() -> Sockets {
        Sockets::new(2, &[("f".into(), vec![2])], 0, 0).unwrap()
    }

    #[test]
    fn messages_reach_the_right_mules() {
        let s = sockets();
        let one = Inbox::new(&s, 1, None);
        let two = Inbox::new(&s, 2, None);
        let t = Some(Duration::from_millis(50));
        s.mule_msg(MuleTarget::Mule(2), b"for two").unwrap();
        assert_eq!(one.wait(true, true, t, 100).unwrap(), Received::Timeout);
        assert_eq!(
            two.wait(true, true, t, 100).unwrap(),
            Received::Message(b"for two".to_vec())
        );
        s.mule_msg(MuleTarget::Farm("f"), b"farm").unwrap();
        assert_eq!(one.wait(true, true, t, 100).unwrap(), Received::Timeout);
        assert_eq!(two.wait(false, true, t, 100).unwrap(), Received::Timeout);
        assert_eq!(
            two.wait(true, true, t, 2).unwrap(),
            Received::Message(b"fa".to_vec())
        );
        s.mule_msg(MuleTarget::Any, b"anyone").unwrap();
        assert_eq!(
            one.wait(true, true, t, 100).unwrap(),
            Received::Message(b"anyone".to_vec())
        );
        assert!(matches!(
            s.mule_msg(MuleTarget::Mule(3), b"x"),
            Err(MuleMsgError::InvalidMule(3))
        ));
        assert!(matches!(
            s.mule_msg(MuleTarget::Farm("g"), b"x"),
            Err(MuleMsgError::UnknownFarm)
        ));
        let none = Sockets::new(0, &[], 0, 0).unwrap();
        assert!(matches!(
            none.mule_msg(MuleTarget::Any, b"x"),
            Err(MuleMsgError::NoMules)
        ));
    }

    #[test]
    fn signals_come_from_the_channel_and_the_shared_sockets_when_asked() {
        let s = sockets();
        let (master, child) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::empty(),
        )
        .unwrap();
        let inbox = Inbox::new(&s, 2, Some(child.as_fd()));
        let t = Some(Duration::from_millis(50));
        crate::sockets::send_packet(master.as_fd(), MasterMessage::Signal(9).encode().as_bytes())
            .unwrap();
        assert_eq!(inbox.wait(true, false, t, 10).unwrap(), Received::Timeout);
        assert_eq!(inbox.wait(true, true, t, 10).unwrap(), Received::Signal(9));
        s.farms[0].signals.send(&[4]).unwrap();
        assert_eq!(inbox.wait(true, true, t, 10).unwrap(), Received::Signal(4));
        s.any_mule.send(&[5]).unwrap();
        assert_eq!(inbox.wait(true, true, t, 10).unwrap(), Received::Signal(5));
        drop(master);
        assert_eq!(inbox.wait(true, true, t, 10).unwrap(), Received::MasterGone);
    }
}
