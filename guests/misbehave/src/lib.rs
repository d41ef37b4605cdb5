//! Writes, then misbehaves on request.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/test",
        world: "plinth:test/misbehave",
        generate_all,
    });
}

use bindings::Behaviour;
use bindings::plinth::database::types::NewUser;
use bindings::plinth::database::users;

struct Misbehave;

impl bindings::Guest for Misbehave {
    fn write_then(name: String, then: Behaviour) -> Result<String, String> {
        let prefix = name.clone();
        if !name.is_empty() {
            let created = users::create_user(&NewUser {
                email: format!("{name}@example.com"),
                name,
            });
            if let Err(e) = created {
                return Err(format!("{e:?}"));
            }
        }
        match then {
            Behaviour::ReturnNormally => Ok("returned".into()),
            Behaviour::Trap => panic!("misbehave: asked to trap"),
            Behaviour::LoopForever => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Behaviour::Grow(mib) => {
                let mut kept: Vec<Vec<u8>> = Vec::new();
                for _ in 0..mib {
                    kept.push(vec![1u8; 1 << 20]);
                }
                Ok(format!("held {} MiB", std::hint::black_box(&kept).len()))
            }
            Behaviour::WriteMany(n) => {
                for i in 0..n {
                    users::create_user(&NewUser {
                        name: format!("{prefix}many-{i}"),
                        email: format!("{prefix}many-{i}@example.com"),
                    })
                    .map_err(|e| format!("{e:?}"))?;
                }
                Ok(format!("wrote {n}"))
            }
            Behaviour::Sleep(ms) => {
                std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
                Ok(format!("slept {ms} ms"))
            }
            Behaviour::Print(text) => {
                println!("{text}");
                eprintln!("{text} (stderr)");
                Ok("printed".into())
            }
        }
    }
}

bindings::export!(Misbehave with_types_in bindings);
