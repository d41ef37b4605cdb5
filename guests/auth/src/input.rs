//! Emails and names.

use alloc::format;
use alloc::string::{String, ToString};
use unicode_normalization::UnicodeNormalization;

/// Most bytes in an email address.
pub const MAX_EMAIL_BYTES: usize = 255;
/// Fewest characters in a name.
pub const MIN_NAME_CHARS: usize = 3;
/// Most characters in a name.
pub const MAX_NAME_CHARS: usize = 32;
/// Most bytes accepted for a name before normalising.
pub const MAX_NAME_BYTES: usize = 256;

/// Trims and lowercases an email, then checks it loosely: one `@`, a
/// non-empty local part, a dot inside the domain, no spaces, at most
/// [`MAX_EMAIL_BYTES`].
pub fn email(raw: &str) -> Result<String, String> {
    if raw.len() > 4 * MAX_EMAIL_BYTES {
        return Err(format!(
            "an email address is at most {MAX_EMAIL_BYTES} bytes"
        ));
    }
    let email = raw.trim().to_lowercase();
    if email.len() > MAX_EMAIL_BYTES {
        return Err(format!(
            "an email address is at most {MAX_EMAIL_BYTES} bytes"
        ));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an email address has no spaces".into());
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("an email address needs an @".into());
    };
    if domain.contains('@') {
        return Err("an email address has one @".into());
    }
    if local.is_empty() {
        return Err("an email address needs something before the @".into());
    }
    let dot = domain.find('.');
    if dot.is_none_or(|i| i == 0 || i == domain.len() - 1) || domain.ends_with('.') {
        return Err("the domain of an email address needs a dot inside it".into());
    }
    Ok(email)
}

/// NFKC-normalises and trims a name, then checks it: 3 to 32 characters,
/// letters, digits, `_`, `-` and `.`, starting with a letter or digit.
pub fn name(raw: &str) -> Result<String, String> {
    if raw.len() > MAX_NAME_BYTES {
        return Err(format!("a name has at most {MAX_NAME_CHARS} characters"));
    }
    let name: String = raw.nfkc().collect::<String>().trim().to_string();
    let chars = name.chars().count();
    if chars < MIN_NAME_CHARS {
        return Err(format!("a name needs at least {MIN_NAME_CHARS} characters"));
    }
    if chars > MAX_NAME_CHARS {
        return Err(format!("a name has at most {MAX_NAME_CHARS} characters"));
    }
    if !name.chars().next().is_some_and(char::is_alphanumeric) {
        return Err("a name starts with a letter or a digit".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "a name may not contain {bad:?}; use letters, digits, _, - and ."
        ));
    }
    Ok(name)
}
