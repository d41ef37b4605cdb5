//! plinth's auth plugin: accounts, sessions, email verification and
//! password reset, following the Copenhagen Book and OWASP's cheat sheets.
//!
//! * Passwords: NFKC, 8 to 256 code points, never truncated, no composition
//!   rules, refused when common or equal to the name or email; Argon2id
//!   (19456 KiB, t=2, p=1) PHC strings, upgraded on sign-in when the
//!   parameters change.
//! * Tokens: 160 random bits from `wasi:random`; the database keeps only
//!   their SHA-256. Verification tokens live 24 h, reset tokens 1 h; both are
//!   consumed atomically, and issuing one deletes the user's older ones.
//! * Sessions: 30 days, renewed when less than half remains; all revoked on
//!   a password reset or change.
//! * No enumeration: unknown emails cost an Argon2 computation and get the
//!   same error as a wrong password; reset and resend answer the same for
//!   every address, and a reset mails an unknown address too (a notice with
//!   no token), so that it takes as long; sign-in failures are counted per
//!   email, known or not.
//! * Throttling: after 5 consecutive failures an email waits 2^(n-5) s
//!   (at most 15 min) between attempts; at 100 it is locked until a reset.

#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use plinth_guest_rt as _;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/auth",
        world: "plinth:auth/auth-plugin",
        generate_all,
    });
}

mod input;
mod password;
mod secret;

use bindings::exports::plinth::auth::auth::{
    AuthError, Guest, ProfileUpdate, SessionInfo, SignedIn,
};
use bindings::plinth::auth::attempts::{self, Failures};
use bindings::plinth::auth::mailer;
use bindings::plinth::database::types::{
    Error as DbError, ProfileChanges, Token, UniqueField, User,
};
use bindings::plinth::database::{
    clock, credentials, email_verification, password_reset, sessions, users,
};

/// A session lives 30 days…
const SESSION_TTL: u32 = 30 * 24 * 3600;
/// …and is renewed when less than this remains.
const SESSION_RENEW_BELOW: i64 = 15 * 24 * 3600;
/// Email verification tokens live 24 hours.
const VERIFICATION_TTL: u32 = 24 * 3600;
/// Password reset tokens live 1 hour.
const RESET_TTL: u32 = 3600;
/// Failures an email may make before it has to wait.
const FREE_FAILURES: u32 = 5;
/// The longest wait between attempts.
const MAX_DELAY: u64 = 15 * 60;
/// Consecutive failures after which sign-in is refused until a reset.
const LOCK_AFTER: u32 = 100;
/// Most bytes of a token argument looked at (ours are 32).
const MAX_TOKEN_ARG_BYTES: usize = 128;

type Res<T> = Result<T, AuthError>;

fn internal(what: impl core::fmt::Display) -> AuthError {
    AuthError::Internal(what.to_string())
}

/// Maps a database error the plugin did not expect.
fn db(e: DbError) -> AuthError {
    match e {
        DbError::InvalidInput(why) => AuthError::InvalidInput(why),
        DbError::Conflict(UniqueField::Name) => AuthError::NameTaken,
        DbError::Conflict(UniqueField::Email) => AuthError::EmailTaken,
        // Other writers held the database past this call's time: nothing
        // was changed, and the caller may try again.
        DbError::Busy => AuthError::Busy,
        other => internal(format!("database: {other:?}")),
    }
}

/// Maps a database `not-found` to the answer the caller should see, and any
/// other database error as [`db`] does.
fn found<T>(r: Result<T, DbError>, missing: AuthError) -> Res<T> {
    r.map_err(|e| match e {
        DbError::NotFound => missing,
        e => db(e),
    })
}

fn throttle_key(email: &str) -> String {
    format!("sign-in:{email}")
}

/// Refuses an attempt while the email must wait or is locked.
/// Whether an attempt may be made now, given the failures so far.
fn throttle(f: &Failures) -> Res<()> {
    if f.count >= LOCK_AFTER {
        return Err(AuthError::Locked);
    }
    if f.count < FREE_FAILURES {
        return Ok(());
    }
    let delay = 1u64
        .checked_shl(f.count - FREE_FAILURES)
        .unwrap_or(u64::MAX)
        .min(MAX_DELAY);
    let ready_at = f
        .last_at
        .saturating_add(i64::try_from(delay).unwrap_or(i64::MAX));
    let now = clock::now();
    if now < ready_at {
        return Err(AuthError::RateLimited(
            u32::try_from(ready_at - now).unwrap_or(u32::MAX),
        ));
    }
    Ok(())
}

/// Most times a sign-in re-reads the counter after losing a race for it.
const RESERVE_TRIES: u32 = 3;

/// Checks the throttle for `email` and, where a failure would bring the
/// throttle into force, records that failure before the password is hashed,
/// in the same atomic step as the check (`reserve-failure`): calls racing on
/// one account cannot all pass one check and all run Argon2. Returns whether
/// a failure was reserved (the caller clears it on success).
fn admit_attempt(email: &str) -> Res<bool> {
    let key = throttle_key(email);
    for _ in 0..RESERVE_TRIES {
        let f = attempts::get_failures(&key).map_err(db)?;
        throttle(&f)?;
        if f.count + 1 < FREE_FAILURES {
            // Failures before the throttle starts are free; no need to hold
            // the database's write lock while hashing.
            return Ok(false);
        }
        if attempts::reserve_failure(&key, f.count)
            .map_err(db)?
            .is_some()
        {
            return Ok(true);
        }
        // Another attempt changed the counter first: decide again.
    }
    Err(AuthError::RateLimited(1))
}

fn record_failure(email: &str) -> Res<()> {
    attempts::record_failure(&throttle_key(email)).map_err(db)?;
    Ok(())
}

fn token_arg(token: &str) -> Res<&str> {
    if token.len() > MAX_TOKEN_ARG_BYTES {
        return Err(AuthError::InvalidInput(format!(
            "a token is at most {MAX_TOKEN_ARG_BYTES} bytes"
        )));
    }
    Ok(token.trim())
}

/// Sends a message; a recipient who was sent too much lately is skipped
/// (the call still answers as if sent, so that answers reveal nothing).
/// Returns whether it was sent.
fn send(to: &str, subject: &str, body: String) -> Res<bool> {
    let message = mailer::Message {
        to: to.into(),
        subject: subject.into(),
        body,
    };
    match mailer::send(&message) {
        Ok(()) => Ok(true),
        Err(mailer::MailError::RateLimited(_)) => Ok(false),
        Err(e) => Err(internal(format!("mailer: {e:?}"))),
    }
}

/// A kind of single-use token, and the mail that carries it.
struct TokenMail {
    delete_older: fn(&str) -> Result<u32, DbError>,
    create: fn(&str, &str, u32) -> Result<Token, DbError>,
    ttl: u32,
    subject: &'static str,
    /// The page of the service that consumes it (`link` makes it absolute).
    page: &'static str,
    /// The body, from the user, the token and the link to the page (when
    /// the host has a public URL).
    body: fn(&User, &str, Option<&str>) -> String,
}

/// The mail's line with the link that opens `page` for `token`, or nothing
/// when the host has no public URL.
fn link_line(link: Option<&str>) -> String {
    match link {
        Some(url) => format!("\nor open this link:\n{url}\n"),
        None => String::new(),
    }
}

/// Mails `user` a fresh single-use token of one kind and stores its hash,
/// replacing the user's older ones. When the mail cannot be sent (the
/// recipient's mail limit is reached), nothing changes: the token mailed
/// before stays the valid one, so a flood of requests cannot leave its
/// owner holding a dead link.
fn mail_token(user: &User, kind: &TokenMail) -> Res<()> {
    let token = secret::new_token().map_err(internal)?;
    let link = mailer::link(&format!("{}?token={token}", kind.page));
    if !send(&user.email, kind.subject, (kind.body)(user, &token, link.as_deref()))? {
        return Ok(());
    }
    (kind.delete_older)(&user.uuid).map_err(db)?;
    (kind.create)(&secret::token_hash(&token), &user.uuid, kind.ttl).map_err(db)?;
    Ok(())
}

const VERIFICATION_MAIL: TokenMail = TokenMail {
    delete_older: email_verification::delete_user_email_verification_tokens,
    create: email_verification::create_email_verification_token,
    ttl: VERIFICATION_TTL,
    subject: "Verify your email address",
    page: "/web/verify",
    body: |user, token, link| {
        format!(
            "Hello {},\n\nconfirm this address with the code below (valid for 24 hours).\n\ntoken: {token}\n{}",
            user.name,
            link_line(link)
        )
    },
};

const RESET_MAIL: TokenMail = TokenMail {
    delete_older: password_reset::delete_user_password_reset_tokens,
    create: password_reset::create_password_reset_token,
    ttl: RESET_TTL,
    subject: "Reset your password",
    page: "/web/reset/confirm",
    body: |user, token, link| {
        format!(
            "Hello {},\n\nuse the code below to choose a new password (valid for 1 hour, once).\nIf you did not ask for this, ignore this message.\n\ntoken: {token}\n{}",
            user.name,
            link_line(link)
        )
    },
};

/// Tells the owner of `email`, which no account uses, that a password reset
/// was asked for it, and costs what a reset for a known address costs: the
/// same mail queued under the same limit, then the same two statements on
/// the reset tokens, aimed at no row (a delete for a user id that no user
/// has, a lookup of a token never stored). The notice carries no token and
/// nothing but the mail is stored.
fn no_account_notice(email: &str) -> Res<()> {
    let unused = secret::new_token().map_err(internal)?;
    // The same host call a known address's mail makes for its link.
    let _ = mailer::link(&format!("/web/reset/confirm?token={unused}"));
    let body = "Hello,\n\nsomeone asked to reset the password of an account with this address, but no account here uses it.\nIf you did not ask for this, ignore this message.\n";
    if !send(email, "Password reset request", body.into())? {
        return Ok(());
    }
    // A hash is 64 hex digits, never a user's UUID (36 with dashes).
    let no_user = secret::token_hash(&unused);
    password_reset::delete_user_password_reset_tokens(&no_user).map_err(db)?;
    match password_reset::get_password_reset_token(&no_user) {
        Ok(_) | Err(DbError::NotFound) => Ok(()),
        Err(e) => Err(db(e)),
    }
}

fn send_verification(user: &User) -> Res<()> {
    mail_token(user, &VERIFICATION_MAIL)
}

/// Creates a session for `user` and returns its secret once.
fn new_session(user: User) -> Res<SignedIn> {
    let token = secret::new_token().map_err(internal)?;
    let session = sessions::create_session(&secret::token_hash(&token), &user.uuid, SESSION_TTL)
        .map_err(db)?;
    Ok(SignedIn {
        token,
        expires_at: session.expires_at,
        user,
    })
}

/// Finds the live session of a token, renewing it when past half its life.
fn session_of(token: &str) -> Res<SessionInfo> {
    let token = token_arg(token)?;
    if !secret::is_well_formed(token) {
        return Err(AuthError::SessionExpired);
    }
    let id = secret::token_hash(token);
    let mut session = found(sessions::get_session(&id), AuthError::SessionExpired)?;
    if !secret::same_secret(&session.id, &id) {
        return Err(AuthError::SessionExpired);
    }
    if session.expires_at - clock::now() < SESSION_RENEW_BELOW {
        session = found(
            sessions::extend_session(&id, SESSION_TTL),
            AuthError::SessionExpired,
        )?;
    }
    let user = found(
        users::get_user_by_uuid(&session.user_uuid),
        AuthError::SessionExpired,
    )?;
    Ok(SessionInfo {
        user,
        expires_at: session.expires_at,
    })
}

/// Verifies `password` for `email`; counts a failure; upgrades an outdated
/// hash. Unknown emails cost the same and fail the same.
fn check_credentials(email: &str, password: &str) -> Res<User> {
    let reserved = admit_attempt(email)?;
    let password = password::normalize(password).map_err(AuthError::InvalidInput)?;
    let user = match users::get_user_by_email(email) {
        Ok(u) => Some(u),
        Err(DbError::NotFound) => None,
        Err(e) => return Err(db(e)),
    };
    // An unknown email, and a user with no password (created by a plugin
    // without `credentials`), cost one Argon2 and get the answer a wrong
    // password gets.
    let stored = match &user {
        Some(u) => match credentials::get_password_hash(&u.uuid) {
            Ok(hash) => Some(hash),
            Err(DbError::NotFound) => None,
            Err(e) => return Err(db(e)),
        },
        None => None,
    };
    let verified = match &stored {
        Some(hash) => password::verify(&password, hash).map_err(internal)?,
        None => {
            password::dummy_verify(&password).map_err(internal)?;
            password::Verified {
                ok: false,
                outdated: false,
            }
        }
    };
    let Some(user) = user.filter(|_| verified.ok) else {
        if !reserved {
            record_failure(email)?;
        }
        return Err(AuthError::InvalidCredentials);
    };
    attempts::clear_failures(&throttle_key(email)).map_err(db)?;
    if verified.outdated {
        let upgraded = password::hash(&password).map_err(internal)?;
        credentials::update_user_password(&user.uuid, &upgraded).map_err(db)?;
    }
    Ok(user)
}

/// Normalises and checks a new password for `user`, and hashes it.
fn new_password_hash(password: &str, user_name: &str, user_email: &str) -> Res<String> {
    let password = password::normalize(password).map_err(AuthError::WeakPassword)?;
    password::check_new(&password, user_name, user_email).map_err(AuthError::WeakPassword)?;
    password::hash(&password).map_err(internal)
}

fn password_changed_notice(user: &User) -> Res<()> {
    send(
        &user.email,
        "Your password was changed",
        format!(
            "Hello {},\n\nthe password of your account was just changed and every session was signed out.\nIf this was not you, reset your password now.\n",
            user.name
        ),
    )
    .map(|_| ())
}

struct Auth;

impl Guest for Auth {
    fn sign_up(name: String, email: String, password: String) -> Res<User> {
        let email = input::email(&email).map_err(AuthError::InvalidInput)?;
        let name = input::name(&name).map_err(AuthError::InvalidInput)?;
        let hash = new_password_hash(&password, &name, &email)?;
        let user = users::create_user(&users::NewUser { name, email }).map_err(db)?;
        credentials::update_user_password(&user.uuid, &hash).map_err(db)?;
        send_verification(&user)?;
        Ok(user)
    }

    fn sign_in(email: String, password: String) -> Res<SignedIn> {
        let email = input::email(&email).map_err(|_| AuthError::InvalidCredentials)?;
        let user = check_credentials(&email, &password)?;
        new_session(user)
    }

    fn validate_session(token: String) -> Res<SessionInfo> {
        session_of(&token)
    }

    fn sign_out(token: String) -> Res<()> {
        let token = token_arg(&token)?;
        if secret::is_well_formed(token) {
            sessions::delete_session(&secret::token_hash(token)).map_err(db)?;
        }
        Ok(())
    }

    fn sign_out_everywhere(token: String) -> Res<u32> {
        let info = session_of(&token)?;
        sessions::delete_user_sessions(&info.user.uuid).map_err(db)
    }

    fn verify_email(token: String) -> Res<User> {
        let token = token_arg(&token)?;
        if !secret::is_well_formed(token) {
            return Err(AuthError::InvalidToken);
        }
        let record = found(
            email_verification::consume_email_verification_token(&secret::token_hash(token)),
            AuthError::InvalidToken,
        )?;
        email_verification::delete_user_email_verification_tokens(&record.user_uuid).map_err(db)?;
        found(
            users::update_user_email_verified(&record.user_uuid, true),
            AuthError::InvalidToken,
        )
    }

    fn resend_verification(email: String) -> Res<()> {
        let email = input::email(&email).map_err(AuthError::InvalidInput)?;
        match users::get_user_by_email(&email) {
            Ok(user) if !user.email_verified => send_verification(&user),
            Ok(_) | Err(DbError::NotFound) => Ok(()),
            Err(e) => Err(db(e)),
        }
    }

    /// A known and an unknown address get the same answer and cost the
    /// same work: each is sent a mail under the same per-recipient limit
    /// (the one a token, the other a notice that no account uses it), the
    /// same two statements on the reset tokens run, and the call commits.
    fn request_password_reset(email: String) -> Res<()> {
        let email = input::email(&email).map_err(AuthError::InvalidInput)?;
        match users::get_user_by_email(&email) {
            Ok(user) => mail_token(&user, &RESET_MAIL),
            Err(DbError::NotFound) => no_account_notice(&email),
            Err(e) => Err(db(e)),
        }
    }

    fn reset_password(token: String, new_password: String) -> Res<()> {
        let token = token_arg(&token)?;
        if !secret::is_well_formed(token) {
            return Err(AuthError::InvalidToken);
        }
        let id = secret::token_hash(token);
        // Look first (no lock held while hashing), consume last: of two
        // racing calls only one consumes the token.
        let record = found(
            password_reset::get_password_reset_token(&id),
            AuthError::InvalidToken,
        )?;
        let user = found(
            users::get_user_by_uuid(&record.user_uuid),
            AuthError::InvalidToken,
        )?;
        let hash = new_password_hash(&new_password, &user.name, &user.email)?;
        match password_reset::consume_password_reset_token(&id) {
            Ok(t) if secret::same_secret(&t.token, &id) => {}
            Ok(_) | Err(DbError::NotFound) => return Err(AuthError::InvalidToken),
            Err(e) => return Err(db(e)),
        }
        credentials::update_user_password(&user.uuid, &hash).map_err(db)?;
        sessions::delete_user_sessions(&user.uuid).map_err(db)?;
        password_reset::delete_user_password_reset_tokens(&user.uuid).map_err(db)?;
        let user = users::update_user_email_verified(&user.uuid, true).map_err(db)?;
        attempts::clear_failures(&throttle_key(&user.email)).map_err(db)?;
        password_changed_notice(&user)
    }

    fn change_password(
        session_token: String,
        current_password: String,
        new_password: String,
    ) -> Res<SignedIn> {
        let info = session_of(&session_token)?;
        let user = check_credentials(&info.user.email, &current_password)?;
        let hash = new_password_hash(&new_password, &user.name, &user.email)?;
        credentials::update_user_password(&user.uuid, &hash).map_err(db)?;
        sessions::delete_user_sessions(&user.uuid).map_err(db)?;
        password_changed_notice(&user)?;
        new_session(user)
    }

    fn update_profile(session_token: String, changes: ProfileUpdate) -> Res<User> {
        let info = session_of(&session_token)?;
        let name = match changes.name {
            Some(n) => Some(input::name(&n).map_err(AuthError::InvalidInput)?),
            None => None,
        };
        users::update_user_profile(
            &info.user.uuid,
            &ProfileChanges {
                name,
                avatar: changes.avatar,
                bio: changes.bio,
            },
        )
        .map_err(db)
    }
}

bindings::export!(Auth with_types_in bindings);
