//! Password policy and hashing: NIST SP 800-63B and OWASP's Password
//! Storage cheat sheet.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use argon2::password_hash::{Output, PasswordHash, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use subtle::ConstantTimeEq;
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

/// The current parameters.
const CURRENT: plinth_argon2::Params = plinth_argon2::Params {
    m_cost: M_COST_KIB,
    t_cost: T_COST,
    p_cost: P_COST,
};

/// Bytes of a new hash's tag.
const TAG_BYTES: usize = 32;

/// Argon2id of `password` with `salt`, by the guests' SIMD128 implementation
/// (the same function as the `argon2` crate, about 1.5× faster in wasm).
fn argon2id(
    password: &[u8],
    salt: &[u8],
    params: plinth_argon2::Params,
    out: &mut [u8],
) -> Result<(), String> {
    plinth_argon2::argon2id(password, salt, params, out).map_err(|e| e.to_string())
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

/// Hashes a password into a PHC string with the current parameters:
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<tag>`, 16 random bytes of salt.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    let mut tag = [0u8; TAG_BYTES];
    argon2id(password.as_bytes(), &salt, CURRENT, &mut tag)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    let tag = Output::new(&tag).map_err(|e| e.to_string())?;
    Ok(format!(
        "$argon2id$v={}$m={M_COST_KIB},t={T_COST},p={P_COST}${salt}${tag}",
        plinth_argon2::VERSION
    ))
}

/// What checking a password against a stored hash found.
pub struct Verified {
    /// Whether it matched.
    pub ok: bool,
    /// Whether the stored hash used other parameters than the current ones.
    pub outdated: bool,
}

/// Verifies a password against a stored PHC string (whatever its parameters).
/// Argon2id version 0x13 without a secret or associated data — every hash
/// plinth makes — is checked by the SIMD128 implementation with a constant
/// time comparison; anything else by the `argon2` crate.
pub fn verify(password: &str, stored: &str) -> Result<Verified, String> {
    let parsed = PasswordHash::new(stored).map_err(|e| format!("stored hash: {e}"))?;
    let params = Params::try_from(&parsed).ok();
    let ours = match (&params, parsed.salt, parsed.hash) {
        (Some(p), Some(salt), Some(tag))
            if parsed.algorithm.as_str() == "argon2id"
                && parsed.version == Some(plinth_argon2::VERSION)
                && p.keyid().is_empty()
                && p.data().is_empty() =>
        {
            Some((p, salt, tag))
        }
        _ => None,
    };
    let ok = match ours {
        Some((p, salt, tag)) => {
            let mut salt_buf = [0u8; 64];
            let salt = salt
                .decode_b64(&mut salt_buf)
                .map_err(|e| format!("stored hash: {e}"))?;
            let mut computed = vec![0u8; tag.len()];
            let params = plinth_argon2::Params {
                m_cost: p.m_cost(),
                t_cost: p.t_cost(),
                p_cost: p.p_cost(),
            };
            argon2id(password.as_bytes(), salt, params, &mut computed)?;
            bool::from(computed.as_slice().ct_eq(tag.as_bytes()))
        }
        None => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
    };
    let outdated = parsed.algorithm.as_str() != "argon2id"
        || parsed.version != Some(plinth_argon2::VERSION)
        || params.is_none_or(|p| {
            p.m_cost() != M_COST_KIB || p.t_cost() != T_COST || p.p_cost() != P_COST
        });
    Ok(Verified { ok, outdated })
}

/// Spends what a verify costs without an account to verify against, so that
/// an unknown email takes as long as a wrong password.
pub fn dummy_verify(password: &str) -> Result<(), String> {
    let mut out = [0u8; TAG_BYTES];
    argon2id(
        password.as_bytes(),
        b"plinth-no-such-account",
        CURRENT,
        &mut out,
    )
}
