//! Byte classes of RFC 9110 (tchar, field-value bytes, target bytes) and of our method rule,
//! as lookup tables.
//!
//! One 256-entry table with a bit per class keeps the per-byte loops of the head parser to a
//! single load and mask.

const TOKEN: u8 = 1;
const VALUE: u8 = 2;
const TARGET: u8 = 4;
const METHOD: u8 = 8;

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
        // Method: a narrower token, upper-case letters, digits, `-`, `_` and `.` only.
        if c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.') {
            bits |= METHOD;
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

/// A byte allowed in a request method: `A-Z`, `0-9`, `-`, `_`, `.` (a subset of tchar).
#[inline]
pub(crate) fn is_method_byte(c: u8) -> bool {
    TABLE[c as usize] & METHOD != 0
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

// Word-at-a-time checks for the long runs of a head (targets and field values): a word with
// no suspicious byte is skipped in one test; a suspicious word is re-checked byte by byte.
const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Some byte of `x` is below `n` (exact for `n <= 128`).
#[inline]
fn has_less(x: u64, n: u8) -> bool {
    x.wrapping_sub(LO * u64::from(n)) & !x & HI != 0
}

/// Some byte of `x` equals `b`.
#[inline]
fn has_byte(x: u64, b: u8) -> bool {
    let y = x ^ (LO * u64::from(b));
    y.wrapping_sub(LO) & !y & HI != 0
}

#[inline]
fn word(s: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[..8]);
    u64::from_le_bytes(w)
}

/// Length of the run of bytes allowed in a field value at the start of `s`.
pub(crate) fn value_run(s: &[u8]) -> usize {
    let suspicious = |x: u64| has_less(x, 0x20) || has_byte(x, 0x7f);
    first_outside(s, suspicious, is_value_byte)
}

/// Every byte of `s` is allowed in a field value.
pub(crate) fn all_value_bytes(s: &[u8]) -> bool {
    value_run(s) == s.len()
}

/// Length of the run of request-target bytes at the start of `s`.
pub(crate) fn target_run(s: &[u8]) -> usize {
    let suspicious = |x: u64| has_less(x, 0x21) || x & HI != 0 || has_byte(x, 0x7f);
    first_outside(s, suspicious, is_target_byte)
}

/// Index of the first byte of `s` that fails `ok` (or `s.len()`); words for which
/// `suspicious` is false are known to pass and are skipped whole.
#[inline]
fn first_outside(s: &[u8], suspicious: impl Fn(u64) -> bool, ok: fn(u8) -> bool) -> usize {
    let mut i = 0;
    while i + 8 <= s.len() {
        if suspicious(word(&s[i..])) {
            if let Some(k) = s[i..i + 8].iter().position(|&c| !ok(c)) {
                return i + k;
            }
        }
        i += 8;
    }
    i + s[i..].iter().position(|&c| !ok(c)).unwrap_or(s.len() - i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_bytes_are_upper_case_tchars() {
        let want: Vec<u8> = (b'A'..=b'Z').chain(b'0'..=b'9').chain(*b"-_.").collect();
        for b in 0..=255u8 {
            assert_eq!(is_method_byte(b), want.contains(&b), "{b:#x}");
            assert!(!is_method_byte(b) || is_tchar(b), "{b:#x}");
        }
    }

    #[test]
    fn word_checks_agree_with_the_table() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut s = *b"abcdefghij";
                s[at] = b;
                assert_eq!(all_value_bytes(&s), is_value_byte(b), "{b:#x} at {at}");
                let want = if is_target_byte(b) { s.len() } else { at };
                assert_eq!(target_run(&s), want, "{b:#x} at {at}");
            }
        }
    }
}
