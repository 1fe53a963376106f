//! The spool file format: a 4-byte uwsgi header `(17, len(vars) LE, 0)`, the vars block,
//! then the raw body up to the end of the file.
//!
//! The vars codec is `ruwsgi-proto`'s; this module only adds the header rule and the body.
//! Parsing checks everything before copying (a hostile or truncated file is an error, never
//! a panic).

use ruwsgi_proto::uwsgi::{self, modifier, Limits, HEADER_LEN, MAX_DATASIZE};
use ruwsgi_proto::Vars;

use crate::error::SpoolError;

/// Every task file name starts with this; other names in a spooler directory are ignored.
pub const PREFIX: &str = "uwsgi_spoolfile_on_";

/// A parsed spool file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The spool variables, in file order.
    pub vars: Vec<(Vec<u8>, Vec<u8>)>,
    /// The raw body; `None` when the file ends with the vars.
    pub body: Option<Vec<u8>>,
}

/// The limits used for spool files: a whole 64 KiB block, as many pairs as fit.
fn limits() -> Limits {
    Limits {
        buffer_size: MAX_DATASIZE,
        max_vars: MAX_DATASIZE / 4 + 1,
    }
}

/// The bytes of a spool file for `vars` and `body`. Errors: an empty key, an item or a
/// block over 65535 bytes.
pub fn encode(vars: &Vars, body: &[u8]) -> Result<Vec<u8>, SpoolError> {
    let size = uwsgi::vars_block_len(vars).map_err(|e| SpoolError::BadVars(e.to_string()))?;
    if size > MAX_DATASIZE {
        return Err(SpoolError::TooLarge(size));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + size + body.len());
    uwsgi::encode_packet(modifier::SPOOLER, 0, vars, &mut out)
        .map_err(|e| SpoolError::BadVars(e.to_string()))?;
    out.extend_from_slice(body);
    Ok(out)
}

/// The bytes of a spool file whose vars block is `block` as received (remote enqueue),
/// checked to be a valid vars block first.
pub fn encode_block(block: &[u8]) -> Result<Vec<u8>, SpoolError> {
    if block.len() > MAX_DATASIZE {
        return Err(SpoolError::TooLarge(block.len()));
    }
    let mut vars = Vars::new();
    uwsgi::parse_vars(block, &limits(), &mut vars)
        .map_err(|e| SpoolError::BadVars(e.to_string()))?;
    encode(&vars, &[])
}

/// Parse a spool file; `modifiers` are the accepted modifier1 values (17 for a task; 0 and
/// 17 for `uwsgi.parsefile`).
pub fn parse_with(bytes: &[u8], modifiers: &[u8]) -> Result<Task, SpoolError> {
    let header = uwsgi::parse_header(bytes)
        .ok_or_else(|| SpoolError::Format(format!("{} bytes, no header", bytes.len())))?;
    if !modifiers.contains(&header.modifier1) {
        return Err(SpoolError::Format(format!(
            "modifier1 {} in the header",
            header.modifier1
        )));
    }
    let end = header.packet_len();
    if bytes.len() < end {
        return Err(SpoolError::Format(format!(
            "the header announces {} bytes of vars, the file has {}",
            header.datasize,
            bytes.len() - HEADER_LEN
        )));
    }
    let mut vars = Vars::new();
    uwsgi::parse_vars(&bytes[HEADER_LEN..end], &limits(), &mut vars)
        .map_err(|e| SpoolError::Format(e.to_string()))?;
    let body = &bytes[end..];
    Ok(Task {
        vars: vars.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
        body: (!body.is_empty()).then(|| body.to_vec()),
    })
}

/// Parse a task file (modifier1 17).
pub fn parse(bytes: &[u8]) -> Result<Task, SpoolError> {
    parse_with(bytes, &[modifier::SPOOLER])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&[u8], &[u8])]) -> Vars {
        let mut v = Vars::new();
        for (k, val) in pairs {
            v.push(k, val);
        }
        v
    }

    #[test]
    fn round_trip_with_and_without_body() {
        let v = vars(&[(b"a", b"1"), (b"empty", b""), (b"bin", &[0, 255, 10])]);
        let bytes = encode(&v, b"").unwrap();
        assert_eq!(&bytes[..4], &[17, 25, 0, 0]);
        let t = parse(&bytes).unwrap();
        assert_eq!(t.vars[2], (b"bin".to_vec(), vec![0, 255, 10]));
        assert_eq!(t.body, None);
        let bytes = encode(&v, b"the body\0").unwrap();
        assert_eq!(
            parse(&bytes).unwrap().body.as_deref(),
            Some(&b"the body\0"[..])
        );
    }

    #[test]
    fn oversized_and_bad_vars_are_refused() {
        let big = vec![b'x'; 40000];
        let v = vars(&[(b"a", &big), (b"b", &big)]);
        assert!(matches!(encode(&v, b""), Err(SpoolError::TooLarge(_))));
        assert!(matches!(
            encode(&vars(&[(b"", b"x")]), b""),
            Err(SpoolError::BadVars(_))
        ));
    }

    #[test]
    fn garbage_and_truncated_files_are_format_errors() {
        let good = encode(&vars(&[(b"key", b"value")]), b"").unwrap();
        for bad in [
            &b""[..],
            &b"\x11\x00"[..],
            &good[..good.len() - 1],
            &b"hello world, not a spool file"[..],
        ] {
            assert!(matches!(parse(bad), Err(SpoolError::Format(_))), "{bad:?}");
        }
        let mut wrong = good.clone();
        wrong[0] = 0;
        assert!(parse(&wrong).is_err());
        assert!(parse_with(&wrong, &[0, 17]).is_ok());
        // a zero key length inside the block
        let mut zero = good.clone();
        zero[4] = 0;
        assert!(parse(&zero).is_err());
    }

    /// Mutated and random files: parsing never panics, and whatever parses re-encodes to
    /// the same bytes but modifier2 (a deterministic generator, so a failure reproduces).
    #[test]
    fn parse_is_total_and_round_trips() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let good = encode(&vars(&[(b"key", b"value"), (b"k2", b"")]), b"body").unwrap();
        let mut parsed = 0;
        for round in 0..20_000 {
            let mut data = if round % 2 == 0 {
                good.clone()
            } else {
                (0..next() % 64).map(|_| next() as u8).collect()
            };
            for _ in 0..next() % 4 {
                if data.is_empty() {
                    break;
                }
                let i = (next() as usize) % data.len();
                data[i] = next() as u8;
            }
            if next() % 3 == 0 {
                let cut = (next() as usize) % (data.len() + 1);
                data.truncate(cut);
            }
            if let Ok(t) = parse(&data) {
                parsed += 1;
                let mut v = Vars::new();
                for (k, val) in &t.vars {
                    v.push(k, val);
                }
                let mut again = encode(&v, t.body.as_deref().unwrap_or(b"")).unwrap();
                // modifier2 means nothing in a spool file and is not kept
                again[3] = data[3];
                assert_eq!(again, data);
            }
        }
        assert!(parsed > 100, "{parsed}");
    }

    #[test]
    fn remote_blocks_are_checked() {
        let mut block = Vec::new();
        uwsgi::encode_vars(&vars(&[(b"k", b"v")]), &mut block).unwrap();
        let bytes = encode_block(&block).unwrap();
        assert_eq!(
            parse(&bytes).unwrap().vars,
            vec![(b"k".to_vec(), b"v".to_vec())]
        );
        assert!(encode_block(&[0, 0, 1, 0, b'x']).is_err());
    }
}
