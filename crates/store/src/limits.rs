//! Every size a caller controls, with its limit. Each is checked before the
//! database is touched; going over one is [`Error::InvalidInput`](crate::Error::InvalidInput).
//!
//! These are storage limits, deliberately generous: plugins apply their own,
//! stricter policy (the auth plugin caps names far below these).

use crate::{Error, Result};

/// Longest user name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest email address, in bytes (RFC 5321's path limit is 256; 320 leaves room).
pub const MAX_EMAIL_BYTES: usize = 320;
/// Longest password hash, in bytes. A PHC Argon2 string is about 100.
pub const MAX_PASSWORD_HASH_BYTES: usize = 1024;
/// Longest avatar (a URL or a reference), in bytes.
pub const MAX_AVATAR_BYTES: usize = 2048;
/// Longest bio, in bytes.
pub const MAX_BIO_BYTES: usize = 4096;
/// Longest identifier: UUIDs, session ids, token ids.
pub const MAX_ID_BYTES: usize = 256;
/// Longest mail subject, in bytes (RFC 5322's line limit).
pub const MAX_MAIL_SUBJECT_BYTES: usize = 998;
/// Longest mail body, in bytes.
pub const MAX_MAIL_BODY_BYTES: usize = 64 * 1024;
/// Longest key of a failure counter, in bytes.
pub const MAX_ATTEMPT_KEY_BYTES: usize = 512;
/// Longest lifetime of a session or token: 400 days.
pub const MAX_TTL_SECONDS: u32 = 400 * 24 * 60 * 60;

/// Checks that `value` is at most `max` bytes (and, when `required`, not empty).
pub(crate) fn check_len(what: &str, value: &str, max: usize, required: bool) -> Result<()> {
    if required && value.is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if value.len() > max {
        return Err(Error::invalid(format!(
            "{what} is {} bytes, over the limit of {max}",
            value.len()
        )));
    }
    Ok(())
}

/// Checks an identifier (non-empty, at most [`MAX_ID_BYTES`]).
pub(crate) fn check_id(what: &str, value: &str) -> Result<()> {
    check_len(what, value, MAX_ID_BYTES, true)
}

/// Checks a lifetime (at least one second, at most [`MAX_TTL_SECONDS`]).
pub(crate) fn check_ttl(ttl_seconds: u32) -> Result<()> {
    if ttl_seconds == 0 || ttl_seconds > MAX_TTL_SECONDS {
        return Err(Error::invalid(format!(
            "ttl of {ttl_seconds} s is outside 1..={MAX_TTL_SECONDS}"
        )));
    }
    Ok(())
}
