//! The checks, grouped by interface. Each builds its own rows under names
//! unique to this run, so the plugin can run any number of times against
//! the same database.

use std::hash::{BuildHasher, Hasher};

use crate::bindings::plinth::database::clock;
use crate::bindings::plinth::database::types::{
    Error, FieldChange, NewUser, ProfileChanges, UniqueField, User,
};
use crate::bindings::plinth::database::{
    credentials, email_verification, password_reset, sessions, users,
};
use crate::bindings::plinth::test::clock as test_clock;
use crate::bindings::plinth::test::report::Check;

type Outcome = Result<(), String>;

/// Fails the check with `file:line` and a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!("{}:{}: {}", file!(), line!(), format!($($msg)+)));
        }
    };
}

/// Fails the check unless the two values are equal.
macro_rules! ensure_eq {
    ($left:expr, $right:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!(
                "{}:{}: {} = {:?}, expected {:?}",
                file!(),
                line!(),
                stringify!($left),
                l,
                r
            ));
        }
    }};
}

/// Unwraps an `Ok`, or fails the check naming the call and its error.
macro_rules! ok {
    ($call:expr) => {
        match $call {
            Ok(v) => v,
            Err(e) => {
                return Err(format!(
                    "{}:{}: {} failed: {:?}",
                    file!(),
                    line!(),
                    stringify!($call),
                    e
                ))
            }
        }
    };
}

/// Fails the check unless the call failed with an error matching `$pat`.
macro_rules! ensure_err {
    ($call:expr, $pat:pat) => {
        match $call {
            Err($pat) => {}
            other => {
                return Err(format!(
                    "{}:{}: {} returned {:?}, expected Err({})",
                    file!(),
                    line!(),
                    stringify!($call),
                    other,
                    stringify!($pat)
                ))
            }
        }
    };
}

struct Report {
    checks: Vec<Check>,
    run_id: String,
}

impl Report {
    fn check(&mut self, operation: &str, name: &str, f: impl FnOnce(&str) -> Outcome) {
        let (passed, detail) = match f(&self.run_id) {
            Ok(()) => (true, String::new()),
            Err(detail) => (false, detail),
        };
        self.checks.push(Check {
            name: name.to_string(),
            operation: operation.to_string(),
            passed,
            detail,
        });
    }
}

/// A short random id, so that names and emails are unique to this run.
fn run_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(clock::now() as u64);
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// Creates a user and gives it a password (through `credentials`, the only
/// way to set one).
fn make_user(run: &str, who: &str) -> Result<User, Error> {
    let user = users::create_user(&NewUser {
        name: format!("dbtest-{run}-{who}"),
        email: format!("{who}.{run}@example.com"),
    })?;
    credentials::update_user_password(
        &user.uuid,
        &format!("$argon2id$v=19$m=19456,t=2,p=1$fake-{who}"),
    )?;
    Ok(user)
}

pub fn run_all() -> Vec<Check> {
    let mut r = Report {
        checks: Vec::new(),
        run_id: run_id(),
    };
    user_checks(&mut r);
    credential_checks(&mut r);
    session_checks(&mut r);
    token_checks(&mut r);
    cascade_checks(&mut r);
    r.checks
}

fn user_checks(r: &mut Report) {
    r.check(
        "users.create-user",
        "creates an unverified user with a host UUID and host timestamps",
        |run| {
            let now = clock::now();
            let u = ok!(make_user(run, "ada"));
            ensure_eq!(u.uuid.len(), 36);
            ensure_eq!(u.name, format!("dbtest-{run}-ada"));
            ensure!(!u.email_verified, "a new user must be unverified");
            ensure!(
                u.created_at >= now && u.created_at <= clock::now(),
                "created-at {} is not the host's now {now}",
                u.created_at
            );
            ensure_eq!(u.updated_at, u.created_at);
            Ok(())
        },
    );
    r.check(
        "users.create-user",
        "rejects a duplicate email as conflict(email)",
        |run| {
            let err = users::create_user(&NewUser {
                name: format!("dbtest-{run}-other"),
                email: format!("ada.{run}@example.com"),
            });
            ensure_err!(err, Error::Conflict(UniqueField::Email));
            Ok(())
        },
    );
    r.check(
        "users.create-user",
        "rejects a duplicate name as conflict(name)",
        |run| {
            let err = users::create_user(&NewUser {
                name: format!("dbtest-{run}-ada"),
                email: format!("other.{run}@example.com"),
            });
            ensure_err!(err, Error::Conflict(UniqueField::Name));
            Ok(())
        },
    );
    r.check(
        "users.create-user",
        "rejects an empty name and an oversized email as invalid-input",
        |run| {
            let empty = users::create_user(&NewUser {
                name: String::new(),
                email: format!("empty.{run}@example.com"),
            });
            ensure_err!(empty, Error::InvalidInput(_));
            let huge = users::create_user(&NewUser {
                name: format!("dbtest-{run}-huge"),
                email: "a".repeat(100_000),
            });
            ensure_err!(huge, Error::InvalidInput(_));
            Ok(())
        },
    );
    r.check(
        "users.create-user",
        "stores SQL-looking strings verbatim",
        |run| {
            let name = format!("dbtest-{run}-'); DROP TABLE users; --");
            let u = ok!(users::create_user(&NewUser {
                name: name.clone(),
                email: format!("x' OR '1'='1.{run}@example.com"),
            }));
            ensure_eq!(ok!(users::get_user_by_name(&name)).uuid, u.uuid);
            ensure_err!(users::get_user_by_email("' OR 1=1 --"), Error::NotFound);
            Ok(())
        },
    );
    r.check(
        "users.get-user-by-email",
        "finds a user by email, and not-found for an unknown one",
        |run| {
            let u = ok!(users::get_user_by_email(&format!("ada.{run}@example.com")));
            ensure_eq!(u.name, format!("dbtest-{run}-ada"));
            ensure_err!(
                users::get_user_by_email(&format!("nobody.{run}@example.com")),
                Error::NotFound
            );
            Ok(())
        },
    );
    r.check(
        "users.get-user-by-uuid",
        "finds a user by UUID, and not-found for an unknown one",
        |run| {
            let by_email = ok!(users::get_user_by_email(&format!("ada.{run}@example.com")));
            let by_uuid = ok!(users::get_user_by_uuid(&by_email.uuid));
            ensure_eq!(
                (
                    &by_uuid.uuid,
                    &by_uuid.name,
                    &by_uuid.email,
                    by_uuid.created_at
                ),
                (
                    &by_email.uuid,
                    &by_email.name,
                    &by_email.email,
                    by_email.created_at
                )
            );
            ensure_err!(
                users::get_user_by_uuid("00000000-0000-0000-0000-000000000000"),
                Error::NotFound
            );
            Ok(())
        },
    );
    r.check(
        "users.get-user-by-name",
        "finds a user by name, and not-found for an unknown one",
        |run| {
            let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-ada")));
            ensure_eq!(u.email, format!("ada.{run}@example.com"));
            ensure_err!(
                users::get_user_by_name(&format!("dbtest-{run}-nobody")),
                Error::NotFound
            );
            Ok(())
        },
    );
    r.check(
        "users.update-user-email-verified",
        "marks an email verified, and not-found for an unknown user",
        |run| {
            let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-ada")));
            let v = ok!(users::update_user_email_verified(&u.uuid, true));
            ensure!(v.email_verified, "still unverified");
            ensure!(
                ok!(users::get_user_by_uuid(&u.uuid)).email_verified,
                "not stored"
            );
            ensure_err!(
                users::update_user_email_verified("no-such-uuid", true),
                Error::NotFound
            );
            Ok(())
        },
    );
    r.check(
        "users.update-user-profile",
        "sets, keeps and clears profile fields",
        |run| {
            let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-ada")));
            let set = ok!(users::update_user_profile(
                &u.uuid,
                &ProfileChanges {
                    name: None,
                    avatar: FieldChange::Set("https://example.com/ada.png".into()),
                    bio: FieldChange::Set("Analytical engines".into()),
                }
            ));
            ensure_eq!(set.avatar.as_deref(), Some("https://example.com/ada.png"));
            ensure_eq!(set.bio.as_deref(), Some("Analytical engines"));
            let cleared = ok!(users::update_user_profile(
                &u.uuid,
                &ProfileChanges {
                    name: Some(format!("dbtest-{run}-ada-l")),
                    avatar: FieldChange::Keep,
                    bio: FieldChange::Clear,
                }
            ));
            ensure_eq!(cleared.name, format!("dbtest-{run}-ada-l"));
            ensure_eq!(
                cleared.avatar.as_deref(),
                Some("https://example.com/ada.png")
            );
            ensure_eq!(cleared.bio, None);
            Ok(())
        },
    );
    r.check(
        "users.update-user-profile",
        "rejects a rename to a taken name as conflict(name)",
        |run| {
            let bob = ok!(make_user(run, "bob"));
            let err = users::update_user_profile(
                &bob.uuid,
                &ProfileChanges {
                    name: Some(format!("dbtest-{run}-ada-l")),
                    avatar: FieldChange::Keep,
                    bio: FieldChange::Keep,
                },
            );
            ensure_err!(err, Error::Conflict(UniqueField::Name));
            ensure_err!(
                users::update_user_profile(
                    "no-such-uuid",
                    &ProfileChanges {
                        name: None,
                        avatar: FieldChange::Keep,
                        bio: FieldChange::Keep
                    }
                ),
                Error::NotFound
            );
            Ok(())
        },
    );
}

fn credential_checks(r: &mut Report) {
    r.check(
        "credentials.get-password-hash",
        "a user created through users has no password until credentials sets one",
        |run| {
            let u = ok!(users::create_user(&NewUser {
                name: format!("dbtest-{run}-nopass"),
                email: format!("nopass.{run}@example.com"),
            }));
            ensure_err!(credentials::get_password_hash(&u.uuid), Error::NotFound);
            ok!(credentials::update_user_password(&u.uuid, "set-later"));
            ensure_eq!(ok!(credentials::get_password_hash(&u.uuid)), "set-later");
            Ok(())
        },
    );
    r.check(
        "credentials.get-password-hash",
        "returns the stored hash, and not-found for an unknown user",
        |run| {
            let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-bob")));
            ensure_eq!(
                ok!(credentials::get_password_hash(&u.uuid)),
                "$argon2id$v=19$m=19456,t=2,p=1$fake-bob"
            );
            ensure_err!(
                credentials::get_password_hash("no-such-uuid"),
                Error::NotFound
            );
            Ok(())
        },
    );
    r.check(
        "credentials.update-user-password",
        "replaces the hash, and not-found for an unknown user",
        |run| {
            let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-bob")));
            ok!(credentials::update_user_password(&u.uuid, "new-hash"));
            ensure_eq!(ok!(credentials::get_password_hash(&u.uuid)), "new-hash");
            ensure_err!(
                credentials::update_user_password("no-such-uuid", "h"),
                Error::NotFound
            );
            ensure_err!(
                credentials::update_user_password(&u.uuid, ""),
                Error::InvalidInput(_)
            );
            Ok(())
        },
    );
}

fn session_checks(r: &mut Report) {
    r.check(
        "sessions.create-session",
        "stamps creation and expiry from the host clock",
        |run| {
            let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-bob")));
            let now = clock::now();
            let s = ok!(sessions::create_session(
                &format!("sid-{run}-1"),
                &u.uuid,
                3600
            ));
            ensure_eq!(s.user_uuid, u.uuid);
            ensure!(
                s.created_at >= now,
                "created-at {} before now {now}",
                s.created_at
            );
            ensure_eq!(s.expires_at, s.created_at + 3600);
            Ok(())
        },
    );
    r.check(
        "sessions.create-session",
        "not-found for an unknown user, conflict(session-id) for a reused id",
        |run| {
            let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-bob")));
            ensure_err!(
                sessions::create_session(&format!("sid-{run}-x"), "no-such-uuid", 60),
                Error::NotFound
            );
            ensure_err!(
                sessions::create_session(&format!("sid-{run}-1"), &u.uuid, 60),
                Error::Conflict(UniqueField::SessionId)
            );
            ensure_err!(
                sessions::create_session(&format!("sid-{run}-y"), &u.uuid, 0),
                Error::InvalidInput(_)
            );
            Ok(())
        },
    );
    r.check(
        "sessions.get-session",
        "returns a live session, and not-found for an unknown id",
        |run| {
            let s = ok!(sessions::get_session(&format!("sid-{run}-1")));
            ensure_eq!(s.expires_at - s.created_at, 3600);
            ensure_err!(
                sessions::get_session(&format!("sid-{run}-none")),
                Error::NotFound
            );
            Ok(())
        },
    );
    r.check(
        "sessions.get-session",
        "hides a session once it has expired",
        |run| {
            let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-bob")));
            let id = format!("sid-{run}-short");
            ok!(sessions::create_session(&id, &u.uuid, 60));
            ok!(sessions::get_session(&id));
            test_clock::advance(61);
            ensure_err!(sessions::get_session(&id), Error::NotFound);
            Ok(())
        },
    );
    r.check(
        "sessions.extend-session",
        "moves a live session's expiry from now, and not-found once expired",
        |run| {
            let id = format!("sid-{run}-1");
            let now = clock::now();
            let s = ok!(sessions::extend_session(&id, 7200));
            ensure_eq!(s.expires_at, now + 7200);
            ensure_err!(
                sessions::extend_session(&format!("sid-{run}-short"), 60),
                Error::NotFound
            );
            Ok(())
        },
    );
    r.check(
        "sessions.cleanup-expired-sessions",
        "deletes expired sessions and counts them",
        |run| {
            let n = ok!(sessions::cleanup_expired_sessions());
            ensure!(
                n >= 1,
                "removed {n}, expected at least the one expired above"
            );
            ensure_eq!(
                ok!(sessions::delete_session(&format!("sid-{run}-short"))),
                false
            );
            ok!(sessions::get_session(&format!("sid-{run}-1")));
            Ok(())
        },
    );
    r.check(
        "sessions.delete-session",
        "deletes one session and says whether it existed",
        |run| {
            let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-bob")));
            let id = format!("sid-{run}-del");
            ok!(sessions::create_session(&id, &u.uuid, 60));
            ensure_eq!(ok!(sessions::delete_session(&id)), true);
            ensure_eq!(ok!(sessions::delete_session(&id)), false);
            ensure_err!(sessions::get_session(&id), Error::NotFound);
            Ok(())
        },
    );
    r.check(
        "sessions.delete-user-sessions",
        "signs a user out everywhere and counts the sessions",
        |run| {
            let u = ok!(make_user(run, "carol"));
            for i in 0..3 {
                ok!(sessions::create_session(
                    &format!("sid-{run}-carol-{i}"),
                    &u.uuid,
                    600
                ));
            }
            ensure_eq!(ok!(sessions::delete_user_sessions(&u.uuid)), 3);
            ensure_err!(
                sessions::get_session(&format!("sid-{run}-carol-0")),
                Error::NotFound
            );
            ensure_eq!(ok!(sessions::delete_user_sessions(&u.uuid)), 0);
            ok!(sessions::get_session(&format!("sid-{run}-1")));
            Ok(())
        },
    );
}

/// The operations of one token interface, so both are checked by one body.
struct TokenOps {
    prefix: &'static str,
    /// The WIT names of create, get, delete, consume and delete-user.
    names: [&'static str; 5],
    create: fn(&str, &str, u32) -> Result<crate::bindings::plinth::database::types::Token, Error>,
    get: fn(&str) -> Result<crate::bindings::plinth::database::types::Token, Error>,
    delete: fn(&str) -> Result<bool, Error>,
    consume: fn(&str) -> Result<crate::bindings::plinth::database::types::Token, Error>,
    delete_for_user: fn(&str) -> Result<u32, Error>,
}

const EMAIL: TokenOps = TokenOps {
    prefix: "email-verification",
    names: [
        "email-verification.create-email-verification-token",
        "email-verification.get-email-verification-token",
        "email-verification.delete-email-verification-token",
        "email-verification.consume-email-verification-token",
        "email-verification.delete-user-email-verification-tokens",
    ],
    create: email_verification::create_email_verification_token,
    get: email_verification::get_email_verification_token,
    delete: email_verification::delete_email_verification_token,
    consume: email_verification::consume_email_verification_token,
    delete_for_user: email_verification::delete_user_email_verification_tokens,
};

const RESET: TokenOps = TokenOps {
    prefix: "password-reset",
    names: [
        "password-reset.create-password-reset-token",
        "password-reset.get-password-reset-token",
        "password-reset.delete-password-reset-token",
        "password-reset.consume-password-reset-token",
        "password-reset.delete-user-password-reset-tokens",
    ],
    create: password_reset::create_password_reset_token,
    get: password_reset::get_password_reset_token,
    delete: password_reset::delete_password_reset_token,
    consume: password_reset::consume_password_reset_token,
    delete_for_user: password_reset::delete_user_password_reset_tokens,
};

fn token_checks(r: &mut Report) {
    for ops in [EMAIL, RESET] {
        let p = ops.prefix;
        let [create, get, delete, consume, delete_for_user] = ops.names;
        r.check(create, "stores a token with host timestamps; not-found for an unknown user; conflict(token) for a reused one", |run| {
            let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-bob")));
            let now = clock::now();
            let t = ok!((ops.create)(&format!("{p}-{run}-1"), &u.uuid, 3600));
            ensure_eq!(t.user_uuid, u.uuid);
            ensure!(t.created_at >= now, "created-at {} before {now}", t.created_at);
            ensure_eq!(t.expires_at, t.created_at + 3600);
            ensure_err!((ops.create)(&format!("{p}-{run}-x"), "no-such-uuid", 60), Error::NotFound);
            ensure_err!((ops.create)(&format!("{p}-{run}-1"), &u.uuid, 60), Error::Conflict(UniqueField::Token));
            Ok(())
        });
        r.check(
            get,
            "returns a live token, hides an expired one, not-found for an unknown one",
            |run| {
                let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-bob")));
                ensure_eq!(ok!((ops.get)(&format!("{p}-{run}-1"))).user_uuid, u.uuid);
                ensure_err!((ops.get)(&format!("{p}-{run}-none")), Error::NotFound);
                let short = format!("{p}-{run}-short");
                ok!((ops.create)(&short, &u.uuid, 30));
                test_clock::advance(31);
                ensure_err!((ops.get)(&short), Error::NotFound);
                Ok(())
            },
        );
        r.check(
            consume,
            "hands a live token out exactly once, never an expired one",
            |run| {
                let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-bob")));
                let id = format!("{p}-{run}-once");
                ok!((ops.create)(&id, &u.uuid, 600));
                ensure_eq!(ok!((ops.consume)(&id)).user_uuid, u.uuid);
                ensure_err!((ops.consume)(&id), Error::NotFound);
                ensure_err!((ops.consume)(&format!("{p}-{run}-short")), Error::NotFound);
                Ok(())
            },
        );
        r.check(
            delete,
            "deletes a token and says whether it existed",
            |run| {
                let u = ok!(users::get_user_by_name(&format!("dbtest-{run}-bob")));
                let id = format!("{p}-{run}-del");
                ok!((ops.create)(&id, &u.uuid, 600));
                ensure_eq!(ok!((ops.delete)(&id)), true);
                ensure_eq!(ok!((ops.delete)(&id)), false);
                ensure_err!((ops.get)(&id), Error::NotFound);
                Ok(())
            },
        );
        r.check(
            delete_for_user,
            "deletes every token of one user and leaves the others",
            |run| {
                let dave = ok!(make_user(run, &format!("dave-{p}")));
                for i in 0..2 {
                    ok!((ops.create)(
                        &format!("{p}-{run}-dave-{i}"),
                        &dave.uuid,
                        600
                    ));
                }
                ensure_eq!(ok!((ops.delete_for_user)(&dave.uuid)), 2);
                ensure_err!((ops.get)(&format!("{p}-{run}-dave-0")), Error::NotFound);
                ok!((ops.get)(&format!("{p}-{run}-1")));
                Ok(())
            },
        );
    }
}

fn cascade_checks(r: &mut Report) {
    r.check(
        "users.delete-user",
        "deleting a user takes its sessions and tokens with it",
        |run| {
            let eve = ok!(make_user(run, "eve"));
            ok!(sessions::create_session(
                &format!("sid-{run}-eve"),
                &eve.uuid,
                600
            ));
            ok!(email_verification::create_email_verification_token(
                &format!("ev-{run}-eve"),
                &eve.uuid,
                600
            ));
            ok!(password_reset::create_password_reset_token(
                &format!("pr-{run}-eve"),
                &eve.uuid,
                600
            ));
            ok!(users::delete_user(&eve.uuid));
            ensure_err!(users::get_user_by_uuid(&eve.uuid), Error::NotFound);
            ensure_err!(
                sessions::get_session(&format!("sid-{run}-eve")),
                Error::NotFound
            );
            ensure_err!(
                email_verification::get_email_verification_token(&format!("ev-{run}-eve")),
                Error::NotFound
            );
            ensure_err!(
                password_reset::get_password_reset_token(&format!("pr-{run}-eve")),
                Error::NotFound
            );
            ensure_err!(users::delete_user(&eve.uuid), Error::NotFound);
            Ok(())
        },
    );
    // Leaves bob, with a session and one token of each kind, for the host to
    // read back from the file; the detail names him.
    let run = r.run_id.clone();
    let kept = (|| -> Result<String, String> {
        let bob = ok!(users::get_user_by_name(&format!("dbtest-{run}-bob")));
        ok!(sessions::get_session(&format!("sid-{run}-1")));
        ok!(email_verification::get_email_verification_token(&format!(
            "email-verification-{run}-1"
        )));
        ok!(password_reset::get_password_reset_token(&format!(
            "password-reset-{run}-1"
        )));
        Ok(bob.uuid)
    })();
    let (passed, detail) = match kept {
        Ok(uuid) => (true, format!("kept user {uuid}")),
        Err(e) => (false, e),
    };
    r.checks.push(Check {
        name: "leaves one user with a session and both tokens for the host to read back".into(),
        operation: "report".into(),
        passed,
        detail,
    });
}
