//! Checks on what an application returns: status line and header fields.
//!
//! The server writes the app's status and headers verbatim, so anything that could end a
//! line (CR, LF) or confuse a peer (NUL, other CTLs) must be refused here; the server then
//! answers 500 and logs, instead of letting the app split the response.

use super::chars::{all_value_bytes, is_token};

/// Why an application's status line was refused.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseSyntaxError {
    /// The status does not start with a 3-digit code in 100..=999 followed by a space or the
    /// end.
    #[error("invalid status code in app status line")]
    BadCode,
    /// The reason phrase contains CR, LF, NUL or another control byte.
    #[error("invalid reason phrase in app status line")]
    BadReason,
}

/// Parse an application status such as `"200 OK"`: three digits in 100..=999, then either
/// nothing, or one space and a reason phrase (possibly empty) with no CTL except HTAB.
pub fn parse_status(status: &[u8]) -> Result<u16, ResponseSyntaxError> {
    let (code, rest) = status
        .split_at_checked(3)
        .ok_or(ResponseSyntaxError::BadCode)?;
    let mut n = 0u16;
    for &c in code {
        if !c.is_ascii_digit() {
            return Err(ResponseSyntaxError::BadCode);
        }
        n = n * 10 + u16::from(c - b'0');
    }
    if n < 100 {
        return Err(ResponseSyntaxError::BadCode);
    }
    match rest {
        [] => Ok(n),
        [b' ', reason @ ..] if all_value_bytes(reason) => Ok(n),
        [b' ', ..] => Err(ResponseSyntaxError::BadReason),
        _ => Err(ResponseSyntaxError::BadCode),
    }
}

/// True if `name` can be sent as a header field name (a non-empty token).
pub fn valid_header_name(name: &[u8]) -> bool {
    is_token(name)
}

/// True if `value` can be sent as a header field value: no CR, LF, NUL or other CTL except
/// HTAB.
pub fn valid_header_value(value: &[u8]) -> bool {
    all_value_bytes(value)
}
