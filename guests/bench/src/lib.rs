//! Exports that each isolate one cost, for plinth's benchmarks.

mod bindings {
    wit_bindgen::generate!({
        path: ["../../wit/database", "../../wit/test"],
        world: "plinth:test/bench",
        generate_all,
    });
}

use argon2::{Algorithm, Argon2, Params, Version};
use bindings::plinth::database::users;

struct Bench;

impl bindings::Guest for Bench {
    fn noop() {}

    fn argon2_hash(password: String) -> u64 {
        let Ok(params) = Params::new(19_456, 2, 1, Some(32)) else {
            return 0;
        };
        let mut out = [0u8; 32];
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        if argon
            .hash_password_into(password.as_bytes(), b"plinth-bench-salt", &mut out)
            .is_err()
        {
            return 0;
        }
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_le_bytes(first)
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
