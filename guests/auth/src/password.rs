//! Password policy and hashing: NIST SP 800-63B and OWASP's Password
//! Storage cheat sheet.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use unicode_normalization::UnicodeNormalization;

/// Argon2id memory cost in KiB (OWASP's first recommended setting).
pub const M_COST_KIB: u32 = 19_456;
/// Argon2id iterations.
pub const T_COST: u32 = 2;
/// Argon2id lanes.
pub const P_COST: u32 = 1;

/// Fewest characters (Unicode code points, after NFKC) in a new password.
pub const MIN_CHARS: usize = 8;
/// Most characters in a password. Nothing longer is truncated: it is refused.
pub const MAX_CHARS: usize = 256;
/// Most bytes accepted before normalising, so that a huge input costs nothing.
pub const MAX_BYTES: usize = 1024;

static COMMON: &str = include_str!("../data/common-passwords.txt");

fn argon2() -> Result<Argon2<'static>, String> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|e| e.to_string())?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// NFKC-normalises a password after checking its size in bytes.
pub fn normalize(password: &str) -> Result<String, String> {
    if password.len() > MAX_BYTES {
        return Err(format!("a password is at most {MAX_BYTES} bytes"));
    }
    Ok(password.nfkc().collect())
}

/// Checks a new (normalised) password against the policy: length in code
/// points, the common-password list, and the account's own name and email.
/// No composition rules.
pub fn check_new(password: &str, name: &str, email: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(format!("a password needs at least {MIN_CHARS} characters"));
    }
    if chars > MAX_CHARS {
        return Err(format!("a password has at most {MAX_CHARS} characters"));
    }
    let lower = password.to_lowercase();
    if COMMON.lines().any(|common| common == lower) {
        return Err("this password is one of the most common ones".into());
    }
    let local = email.split('@').next().unwrap_or(email).to_lowercase();
    if lower == name.to_lowercase() || lower == local || lower == email.to_lowercase() {
        return Err("a password must not be the name or the email address".into());
    }
    Ok(())
}

/// Hashes a password into a PHC string with the current parameters.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// What checking a password against a stored hash found.
pub struct Verified {
    /// Whether it matched.
    pub ok: bool,
    /// Whether the stored hash used other parameters than the current ones.
    pub outdated: bool,
}

/// Verifies a password against a stored PHC string (whatever its parameters).
pub fn verify(password: &str, stored: &str) -> Result<Verified, String> {
    let parsed = PasswordHash::new(stored).map_err(|e| format!("stored hash: {e}"))?;
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    let current = Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|e| e.to_string())?;
    let outdated = parsed.algorithm.as_str() != "argon2id"
        || parsed.version != Some(0x13)
        || Params::try_from(&parsed).map_or(true, |p| {
            p.m_cost() != current.m_cost()
                || p.t_cost() != current.t_cost()
                || p.p_cost() != current.p_cost()
        });
    Ok(Verified { ok, outdated })
}

/// Spends what a verify costs without an account to verify against, so that
/// an unknown email takes as long as a wrong password.
pub fn dummy_verify(password: &str) -> Result<(), String> {
    let mut out = [0u8; 32];
    argon2()?
        .hash_password_into(password.as_bytes(), b"plinth-no-such-account", &mut out)
        .map_err(|e| e.to_string())
}
