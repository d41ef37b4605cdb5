//! Exports that each isolate one cost, for plinth's benchmarks.

#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use plinth_guest_rt as _;

mod heap;

#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/test",
        world: "plinth:test/bench",
        generate_all,
    });
}

use argon2::{Algorithm, Argon2, Params, Version};
use bindings::plinth::database::users;

struct Bench;

const SALT: &[u8] = b"plinth-bench-salt";

/// The first 8 bytes of a tag, as a check value.
fn check_value(tag: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&tag[..8]);
    u64::from_le_bytes(first)
}

impl bindings::Guest for Bench {
    fn noop() {}

    fn argon2_hash(password: String) -> u64 {
        let params = plinth_argon2::Params {
            m_cost: 19_456,
            t_cost: 2,
            p_cost: 1,
        };
        let mut out = [0u8; 32];
        match plinth_argon2::argon2id(password.as_bytes(), SALT, params, &mut out) {
            Ok(()) => check_value(&out),
            Err(_) => 0,
        }
    }

    fn argon2_crate_hash(password: String) -> u64 {
        let Ok(params) = Params::new(19_456, 2, 1, Some(32)) else {
            return 0;
        };
        let mut out = [0u8; 32];
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        match argon.hash_password_into(password.as_bytes(), SALT, &mut out) {
            Ok(()) => check_value(&out),
            Err(_) => 0,
        }
    }

    fn argon2id(
        password: Vec<u8>,
        salt: Vec<u8>,
        m_cost: u32,
        t_cost: u32,
        p_cost: u32,
        out_len: u32,
    ) -> Result<Vec<u8>, String> {
        let params = plinth_argon2::Params {
            m_cost,
            t_cost,
            p_cost,
        };
        let mut out = alloc::vec![0u8; out_len as usize];
        plinth_argon2::argon2id(&password, &salt, params, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn panic_with(message: String) {
        panic!("{message}")
    }

    fn heap_check() -> Result<u32, String> {
        heap::check()
    }

    fn lookup_by_email(email: String, times: u32) -> Result<u32, String> {
        let mut found = 0;
        for _ in 0..times {
            match users::get_user_by_email(&email) {
                Ok(_) => found += 1,
                Err(users::Error::NotFound) => {}
                Err(e) => return Err(format!("{e:?}")),
            }
        }
        Ok(found)
    }
}

bindings::export!(Bench with_types_in bindings);
