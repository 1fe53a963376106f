//! Messages on the command channel between the master and each of its children.
//!
//! Every child (worker, mule, spooler) shares one `AF_UNIX`/`SOCK_SEQPACKET` socket pair
//! with the master, so each message is exactly one packet: the codec never reassembles or
//! splits, and a packet is decoded whole or rejected whole. A packet is a 4-byte header —
//! [`MAGIC`], [`VERSION`], the message kind, the payload length — and at most
//! [`MAX_PAYLOAD`] payload bytes, so a receiver reads into a [`MAX_MESSAGE`]-byte buffer
//! and never allocates from what a peer claims.
//!
//! Directions: child → master is [`ChildRequest`] (reloads, stops, a uWSGI signal to
//! route, "the timer tables changed"); master → child is [`MasterMessage`] (a uWSGI signal
//! for this process to handle). Each side's end-of-file means the other process is gone.
//!
//! Decoding never panics: a bad packet is a [`DecodeError`] the receiver logs and drops.

/// First byte of every packet.
pub const MAGIC: u8 = 0xC5;
/// Second byte: the codec version; a packet of another version is rejected.
pub const VERSION: u8 = 1;
/// Header bytes before the payload.
pub const HEADER_LEN: usize = 4;
/// Largest payload a packet may carry.
pub const MAX_PAYLOAD: usize = 60;
/// Largest packet: a receive buffer of this size always holds a whole valid message.
pub const MAX_MESSAGE: usize = HEADER_LEN + MAX_PAYLOAD;

/// One encoded message: at most a header and a one-byte payload today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    bytes: [u8; HEADER_LEN + 1],
    len: u8,
}

impl Packet {
    fn new(kind: u8, payload: Option<u8>) -> Packet {
        let mut bytes = [MAGIC, VERSION, kind, 0, 0];
        let len = match payload {
            Some(b) => {
                bytes[3] = 1;
                bytes[4] = b;
                HEADER_LEN + 1
            }
            None => HEADER_LEN,
        };
        Packet {
            bytes,
            len: len as u8,
        }
    }

    /// The bytes to send, as one packet.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What a child asks of the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildRequest {
    /// Reload the whole instance gracefully (`uwsgi.reload()`), as `SIGHUP` does.
    ReloadInstance,
    /// Stop the whole instance gracefully (`uwsgi.stop()`).
    StopInstance,
    /// Replace the sender gracefully: it is finishing its requests and will exit; the master
    /// bounds that with its reload mercy (`SIGKILL` after it) and respawns the slot as a
    /// recycle once it is gone (a worker that reached `max-requests`).
    ReloadMe,
    /// Route uWSGI signal N to its registered target (`uwsgi.signal(N)`, a modifier1 110
    /// packet a worker received).
    Signal(u8),
    /// The shared tables of timers, crons and file monitors gained entries: read them now
    /// rather than on the next loop turn.
    Scheduled,
}

impl ChildRequest {
    fn parts(self) -> (u8, Option<u8>) {
        match self {
            ChildRequest::ReloadInstance => (1, None),
            ChildRequest::StopInstance => (2, None),
            ChildRequest::ReloadMe => (3, None),
            ChildRequest::Signal(n) => (4, Some(n)),
            ChildRequest::Scheduled => (5, None),
        }
    }

    /// The packet for this request.
    pub fn encode(self) -> Packet {
        let (kind, payload) = self.parts();
        Packet::new(kind, payload)
    }

    /// Decode one whole packet.
    pub fn decode(packet: &[u8]) -> Result<ChildRequest, DecodeError> {
        let payload = check_header(packet)?;
        let kind = packet[2];
        let request = match kind {
            1 => ChildRequest::ReloadInstance,
            2 => ChildRequest::StopInstance,
            3 => ChildRequest::ReloadMe,
            4 => ChildRequest::Signal(one_byte(kind, payload)?),
            5 => ChildRequest::Scheduled,
            _ => return Err(DecodeError::UnknownKind(kind)),
        };
        if request.parts().1.is_none() && !payload.is_empty() {
            return Err(DecodeError::UnexpectedPayload {
                kind,
                len: payload.len(),
            });
        }
        Ok(request)
    }
}

/// What the master tells a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterMessage {
    /// Handle uWSGI signal N (run this process's handler for it).
    Signal(u8),
}

impl MasterMessage {
    /// The packet for this message.
    pub fn encode(self) -> Packet {
        match self {
            MasterMessage::Signal(n) => Packet::new(1, Some(n)),
        }
    }

    /// Decode one whole packet.
    pub fn decode(packet: &[u8]) -> Result<MasterMessage, DecodeError> {
        let payload = check_header(packet)?;
        match packet[2] {
            1 => Ok(MasterMessage::Signal(one_byte(1, payload)?)),
            kind => Err(DecodeError::UnknownKind(kind)),
        }
    }
}

/// The payload of a message that carries exactly one byte.
fn one_byte(kind: u8, payload: &[u8]) -> Result<u8, DecodeError> {
    match payload {
        [b] => Ok(*b),
        _ => Err(DecodeError::PayloadLength {
            kind,
            len: payload.len(),
        }),
    }
}

/// The header's checks, shared by every message type: returns the payload.
fn check_header(packet: &[u8]) -> Result<&[u8], DecodeError> {
    if packet.len() < HEADER_LEN {
        return Err(DecodeError::Truncated { len: packet.len() });
    }
    if packet.len() > MAX_MESSAGE {
        return Err(DecodeError::TooLong { len: packet.len() });
    }
    if packet[0] != MAGIC {
        return Err(DecodeError::BadMagic(packet[0]));
    }
    if packet[1] != VERSION {
        return Err(DecodeError::BadVersion(packet[1]));
    }
    let declared = usize::from(packet[3]);
    let payload = &packet[HEADER_LEN..];
    if declared != payload.len() {
        return Err(DecodeError::LengthMismatch {
            declared,
            actual: payload.len(),
        });
    }
    Ok(payload)
}

/// Why a packet was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than a header.
    #[error("truncated packet ({len} bytes)")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Longer than [`MAX_MESSAGE`] (a receiver's buffer would have cut it).
    #[error("packet too long ({len} bytes)")]
    TooLong {
        /// Bytes received (at least).
        len: usize,
    },
    /// Not a channel packet.
    #[error("bad magic byte {0:#04x}")]
    BadMagic(u8),
    /// Another codec version.
    #[error("unsupported version {0}")]
    BadVersion(u8),
    /// A kind this side does not know.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// The header's length is not the payload's.
    #[error("payload length {declared} declared, {actual} received")]
    LengthMismatch {
        /// From the header.
        declared: usize,
        /// Received.
        actual: usize,
    },
    /// A one-byte message with another payload length.
    #[error("message kind {kind} takes a one-byte payload ({len} bytes received)")]
    PayloadLength {
        /// The kind.
        kind: u8,
        /// Payload bytes received.
        len: usize,
    },
    /// A payload on a message that has none.
    #[error("message kind {kind} takes no payload ({len} bytes received)")]
    UnexpectedPayload {
        /// The kind.
        kind: u8,
        /// Payload bytes received.
        len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ChildRequest; 5] = [
        ChildRequest::ReloadInstance,
        ChildRequest::StopInstance,
        ChildRequest::ReloadMe,
        ChildRequest::Signal(17),
        ChildRequest::Scheduled,
    ];

    #[test]
    fn every_request_round_trips() {
        for r in ALL {
            let packet = r.encode();
            assert!(packet.as_bytes().len() <= MAX_MESSAGE);
            assert_eq!(ChildRequest::decode(packet.as_bytes()), Ok(r));
        }
        for n in [0u8, 1, 255] {
            let packet = MasterMessage::Signal(n).encode();
            assert_eq!(
                MasterMessage::decode(packet.as_bytes()),
                Ok(MasterMessage::Signal(n))
            );
            // A master message is not a child request of the same kind number.
            assert_ne!(
                ChildRequest::decode(packet.as_bytes()),
                Ok(ChildRequest::Signal(n))
            );
        }
    }

    #[test]
    fn one_byte_messages_want_exactly_one_byte() {
        let bare = [MAGIC, VERSION, 4, 0];
        assert_eq!(
            ChildRequest::decode(&bare),
            Err(DecodeError::PayloadLength { kind: 4, len: 0 })
        );
        let two = [MAGIC, VERSION, 1, 2, 7, 7];
        assert_eq!(
            MasterMessage::decode(&two),
            Err(DecodeError::PayloadLength { kind: 1, len: 2 })
        );
    }

    #[test]
    fn truncated_packets_are_rejected() {
        let packet = ChildRequest::ReloadMe.encode();
        let packet = packet.as_bytes();
        for len in 0..packet.len() {
            assert_eq!(
                ChildRequest::decode(&packet[..len]),
                Err(DecodeError::Truncated { len })
            );
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let ok: [u8; HEADER_LEN] = ChildRequest::StopInstance
            .encode()
            .as_bytes()
            .try_into()
            .unwrap();
        let mut bad = ok;
        bad[0] = b'G';
        assert_eq!(ChildRequest::decode(&bad), Err(DecodeError::BadMagic(b'G')));
        let mut bad = ok;
        bad[1] = 2;
        assert_eq!(ChildRequest::decode(&bad), Err(DecodeError::BadVersion(2)));
        let mut bad = ok;
        bad[2] = 0;
        assert_eq!(ChildRequest::decode(&bad), Err(DecodeError::UnknownKind(0)));
        let mut bad = ok;
        bad[3] = 5;
        assert_eq!(
            ChildRequest::decode(&bad),
            Err(DecodeError::LengthMismatch {
                declared: 5,
                actual: 0
            })
        );
        let mut long = ok.to_vec();
        long.extend_from_slice(&[0; 2]);
        long[3] = 2;
        assert_eq!(
            ChildRequest::decode(&long),
            Err(DecodeError::UnexpectedPayload { kind: 2, len: 2 })
        );
        let huge = vec![MAGIC; MAX_MESSAGE + 1];
        assert_eq!(
            ChildRequest::decode(&huge),
            Err(DecodeError::TooLong {
                len: MAX_MESSAGE + 1
            })
        );
    }

    /// Every short input decodes or fails without panicking, and only the real packets
    /// decode (the payload-free requests, and kind 4 with its one byte).
    #[test]
    fn no_input_panics() {
        let mut decoded = 0;
        for a in [0u8, 1, 2, 3, MAGIC, 0xff] {
            for b in [0u8, VERSION, 2, 0xff] {
                for c in 0u8..=255 {
                    for d in [0u8, 1, 60, 255] {
                        for len in 0..=4 {
                            let packet = [a, b, c, d];
                            if ChildRequest::decode(&packet[..len]).is_ok() {
                                decoded += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(decoded, 4);
    }
}
