//! Decimal integers appended to byte buffers without `core::fmt`, for the per-request paths
//! (response heads and request log lines) where the formatting machinery showed up in
//! profiles.

/// Append `n` in decimal.
#[inline]
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Byte pushes after one reserve: cheaper than a memcpy call for a few digits.
    out.reserve(digits.len() - i);
    for &d in &digits[i..] {
        out.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::push_u64;

    #[test]
    fn formats_like_display() {
        for n in [0, 1, 9, 10, 99, 100, 4096, 65_535, 1_000_000_007, u64::MAX] {
            let mut out = b"x".to_vec();
            push_u64(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }
}
