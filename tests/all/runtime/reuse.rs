//! A manifest that opts into reuse: calls in turn share a live instance,
//! each still its own unit of work; an instance that failed, grew past
//! its bound or served its share is dropped, never reused.

use anyhow::{Result, ensure};
use plinth_auth::AuthError;
use plinth_guests::{BENCH, DB_TEST, MISBEHAVE};
use plinth_host::{Error, Manifest, Reuse, Val};

use crate::misbehave::{case, write_then};
use crate::util::{Fixture, ok, refused};

const PW: &str = "correct horse battery staple";

fn misbehave(f: &Fixture, reuse: Reuse) -> Result<plinth_host::Plugin> {
    let manifest = Manifest::from_file(MISBEHAVE.manifest.as_ref())?.reuse(Some(reuse));
    f.load_with(MISBEHAVE, manifest)
}

#[test]
fn auths_manifest_reuses_instances_and_bounds_them() -> Result<()> {
    let shipped = Manifest::from_file(plinth_guests::AUTH.manifest.as_ref())?;
    ensure!(
        shipped.reuse
            == Some(Reuse {
                max_calls: 1000,
                max_memory_bytes: 1 << 20,
                idle: 8,
            }),
        "{:?}",
        shipped.reuse
    );
    // The other shipped plugins take a fresh instance for every call.
    for guest in [DB_TEST, BENCH, MISBEHAVE] {
        ensure!(
            Manifest::from_file(guest.manifest.as_ref())?
                .reuse
                .is_none()
        );
    }
    let defaults = Manifest::from_toml("name = \"x\"\n[reuse]\n", "x.toml")?;
    ensure!(defaults.reuse == Some(Reuse::default()));
    Ok(())
}

#[test]
fn calls_in_turn_share_one_instance_each_its_own_unit_of_work() -> Result<()> {
    let f = Fixture::new()?;
    let auth = f.auth()?;
    ok(auth.sign_up("ada", "ada@example.com", PW))?;
    let token = ok(auth.sign_in("ada@example.com", PW))?.token;
    let plugin = auth.plugin();
    let made = plugin.instantiations();
    for _ in 0..5 {
        ensure!(ok(auth.validate_session(&token))?.user.name == "ada");
    }
    ensure!(
        plugin.instantiations() == made + 1,
        "one instance for five calls"
    );
    ensure!(plugin.idle_instances() == 1);
    // A write in one call is committed when it returns, and the next call
    // on the same instance reads it.
    let second = ok(auth.sign_in("ada@example.com", PW))?.token;
    ok(auth.sign_out(&token))?;
    ensure!(refused(auth.validate_session(&token))? == AuthError::SessionExpired);
    ensure!(ok(auth.validate_session(&second))?.user.name == "ada");
    ensure!(f.rows("sessions")? == 1);
    Ok(())
}

#[test]
fn an_instance_that_ran_argon2_is_dropped_after_its_call() -> Result<()> {
    let f = Fixture::new()?;
    let auth = f.auth()?;
    let plugin = auth.plugin();
    ok(auth.sign_up("ada", "ada@example.com", PW))?;
    // Argon2 grew the instance's memory by 19 MiB, past auth's 1 MiB.
    ensure!(plugin.idle_instances() == 0);
    let token = ok(auth.sign_in("ada@example.com", PW))?.token;
    ensure!(plugin.idle_instances() == 0);
    ok(auth.validate_session(&token))?;
    ensure!(plugin.idle_instances() == 1);
    let made = plugin.instantiations();
    // The sign-in takes the idle instance, runs Argon2 in it, and drops it.
    ok(auth.sign_in("ada@example.com", PW))?;
    ensure!(plugin.instantiations() == made);
    ensure!(plugin.idle_instances() == 0);
    ok(auth.validate_session(&token))?;
    ensure!(plugin.instantiations() == made + 1);
    Ok(())
}

#[test]
fn a_call_that_fails_drops_its_instance_and_keeps_nothing_it_wrote() -> Result<()> {
    let f = Fixture::new()?;
    let p = misbehave(&f, Reuse::default())?;
    let exists = |name: &str| -> Result<bool> {
        Ok(f.sql_i64("SELECT COUNT(*) FROM users WHERE name = ?1", &[name])? == 1)
    };
    write_then(&p, "kept", case("return-normally"))?;
    ensure!(p.instantiations() == 1 && p.idle_instances() == 1);
    let failures = [
        ("trapped", case("trap")),
        ("looped", case("loop-forever")),
        (
            "grown",
            Val::Variant("grow".into(), Some(Box::new(Val::U32(64)))),
        ),
    ];
    for (i, (name, behaviour)) in failures.into_iter().enumerate() {
        match write_then(&p, name, behaviour) {
            Err(Error::Trap { .. } | Error::TimedOut { .. } | Error::MemoryLimit { .. }) => {}
            other => anyhow::bail!("{name}: expected a typed failure, got {other:?}"),
        }
        ensure!(!exists(name)?, "{name}: the failed call's write was kept");
        ensure!(
            p.idle_instances() == 0,
            "{name}: the failed instance was kept"
        );
        // The first failure ran on the idle instance; each later one on a
        // fresh one, because the instance before it was dropped.
        ensure!(p.instantiations() == 1 + i as u64, "{name}");
    }
    write_then(&p, "after", case("return-normally"))?;
    ensure!(exists("kept")? && exists("after")?);
    ensure!(p.instantiations() == 4 && p.idle_instances() == 1);
    Ok(())
}

#[test]
fn an_instance_serves_at_most_its_share_of_calls() -> Result<()> {
    let f = Fixture::new()?;
    let p = misbehave(
        &f,
        Reuse {
            max_calls: 3,
            ..Reuse::default()
        },
    )?;
    for i in 0..7 {
        write_then(&p, &format!("u{i}"), case("return-normally"))?;
    }
    // Calls 1-3, 4-6 and 7 each on their own instance.
    ensure!(p.instantiations() == 3, "{}", p.instantiations());
    ensure!(f.rows("users")? == 7);
    Ok(())
}

#[test]
fn no_more_than_idle_instances_wait_between_calls() -> Result<()> {
    let f = Fixture::new()?;
    let manifest = Manifest::from_file(plinth_guests::AUTH.manifest.as_ref())?.reuse(Some(Reuse {
        idle: 2,
        ..Reuse::default()
    }));
    let auth = plinth_auth::AuthPlugin::new(f.load_with(plinth_guests::AUTH, manifest)?)?;
    ok(auth.sign_up("ada", "ada@example.com", PW))?;
    let token = ok(auth.sign_in("ada@example.com", PW))?.token;
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (auth, token) = (auth.clone(), token.clone());
            std::thread::spawn(move || -> Result<()> {
                for _ in 0..100 {
                    ensure!(ok(auth.validate_session(&token))?.user.name == "ada");
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
    }
    let plugin = auth.plugin();
    ensure!(plugin.idle_instances() <= 2, "{}", plugin.idle_instances());
    ensure!(plugin.instantiations() < 600, "{}", plugin.instantiations());
    Ok(())
}
