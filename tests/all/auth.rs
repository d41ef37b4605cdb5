//! The auth plugin, end to end: real component, real Argon2, a real database
//! (SQLite, or PostgreSQL in `all_postgres`).

use std::time::Instant;

use anyhow::{Result, ensure};
use plinth_auth::{AuthError, ProfileUpdate};
use plinth_host::FieldChange;

use crate::util::{Fixture, ok, refused};

const PW: &str = "correct horse battery staple";
const NEW_PW: &str = "a different long passphrase";
const DAY: u32 = 24 * 3600;

/// A signed-up, verified user: (fixture, auth, email).
fn with_user(name: &str) -> Result<(Fixture, plinth_auth::AuthPlugin, String)> {
    let f = Fixture::new()?;
    let auth = f.auth()?;
    let email = format!("{name}@example.com");
    ok(auth.sign_up(name, &email, PW))?;
    Ok((f, auth, email))
}

mod sign_up {
    use super::*;

    #[test]
    fn sign_up_mails_a_token_that_verifies_the_email() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        let user = ok(auth.sign_in(&email, PW))?.user;
        ensure!(!user.email_verified);
        let token = f.mailed_token(&email)?;
        let verified = ok(auth.verify_email(&token))?;
        ensure!(verified.email_verified && verified.uuid == user.uuid);
        ensure!(
            refused(auth.verify_email(&token))? == AuthError::InvalidToken,
            "single use"
        );
        Ok(())
    }

    #[test]
    fn the_database_keeps_an_argon2id_phc_string_and_only_hashes_of_tokens() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        let session = ok(auth.sign_in(&email, PW))?;
        let hash = f.sql("SELECT password_hash FROM users", &[])?;
        ensure!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        ensure!(!hash.contains(PW));
        // The plugin's Argon2 is the standard one: the argon2 crate accepts its
        // hash for the password, and only for the password.
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let parsed = PasswordHash::new(&hash).map_err(anyhow::Error::msg)?;
        let native = argon2::Argon2::default();
        ensure!(native.verify_password(PW.as_bytes(), &parsed).is_ok());
        ensure!(
            native
                .verify_password(b"not the password", &parsed)
                .is_err()
        );
        // 32 base32 characters: 160 bits.
        ensure!(session.token.len() == 32, "{}", session.token);
        ensure!(f.rows("sessions")? == 1);
        let id = f.sql("SELECT id FROM sessions", &[])?;
        ensure!(id.len() == 64 && id != session.token);
        let mailed = f.mailed_token(&email)?;
        let stored = f.sql("SELECT token FROM email_verification_tokens", &[])?;
        ensure!(
            stored != mailed && stored.len() == 64,
            "the raw token is stored"
        );
        Ok(())
    }

    #[test]
    fn emails_are_trimmed_and_lowercased_and_bad_ones_refused() -> Result<()> {
        let f = Fixture::new()?;
        let auth = f.auth()?;
        let user = ok(auth.sign_up("ada", "  Ada@Example.COM ", PW))?;
        ensure!(user.email == "ada@example.com", "{}", user.email);
        ok(auth.sign_in("ADA@example.com", PW))?;
        for bad in [
            "no-at-sign",
            "two@@example.com",
            "@example.com",
            "ada@localhost",
            "a b@example.com",
            &format!("{}@example.com", "a".repeat(300)),
        ] {
            let e = refused(auth.sign_up("bob", bad, PW))?;
            ensure!(matches!(e, AuthError::InvalidInput(_)), "{bad}: {e:?}");
        }
        ensure!(refused(auth.sign_up("bob", "ADA@example.com", PW))? == AuthError::EmailTaken);
        ensure!(refused(auth.sign_up("ada", "other@example.com", PW))? == AuthError::NameTaken);
        Ok(())
    }

    /// One user cannot pose as another with a name that looks the same:
    /// `Admin` beside `admin` is the same name, and `аdmin` (a Cyrillic а)
    /// mixes scripts.
    #[test]
    fn look_alike_names_are_refused() -> Result<()> {
        let f = Fixture::new()?;
        let auth = f.auth()?;
        ok(auth.sign_up("admin", "admin@example.com", PW))?;
        ensure!(refused(auth.sign_up("Admin", "x@example.com", PW))? == AuthError::NameTaken);
        match refused(auth.sign_up("\u{430}dmin", "y@example.com", PW))? {
            AuthError::InvalidInput(why) => ensure!(why.contains("script"), "{why}"),
            other => anyhow::bail!("expected invalid-input, got {other:?}"),
        }
        ensure!(f.rows("users")? == 1);
        Ok(())
    }

    #[test]
    fn names_are_validated_with_reasons() -> Result<()> {
        let f = Fixture::new()?;
        let auth = f.auth()?;
        for bad in ["ab", "with space", "-dash", &"x".repeat(33), "semi;colon"] {
            match refused(auth.sign_up(bad, "x@example.com", PW))? {
                AuthError::InvalidInput(why) => ensure!(why.contains("name"), "{bad}: {why}"),
                other => anyhow::bail!("{bad}: {other:?}"),
            }
        }
        ok(auth.sign_up("zoë_1.x-y", "zoe@example.com", PW))?;
        Ok(())
    }
}

mod passwords {
    use super::*;

    fn weak(f: &Fixture, name: &str, email: &str, pw: &str) -> Result<String> {
        match refused(f.auth()?.sign_up(name, email, pw))? {
            AuthError::WeakPassword(why) => Ok(why),
            other => anyhow::bail!("{pw:?}: {other:?}"),
        }
    }

    #[test]
    fn short_common_and_personal_passwords_are_refused_with_a_reason() -> Result<()> {
        let f = Fixture::new()?;
        ensure!(weak(&f, "ada", "ada@example.com", "short")?.contains("at least 8"));
        for common in [
            "password",
            "12345678",
            "iloveyou",
            "Password1",
            "qwertyuiop",
        ] {
            ensure!(
                weak(&f, "ada", "ada@example.com", common)?.contains("common"),
                "{common}"
            );
        }
        ensure!(weak(&f, "lovelace1815", "ada@example.com", "Lovelace1815")?.contains("name"));
        ensure!(
            weak(
                &f,
                "ada",
                "countess.of.lovelace@example.com",
                "countess.of.lovelace"
            )?
            .contains("name or the email")
        );
        ensure!(f.rows("users")? == 0);
        Ok(())
    }

    #[test]
    fn length_is_counted_in_code_points_after_nfkc() -> Result<()> {
        let f = Fixture::new()?;
        let auth = f.auth()?;
        // Seven emoji are 28 bytes but 7 characters: too short. Eight pass.
        ensure!(weak(&f, "ada", "ada@example.com", &"🔑".repeat(7))?.contains("at least 8"));
        ok(auth.sign_up("ada", "ada@example.com", &"🔑".repeat(8)))?;
        // Fullwidth letters normalise (NFKC) to ASCII: either form signs in.
        ok(auth.sign_up("bob", "bob@example.com", "ｆｕｌｌｗｉｄｔｈ pass"))?;
        ok(auth.sign_in("bob@example.com", "fullwidth pass"))?;
        Ok(())
    }

    #[test]
    fn long_passwords_are_kept_whole_and_oversized_ones_refused() -> Result<()> {
        let f = Fixture::new()?;
        let auth = f.auth()?;
        let long: String = (0..200)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect();
        ok(auth.sign_up("ada", "ada@example.com", &long))?;
        ok(auth.sign_in("ada@example.com", &long))?;
        // Not truncated: the first 199 characters are a different password.
        ensure!(
            refused(auth.sign_in("ada@example.com", &long[..199]))?
                == AuthError::InvalidCredentials
        );
        ensure!(weak(&f, "bob", "bob@example.com", &"x".repeat(257))?.contains("at most 256"));
        ensure!(weak(&f, "bob", "bob@example.com", &"é".repeat(600))?.contains("1024 bytes"));
        Ok(())
    }

    #[test]
    fn an_outdated_hash_is_upgraded_at_the_next_sign_in() -> Result<()> {
        use argon2::password_hash::{PasswordHasher, SaltString};
        // Older parameters (checked by the plugin's own Argon2id), and an
        // older algorithm and version (checked by the argon2 crate).
        for (algorithm, version, m_cost) in [
            (argon2::Algorithm::Argon2id, argon2::Version::V0x13, 4096),
            (argon2::Algorithm::Argon2i, argon2::Version::V0x10, 2048),
        ] {
            let (f, auth, email) = with_user("ada")?;
            let old = argon2::Argon2::new(
                algorithm,
                version,
                argon2::Params::new(m_cost, 1, 1, None).map_err(anyhow::Error::msg)?,
            )
            .hash_password(
                PW.as_bytes(),
                &SaltString::encode_b64(b"sixteen byte slt").map_err(anyhow::Error::msg)?,
            )
            .map_err(anyhow::Error::msg)?
            .to_string();
            f.sql("UPDATE users SET password_hash = ?1", &[&old])?;
            ensure!(
                matches!(
                    auth.sign_in(&email, "not the password")?,
                    Err(AuthError::InvalidCredentials)
                ),
                "{old} accepted a wrong password"
            );
            let kept = f.sql("SELECT password_hash FROM users", &[])?;
            ensure!(kept == old, "a failed sign-in changed the hash");
            ok(auth.sign_in(&email, PW))?;
            let now = f.sql("SELECT password_hash FROM users", &[])?;
            ensure!(
                now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
                "not upgraded from {old}: {now}"
            );
            ok(auth.sign_in(&email, PW))?;
        }
        Ok(())
    }
}

mod sessions {
    use super::*;

    #[test]
    fn every_sign_in_creates_a_new_session() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        let a = ok(auth.sign_in(&email, PW))?;
        let b = ok(auth.sign_in(&email, PW))?;
        ensure!(a.token != b.token);
        ensure!(f.rows("sessions")? == 2);
        ensure!(ok(auth.validate_session(&a.token))?.user.uuid == a.user.uuid);
        Ok(())
    }

    #[test]
    fn a_session_renews_on_a_sliding_window_and_then_expires() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        let s = ok(auth.sign_in(&email, PW))?;
        ensure!(s.expires_at == f.clock.now() + i64::from(30 * DAY));
        f.clock.advance(10 * DAY);
        // Twenty days left: more than half, no renewal.
        ensure!(ok(auth.validate_session(&s.token))?.expires_at == s.expires_at);
        f.clock.advance(6 * DAY);
        // Fourteen left: renewed to thirty from now.
        let renewed = ok(auth.validate_session(&s.token))?.expires_at;
        ensure!(
            renewed == f.clock.now() + i64::from(30 * DAY),
            "not renewed"
        );
        f.clock.advance(30 * DAY);
        ensure!(refused(auth.validate_session(&s.token))? == AuthError::SessionExpired);
        ensure!(refused(auth.validate_session("not-a-token"))? == AuthError::SessionExpired);
        Ok(())
    }

    #[test]
    fn sign_out_ends_one_session_and_sign_out_everywhere_ends_all() -> Result<()> {
        let (_f, auth, email) = with_user("ada")?;
        let a = ok(auth.sign_in(&email, PW))?;
        let b = ok(auth.sign_in(&email, PW))?;
        let c = ok(auth.sign_in(&email, PW))?;
        ok(auth.sign_out(&a.token))?;
        ok(auth.sign_out(&a.token))?;
        ensure!(refused(auth.validate_session(&a.token))? == AuthError::SessionExpired);
        ok(auth.validate_session(&b.token))?;
        ensure!(ok(auth.sign_out_everywhere(&b.token))? == 2);
        ensure!(refused(auth.validate_session(&c.token))? == AuthError::SessionExpired);
        Ok(())
    }

    #[test]
    fn change_password_revokes_every_session_and_returns_a_new_one() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        let a = ok(auth.sign_in(&email, PW))?;
        let b = ok(auth.sign_in(&email, PW))?;
        ensure!(
            refused(auth.change_password(&a.token, "wrong password", NEW_PW))?
                == AuthError::InvalidCredentials
        );
        ensure!(matches!(
            refused(auth.change_password(&a.token, PW, "password"))?,
            AuthError::WeakPassword(_)
        ));
        let fresh = ok(auth.change_password(&a.token, PW, NEW_PW))?;
        for old in [&a.token, &b.token] {
            ensure!(refused(auth.validate_session(old))? == AuthError::SessionExpired);
        }
        ok(auth.validate_session(&fresh.token))?;
        ensure!(refused(auth.sign_in(&email, PW))? == AuthError::InvalidCredentials);
        ok(auth.sign_in(&email, NEW_PW))?;
        ensure!(f.runtime.db().outbox(Some(&email), 1)?[0].subject == "Your password was changed");
        Ok(())
    }

    #[test]
    fn update_profile_changes_ones_own_profile() -> Result<()> {
        let (_f, auth, email) = with_user("ada")?;
        ok(auth.sign_up("bob", "bob@example.com", PW))?;
        let s = ok(auth.sign_in(&email, PW))?;
        let changes = |name: Option<&str>| ProfileUpdate {
            name: name.map(str::to_string),
            avatar: FieldChange::Set("https://example.com/ada.png".into()),
            bio: FieldChange::Set("notes on the engine".into()),
        };
        ensure!(
            refused(auth.update_profile(&s.token, &changes(Some("bob"))))? == AuthError::NameTaken
        );
        ensure!(matches!(
            refused(auth.update_profile(&s.token, &changes(Some("x y"))))?,
            AuthError::InvalidInput(_)
        ));
        let u = ok(auth.update_profile(&s.token, &changes(Some("lovelace"))))?;
        ensure!(u.name == "lovelace" && u.bio.as_deref() == Some("notes on the engine"));
        ensure!(
            refused(auth.update_profile("bogus", &changes(None)))? == AuthError::SessionExpired
        );
        Ok(())
    }
}

mod reset {
    use super::*;

    #[test]
    fn a_reset_revokes_sessions_verifies_the_email_and_does_not_sign_in() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        let session = ok(auth.sign_in(&email, PW))?;
        ok(auth.request_password_reset(&email))?;
        let token = f.mailed_token(&email)?;
        let sessions_before = f.rows("sessions")?;
        ok(auth.reset_password(&token, NEW_PW))?;
        ensure!(
            sessions_before == 1 && f.rows("sessions")? == 0,
            "sessions survived the reset"
        );
        ensure!(refused(auth.validate_session(&session.token))? == AuthError::SessionExpired);
        ensure!(f.rows("password_reset_tokens")? == 0);
        ensure!(
            refused(auth.reset_password(&token, "yet another passphrase"))?
                == AuthError::InvalidToken
        );
        ensure!(refused(auth.sign_in(&email, PW))? == AuthError::InvalidCredentials);
        let user = ok(auth.sign_in(&email, NEW_PW))?.user;
        ensure!(user.email_verified, "a reset proves the address");
        ensure!(f.runtime.db().outbox(Some(&email), 1)?[0].subject == "Your password was changed");
        Ok(())
    }

    #[test]
    fn a_weak_new_password_keeps_the_token_usable() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        ok(auth.request_password_reset(&email))?;
        let token = f.mailed_token(&email)?;
        ensure!(matches!(
            refused(auth.reset_password(&token, "password"))?,
            AuthError::WeakPassword(_)
        ));
        ok(auth.reset_password(&token, NEW_PW))?;
        Ok(())
    }

    /// Both are mailed; the unknown address gets a notice that no account
    /// uses it, with no token, and no token is stored for it.
    #[test]
    fn reset_answers_the_same_for_known_and_unknown_emails() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        let known = auth.request_password_reset(&email)?;
        let unknown = auth.request_password_reset("nobody@example.com")?;
        ensure!(
            known == unknown && known.is_ok(),
            "{known:?} vs {unknown:?}"
        );
        ensure!(f.runtime.db().outbox(Some(&email), 10)?.len() == 2);
        f.mailed_token(&email)?;
        let notice = f.runtime.db().outbox(Some("nobody@example.com"), 10)?;
        ensure!(notice.len() == 1, "{notice:?}");
        ensure!(
            notice[0].body.contains("no account") && !notice[0].body.contains("token"),
            "{:?}",
            notice[0].body
        );
        ensure!(f.mailed_token("nobody@example.com").is_err());
        ensure!(f.rows("password_reset_tokens")? == 1);
        // The notice is rate limited like any mail, and the answer stays
        // the same past the limit.
        for _ in 0..4 {
            ok(auth.request_password_reset("nobody@example.com"))?;
        }
        ensure!(f.runtime.db().outbox(Some("nobody@example.com"), 10)?.len() == 3);
        ensure!(f.rows("password_reset_tokens")? == 1);
        Ok(())
    }

    /// The time of the answer does not tell either: a request for a known
    /// and for an unknown address do the same work (a mail queued, a unit
    /// committed). Calls of both kinds alternate on several addresses of
    /// each, one mail per address per rate-limit window, and each known call
    /// is compared with the unknown call beside it. On a busy machine a
    /// call's time is bimodal (its commit's sync may wait behind other
    /// writers), which can put one kind's median in the fast mode and the
    /// other's in the slow one; the median of the pairs' ratios is spared,
    /// as a pair that noise splits is as likely split one way as the other.
    /// A measurement spoiled anyway is made again, at most three times: a
    /// real difference shows in every one.
    #[test]
    fn reset_takes_as_long_for_an_unknown_email_as_for_a_known_one() -> Result<()> {
        const ADDRESSES: usize = 5;
        const ROUNDS: usize = 6; // 30 pairs
        const ATTEMPTS: usize = 3;
        let f = Fixture::new()?;
        let auth = f.auth()?;
        let known: Vec<String> = (0..ADDRESSES)
            .map(|i| format!("known{i}@example.com"))
            .collect();
        for (i, email) in known.iter().enumerate() {
            ok(auth.sign_up(&format!("known{i}"), email, PW))?;
        }
        let unknown: Vec<String> = (0..ADDRESSES)
            .map(|i| format!("unknown{i}@example.com"))
            .collect();
        let timed = |email: &str| -> Result<f64> {
            let t = Instant::now();
            ok(auth.request_password_reset(email))?;
            Ok(t.elapsed().as_secs_f64())
        };
        // One call to every address; each round opens a fresh mail window,
        // so that every call mails. Which of a pair goes first alternates.
        let mut rounds = 0;
        let mut round = |ratios: &mut Vec<f64>| -> Result<()> {
            f.clock.advance(601);
            rounds += 1;
            for i in 0..ADDRESSES {
                let (k, u) = if (rounds + i) % 2 == 0 {
                    (timed(&known[i])?, timed(&unknown[i])?)
                } else {
                    let u = timed(&unknown[i])?;
                    (timed(&known[i])?, u)
                };
                ratios.push(k / u);
            }
            Ok(())
        };
        round(&mut Vec::new())?; // warm-up
        let mut seen = Vec::new();
        let mut alike = false;
        while !alike && seen.len() < ATTEMPTS {
            let mut ratios = Vec::new();
            for _ in 0..ROUNDS {
                round(&mut ratios)?;
            }
            ratios.sort_by(f64::total_cmp);
            let median = (ratios[ratios.len() / 2 - 1] + ratios[ratios.len() / 2]) / 2.0;
            alike = (0.67..=1.5).contains(&median);
            seen.push(format!("{median:.2}"));
        }
        let seen = seen.join(", ");
        eprintln!("reset, known/unknown time, median of 30 pairs: {seen}");
        ensure!(alike, "known/unknown time, median of 30 pairs: {seen}");
        // Every call was mailed (none skipped by the limit, which would
        // have made it cheaper), and only known addresses got a token.
        for email in &known {
            ensure!(f.runtime.db().outbox(Some(email), 100)?.len() == rounds + 1);
        }
        for email in &unknown {
            ensure!(f.runtime.db().outbox(Some(email), 100)?.len() == rounds);
        }
        ensure!(f.rows("password_reset_tokens")? == ADDRESSES as i64);
        Ok(())
    }

    #[test]
    fn reset_and_verification_tokens_expire() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        let verification = f.mailed_token(&email)?;
        ok(auth.request_password_reset(&email))?;
        let reset = f.mailed_token(&email)?;
        f.clock.advance(3600);
        ensure!(refused(auth.reset_password(&reset, NEW_PW))? == AuthError::InvalidToken);
        ok(auth.request_password_reset(&email))?;
        let reset = f.mailed_token(&email)?;
        f.clock.advance(3599);
        ok(auth.reset_password(&reset, NEW_PW))?;
        f.clock.advance(DAY - 7199);
        ensure!(refused(auth.verify_email(&verification))? == AuthError::InvalidToken);
        Ok(())
    }

    #[test]
    fn issuing_a_token_deletes_the_older_ones() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        let first_verification = f.mailed_token(&email)?;
        ok(auth.resend_verification(&email))?;
        let second_verification = f.mailed_token(&email)?;
        ensure!(refused(auth.verify_email(&first_verification))? == AuthError::InvalidToken);
        ok(auth.request_password_reset(&email))?;
        let first = f.mailed_token(&email)?;
        f.clock.advance(601); // past the mail rate limit window
        ok(auth.request_password_reset(&email))?;
        let second = f.mailed_token(&email)?;
        ensure!(f.rows("password_reset_tokens")? == 1);
        ensure!(refused(auth.reset_password(&first, NEW_PW))? == AuthError::InvalidToken);
        ok(auth.reset_password(&second, NEW_PW))?;
        ok(auth.verify_email(&second_verification))?;
        Ok(())
    }

    #[test]
    fn two_concurrent_resets_with_one_token_succeed_exactly_once() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        for round in 0..3 {
            f.clock.advance(601);
            ok(auth.request_password_reset(&email))?;
            let token = f.mailed_token(&email)?;
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let handles: Vec<_> = ["first racer pass phrase", "second racer pass phrase"]
                .into_iter()
                .map(|pw| {
                    let (auth, token, barrier) = (auth.clone(), token.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        auth.reset_password(&token, pw)
                    })
                })
                .collect();
            let mut wins = 0;
            for h in handles {
                match h.join().map_err(|_| anyhow::anyhow!("thread panicked"))?? {
                    Ok(()) => wins += 1,
                    Err(AuthError::InvalidToken) => {}
                    Err(other) => anyhow::bail!("round {round}: {other:?}"),
                }
            }
            ensure!(wins == 1, "round {round}: {wins} resets succeeded");
        }
        Ok(())
    }
}

mod enumeration_and_throttling {
    use super::*;

    /// What `call` cost this thread, in seconds: its CPU time where
    /// `/proc/thread-self/schedstat` tells it (Linux), else the time it
    /// took. CPU time leaves out the waits for a core on a busy machine,
    /// which stretch one call and not the next; an Argon2 is CPU work.
    fn cpu_cost<T>(call: impl FnOnce() -> T) -> (T, f64) {
        fn cpu_ns() -> Option<u64> {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        }
        let (cpu, wall) = (cpu_ns(), Instant::now());
        let out = call();
        let took = wall.elapsed().as_secs_f64();
        match (cpu, cpu_ns()) {
            (Some(a), Some(b)) => (out, b.saturating_sub(a) as f64 / 1e9),
            _ => (out, took),
        }
    }

    #[test]
    fn an_unknown_email_gets_the_wrong_password_error_and_costs_an_argon2() -> Result<()> {
        let (_f, auth, email) = with_user("ada")?;
        // Warm up, then time each kind a few times, alternating.
        let _ = auth.sign_in(&email, "wrong password 0")?;
        let (mut wrong, mut unknown) = (f64::MAX, f64::MAX);
        for i in 0..3 {
            let (a, cost) = cpu_cost(|| auth.sign_in(&email, &format!("wrong password {i}")));
            wrong = wrong.min(cost);
            let (b, cost) =
                cpu_cost(|| auth.sign_in(&format!("nobody{i}@example.com"), "some password"));
            unknown = unknown.min(cost);
            let (a, b) = (refused(a)?, refused(b)?);
            ensure!(
                a == AuthError::InvalidCredentials && b == a,
                "{a:?} vs {b:?}"
            );
        }
        // Without the dummy computation an unknown email would cost well
        // under a tenth of a wrong password; with it, the two are alike.
        ensure!(
            unknown > wrong * 0.5,
            "unknown {unknown:.4}s vs wrong {wrong:.4}s"
        );
        Ok(())
    }

    #[test]
    fn consecutive_failures_bring_growing_delays_that_a_success_resets() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        for i in 0..5 {
            ensure!(
                refused(auth.sign_in(&email, &format!("wrong {i} password")))?
                    == AuthError::InvalidCredentials
            );
        }
        // The sixth attempt may come one second after the fifth.
        ensure!(refused(auth.sign_in(&email, PW))? == AuthError::RateLimited(1));
        f.clock.advance(1);
        ensure!(refused(auth.sign_in(&email, "wrong again"))? == AuthError::InvalidCredentials);
        ensure!(refused(auth.sign_in(&email, PW))? == AuthError::RateLimited(2));
        f.clock.advance(2);
        ok(auth.sign_in(&email, PW))?;
        // The success cleared the count.
        ensure!(
            refused(auth.sign_in(&email, "wrong after success"))? == AuthError::InvalidCredentials
        );
        ok(auth.sign_in(&email, PW))?;
        // Unknown emails are throttled the same way.
        for i in 0..5 {
            let _ = refused(auth.sign_in("nobody@example.com", &format!("guess {i}")))?;
        }
        ensure!(refused(auth.sign_in("nobody@example.com", "guess"))? == AuthError::RateLimited(1));
        Ok(())
    }

    #[test]
    fn the_hundredth_consecutive_failure_locks_sign_in_until_a_reset() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        let key = format!("sign-in:{email}");
        f.sql(
            "INSERT INTO failed_attempts (key, count, last_at) VALUES (?1, 99, 0)",
            &[&key],
        )?;
        ensure!(refused(auth.sign_in(&email, "wrong"))? == AuthError::InvalidCredentials);
        f.clock.advance(DAY);
        ensure!(refused(auth.sign_in(&email, PW))? == AuthError::Locked);
        ok(auth.request_password_reset(&email))?;
        ok(auth.reset_password(&f.mailed_token(&email)?, NEW_PW))?;
        ok(auth.sign_in(&email, NEW_PW))?;
        Ok(())
    }

    /// The throttle's check and the recording of the attempt are one step:
    /// of eight wrong sign-ins racing on one throttled account, one runs
    /// Argon2 and is counted; the others are refused before hashing.
    #[test]
    fn parallel_wrong_sign_ins_on_a_throttled_account_run_argon2_once() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        for i in 0..5 {
            ensure!(
                refused(auth.sign_in(&email, &format!("wrong {i} password")))?
                    == AuthError::InvalidCredentials
            );
        }
        f.clock.advance(1); // the sixth attempt is now allowed, once
        let answers: Vec<AuthError> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (auth, email) = (&auth, &email);
                    s.spawn(move || refused(auth.sign_in(email, &format!("racer {i} password"))))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| anyhow::anyhow!("a racer panicked"))?)
                .collect::<Result<_>>()
        })?;
        let hashed = answers
            .iter()
            .filter(|a| **a == AuthError::InvalidCredentials)
            .count();
        let throttled = answers
            .iter()
            .filter(|a| matches!(a, AuthError::RateLimited(_)))
            .count();
        ensure!(hashed == 1 && throttled == 7, "{answers:?}");
        let count = f.sql_i64(
            "SELECT count FROM failed_attempts WHERE key = ?1",
            &[&format!("sign-in:{email}")],
        )?;
        ensure!(count == 6, "{count} failures recorded");
        // A reserved attempt that succeeds clears the count.
        f.clock.advance(2);
        ok(auth.sign_in(&email, PW))?;
        ensure!(f.rows("failed_attempts")? == 0);
        Ok(())
    }

    /// A reset request that cannot be mailed (the recipient's limit is
    /// reached) changes nothing: the link mailed before still works.
    #[test]
    fn a_reset_that_cannot_be_mailed_leaves_the_mailed_token_valid() -> Result<()> {
        let (f, auth, email) = with_user("ada")?; // sign-up mailed once
        ok(auth.request_password_reset(&email))?;
        let mailed = f.mailed_token(&email)?;
        ok(auth.request_password_reset(&email))?; // the third mail in the window
        let latest = f.mailed_token(&email)?;
        for _ in 0..5 {
            ok(auth.request_password_reset(&email))?; // over the limit: not mailed
        }
        ensure!(f.runtime.db().outbox(Some(&email), 100)?.len() == 3);
        ensure!(f.mailed_token(&email)? == latest);
        ensure!(f.rows("password_reset_tokens")? == 1);
        ensure!(refused(auth.reset_password(&mailed, NEW_PW))? == AuthError::InvalidToken);
        ok(auth.reset_password(&latest, NEW_PW))?;
        // The same for verification mail.
        let (f, auth, email) = with_user("bob")?;
        let first = f.mailed_token(&email)?;
        ok(auth.resend_verification(&email))?;
        ok(auth.resend_verification(&email))?;
        let third = f.mailed_token(&email)?;
        ensure!(first != third);
        ok(auth.resend_verification(&email))?; // not mailed
        ok(auth.verify_email(&third))?;
        Ok(())
    }

    #[test]
    fn mail_is_limited_per_recipient_without_changing_the_answer() -> Result<()> {
        let (f, auth, email) = with_user("ada")?; // sign-up mailed once
        for _ in 0..4 {
            ok(auth.request_password_reset(&email))?;
        }
        ensure!(f.runtime.db().outbox(Some(&email), 100)?.len() == 3);
        f.clock.advance(601);
        ok(auth.request_password_reset(&email))?;
        ensure!(f.runtime.db().outbox(Some(&email), 100)?.len() == 4);
        Ok(())
    }
}

mod secrets_by_interface {
    use super::*;

    /// A plugin granted profiles (`users` read-write) but not `credentials`
    /// creates accounts, and cannot give them a password anyone signs in
    /// with: a new user has none until `credentials` sets one, and a user
    /// with none is refused like a wrong password (at an Argon2's cost).
    #[test]
    fn a_plugin_without_credentials_cannot_create_an_account_anyone_signs_in_to() -> Result<()> {
        let f = Fixture::new()?;
        let auth = f.auth()?;
        let profiles_only = f.load(plinth_guests::MISBEHAVE)?;
        ensure!(
            profiles_only
                .grants()
                .get(&plinth_host::capabilities::credentials::CREDENTIALS)
                .is_none()
        );
        crate::misbehave::write_then(
            &profiles_only,
            "eve",
            crate::misbehave::case("return-normally"),
        )?;
        for guess in ["", "x", "h", PW] {
            ensure!(
                refused(auth.sign_in("eve@example.com", guess))? == AuthError::InvalidCredentials,
                "signed in with {guess:?}"
            );
        }
        // The owner of the address can still recover it through a reset,
        // which sets a password through credentials.
        f.clock.advance(DAY);
        ok(auth.request_password_reset("eve@example.com"))?;
        ok(auth.reset_password(&f.mailed_token("eve@example.com")?, NEW_PW))?;
        ok(auth.sign_in("eve@example.com", NEW_PW))?;
        Ok(())
    }
}

mod hostile_input {
    use super::*;

    #[test]
    fn sql_looking_strings_are_plain_data() -> Result<()> {
        let f = Fixture::new()?;
        let auth = f.auth()?;
        let email = "x'or'1'='1@example.com";
        ok(auth.sign_up("robert.tables", email, PW))?;
        for probe in [
            "' OR 1=1 --@example.com",
            "a@example.com'; DROP TABLE users; --",
        ] {
            let e = refused(auth.sign_in(probe, PW))?;
            ensure!(e == AuthError::InvalidCredentials, "{probe}: {e:?}");
        }
        ok(auth.sign_in(email, PW))?;
        ensure!(matches!(
            refused(auth.sign_up("x'; DROP TABLE users; --", "y@example.com", PW))?,
            AuthError::InvalidInput(_)
        ));
        ensure!(f.rows("users")? == 1);
        Ok(())
    }

    #[test]
    fn megabyte_inputs_get_a_clean_error_and_write_nothing() -> Result<()> {
        let (f, auth, email) = with_user("ada")?;
        let session = ok(auth.sign_in(&email, PW))?;
        let before = f.snapshot()?;
        let mb = "a".repeat(1 << 20);
        let answers = [
            refused(auth.sign_up(&mb, "z@example.com", PW))?,
            refused(auth.sign_up("zed", &mb, PW))?,
            refused(auth.sign_up("zed", "z@example.com", &mb))?,
            refused(auth.sign_in(&mb, PW))?,
            refused(auth.validate_session(&mb))?,
            refused(auth.verify_email(&mb))?,
            refused(auth.reset_password(&mb, NEW_PW))?,
            refused(auth.request_password_reset(&mb))?,
            refused(auth.change_password(&session.token, PW, &mb))?,
        ];
        for a in &answers {
            ensure!(
                matches!(
                    a,
                    AuthError::InvalidInput(_)
                        | AuthError::WeakPassword(_)
                        | AuthError::InvalidCredentials
                ),
                "{a:?}"
            );
        }
        // A megabyte password at sign-in is refused before hashing or counting.
        ensure!(
            refused(auth.sign_in(&email, &mb))?
                == AuthError::InvalidInput(format!("a password is at most {} bytes", 1024))
        );
        ensure!(f.snapshot()? == before, "something was written");
        Ok(())
    }
}

mod limits {
    use super::*;
    use plinth_host::{Limits, Manifest};

    #[test]
    fn a_sign_in_needs_argon2s_memory_and_the_manifest_limit_bounds_it() -> Result<()> {
        let (f, _auth, email) = with_user("ada")?;
        let shipped = Manifest::from_file(plinth_guests::AUTH.manifest.as_ref())?;
        ensure!(shipped.limits.memory_bytes == 48 << 20);
        let tight = shipped.clone().limits(Limits {
            memory_bytes: 16 << 20,
            ..shipped.limits
        });
        let starved = plinth_auth::AuthPlugin::new(f.load_with(plinth_guests::AUTH, tight)?)?;
        match starved.sign_in(&email, PW) {
            Err(plinth_host::Error::MemoryLimit { limit, .. }) => ensure!(limit == 16 << 20),
            other => anyhow::bail!("expected a memory limit error, got {other:?}"),
        }
        ensure!(f.rows("sessions")? == 0, "the failed call left a session");
        // The same runtime serves the next call normally.
        ok(f.auth()?.sign_in(&email, PW))?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_async_api_signs_in_from_tokio() -> Result<()> {
        let (_f, auth, email) = with_user("ada")?;
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let (auth, email) = (auth.clone(), email.clone());
                tokio::spawn(async move { auth.run_async(move |a| a.sign_in(&email, PW)).await })
            })
            .collect();
        let mut tokens = std::collections::BTreeSet::new();
        for t in tasks {
            tokens.insert(ok(t.await?)?.token);
        }
        ensure!(tokens.len() == 3);
        Ok(())
    }
}
