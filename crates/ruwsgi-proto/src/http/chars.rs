//! Byte classes of RFC 9110 (tchar, field-value bytes, target bytes) as lookup tables.
//!
//! One 256-entry table with a bit per class keeps the per-byte loops of the head parser to a
//! single load and mask.

const TOKEN: u8 = 1;
const VALUE: u8 = 2;
const TARGET: u8 = 4;

const fn build() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut bits = 0;
        let tchar = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        if tchar {
            bits |= TOKEN;
        }
        // field-vchar / SP / HTAB / obs-text: everything but CTLs (and DEL), HTAB allowed.
        if c == b'\t' || (c >= 0x20 && c != 0x7f) {
            bits |= VALUE;
        }
        // Request-target: visible ASCII only.
        if c > 0x20 && c < 0x7f {
            bits |= TARGET;
        }
        t[i] = bits;
        i += 1;
    }
    t
}

static TABLE: [u8; 256] = build();

/// A `tchar` of RFC 9110 §5.6.2.
#[inline]
pub(crate) fn is_tchar(c: u8) -> bool {
    TABLE[c as usize] & TOKEN != 0
}

/// A byte allowed in a field value: no CTL except HTAB (obs-text allowed).
#[inline]
pub(crate) fn is_value_byte(c: u8) -> bool {
    TABLE[c as usize] & VALUE != 0
}

/// A byte allowed in a request-target: visible ASCII.
#[inline]
pub(crate) fn is_target_byte(c: u8) -> bool {
    TABLE[c as usize] & TARGET != 0
}

/// Non-empty and made of tchars only.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| is_tchar(c))
}

/// Strip leading and trailing SP / HTAB.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| c != b' ' && c != b'\t');
    match start {
        None => &[],
        Some(a) => {
            let b = s
                .iter()
                .rposition(|&c| c != b' ' && c != b'\t')
                .unwrap_or(a);
            &s[a..=b]
        }
    }
}
