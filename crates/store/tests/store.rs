//! The store against real databases. The contract tests run on both
//! engines, on an SQLite file in a temp dir (`on_sqlite::…`) and on a
//! database of a throwaway PostgreSQL cluster (`on_postgres::…`); the rest
//! run on SQLite (its files, migrations and locks).

use std::sync::Arc;

use anyhow::Result;
use plinth_store::migrations::{self, Migration, SQLITE};
use plinth_store::{
    Clock, Db, Error, FieldChange, MailStatus, NewUser, Options, ProfileChanges, TokenKind,
    UniqueField,
};
use rusqlite::Connection;
use tempfile::TempDir;

const START: i64 = 1_750_000_000;

/// A fresh database in a temp dir, on a clock frozen at `START`.
struct Fixture {
    dir: TempDir,
    db: Db,
    clock: Arc<Clock>,
}

fn fresh() -> Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(Clock::fixed(START));
    let db = Db::open_with(
        dir.path().join("test.db"),
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )?;
    Ok(Fixture { dir, db, clock })
}

fn new_user(name: &str, email: &str) -> NewUser {
    NewUser {
        name: name.into(),
        email: email.into(),
    }
}

/// Rows in `table`, through the store (the same on both backends).
fn count(db: &Db, table: &str) -> Result<i64> {
    db.table_counts()?
        .into_iter()
        .find(|c| c.table == table)
        .map(|c| c.rows)
        .ok_or_else(|| anyhow::anyhow!("no table {table}"))
}

/// The file of an SQLite fixture.
fn file(db: &Db) -> Result<&std::path::Path> {
    db.path()
        .ok_or_else(|| anyhow::anyhow!("not a file database"))
}

/// The two backends a contract test runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database on `backend`, on a clock frozen at `START`; `None`
/// when this machine has no PostgreSQL (and the run is not under CI).
fn fresh_on(backend: Backend, test: &str) -> Result<Option<Fixture>> {
    let Backend::Postgres = backend else {
        return fresh().map(Some);
    };
    let Some((_, url)) = plinth_pg_cluster::test_database(test)? else {
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let clock = Arc::new(Clock::fixed(START));
    let db = Db::connect(
        &url,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )?;
    Ok(Some(Fixture { dir, db, clock }))
}

/// Runs a contract test on `backend`.
fn on(backend: Backend, test: &str, body: fn(Fixture) -> Result<()>) -> Result<()> {
    match fresh_on(backend, test)? {
        Some(f) => body(f),
        None => Ok(()),
    }
}

macro_rules! assert_err {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err($pattern) => {}
            other => panic!("expected {}, got {other:?}", stringify!($pattern)),
        }
    };
}

mod migrations_ {
    use super::*;

    #[test]
    fn the_shipped_list_is_numbered_in_order() -> Result<()> {
        migrations::validate(SQLITE)?;
        Ok(())
    }

    #[test]
    fn a_badly_numbered_list_is_rejected() {
        let bad = [Migration {
            version: 2,
            description: "gap",
            sql: "",
        }];
        assert_err!(migrations::validate(&bad), Error::InvalidMigrations(_));
    }

    #[test]
    fn a_fresh_database_gets_every_table_and_index_of_v1() -> Result<()> {
        let f = fresh()?;
        assert_eq!(f.db.schema_version()?, migrations::latest_version());
        let conn = Connection::open(file(&f.db)?)?;
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for expected in [
            "users",
            "sessions",
            "email_verification_tokens",
            "password_reset_tokens",
            "schema_version",
            "idx_users_uuid",
            "idx_users_email",
            "idx_users_name",
            "idx_sessions_user_uuid",
            "idx_sessions_expires_at",
            "idx_email_verification_tokens_user_uuid",
            "idx_email_verification_tokens_expires_at",
            "idx_password_reset_tokens_user_uuid",
            "idx_password_reset_tokens_expires_at",
        ] {
            assert!(names.iter().any(|n| n == expected), "missing {expected}");
        }
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        assert_eq!(mode, "wal");
        Ok(())
    }

    #[test]
    fn rerunning_the_migrations_is_a_no_op() -> Result<()> {
        let f = fresh()?;
        drop(f.db);
        let path = f.dir.path().join("test.db");
        let before = {
            let conn = Connection::open(&path)?;
            conn.query_row("SELECT COUNT(*) FROM schema_version", [], |r| {
                r.get::<_, i64>(0)
            })?
        };
        let db = Db::open(&path)?;
        let conn = Connection::open(&path)?;
        let version = migrations::migrate(&path, SQLITE, START)?;
        assert_eq!(version, migrations::latest_version());
        assert_eq!(db.schema_version()?, version);
        let after: i64 = conn.query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))?;
        assert_eq!(before, after);
        Ok(())
    }

    #[test]
    fn a_later_migration_applies_on_top_of_populated_v1_data_and_loses_nothing() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("old.db");
        assert_eq!(migrations::migrate(&path, &SQLITE[..1], START)?, 1);
        let conn = Connection::open(&path)?;
        conn.execute_batch("PRAGMA foreign_keys = ON")?;
        conn.execute_batch(
            "INSERT INTO users (uuid, name, email, password_hash, created_at, updated_at)
                 VALUES ('u1', 'ada', 'ada@example.com', 'h', 1, 1);
             INSERT INTO sessions VALUES ('s1', 'u1', 1, 99999999999);
             INSERT INTO email_verification_tokens VALUES ('e1', 'u1', 1, 99999999999);
             INSERT INTO password_reset_tokens VALUES ('r1', 'u1', 1, 99999999999);",
        )?;
        let mut later: Vec<Migration> = SQLITE[..1].to_vec();
        later.push(Migration {
            version: 2,
            description: "test: a column and a table",
            sql: "ALTER TABLE users ADD COLUMN locale TEXT NOT NULL DEFAULT 'en';
                  CREATE TABLE audit_logs (id INTEGER PRIMARY KEY, user_uuid TEXT NOT NULL REFERENCES users (uuid));",
        });
        assert_eq!(migrations::migrate(&path, &later, START)?, 2);
        let (name, locale): (String, String) = conn.query_row(
            "SELECT name, locale FROM users WHERE uuid = 'u1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        assert_eq!((name.as_str(), locale.as_str()), ("ada", "en"));
        for table in [
            "sessions",
            "email_verification_tokens",
            "password_reset_tokens",
        ] {
            let n: i64 =
                conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
            assert_eq!(n, 1, "{table} lost rows");
        }
        Ok(())
    }

    #[test]
    fn the_shipped_migrations_apply_on_top_of_populated_v1_data() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("v1.db");
        migrations::migrate(&path, &SQLITE[..1], START)?;
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "INSERT INTO users (uuid, name, email, password_hash, created_at, updated_at)
                 VALUES ('u1', 'ada', 'ada@example.com', 'h', 1, 1);
             INSERT INTO sessions VALUES ('s1', 'u1', 1, 99999999999);",
        )?;
        drop(conn);
        let db = Db::open(&path)?;
        assert_eq!(db.schema_version()?, migrations::latest_version());
        let mut unit = db.unit()?;
        assert_eq!(unit.get_user_by_uuid("u1")?.name, "ada");
        assert_eq!(unit.get_session("s1")?.user_uuid, "u1");
        let counts = db.table_counts()?;
        assert!(counts.iter().any(|c| c.table == "outbox" && c.rows == 0));
        Ok(())
    }

    #[test]
    fn a_failing_migration_rolls_back_and_keeps_the_old_version() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("db");
        let mut list: Vec<Migration> = SQLITE[..1].to_vec();
        list.push(Migration {
            version: 2,
            description: "broken",
            sql: "CREATE TABLE half (x INTEGER); THIS IS NOT SQL;",
        });
        assert_err!(
            migrations::migrate(&path, &list, START),
            Error::Migration { version: 2, .. }
        );
        assert_eq!(migrations::schema_version(&path)?, 1);
        let conn = Connection::open(&path)?;
        let half: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(half, 0);
        Ok(())
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() -> Result<()> {
        let f = fresh()?;
        let conn = Connection::open(file(&f.db)?)?;
        conn.execute("INSERT INTO schema_version VALUES (999, 0)", [])?;
        assert_err!(
            Db::open(file(&f.db)?),
            Error::SchemaTooNew { found: 999, .. }
        );
        Ok(())
    }

    /// Another application's SQLite file is refused before anything is
    /// written: no plinth tables, no `schema_version`, no switch to WAL —
    /// the file is byte for byte what it was.
    #[test]
    fn another_applications_database_is_refused_and_left_untouched() -> Result<()> {
        let dir = tempfile::tempdir()?;
        for (name, setup, needle) in [
            (
                "own-users.db",
                "CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT);
                 INSERT INTO users (login) VALUES ('root');",
                "users",
            ),
            ("notes.db", "CREATE TABLE notes (body TEXT);", "notes"),
            (
                "app-id.db",
                "PRAGMA application_id = 1234;",
                "application id",
            ),
        ] {
            let path = dir.path().join(name);
            Connection::open(&path)?.execute_batch(setup)?;
            let before = std::fs::read(&path)?;
            match Db::open(&path) {
                Err(e @ Error::NotPlinth { .. }) => {
                    assert!(e.to_string().contains(needle), "{e}")
                }
                other => panic!("{name}: expected NotPlinth, got {other:?}"),
            }
            assert_eq!(std::fs::read(&path)?, before, "{name} was changed");
            let wal = path.with_extension("db-wal");
            assert!(!wal.exists(), "{name} was switched to WAL");
        }
        Ok(())
    }

    /// A new file, an empty one, and a v1 file from before the application
    /// id are plinth's; each is stamped with the id when opened.
    #[test]
    fn new_empty_and_earlier_plinth_files_are_opened_and_stamped() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"")?;
        let v1 = dir.path().join("v1.db");
        migrations::migrate(&v1, &SQLITE[..1], START)?;
        for path in [dir.path().join("new.db"), empty, v1] {
            Db::open(&path)?;
            let id: i32 =
                Connection::open(&path)?.query_row("PRAGMA application_id", [], |r| r.get(0))?;
            assert_eq!(id, plinth_store::APPLICATION_ID, "{}", path.display());
            // And it opens again.
            Db::open(&path)?;
        }
        Ok(())
    }

    /// Paths that cannot hold a lasting database are refused, not opened
    /// as an in-memory database that keeps nothing.
    #[test]
    fn in_memory_databases_uris_and_directories_are_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        for path in [
            std::path::PathBuf::from(":memory:"),
            std::path::PathBuf::from("file:plinth.db?mode=memory"),
            std::path::PathBuf::from(""),
            dir.path().to_path_buf(),
        ] {
            match Db::open(&path) {
                Err(Error::InvalidPath { .. }) => {}
                other => panic!("{}: expected InvalidPath, got {other:?}", path.display()),
            }
        }
        Ok(())
    }

    /// Hosts started at once on one new file: each opener takes the write
    /// lock before it looks at what the file holds, so none sees another's
    /// schema half made (and refuses it as not plinth's) or trips on the
    /// other's locks, and every step is applied once.
    #[test]
    fn openers_racing_on_a_new_file_all_succeed_with_one_schema() -> Result<()> {
        const ROUNDS: usize = 20;
        const OPENERS: usize = 4;
        let dir = tempfile::tempdir()?;
        for round in 0..ROUNDS {
            let path = dir.path().join(format!("race-{round}.db"));
            let start = Arc::new(std::sync::Barrier::new(OPENERS));
            let openers: Vec<_> = (0..OPENERS)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        Db::open(&path).and_then(|db| db.schema_version())
                    })
                })
                .collect();
            for opener in openers {
                let opened = opener
                    .join()
                    .map_err(|_| anyhow::anyhow!("an opener panicked"))?;
                match opened {
                    Ok(v) => assert_eq!(v, migrations::latest_version(), "round {round}"),
                    Err(e) => panic!("round {round}: an opener failed: {e} ({e:?})"),
                }
            }
            let conn = Connection::open(&path)?;
            let id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
            assert_eq!(id, plinth_store::APPLICATION_ID, "round {round}");
            let versions: Vec<u32> = conn
                .prepare("SELECT version FROM schema_version ORDER BY version")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let all: Vec<u32> = SQLITE.iter().map(|m| m.version).collect();
            assert_eq!(versions, all, "round {round}: each step once");
            let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            assert_eq!(mode, "wal", "round {round}");
        }
        Ok(())
    }

    /// The same race between processes, as hosts started at once are:
    /// each round starts `OPENERS` copies of this test binary that open one
    /// new file at the same instant (see `race_opener`).
    #[test]
    fn processes_racing_on_a_new_file_all_succeed_with_one_schema() -> Result<()> {
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        const ROUNDS: usize = 10;
        const OPENERS: usize = 4;
        let dir = tempfile::tempdir()?;
        let exe = std::env::current_exe()?;
        for round in 0..ROUNDS {
            let path = dir.path().join(format!("race-{round}.db"));
            // Far enough ahead for every copy to have started.
            let at = (SystemTime::now() + Duration::from_millis(250))
                .duration_since(UNIX_EPOCH)?
                .as_nanos();
            let openers: Vec<_> = (0..OPENERS)
                .map(|_| {
                    std::process::Command::new(&exe)
                        .args(["--exact", "migrations_::race_opener", "--nocapture"])
                        .env(RACE_DB, &path)
                        .env(RACE_AT, at.to_string())
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                })
                .collect::<Result<_, _>>()?;
            for opener in openers {
                let out = opener.wait_with_output()?;
                let said = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success() && said.contains("opened at version"),
                    "round {round}: an opener failed: {said}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let conn = Connection::open(&path)?;
            let id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
            assert_eq!(id, plinth_store::APPLICATION_ID, "round {round}");
            let versions: Vec<u32> = conn
                .prepare("SELECT version FROM schema_version ORDER BY version")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let all: Vec<u32> = SQLITE.iter().map(|m| m.version).collect();
            assert_eq!(versions, all, "round {round}: each step once");
        }
        Ok(())
    }

    const RACE_DB: &str = "PLINTH_STORE_RACE_DB";
    const RACE_AT: &str = "PLINTH_STORE_RACE_AT";

    /// One opener of `processes_racing_on_a_new_file_…`, in a process of its
    /// own; a no-op when run as a test like any other.
    #[test]
    fn race_opener() -> Result<()> {
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        let (Some(path), Some(at)) = (std::env::var_os(RACE_DB), std::env::var_os(RACE_AT)) else {
            return Ok(());
        };
        let at: u128 = at.to_string_lossy().parse()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        if let Some(left) = at.checked_sub(now) {
            std::thread::sleep(Duration::from_nanos(u64::try_from(left)?));
        }
        let version = Db::open(&path)?.schema_version()?;
        println!("opened at version {version}");
        Ok(())
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("not.db");
        std::fs::write(&path, "this is a text file, not SQLite ".repeat(100))?;
        assert_err!(Db::open(&path), Error::Open { .. });
        Ok(())
    }
}

mod users {
    use super::*;

    pub(super) fn a_created_user_is_found_by_email_uuid_and_name(f: Fixture) -> Result<()> {
        let user =
            f.db.with_unit(|u| u.create_user(&new_user("ada", "ada@example.com")))?;
        assert_eq!(user.uuid.len(), 36);
        assert!(!user.email_verified);
        assert_eq!((user.created_at, user.updated_at), (START, START));
        let mut u = f.db.unit()?;
        assert_eq!(u.get_user_by_email("ada@example.com")?, user);
        assert_eq!(u.get_user_by_uuid(&user.uuid)?, user);
        assert_eq!(u.get_user_by_name("ada")?, user);
        // A new user has no password: creating a profile sets no secret.
        assert_err!(u.get_password_hash(&user.uuid), Error::NotFound);
        drop(u);
        f.db.with_unit(|u| u.update_user_password(&user.uuid, "hash-of-ada"))?;
        assert_eq!(f.db.unit()?.get_password_hash(&user.uuid)?, "hash-of-ada");
        Ok(())
    }

    pub(super) fn duplicate_emails_and_names_are_conflicts_naming_the_field(
        f: Fixture,
    ) -> Result<()> {
        f.db.with_unit(|u| u.create_user(&new_user("ada", "ada@example.com")))?;
        let mut u = f.db.unit()?;
        assert_err!(
            u.create_user(&new_user("other", "ada@example.com")),
            Error::Conflict(UniqueField::Email)
        );
        assert_err!(
            u.create_user(&new_user("ada", "other@example.com")),
            Error::Conflict(UniqueField::Name)
        );
        Ok(())
    }

    pub(super) fn missing_users_are_not_found(f: Fixture) -> Result<()> {
        let mut u = f.db.unit()?;
        assert_err!(u.get_user_by_email("nobody@example.com"), Error::NotFound);
        assert_err!(u.get_user_by_uuid("no-such-uuid"), Error::NotFound);
        assert_err!(u.get_user_by_name("nobody"), Error::NotFound);
        assert_err!(u.get_password_hash("no-such-uuid"), Error::NotFound);
        assert_err!(u.update_user_password("no-such-uuid", "h"), Error::NotFound);
        assert_err!(
            u.update_user_email_verified("no-such-uuid", true),
            Error::NotFound
        );
        assert_err!(
            u.update_user_profile("no-such-uuid", &ProfileChanges::default()),
            Error::NotFound
        );
        assert_err!(u.delete_user("no-such-uuid"), Error::NotFound);
        Ok(())
    }

    pub(super) fn empty_and_oversized_fields_are_invalid_input_and_write_nothing(
        f: Fixture,
    ) -> Result<()> {
        let mut u = f.db.unit()?;
        assert_err!(
            u.create_user(&new_user("", "a@example.com")),
            Error::InvalidInput(_)
        );
        assert_err!(u.create_user(&new_user("ada", "")), Error::InvalidInput(_));
        let huge = "x".repeat(1 << 20);
        assert_err!(
            u.create_user(&new_user(&huge, "a@example.com")),
            Error::InvalidInput(_)
        );
        assert_err!(
            u.create_user(&new_user("ada", &huge)),
            Error::InvalidInput(_)
        );
        assert_err!(u.get_user_by_email(&huge), Error::InvalidInput(_));
        assert_err!(u.get_user_by_uuid(""), Error::InvalidInput(_));
        u.commit()?;
        assert_eq!(count(&f.db, "users")?, 0);
        Ok(())
    }

    pub(super) fn sql_looking_strings_are_stored_verbatim(f: Fixture) -> Result<()> {
        let name = "robert'); DROP TABLE users; --";
        let email = "x' OR '1'='1@example.com";
        let user = f.db.with_unit(|u| u.create_user(&new_user(name, email)))?;
        let mut u = f.db.unit()?;
        assert_eq!(u.get_user_by_name(name)?.uuid, user.uuid);
        assert_eq!(u.get_user_by_email(email)?.name, name);
        assert_err!(u.get_user_by_email("' OR 1=1 --"), Error::NotFound);
        assert_eq!(count(&f.db, "users")?, 1);
        Ok(())
    }

    pub(super) fn password_verified_flag_and_profile_updates_stick_and_stamp_updated_at(
        f: Fixture,
    ) -> Result<()> {
        let user =
            f.db.with_unit(|u| u.create_user(&new_user("ada", "ada@example.com")))?;
        f.clock.advance(60);
        let mut u = f.db.unit()?;
        u.update_user_password(&user.uuid, "new-hash")?;
        assert_eq!(u.get_password_hash(&user.uuid)?, "new-hash");
        let verified = u.update_user_email_verified(&user.uuid, true)?;
        assert!(verified.email_verified);
        assert_eq!(verified.updated_at, START + 60);
        let changed = u.update_user_profile(
            &user.uuid,
            &ProfileChanges {
                name: Some("ada2".into()),
                avatar: FieldChange::Set("https://example.com/a.png".into()),
                bio: FieldChange::Set("hello".into()),
            },
        )?;
        assert_eq!(changed.name, "ada2");
        assert_eq!(changed.avatar.as_deref(), Some("https://example.com/a.png"));
        let kept = u.update_user_profile(
            &user.uuid,
            &ProfileChanges {
                name: None,
                avatar: FieldChange::Keep,
                bio: FieldChange::Clear,
            },
        )?;
        assert_eq!(kept.name, "ada2");
        assert_eq!(kept.avatar.as_deref(), Some("https://example.com/a.png"));
        assert_eq!(kept.bio, None);
        u.commit()?;
        assert_eq!(f.db.unit()?.get_user_by_name("ada2")?.uuid, user.uuid);
        Ok(())
    }

    pub(super) fn renaming_to_a_taken_name_is_a_conflict(f: Fixture) -> Result<()> {
        let mut u = f.db.unit()?;
        u.create_user(&new_user("ada", "ada@example.com"))?;
        let bob = u.create_user(&new_user("bob", "bob@example.com"))?;
        assert_err!(
            u.update_user_profile(
                &bob.uuid,
                &ProfileChanges {
                    name: Some("ada".into()),
                    ..ProfileChanges::default()
                }
            ),
            Error::Conflict(UniqueField::Name)
        );
        Ok(())
    }
}

mod look_alike_names {
    use super::*;

    pub(super) fn names_that_differ_in_case_or_form_are_one_name(f: Fixture) -> Result<()> {
        f.db.with_unit(|u| u.create_user(&new_user("admin", "a@example.com")))?;
        for (name, email) in [("Admin", "b@example.com"), ("ＡＤＭＩＮ", "c@example.com")] {
            assert_err!(
                f.db.with_unit(|u| u.create_user(&new_user(name, email))),
                Error::Conflict(UniqueField::Name)
            );
        }
        assert_err!(
            f.db.with_unit(|u| u.create_user(&new_user("\u{430}dmin", "d@example.com"))),
            Error::InvalidInput(_)
        );
        // Renaming into a look-alike is refused the same way.
        let bob =
            f.db.with_unit(|u| u.create_user(&new_user("bob", "bob@example.com")))?;
        let rename = ProfileChanges {
            name: Some("ADMIN".into()),
            ..ProfileChanges::default()
        };
        assert_err!(
            f.db.with_unit(|u| u.update_user_profile(&bob.uuid, &rename)),
            Error::Conflict(UniqueField::Name)
        );
        Ok(())
    }

    /// Users from before the name key keep their names, even where two
    /// already collide; no new look-alike can join them.
    #[test]
    fn earlier_colliding_names_are_kept_and_no_new_one_joins_them() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("v3.db");
        migrations::migrate(&path, &SQLITE[..3], START)?;
        Connection::open(&path)?.execute_batch(
            "INSERT INTO users (uuid, name, email, password_hash, created_at, updated_at) VALUES
                 ('u1', 'admin', 'a@example.com', '', 1, 1),
                 ('u2', 'Admin', 'b@example.com', '', 1, 1);",
        )?;
        let db = Db::open(&path)?;
        assert_eq!(db.unit()?.get_user_by_uuid("u2")?.name, "Admin");
        assert_err!(
            db.with_unit(|u| u.create_user(&new_user("ADMIN", "c@example.com"))),
            Error::Conflict(UniqueField::Name)
        );
        Ok(())
    }
}

mod sessions {
    use super::*;

    pub(super) fn sessions_live_until_they_expire_and_then_are_hidden(f: Fixture) -> Result<()> {
        let mut u = f.db.unit()?;
        let user = u.create_user(&new_user("ada", "ada@example.com"))?;
        let s = u.create_session("sid-1", &user.uuid, 3600)?;
        assert_eq!((s.created_at, s.expires_at), (START, START + 3600));
        u.commit()?;
        assert_eq!(f.db.unit()?.get_session("sid-1")?, s);
        f.clock.advance(3599);
        assert!(f.db.unit()?.get_session("sid-1").is_ok());
        f.clock.advance(1);
        assert_err!(f.db.unit()?.get_session("sid-1"), Error::NotFound);
        assert_err!(f.db.unit()?.extend_session("sid-1", 60), Error::NotFound);
        Ok(())
    }

    pub(super) fn extending_a_session_moves_its_expiry_from_now(f: Fixture) -> Result<()> {
        let mut u = f.db.unit()?;
        let user = u.create_user(&new_user("ada", "ada@example.com"))?;
        u.create_session("sid-1", &user.uuid, 100)?;
        u.commit()?;
        f.clock.advance(90);
        let extended = f.db.with_unit(|u| u.extend_session("sid-1", 100))?;
        assert_eq!(extended.expires_at, START + 190);
        Ok(())
    }

    pub(super) fn deleting_and_cleaning_up_sessions_counts_what_went(f: Fixture) -> Result<()> {
        let mut u = f.db.unit()?;
        let ada = u.create_user(&new_user("ada", "ada@example.com"))?;
        let bob = u.create_user(&new_user("bob", "bob@example.com"))?;
        u.create_session("a1", &ada.uuid, 10)?;
        u.create_session("a2", &ada.uuid, 1000)?;
        u.create_session("a3", &ada.uuid, 1000)?;
        u.create_session("b1", &bob.uuid, 10)?;
        u.create_session("b2", &bob.uuid, 1000)?;
        assert!(u.delete_session("a3")?);
        assert!(!u.delete_session("a3")?);
        u.commit()?;
        f.clock.advance(10);
        assert_eq!(f.db.with_unit(|u| u.cleanup_expired_sessions())?, 2);
        assert_eq!(f.db.with_unit(|u| u.delete_user_sessions(&ada.uuid))?, 1);
        assert_eq!(count(&f.db, "sessions")?, 1);
        Ok(())
    }

    pub(super) fn a_session_for_an_unknown_user_is_not_found_and_a_reused_id_is_a_conflict(
        f: Fixture,
    ) -> Result<()> {
        let mut u = f.db.unit()?;
        assert_err!(u.create_session("sid", "no-such-user", 60), Error::NotFound);
        let ada = u.create_user(&new_user("ada", "ada@example.com"))?;
        u.create_session("sid", &ada.uuid, 60)?;
        assert_err!(
            u.create_session("sid", &ada.uuid, 60),
            Error::Conflict(UniqueField::SessionId)
        );
        assert_err!(
            u.create_session("sid2", &ada.uuid, 0),
            Error::InvalidInput(_)
        );
        assert_err!(
            u.create_session("sid2", &ada.uuid, u32::MAX),
            Error::InvalidInput(_)
        );
        Ok(())
    }
}

mod tokens {
    use super::*;

    const KINDS: [TokenKind; 2] = [TokenKind::EmailVerification, TokenKind::PasswordReset];

    fn table(kind: TokenKind) -> &'static str {
        match kind {
            TokenKind::EmailVerification => "email_verification_tokens",
            TokenKind::PasswordReset => "password_reset_tokens",
        }
    }

    #[test]
    fn tokens_expire_and_are_hidden_once_expired() -> Result<()> {
        for kind in KINDS {
            let f = fresh()?;
            let mut u = f.db.unit()?;
            let ada = u.create_user(&new_user("ada", "ada@example.com"))?;
            let t = u.create_token(kind, "t1", &ada.uuid, 3600)?;
            assert_eq!(t.expires_at, START + 3600);
            u.commit()?;
            assert_eq!(f.db.unit()?.get_token(kind, "t1")?, t);
            f.clock.advance(3600);
            assert_err!(f.db.unit()?.get_token(kind, "t1"), Error::NotFound);
            assert_err!(f.db.unit()?.consume_token(kind, "t1"), Error::NotFound);
            assert_eq!(f.db.with_unit(|u| u.cleanup_expired_tokens(kind))?, 1);
            assert_eq!(count(&f.db, table(kind))?, 0);
        }
        Ok(())
    }

    #[test]
    fn a_token_is_consumed_once() -> Result<()> {
        for kind in KINDS {
            let f = fresh()?;
            let mut u = f.db.unit()?;
            let ada = u.create_user(&new_user("ada", "ada@example.com"))?;
            u.create_token(kind, "t1", &ada.uuid, 60)?;
            assert_eq!(u.consume_token(kind, "t1")?.user_uuid, ada.uuid);
            assert_err!(u.consume_token(kind, "t1"), Error::NotFound);
            u.commit()?;
            assert_eq!(count(&f.db, table(kind))?, 0);
        }
        Ok(())
    }

    #[test]
    fn deleting_tokens_of_a_user_leaves_the_others() -> Result<()> {
        for kind in KINDS {
            let f = fresh()?;
            let mut u = f.db.unit()?;
            let ada = u.create_user(&new_user("ada", "ada@example.com"))?;
            let bob = u.create_user(&new_user("bob", "bob@example.com"))?;
            u.create_token(kind, "a1", &ada.uuid, 60)?;
            u.create_token(kind, "a2", &ada.uuid, 60)?;
            u.create_token(kind, "b1", &bob.uuid, 60)?;
            assert_eq!(u.delete_user_tokens(kind, &ada.uuid)?, 2);
            assert!(u.delete_token(kind, "b1")?);
            assert!(!u.delete_token(kind, "b1")?);
            assert_err!(
                u.create_token(kind, "x", "no-such-user", 60),
                Error::NotFound
            );
            u.create_token(kind, "b2", &bob.uuid, 60)?;
            assert_err!(
                u.create_token(kind, "b2", &bob.uuid, 60),
                Error::Conflict(UniqueField::Token)
            );
        }
        Ok(())
    }

    pub(super) fn two_threads_consuming_one_token_get_it_exactly_once(f: Fixture) -> Result<()> {
        let ada =
            f.db.with_unit(|u| u.create_user(&new_user("ada", "ada@example.com")))?;
        for round in 0..20 {
            let token = format!("t{round}");
            f.db.with_unit(|u| u.create_token(TokenKind::PasswordReset, &token, &ada.uuid, 60))?;
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (db, token, barrier) = (f.db.clone(), token.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        db.with_unit(|u| u.consume_token(TokenKind::PasswordReset, &token))
                            .is_ok()
                    })
                })
                .collect();
            let wins = handles
                .into_iter()
                .map(|h| h.join().unwrap_or(false))
                .filter(|won| *won)
                .count();
            assert_eq!(wins, 1, "round {round}");
        }
        Ok(())
    }
}

mod units {
    use super::*;

    #[test]
    fn the_bundled_sqlite_has_no_process_wide_page_cache_or_memory_statistics() -> Result<()> {
        // Set by .cargo/config.toml; both would make threads queue on one
        // mutex for every page they touch.
        let conn = Connection::open_in_memory()?;
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        Ok(())
    }

    #[test]
    fn a_units_reads_share_one_snapshot_until_it_writes() -> Result<()> {
        let f = fresh()?;
        f.db.with_unit(|u| u.create_user(&new_user("ada", "ada@example.com")))?;
        let mut reader = f.db.unit()?;
        let before = reader.get_user_by_name("ada")?;
        assert!(!before.email_verified);
        // Another unit changes the row and commits while `reader` is open.
        f.db.with_unit(|u| u.update_user_email_verified(&before.uuid, true))?;
        assert!(
            !reader.get_user_by_name("ada")?.email_verified,
            "same snapshot"
        );
        // A write ends the snapshot: what follows sees the other unit's commit.
        reader.create_user(&new_user("bob", "bob@example.com"))?;
        assert!(reader.get_user_by_name("ada")?.email_verified);
        reader.commit()?;
        // A read-only unit that ends leaves no transaction on its connection:
        // the next unit (on the same pooled connection) sees new commits.
        let mut stale = f.db.unit()?;
        stale.get_user_by_name("bob")?;
        stale.commit()?;
        f.db.with_unit(|u| u.delete_user(&before.uuid))?;
        assert_err!(f.db.unit()?.get_user_by_name("ada"), Error::NotFound);
        Ok(())
    }

    pub(super) fn deleting_a_user_cascades_to_its_sessions_and_tokens(f: Fixture) -> Result<()> {
        let mut u = f.db.unit()?;
        let ada = u.create_user(&new_user("ada", "ada@example.com"))?;
        let bob = u.create_user(&new_user("bob", "bob@example.com"))?;
        for user in [&ada, &bob] {
            u.create_session(&format!("s-{}", user.name), &user.uuid, 60)?;
            u.create_token(
                TokenKind::EmailVerification,
                &format!("e-{}", user.name),
                &user.uuid,
                60,
            )?;
            u.create_token(
                TokenKind::PasswordReset,
                &format!("r-{}", user.name),
                &user.uuid,
                60,
            )?;
        }
        u.delete_user(&ada.uuid)?;
        u.commit()?;
        for table in [
            "users",
            "sessions",
            "email_verification_tokens",
            "password_reset_tokens",
        ] {
            assert_eq!(count(&f.db, table)?, 1, "{table}");
        }
        Ok(())
    }

    pub(super) fn an_uncommitted_unit_leaves_nothing_behind(f: Fixture) -> Result<()> {
        {
            let mut u = f.db.unit()?;
            u.create_user(&new_user("ada", "ada@example.com"))?;
            assert!(u.is_writing());
        }
        assert_eq!(count(&f.db, "users")?, 0);
        let mut u = f.db.unit()?;
        u.create_user(&new_user("ada", "ada@example.com"))?;
        u.rollback();
        assert_eq!(count(&f.db, "users")?, 0);
        Ok(())
    }

    pub(super) fn a_writer_does_not_block_readers(f: Fixture) -> Result<()> {
        f.db.with_unit(|u| u.create_user(&new_user("ada", "ada@example.com")))?;
        let mut writer = f.db.unit()?;
        writer.create_user(&new_user("bob", "bob@example.com"))?;
        // The writer holds the lock; a reader on another connection still reads
        // the last committed state.
        let mut reader = f.db.unit()?;
        assert!(reader.get_user_by_name("ada").is_ok());
        assert_err!(reader.get_user_by_name("bob"), Error::NotFound);
        writer.commit()?;
        assert!(f.db.unit()?.get_user_by_name("bob").is_ok());
        Ok(())
    }

    #[test]
    fn a_second_writer_waits_then_reports_busy() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let db = Db::open_with(
            dir.path().join("db"),
            Options {
                busy_timeout: std::time::Duration::from_millis(50),
                ..Options::default()
            },
        )?;
        let mut first = db.unit()?;
        first.create_user(&new_user("ada", "ada@example.com"))?;
        let mut second = db.unit()?;
        assert_err!(
            second.create_user(&new_user("bob", "bob@example.com")),
            Error::Busy
        );
        drop(second);
        first.commit()?;
        db.with_unit(|u| u.create_user(&new_user("bob", "bob@example.com")))?;
        Ok(())
    }

    /// A writer that takes the write lock back to back, holding it `HOLD`
    /// each time, does not keep a writer that asked for it meanwhile out
    /// until that one's busy timeout: writers in one process are served in
    /// the order they asked, so the other gets the lock at the hog's next
    /// release, about one hold later (SQLite's own busy wait polls, and
    /// would lose the lock to the hog's next unit every time).
    #[test]
    fn a_writer_gets_the_lock_in_turn_against_one_that_takes_it_back_to_back() -> Result<()> {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        use std::time::{Duration, Instant};
        const HOLD: Duration = Duration::from_millis(100);
        let dir = tempfile::tempdir()?;
        let db = Db::open_with(
            dir.path().join("db"),
            Options {
                busy_timeout: Duration::from_secs(2),
                ..Options::default()
            },
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicU32::new(0));
        let hog = {
            let (db, stop, held) = (db.clone(), stop.clone(), held.clone());
            std::thread::spawn(move || -> Result<u32> {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    db.with_unit(|u| {
                        u.record_failure(&format!("hog-{n}"))?;
                        held.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(HOLD);
                        Ok(())
                    })?;
                    n += 1;
                }
                Ok(n)
            })
        };
        // Ask while the hog holds the lock, after it has taken it twice.
        while held.load(Ordering::Relaxed) < 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let asked = Instant::now();
        let written = db.with_unit(|u| u.create_user(&new_user("ada", "ada@example.com")));
        let waited = asked.elapsed();
        stop.store(true, Ordering::Relaxed);
        let rounds = hog
            .join()
            .map_err(|_| anyhow::anyhow!("the hog panicked"))??;
        eprintln!("waited {waited:?} for the write lock (hog: {rounds} units of {HOLD:?})");
        let written = written?;
        assert_eq!(written.name, "ada");
        assert!(
            waited < 5 * HOLD,
            "waited {waited:?}, more than a few holds of {HOLD:?}"
        );
        Ok(())
    }
}

mod outbox_and_attempts {
    use super::*;
    use plinth_store::Mail;

    fn mail(to: &str, subject: &str) -> Mail {
        Mail {
            to: to.into(),
            subject: subject.into(),
            body: "body".into(),
        }
    }

    pub(super) fn mail_is_recorded_and_read_back_in_order(f: Fixture) -> Result<()> {
        f.db.with_unit(|u| {
            u.record_mail(&mail("a@example.com", "one"))?;
            u.record_mail(&mail("b@example.com", "two"))?;
            u.record_mail(&mail("a@example.com", "three"))
        })?;
        let all = f.db.outbox(None, 10)?;
        let subjects: Vec<_> = all.iter().map(|m| m.subject.as_str()).collect();
        assert_eq!(subjects, ["one", "two", "three"]);
        assert_eq!(f.db.outbox(Some("a@example.com"), 1)?[0].subject, "three");
        let (n, oldest) = f.db.unit()?.mail_sent_since("a@example.com", START - 1)?;
        assert_eq!((n, oldest), (2, Some(START)));
        Ok(())
    }

    pub(super) fn bad_mail_is_refused(f: Fixture) -> Result<()> {
        let mut u = f.db.unit()?;
        assert_err!(u.record_mail(&mail("", "s")), Error::InvalidInput(_));
        assert_err!(
            u.record_mail(&mail("a@example.com", "two\nlines")),
            Error::InvalidInput(_)
        );
        let mut big = mail("a@example.com", "s");
        big.body = "x".repeat(1 << 20);
        assert_err!(u.record_mail(&big), Error::InvalidInput(_));
        Ok(())
    }

    pub(super) fn failures_count_up_and_clear(f: Fixture) -> Result<()> {
        let mut u = f.db.unit()?;
        assert_eq!(u.get_failures("k")?.count, 0);
        u.record_failure("k")?;
        f.clock.advance(5);
        let two = u.record_failure("k")?;
        assert_eq!((two.count, two.last_at), (2, START + 5));
        assert_eq!(u.get_failures("k")?, two);
        u.clear_failures("k")?;
        assert_eq!(u.get_failures("k")?.count, 0);
        assert_err!(u.record_failure(&"k".repeat(1000)), Error::InvalidInput(_));
        Ok(())
    }

    pub(super) fn a_failure_is_reserved_only_while_the_count_is_what_the_caller_read(
        f: Fixture,
    ) -> Result<()> {
        let mut u = f.db.unit()?;
        // No row is a count of 0.
        assert_eq!(u.reserve_failure("k", 1)?, None);
        let one = u
            .reserve_failure("k", 0)?
            .ok_or_else(|| anyhow::anyhow!("not reserved"))?;
        assert_eq!(one.count, 1);
        assert_eq!(u.reserve_failure("k", 0)?, None);
        assert_eq!(u.reserve_failure("k", 1)?.map(|f| f.count), Some(2));
        assert_eq!(u.reserve_failure("k", 1)?, None);
        assert_eq!(u.get_failures("k")?.count, 2);
        assert_err!(u.reserve_failure("", 0), Error::InvalidInput(_));
        Ok(())
    }

    fn with_body(to: &str, body: &str) -> Mail {
        Mail {
            to: to.into(),
            subject: "s".into(),
            body: body.into(),
        }
    }

    pub(super) fn queued_mail_is_due_until_sent_and_sending_scrubs_the_body(
        f: Fixture,
    ) -> Result<()> {
        let id =
            f.db.with_unit(|u| u.record_mail(&with_body("a@example.com", "token: abc")))?;
        // A unit that rolls back queues nothing.
        {
            let mut u = f.db.unit()?;
            u.record_mail(&with_body("b@example.com", "token: rolled-back"))?;
        }
        let due = f.db.due_mail(10)?;
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].id, due[0].attempts), (id, 0));
        assert_eq!(due[0].mail.body, "token: abc");
        f.db.mail_sent(id)?;
        assert!(f.db.due_mail(10)?.is_empty());
        let m = &f.db.outbox(None, 10)?[0];
        assert_eq!(m.status, MailStatus::Sent);
        assert_eq!(
            (m.body.as_str(), m.sent_at, m.attempts),
            ("", Some(START), 1)
        );
        // Twice is not found: another sender got there first.
        assert_err!(f.db.mail_sent(id), Error::NotFound);
        Ok(())
    }

    pub(super) fn a_failed_attempt_waits_its_delay_and_giving_up_scrubs_the_body(
        f: Fixture,
    ) -> Result<()> {
        let id =
            f.db.with_unit(|u| u.record_mail(&with_body("a@example.com", "token: abc")))?;
        f.db.mail_failed(id, "connection refused", Some(60))?;
        assert!(f.db.due_mail(10)?.is_empty());
        f.clock.advance(60);
        let due = f.db.due_mail(10)?;
        assert_eq!((due.len(), due[0].attempts), (1, 1));
        f.db.mail_failed(id, "550 no such mailbox", None)?;
        assert!(f.db.due_mail(10)?.is_empty());
        let m = &f.db.outbox(None, 10)?[0];
        assert_eq!(m.status, MailStatus::Failed);
        assert_eq!(m.body, "");
        assert_eq!(m.last_error.as_deref(), Some("550 no such mailbox"));
        // Rate limits count every message, whatever became of it.
        let mut unit = f.db.unit()?;
        assert_eq!(unit.mail_sent_since("a@example.com", START - 1)?.0, 1);
        Ok(())
    }

    /// Mail recorded before the queue (schema v2) was shown by the CLI,
    /// which was its delivery: the migration counts it as sent and removes
    /// its bodies, live tokens among them.
    #[test]
    fn the_queue_migration_scrubs_mail_recorded_before_it() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("v2.db");
        migrations::migrate(&path, &SQLITE[..2], START)?;
        Connection::open(&path)?.execute_batch(
            "INSERT INTO outbox (recipient, subject, body, created_at)
                 VALUES ('a@example.com', 'Reset your password', 'token: live', 5)",
        )?;
        let db = Db::open(&path)?;
        let m = &db.outbox(None, 1)?[0];
        assert_eq!(
            (m.status, m.body.as_str(), m.sent_at),
            (MailStatus::Sent, "", Some(5))
        );
        assert!(db.due_mail(10)?.is_empty());
        Ok(())
    }

    pub(super) fn cleanup_removes_only_expired_rows(f: Fixture) -> Result<()> {
        f.db.with_unit(|u| {
            let ada = u.create_user(&new_user("ada", "ada@example.com"))?;
            u.create_session("old", &ada.uuid, 10)?;
            u.create_session("new", &ada.uuid, 1000)?;
            u.create_token(TokenKind::EmailVerification, "e", &ada.uuid, 10)?;
            u.create_token(TokenKind::PasswordReset, "r", &ada.uuid, 1000)
        })?;
        f.clock.advance(10);
        let removed = f.db.cleanup_expired()?;
        assert_eq!(
            removed,
            [
                ("sessions", 1),
                ("email_verification_tokens", 1),
                ("password_reset_tokens", 0)
            ]
        );
        Ok(())
    }
}

/// Runs each contract test on both backends: `on_sqlite::NAME` and
/// `on_postgres::NAME`.
/// `wasi:keyvalue`'s storage: buckets per plugin, in the unit of work,
/// atomic increments and swaps across threads (and hosts, on PostgreSQL).
mod keyvalue {
    use plinth_store::plugin::{KEYS_PER_PAGE, KvError, MAX_VALUE_BYTES};
    use plinth_store::sql::Namespace;

    use super::*;

    fn ns(plugin: &str) -> Result<Namespace> {
        Ok(Namespace::new(plugin, false)?)
    }

    pub fn get_set_delete_and_exists_in_buckets_of_their_own(f: Fixture) -> Result<()> {
        let (a, b) = (ns("alpha")?, ns("beta")?);
        let mut unit = f.db.unit()?;
        anyhow::ensure!(unit.kv_get(&a, "prefs", "theme")?.is_none());
        unit.kv_set(&a, "prefs", "theme", b"dark")?;
        unit.kv_set(&a, "prefs", "theme", b"light")?;
        unit.kv_set(&b, "prefs", "theme", b"beta's")?;
        unit.kv_set(&a, "other", "theme", b"other bucket")?;
        unit.kv_set(&a, "prefs", "'; DROP TABLE users; --", b"\0\xff")?;
        unit.commit()?;
        let mut unit = f.db.unit()?;
        anyhow::ensure!(unit.kv_get(&a, "prefs", "theme")?.as_deref() == Some(&b"light"[..]));
        anyhow::ensure!(unit.kv_get(&b, "prefs", "theme")?.as_deref() == Some(&b"beta's"[..]));
        anyhow::ensure!(
            unit.kv_get(&a, "other", "theme")?.as_deref() == Some(&b"other bucket"[..])
        );
        anyhow::ensure!(
            unit.kv_get(&a, "prefs", "'; DROP TABLE users; --")?
                .as_deref()
                == Some(&b"\0\xff"[..])
        );
        unit.kv_delete(&a, "prefs", "theme")?;
        unit.kv_delete(&a, "prefs", "never there")?;
        anyhow::ensure!(unit.kv_get(&a, "prefs", "theme")?.is_none());
        anyhow::ensure!(unit.kv_get(&b, "prefs", "theme")?.is_some());
        // Not committed: the delete is undone.
        drop(unit);
        let mut unit = f.db.unit()?;
        anyhow::ensure!(unit.kv_get(&a, "prefs", "theme")?.is_some());
        let data = f.db.plugin_data()?;
        let names: Vec<&str> = data.iter().map(|d| d.plugin.as_str()).collect();
        anyhow::ensure!(names == ["alpha", "beta"], "{data:?}");
        anyhow::ensure!(data[0].keys == 3 && data[1].keys == 1, "{data:?}");
        Ok(())
    }

    pub fn oversized_keys_and_values_are_too_large_and_write_nothing(f: Fixture) -> Result<()> {
        let a = ns("alpha")?;
        let mut unit = f.db.unit()?;
        let big = vec![7u8; MAX_VALUE_BYTES + 1];
        assert_err!(unit.kv_set(&a, "b", "k", &big), KvError::TooLarge(_));
        assert_err!(
            unit.kv_set(&a, "b", &"k".repeat(1025), b"v"),
            KvError::TooLarge(_)
        );
        assert_err!(unit.kv_get(&a, &"b".repeat(257), "k"), KvError::TooLarge(_));
        unit.kv_set(&a, "b", "k", &vec![7u8; MAX_VALUE_BYTES])?;
        unit.commit()?;
        let quota = ns("alpha")?.with_quota(Some(MAX_VALUE_BYTES as u64 + 100));
        let mut unit = f.db.unit()?;
        assert_err!(
            unit.kv_set(&quota, "b", "k2", &[1u8; 200]),
            KvError::TooLarge(_)
        );
        // Replacing a value is measured as what it adds.
        unit.kv_set(&quota, "b", "k", &[1u8; 10])?;
        unit.kv_set(&quota, "b", "k2", &[1u8; 200])?;
        unit.commit()?;
        Ok(())
    }

    /// The quota holds across calls and roads: what a plugin's SQL added to
    /// its tables in earlier units counts against a key-value write.
    pub fn a_key_value_write_counts_what_the_plugins_tables_took_before(f: Fixture) -> Result<()> {
        use plinth_store::sql::SqlValue;
        let quota = 2_000_000;
        let a = ns("alpha")?.with_quota(Some(quota));
        // The plugin's usage is recorded by a first write.
        let mut unit = f.db.unit()?;
        unit.kv_set(&a, "b", "first", b"x")?;
        let (create, insert) = match f.db.dialect() {
            plinth_store::Dialect::Sqlite => (
                "CREATE TABLE blobs (body BLOB)",
                "INSERT INTO blobs (body) VALUES (?1)",
            ),
            _ => (
                "CREATE TABLE blobs (body BYTEA)",
                "INSERT INTO blobs (body) VALUES ($1)",
            ),
        };
        unit.plugin_execute(&a, create, &[])?;
        unit.commit()?;
        // Then its tables grow, under the quota, a unit at a time, with bytes
        // no engine compresses.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let bytes_of = |f: &Fixture| -> Result<u64> {
            let data = f.db.plugin_data()?;
            Ok(data
                .iter()
                .find(|d| d.plugin == "alpha")
                .map_or(0, |d| d.bytes()))
        };
        while bytes_of(&f)? < quota - 300_000 {
            let chunk: Vec<u8> = (0..100_000)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed.to_le_bytes()[0]
                })
                .collect();
            let mut unit = f.db.unit()?;
            unit.plugin_execute(&a, insert, &[SqlValue::Blob(chunk)])?;
            unit.commit()?;
        }
        // A value that fits beside what was recorded first, not beside what
        // the tables take now.
        let mut unit = f.db.unit()?;
        assert_err!(
            unit.kv_set(&a, "b", "big", &vec![1u8; MAX_VALUE_BYTES]),
            KvError::TooLarge(_)
        );
        Ok(())
    }

    pub fn list_keys_pages_through_every_key_once(f: Fixture) -> Result<()> {
        let a = ns("alpha")?;
        let n = KEYS_PER_PAGE as usize * 2 + 17;
        let mut unit = f.db.unit()?;
        for i in 0..n {
            unit.kv_set(&a, "b", &format!("key-{i:05}"), b"")?;
        }
        unit.kv_set(&ns("beta")?, "b", "not alpha's", b"")?;
        unit.commit()?;
        let mut unit = f.db.unit()?;
        let (mut all, mut cursor, mut pages) = (Vec::new(), None, 0);
        loop {
            let (keys, next) = unit.kv_keys(&a, "b", cursor.as_deref())?;
            pages += 1;
            all.extend(keys);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let want: Vec<String> = (0..n).map(|i| format!("key-{i:05}")).collect();
        anyhow::ensure!(all == want, "{} keys in {pages} pages", all.len());
        anyhow::ensure!(pages == 3);
        anyhow::ensure!(unit.kv_keys(&a, "empty", None)? == (vec![], None));
        Ok(())
    }

    pub fn increments_and_swaps_from_many_threads_lose_nothing(f: Fixture) -> Result<()> {
        const THREADS: usize = 4;
        const EACH: i64 = 25;
        let a = ns("alpha")?;
        let mut handles = Vec::new();
        for t in 0..THREADS {
            let (db, a) = (f.db.clone(), a.clone());
            handles.push(std::thread::spawn(move || -> Result<()> {
                for i in 0..EACH {
                    loop {
                        let mut unit = db.unit()?;
                        let step = (|| -> Result<(), KvError> {
                            unit.kv_increment(&a, "c", "hits", 1)?;
                            // Compare-and-swap: append this thread's mark.
                            loop {
                                let seen = unit.kv_get(&a, "c", "log")?;
                                let mut next = seen.clone().unwrap_or_default();
                                next.push(u8::try_from(t).unwrap_or(0));
                                if unit
                                    .kv_swap(&a, "c", "log", seen.as_deref(), &next)?
                                    .is_none()
                                {
                                    return Ok(());
                                }
                            }
                        })();
                        match step {
                            Ok(()) => match unit.commit() {
                                Ok(()) => break,
                                Err(Error::Busy) => continue,
                                Err(e) => return Err(e.into()),
                            },
                            Err(KvError::Store(Error::Busy)) => continue,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    let _ = i;
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a thread panicked"))??;
        }
        let mut unit = f.db.unit()?;
        let hits = unit
            .kv_get(&a, "c", "hits")?
            .and_then(|b| plinth_store::plugin::counter(&b));
        let total = THREADS as i64 * EACH;
        anyhow::ensure!(hits == Some(total), "{hits:?}");
        let log = unit.kv_get(&a, "c", "log")?.unwrap_or_default();
        anyhow::ensure!(log.len() as i64 == total, "{}", log.len());
        for t in 0..THREADS {
            let mine = log.iter().filter(|&&b| usize::from(b) == t).count() as i64;
            anyhow::ensure!(mine == EACH, "thread {t}: {mine}");
        }
        // A value that is not a counter is not incremented.
        unit.kv_set(&a, "c", "text", b"12")?;
        assert_err!(
            unit.kv_increment(&a, "c", "text", 1),
            KvError::NotACounter(_)
        );
        unit.kv_set(&a, "c", "max", &i64::MAX.to_le_bytes())?;
        assert_err!(unit.kv_increment(&a, "c", "max", 1), KvError::TooLarge(_));
        Ok(())
    }
}

macro_rules! on_both {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $test() -> anyhow::Result<()> {
                    let name = concat!(stringify!($module), "::", stringify!($test));
                    super::on(super::Backend::Sqlite, name, super::$module::$test)
                }
            )*
        }
        mod on_postgres {
            $(
                #[test]
                fn $test() -> anyhow::Result<()> {
                    let name = concat!(stringify!($module), "::", stringify!($test));
                    super::on(super::Backend::Postgres, name, super::$module::$test)
                }
            )*
        }
    };
}

on_both!(
    users::a_created_user_is_found_by_email_uuid_and_name,
    users::duplicate_emails_and_names_are_conflicts_naming_the_field,
    users::missing_users_are_not_found,
    users::empty_and_oversized_fields_are_invalid_input_and_write_nothing,
    users::sql_looking_strings_are_stored_verbatim,
    users::password_verified_flag_and_profile_updates_stick_and_stamp_updated_at,
    users::renaming_to_a_taken_name_is_a_conflict,
    look_alike_names::names_that_differ_in_case_or_form_are_one_name,
    sessions::sessions_live_until_they_expire_and_then_are_hidden,
    sessions::extending_a_session_moves_its_expiry_from_now,
    sessions::deleting_and_cleaning_up_sessions_counts_what_went,
    sessions::a_session_for_an_unknown_user_is_not_found_and_a_reused_id_is_a_conflict,
    tokens::two_threads_consuming_one_token_get_it_exactly_once,
    units::deleting_a_user_cascades_to_its_sessions_and_tokens,
    units::an_uncommitted_unit_leaves_nothing_behind,
    units::a_writer_does_not_block_readers,
    outbox_and_attempts::mail_is_recorded_and_read_back_in_order,
    outbox_and_attempts::bad_mail_is_refused,
    outbox_and_attempts::failures_count_up_and_clear,
    outbox_and_attempts::a_failure_is_reserved_only_while_the_count_is_what_the_caller_read,
    outbox_and_attempts::queued_mail_is_due_until_sent_and_sending_scrubs_the_body,
    outbox_and_attempts::a_failed_attempt_waits_its_delay_and_giving_up_scrubs_the_body,
    outbox_and_attempts::cleanup_removes_only_expired_rows,
    keyvalue::get_set_delete_and_exists_in_buckets_of_their_own,
    keyvalue::oversized_keys_and_values_are_too_large_and_write_nothing,
    keyvalue::list_keys_pages_through_every_key_once,
    keyvalue::a_key_value_write_counts_what_the_plugins_tables_took_before,
    keyvalue::increments_and_swaps_from_many_threads_lose_nothing,
);
