//! Secrets: random tokens, their SHA-256, constant-time comparison.

use alloc::format;
use alloc::string::String;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in a token: 160 bits, from the host's CSPRNG (`wasi:random`).
pub const TOKEN_BYTES: usize = 20;
/// Length of a token as text: base32 of [`TOKEN_BYTES`].
pub const TOKEN_CHARS: usize = 32;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Which bytes are in [`ALPHABET`], built from it at compile time: checking a
/// token is one load per byte (a search of `ALPHABET` per byte cost ~2 µs a
/// token in wasm, a twentieth of a `validate-session`).
const IN_ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = true;
        i += 1;
    }
    table
};

/// A fresh token: 160 random bits as 32 lowercase base32 characters.
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(base32(&bytes))
}

/// RFC 4648 base32, lowercase, no padding (the input is a multiple of 5 bytes).
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5);
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        for i in (0..8).rev() {
            out.push(char::from(ALPHABET[((n >> (i * 5)) & 31) as usize]));
        }
    }
    out
}

/// Whether `token` has the shape of one of ours (so that garbage never
/// reaches the database).
pub fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_CHARS && token.bytes().all(|b| IN_ALPHABET[usize::from(b)])
}

/// The SHA-256 of a token, in hex: what the database stores instead of it.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    hex
}

/// Compares two secrets (or their hashes) in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}
