//! The alarm queue: how any process raises a configured alarm and how the master gets it.
//!
//! One `SOCK_SEQPACKET` pair ([`Queue`]) made before the first fork, only when alarms are
//! configured. A worker, mule or spooler calling `uwsgi.alarm(name, msg)`, the master's
//! log thread (a log line matched an `alarm-log` rule) and the master itself send one
//! packet `NAME\0MESSAGE` on it; the master's loop reads the other end and runs the alarm.
//! Sending never blocks: a full queue refuses at once and the alarm is dropped.
//!
//! [`AlarmQueue::raise`] is `uwsgi.alarm`'s rule: an unknown alarm or a message longer
//! than `alarm-msg-size` is dropped (an error the caller may ignore, as the Python API
//! does). [`AlarmSender::raise_truncated`], for log lines, cuts the message instead.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sockets::{send_packet, Queue, SendError};

/// Why an alarm was not queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlarmError {
    /// The instance has no alarms.
    #[error("no alarm configured")]
    NoAlarms,
    /// No alarm has this name.
    #[error("unknown alarm '{0}'")]
    Unknown(String),
    /// The message is longer than `alarm-msg-size`.
    #[error("alarm message too long ({len} bytes, alarm-msg-size is {max})")]
    TooLong {
        /// The message's length.
        len: usize,
        /// `alarm-msg-size`.
        max: usize,
    },
    /// The queue could not take it (full: the master is behind).
    #[error("{0}")]
    Send(#[from] SendError),
}

/// Encode one alarm packet: the name, a NUL, the message.
pub fn encode(name: &str, msg: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(name.len() + 1 + msg.len());
    packet.extend_from_slice(name.as_bytes());
    packet.push(0);
    packet.extend_from_slice(msg);
    packet
}

/// Split a packet into its alarm name and message; `None` when it has no NUL or the name
/// is not UTF-8.
pub fn decode(packet: &[u8]) -> Option<(&str, &[u8])> {
    let nul = packet.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&packet[..nul]).ok()?;
    Some((name, &packet[nul + 1..]))
}

/// The alarm queue of an instance with alarms.
#[derive(Debug)]
pub struct AlarmQueue {
    queue: Queue,
    names: Vec<String>,
    msg_size: usize,
}

impl AlarmQueue {
    /// A queue for the alarms called `names`, whose messages are at most `msg_size` bytes.
    pub fn new(names: Vec<String>, msg_size: usize) -> io::Result<AlarmQueue> {
        Ok(AlarmQueue {
            queue: Queue::new(0)?,
            names,
            msg_size,
        })
    }

    /// Whether an alarm is called `name`.
    pub fn knows(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// `alarm-msg-size`.
    pub fn msg_size(&self) -> usize {
        self.msg_size
    }

    /// The largest packet a sender may write (longest name, NUL, longest message).
    pub fn packet_size(&self) -> usize {
        self.names.iter().map(String::len).max().unwrap_or(0) + 1 + self.msg_size
    }

    /// Queue alarm `name` with `msg` for the master (`uwsgi.alarm`). Unknown alarms and
    /// messages longer than `alarm-msg-size` are refused before anything is sent.
    pub fn raise(&self, name: &str, msg: &[u8]) -> Result<(), AlarmError> {
        if !self.knows(name) {
            return Err(AlarmError::Unknown(name.to_string()));
        }
        if msg.len() > self.msg_size {
            return Err(AlarmError::TooLong {
                len: msg.len(),
                max: self.msg_size,
            });
        }
        Ok(self.queue.send(&encode(name, msg))?)
    }

    /// A sender of its own (a duplicate of the sending end), for a thread.
    pub fn sender(&self) -> io::Result<AlarmSender> {
        Ok(AlarmSender {
            fd: self.queue_send_fd()?,
            msg_size: self.msg_size,
        })
    }

    fn queue_send_fd(&self) -> io::Result<OwnedFd> {
        self.queue.send_fd().try_clone_to_owned()
    }

    /// The end the master polls.
    pub fn recv_fd(&self) -> BorrowedFd<'_> {
        self.queue.recv_fd()
    }

    /// Read one waiting alarm into `buf` (at least [`Self::packet_size`] bytes): its name
    /// and message, `Ok(None)` when nothing is waiting. Malformed packets are skipped.
    pub fn try_recv<'b>(&self, buf: &'b mut [u8]) -> io::Result<Option<(&'b str, &'b [u8])>> {
        loop {
            let Some(n) = self.queue.try_recv(buf)? else {
                return Ok(None);
            };
            // A packet without a NUL is not an alarm: skip it.
            if decode(&buf[..n]).is_some() {
                return Ok(decode(&buf[..n]));
            }
        }
    }
}

/// A duplicate of the queue's sending end, owned by whoever holds it (the log thread).
#[derive(Debug)]
pub struct AlarmSender {
    fd: OwnedFd,
    msg_size: usize,
}

impl AlarmSender {
    /// Queue alarm `name` with `msg` cut to `alarm-msg-size` (a log line may be longer).
    /// `name` is not checked: callers send names taken from the configuration.
    pub fn raise_truncated(&self, name: &str, msg: &[u8]) -> Result<(), SendError> {
        let msg = &msg[..msg.len().min(self.msg_size)];
        send_packet(self.fd.as_fd(), &encode(name, msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip() {
        assert_eq!(encode("disk", b"full"), b"disk\0full");
        assert_eq!(decode(b"disk\0full"), Some(("disk", &b"full"[..])));
        assert_eq!(decode(b"disk\0"), Some(("disk", &b""[..])));
        assert_eq!(decode(b"a\0b\0c"), Some(("a", &b"b\0c"[..])));
        assert_eq!(decode(b"nonul"), None);
        assert_eq!(decode(b"\xff\0x"), None);
    }

    #[test]
    fn raise_checks_name_and_size() {
        let q = AlarmQueue::new(vec!["a".into(), "longer".into()], 4).unwrap();
        assert_eq!(q.packet_size(), 6 + 1 + 4);
        q.raise("a", b"1234").unwrap();
        assert!(matches!(q.raise("b", b"x"), Err(AlarmError::Unknown(_))));
        assert!(matches!(
            q.raise("a", b"12345"),
            Err(AlarmError::TooLong { len: 5, max: 4 })
        ));
        let s = q.sender().unwrap();
        s.raise_truncated("longer", b"123456789").unwrap();
        let mut buf = vec![0u8; q.packet_size()];
        assert_eq!(
            q.try_recv(&mut buf).unwrap(),
            Some(("a", &b"1234"[..])),
            "the first"
        );
        assert_eq!(
            q.try_recv(&mut buf).unwrap(),
            Some(("longer", &b"1234"[..])),
            "cut to alarm-msg-size"
        );
        assert_eq!(q.try_recv(&mut buf).unwrap(), None);
    }
}
