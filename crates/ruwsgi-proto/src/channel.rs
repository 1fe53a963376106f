//! Messages on the command channel between the master and each of its children.
//!
//! Every child (worker, mule, spooler) shares one `AF_UNIX`/`SOCK_SEQPACKET` socket pair
//! with the master, so each message is exactly one packet: the codec never reassembles or
//! splits, and a packet is decoded whole or rejected whole. A packet is a 4-byte header —
//! [`MAGIC`], [`VERSION`], the message kind, the payload length — and at most
//! [`MAX_PAYLOAD`] payload bytes, so a receiver reads into a [`MAX_MESSAGE`]-byte buffer
//! and never allocates from what a peer claims.
//!
//! Directions: child → master is [`ChildRequest`]. Master → child carries nothing yet: the
//! signal framework will use it (a uWSGI signal number to run, a mule message); until then
//! a child treats any packet from the master as unknown and only its end-of-file (the master
//! is gone) matters.
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
}

impl ChildRequest {
    fn kind(self) -> u8 {
        match self {
            ChildRequest::ReloadInstance => 1,
            ChildRequest::StopInstance => 2,
            ChildRequest::ReloadMe => 3,
        }
    }

    fn from_kind(kind: u8) -> Option<ChildRequest> {
        Some(match kind {
            1 => ChildRequest::ReloadInstance,
            2 => ChildRequest::StopInstance,
            3 => ChildRequest::ReloadMe,
            _ => return None,
        })
    }

    /// The packet for this request (no payload today).
    pub fn encode(self) -> [u8; HEADER_LEN] {
        [MAGIC, VERSION, self.kind(), 0]
    }

    /// Decode one whole packet.
    pub fn decode(packet: &[u8]) -> Result<ChildRequest, DecodeError> {
        let payload = check_header(packet)?;
        let kind = packet[2];
        let request = ChildRequest::from_kind(kind).ok_or(DecodeError::UnknownKind(kind))?;
        if !payload.is_empty() {
            return Err(DecodeError::UnexpectedPayload {
                kind,
                len: payload.len(),
            });
        }
        Ok(request)
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

    const ALL: [ChildRequest; 3] = [
        ChildRequest::ReloadInstance,
        ChildRequest::StopInstance,
        ChildRequest::ReloadMe,
    ];

    #[test]
    fn every_request_round_trips() {
        for r in ALL {
            let packet = r.encode();
            assert!(packet.len() <= MAX_MESSAGE);
            assert_eq!(ChildRequest::decode(&packet), Ok(r));
        }
    }

    #[test]
    fn truncated_packets_are_rejected() {
        let packet = ChildRequest::ReloadMe.encode();
        for len in 0..packet.len() {
            assert_eq!(
                ChildRequest::decode(&packet[..len]),
                Err(DecodeError::Truncated { len })
            );
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let ok = ChildRequest::StopInstance.encode();
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

    /// Every short input decodes or fails without panicking, and only the three real
    /// packets decode.
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
        assert_eq!(decoded, ALL.len());
    }
}
