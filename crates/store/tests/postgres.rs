//! What only the PostgreSQL backend promises: several hosts on one server,
//! migrations under a lock, a lost connection, waits bounded on the server.
//! Each "host" is a `Db` of its own (its own pool and runtime), as a second
//! plinth process would have.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use plinth_pg_cluster::Cluster;
use plinth_store::{Db, Error, NewUser, Options, TokenKind, UniqueField};

/// A fresh database on the throwaway cluster; `None` when this machine has
/// no PostgreSQL (said loudly; under CI an error instead).
fn database(test: &str) -> Result<Option<(&'static Cluster, String)>> {
    Ok(plinth_pg_cluster::test_database(test)?)
}

fn host(url: &str) -> Result<Db> {
    Ok(Db::connect(url, Options::default())?)
}

fn user(name: &str) -> NewUser {
    NewUser {
        name: name.into(),
        email: format!("{name}@example.com"),
    }
}

#[test]
fn hosts_starting_at_once_apply_each_migration_once() -> Result<()> {
    let Some((cluster, url)) = database("hosts_starting_at_once")? else {
        return Ok(());
    };
    let start = Arc::new(Barrier::new(4));
    let hosts: Vec<_> = (0..4)
        .map(|_| {
            let (url, start) = (url.clone(), start.clone());
            std::thread::spawn(move || -> Result<u32> {
                start.wait();
                Ok(host(&url)?.schema_version()?)
            })
        })
        .collect();
    for h in hosts {
        let v = h.join().map_err(|_| anyhow::anyhow!("a host panicked"))??;
        ensure!(v == plinth_store::migrations::latest_version());
    }
    let name = plinth_pg_cluster::database_name(&url);
    let rows = cluster.psql(
        name,
        "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version",
    )?;
    ensure!(rows == "1,2,3,4,5,6", "{rows}");
    // Opening again is a no-op.
    host(&url)?;
    ensure!(cluster.psql(name, "SELECT COUNT(*) FROM schema_version")? == "6");
    Ok(())
}

#[test]
fn a_database_from_a_newer_build_and_another_applications_are_refused() -> Result<()> {
    let Some((cluster, url)) = database("newer_and_foreign")? else {
        return Ok(());
    };
    host(&url)?;
    let name = plinth_pg_cluster::database_name(&url);
    cluster.psql(name, "INSERT INTO schema_version VALUES (99, 0)")?;
    match Db::connect(&url, Options::default()) {
        Err(Error::SchemaTooNew { found: 99, .. }) => {}
        other => anyhow::bail!("expected SchemaTooNew, got {other:?}"),
    }
    let other = cluster.database()?;
    let other_name = plinth_pg_cluster::database_name(&other);
    cluster.psql(other_name, "CREATE TABLE invoices (id INTEGER)")?;
    match Db::connect(&other, Options::default()) {
        Err(Error::NotPlinth { reason, .. }) => ensure!(reason.contains("invoices"), "{reason}"),
        other => anyhow::bail!("expected NotPlinth, got {other:?}"),
    }
    // Nothing was written to it.
    let tables = cluster.psql(
        other_name,
        "SELECT string_agg(table_name, ',') FROM information_schema.tables WHERE table_schema = 'public'",
    )?;
    ensure!(tables == "invoices", "{tables}");
    Ok(())
}

#[test]
fn a_server_that_is_down_is_one_clear_error_naming_the_url_without_its_password() -> Result<()> {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("postgres://plinth:hunter2secret@127.0.0.1:{port}/app");
    let started = Instant::now();
    let err = match Db::connect(&url, Options::default()) {
        Err(e) => e,
        Ok(_) => anyhow::bail!("connected to nothing"),
    };
    ensure!(started.elapsed() < Duration::from_secs(10));
    let shown = format!("{err}");
    ensure!(matches!(err, Error::Connect { .. }), "{err:?}");
    ensure!(
        shown.contains(&format!("postgres://plinth@127.0.0.1:{port}/app")),
        "{shown}"
    );
    let debug = format!("{err:?}");
    let chain: Vec<String> = anyhow::Error::from(err)
        .chain()
        .map(ToString::to_string)
        .collect();
    let everything = format!("{debug} {}", chain.join(": "));
    ensure!(!everything.contains("hunter2secret"), "{everything}");
    Ok(())
}

#[test]
fn a_connection_lost_mid_unit_fails_that_unit_rolls_it_back_and_the_next_works() -> Result<()> {
    let Some((cluster, url)) = database("connection_lost")? else {
        return Ok(());
    };
    let db = host(&url)?;
    let mut unit = db.unit()?;
    unit.create_user(&user("ada"))?;
    // The server ends this unit's backend (an operator, a failover).
    let name = plinth_pg_cluster::database_name(&url);
    let killed = cluster.psql(
        name,
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND application_name = 'plinth' AND state LIKE 'idle in transaction%'",
    )?;
    ensure!(killed == "1", "{killed} backends terminated");
    match unit.create_user(&user("bob")) {
        Err(Error::Unavailable(_)) => {}
        other => anyhow::bail!("expected Unavailable, got {other:?}"),
    }
    match unit.commit() {
        Err(Error::Unavailable(_)) => {}
        other => anyhow::bail!("expected the commit to fail, got {other:?}"),
    }
    // Nothing of it was kept; the pool reconnects and the next unit works.
    ensure!(cluster.psql(name, "SELECT COUNT(*) FROM users")? == "0");
    db.with_unit(|u| u.create_user(&user("carol")))?;
    ensure!(db.unit()?.get_user_by_name("carol").is_ok());
    Ok(())
}

#[test]
fn two_hosts_racing_for_one_token_get_it_exactly_once() -> Result<()> {
    let Some((_, url)) = database("token_race")? else {
        return Ok(());
    };
    let (a, b) = (host(&url)?, host(&url)?);
    let owner = a.with_unit(|u| u.create_user(&user("ada")))?;
    for round in 0..20 {
        let token = format!("{round:064}");
        a.with_unit(|u| u.create_token(TokenKind::PasswordReset, &token, &owner.uuid, 600))?;
        let start = Arc::new(Barrier::new(2));
        let racers: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|db| {
                let (token, start) = (token.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    db.with_unit(|u| u.consume_token(TokenKind::PasswordReset, &token))
                })
            })
            .collect();
        let mut won = 0;
        for r in racers {
            match r.join().map_err(|_| anyhow::anyhow!("panicked"))? {
                Ok(_) => won += 1,
                Err(Error::NotFound) => {}
                Err(e) => anyhow::bail!("round {round}: {e}"),
            }
        }
        ensure!(won == 1, "round {round}: {won} hosts consumed the token");
    }
    Ok(())
}

#[test]
fn two_hosts_racing_for_one_name_one_wins_the_other_gets_a_conflict() -> Result<()> {
    let Some((_, url)) = database("name_race")? else {
        return Ok(());
    };
    let (a, b) = (host(&url)?, host(&url)?);
    for round in 0..20 {
        let start = Arc::new(Barrier::new(2));
        let racers: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .enumerate()
            .map(|(i, db)| {
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    // The same name, spelled differently: one name key.
                    let name = if i == 0 {
                        format!("Ada{round}")
                    } else {
                        format!("ada{round}")
                    };
                    db.with_unit(|u| {
                        u.create_user(&NewUser {
                            name,
                            email: format!("host{i}-{round}@example.com"),
                        })
                    })
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for r in racers {
            outcomes.push(r.join().map_err(|_| anyhow::anyhow!("panicked"))?);
        }
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        let conflicts = outcomes
            .iter()
            .filter(|o| matches!(o, Err(Error::Conflict(UniqueField::Name))))
            .count();
        ensure!(won == 1 && conflicts == 1, "round {round}: {outcomes:?}");
    }
    Ok(())
}

#[test]
fn a_conflict_inside_a_unit_leaves_the_unit_usable_as_on_sqlite() -> Result<()> {
    let Some((_, url)) = database("conflict_in_unit")? else {
        return Ok(());
    };
    let db = host(&url)?;
    db.with_unit(|u| u.create_user(&user("ada")))?;
    let mut unit = db.unit()?;
    let bob = unit.create_user(&user("bob"))?;
    match unit.create_user(&user("ada")) {
        Err(Error::Conflict(UniqueField::Name)) => {}
        other => anyhow::bail!("expected a conflict, got {other:?}"),
    }
    unit.create_session(&"s".repeat(64), &bob.uuid, 60)?;
    unit.commit()?;
    ensure!(db.unit()?.get_session(&"s".repeat(64))?.user_uuid == bob.uuid);
    Ok(())
}

#[test]
fn a_wait_on_another_hosts_lock_ends_before_the_deadline_as_busy() -> Result<()> {
    let Some((_, url)) = database("lock_wait")? else {
        return Ok(());
    };
    let (a, b) = (host(&url)?, host(&url)?);
    let ada = a.with_unit(|u| u.create_user(&user("ada")))?;
    // Host A changes ada and holds the row.
    let mut holder = a.unit()?;
    holder.update_user_password(&ada.uuid, "held")?;
    let mut waiter = b.unit()?;
    let deadline = Instant::now() + Duration::from_millis(500);
    waiter.set_deadline(deadline);
    let started = Instant::now();
    match waiter.update_user_password(&ada.uuid, "waited") {
        Err(Error::Busy) => {}
        other => anyhow::bail!("expected Busy, got {other:?}"),
    }
    let took = started.elapsed();
    ensure!(
        took >= Duration::from_millis(300) && Instant::now() < deadline,
        "the wait took {took:?}"
    );
    // The waiter's unit goes on (its statement was cancelled, not the
    // unit), given time of its own: its first deadline has all but passed.
    waiter.set_deadline(Instant::now() + Duration::from_secs(5));
    waiter.create_user(&user("bob"))?;
    waiter.commit()?;
    holder.commit()?;
    ensure!(a.unit()?.get_password_hash(&ada.uuid)? == "held");
    ensure!(a.unit()?.get_user_by_name("bob").is_ok());
    Ok(())
}

#[test]
fn the_per_recipient_mail_limit_counts_every_hosts_mail() -> Result<()> {
    let Some((_, url)) = database("mail_limit")? else {
        return Ok(());
    };
    let hosts = [host(&url)?, host(&url)?];
    let start = Arc::new(Barrier::new(8));
    let senders: Vec<_> = (0..8)
        .map(|i| {
            let (db, start) = (hosts[i % 2].clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                db.with_unit(|u| {
                    u.queue_mail_limited(
                        &plinth_store::Mail {
                            to: "ada@example.com".into(),
                            subject: format!("mail {i}"),
                            body: String::new(),
                        },
                        600,
                        3,
                    )
                })
            })
        })
        .collect();
    let mut queued = 0;
    for s in senders {
        if let plinth_store::MailQueued::Queued(_) =
            s.join().map_err(|_| anyhow::anyhow!("panicked"))??
        {
            queued += 1;
        }
    }
    ensure!(queued == 3, "{queued} queued past a limit of 3");
    ensure!(hosts[0].outbox(None, 100)?.len() == 3);
    Ok(())
}

#[test]
fn a_unit_with_a_deadline_may_run_longer_than_one_lock_wait() -> Result<()> {
    let Some((_, url)) = database("long_unit")? else {
        return Ok(());
    };
    // The busy timeout bounds one wait for a lock, not the unit: a unit of
    // many quick statements, given a deadline well past it, runs them all.
    let db = Db::connect(
        &url,
        Options {
            busy_timeout: Duration::from_millis(200),
            ..Options::default()
        },
    )?;
    let mut unit = db.unit()?;
    unit.set_deadline(Instant::now() + Duration::from_secs(20));
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(600) {
        unit.create_user(&user(&format!("u{n}")))?;
        n += 1;
    }
    unit.commit()?;
    ensure!(
        db.table_counts()?
            .iter()
            .any(|c| c.table == "users" && c.rows == n)
    );
    Ok(())
}

mod plugin_sql {
    use plinth_store::plugin::PluginMigration;
    use plinth_store::sql::{Namespace, SqlError, SqlValue};

    use super::*;

    fn ns(plugin: &str) -> Result<Namespace> {
        Ok(Namespace::new(plugin, false)?)
    }

    fn text(v: &SqlValue) -> &str {
        match v {
            SqlValue::Text(t) => t,
            _ => "",
        }
    }

    /// Its own schema and role: tables of the same name in two plugins
    /// are two tables; rows, types and errors come back typed.
    #[test]
    fn a_plugin_keeps_its_own_tables_in_a_schema_of_its_own() -> Result<()> {
        let Some((_, url)) = database("plugin_sql::own_tables")? else {
            return Ok(());
        };
        let db = host(&url)?;
        for plugin in ["alpha", "beta"] {
            let n = ns(plugin)?;
            let mut unit = db.unit()?;
            unit.plugin_execute(
                &n,
                "CREATE TABLE items (id BIGSERIAL PRIMARY KEY, title TEXT NOT NULL UNIQUE, score FLOAT8, data BYTEA, ok BOOLEAN)",
                &[],
            )?;
            unit.plugin_execute(
                &n,
                "INSERT INTO items (title, score, data, ok) VALUES ($1, $2, $3, $4)",
                &[
                    SqlValue::Text(format!("{plugin}'s")),
                    SqlValue::Real(1.5),
                    SqlValue::Blob(vec![0, 255]),
                    SqlValue::Integer(1),
                ],
            )?;
            unit.commit()?;
        }
        let mut unit = db.unit()?;
        let rows = unit.plugin_query(
            &ns("alpha")?,
            "SELECT id, title, score, data, ok FROM items",
            &[],
        )?;
        ensure!(
            rows.columns == ["id", "title", "score", "data", "ok"],
            "{rows:?}"
        );
        ensure!(
            rows.rows
                == [vec![
                    SqlValue::Integer(1),
                    SqlValue::Text("alpha's".into()),
                    SqlValue::Real(1.5),
                    SqlValue::Blob(vec![0, 255]),
                    SqlValue::Integer(1),
                ]],
            "{rows:?}"
        );
        let beta = unit.plugin_query(&ns("beta")?, "SELECT title FROM items", &[])?;
        ensure!(text(&beta.rows[0][0]) == "beta's");
        // A constraint names itself; the unit goes on, and its host writes
        // commit with the plugin's.
        let dup = unit.plugin_execute(
            &ns("alpha")?,
            "INSERT INTO items (title) VALUES ($1)",
            &[SqlValue::Text("alpha's".into())],
        );
        ensure!(
            matches!(&dup, Err(SqlError::Constraint(m)) if m.contains("items_title_key")),
            "{dup:?}"
        );
        unit.create_user(&user("ada"))?;
        unit.plugin_execute(
            &ns("alpha")?,
            "INSERT INTO items (title) VALUES ('two')",
            &[],
        )?;
        unit.commit()?;
        ensure!(db.unit()?.get_user_by_name("ada").is_ok());
        let data = db.plugin_data()?;
        ensure!(
            data.len() == 2 && data[0].tables.iter().any(|t| t.name == "items"),
            "{data:?}"
        );
        Ok(())
    }

    /// Every road out of the plugin's schema ends typed, with nothing
    /// changed: the parse refuses what it can see, the role the rest.
    #[test]
    fn no_statement_reaches_the_core_tables_or_another_plugins() -> Result<()> {
        let Some((cluster, url)) = database("plugin_sql::isolation")? else {
            return Ok(());
        };
        let db = host(&url)?;
        db.with_unit(|u| u.create_user(&user("ada")).map(|_| ()))?;
        let mut unit = db.unit()?;
        unit.plugin_execute(&ns("beta")?, "CREATE TABLE secrets (s TEXT)", &[])?;
        unit.plugin_execute(
            &ns("beta")?,
            "INSERT INTO secrets VALUES ('beta only')",
            &[],
        )?;
        unit.plugin_execute(&ns("alpha")?, "CREATE TABLE mine (x INT)", &[])?;
        unit.commit()?;
        let a = ns("alpha")?;
        for sql in [
            "SELECT * FROM users",
            "SELECT * FROM public.users",
            "SELECT * FROM plugin_beta.secrets",
            "SELECT * FROM pg_catalog.pg_authid",
            "SELECT * FROM pg_roles",
            "SELECT * FROM information_schema.tables",
            "SELECT set_config('role', 'postgres', true)",
            "SELECT current_setting('search_path')",
            "SELECT query_to_xml('select * from public.users', true, true, '')",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT pg_advisory_lock(1)",
            "SELECT pg_catalog.now()",
            "SET ROLE postgres",
            "RESET ROLE",
            "SET search_path TO public",
            "DELETE FROM users",
            "DROP TABLE users",
            "DROP SCHEMA plugin_beta CASCADE",
            "CREATE SCHEMA evil",
            "CREATE TEMP TABLE t (x INT)",
            "CREATE TABLE copy (LIKE public.users)",
            "CREATE TABLE fk (u TEXT REFERENCES public.users (uuid))",
            "CREATE TABLE d (x TEXT DEFAULT current_setting('role'))",
            "SELECT * INTO TEMP stolen FROM mine",
            "COPY mine TO '/tmp/x'",
            "DO $$ BEGIN PERFORM 1; END $$",
            "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
            "GRANT ALL ON mine TO PUBLIC",
            "ALTER ROLE plugin_alpha SUPERUSER",
            "BEGIN",
            "COMMIT",
            "LISTEN x",
            "LOCK TABLE mine",
            "CREATE TRIGGER t BEFORE INSERT ON mine FOR EACH ROW EXECUTE FUNCTION f()",
            "SELECT * FROM secrets",
        ] {
            let mut unit = db.unit()?;
            let r = unit.plugin_query(&a, sql, &[]);
            ensure!(
                matches!(r, Err(SqlError::AccessDenied(_) | SqlError::Syntax(_))),
                "{sql}: {r:?}"
            );
            // The unit goes on, as the host.
            ensure!(
                unit.get_user_by_name("ada").is_ok(),
                "{sql}: the unit is broken"
            );
            unit.commit()?;
        }
        let name = plinth_pg_cluster::database_name(&url);
        ensure!(cluster.psql(name, "SELECT count(*) FROM users")? == "1");
        ensure!(cluster.psql(name, "SELECT s FROM plugin_beta.secrets")? == "beta only");
        ensure!(
            cluster.psql(
                name,
                "SELECT rolsuper FROM pg_roles
                 WHERE rolname = (SELECT role FROM plugin_roles WHERE plugin = 'alpha')"
            )? == "f"
        );
        // Its statements ran as its role: what it created is that role's,
        // and the role can use nothing of the host's.
        ensure!(
            cluster.psql(
                name,
                "SELECT tableowner = (SELECT role FROM plugin_roles WHERE plugin = 'alpha')
                 FROM pg_tables WHERE tablename = 'mine'"
            )? == "t"
        );
        ensure!(
            cluster.psql(
                name,
                "SELECT has_table_privilege(r.role, 'public.users', 'SELECT')::text
                     || has_schema_privilege(r.role, 'plugin_beta', 'USAGE')::text
                 FROM plugin_roles AS r WHERE r.plugin = 'alpha'"
            )? == "falsefalse"
        );
        Ok(())
    }

    fn step(version: u32, name: &str, sql: &str) -> PluginMigration {
        PluginMigration {
            version,
            name: name.into(),
            sql: sql.into(),
        }
    }

    #[test]
    fn migrations_apply_once_keep_data_and_a_failure_keeps_the_old_version() -> Result<()> {
        let Some((_, url)) = database("plugin_sql::migrations")? else {
            return Ok(());
        };
        let n = ns("notes")?;
        let v1 = step(
            1,
            "notes",
            "CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL); CREATE INDEX notes_body ON notes (body);",
        );
        let v2 = step(
            2,
            "words",
            "ALTER TABLE notes ADD COLUMN words INT NOT NULL DEFAULT 0; UPDATE notes SET words = length(body);",
        );
        // Four hosts loading at once: applied once.
        let hosts: Vec<_> = (0..4)
            .map(|_| {
                let (url, n, v1) = (url.clone(), n.clone(), v1.clone());
                std::thread::spawn(move || -> Result<u32> {
                    Ok(host(&url)?
                        .migrate_plugin(
                            &n,
                            &[v1],
                            plinth_store::plugin::MigrationLimits::default(),
                        )?
                        .from)
                })
            })
            .collect();
        let mut froms = Vec::new();
        for h in hosts {
            froms.push(h.join().map_err(|_| anyhow::anyhow!("panicked"))??);
        }
        froms.sort_unstable();
        ensure!(froms == [0, 1, 1, 1], "{froms:?}");
        let db = host(&url)?;
        db.with_unit(|u| {
            u.plugin_execute(&n, "INSERT INTO notes (body) VALUES ('four')", &[])
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
            Ok(())
        })?;
        let up = db.migrate_plugin(
            &n,
            &[v1.clone(), v2.clone()],
            plinth_store::plugin::MigrationLimits::default(),
        )?;
        ensure!((up.from, up.to) == (1, 2));
        let rows = db
            .unit()?
            .plugin_query(&n, "SELECT words FROM notes", &[])?;
        ensure!(rows.rows == [vec![SqlValue::Integer(4)]], "{rows:?}");
        let bad = step(
            3,
            "bad",
            "ALTER TABLE notes ADD COLUMN c TEXT; DELETE FROM notes; SELECT * FROM nowhere;",
        );
        let r = db.migrate_plugin(
            &n,
            &[v1.clone(), v2.clone(), bad],
            plinth_store::plugin::MigrationLimits::default(),
        );
        ensure!(
            matches!(r, Err(Error::PluginMigration { version: 3, .. })),
            "{r:?}"
        );
        ensure!(db.plugin_migrations("notes")?.len() == 2);
        let rows = db
            .unit()?
            .plugin_query(&n, "SELECT count(*) FROM notes", &[])?;
        ensure!(rows.rows == [vec![SqlValue::Integer(1)]], "{rows:?}");
        let older = db.migrate_plugin(&n, &[v1], plinth_store::plugin::MigrationLimits::default());
        ensure!(
            matches!(older, Err(Error::PluginSchemaTooNew { .. })),
            "{older:?}"
        );
        Ok(())
    }

    #[test]
    fn runaway_statements_and_quotas_end_typed_and_the_unit_goes_on() -> Result<()> {
        let Some((_, url)) = database("plugin_sql::limits")? else {
            return Ok(());
        };
        let db = host(&url)?;
        let n = ns("alpha")?.with_quota(Some(256 << 10));
        let mut unit = db.unit()?;
        unit.plugin_execute(&n, "CREATE TABLE big (x TEXT)", &[])?;
        unit.commit()?;
        let mut unit = db.unit()?;
        unit.set_deadline(Instant::now() + Duration::from_millis(500));
        let started = Instant::now();
        let r = unit.plugin_query(
            &n,
            "SELECT count(*) FROM generate_series(1, 10000000000)",
            &[],
        );
        ensure!(matches!(r, Err(SqlError::TimedOut)), "{r:?}");
        ensure!(started.elapsed() < Duration::from_secs(3));
        drop(unit);
        // The quota: rows until a write would pass it; that one is undone.
        let mut unit = db.unit()?;
        let mut kept = 0;
        let refused = loop {
            match unit.plugin_execute(
                &n,
                "INSERT INTO big SELECT md5(random()::text) FROM generate_series(1, 200)",
                &[],
            ) {
                Ok(_) => kept += 1,
                Err(e) => break e,
            }
            ensure!(kept < 1000, "no quota");
        };
        ensure!(matches!(refused, SqlError::TooLarge(_)), "{refused:?}");
        let rows = unit.plugin_query(&n, "SELECT count(*) FROM big", &[])?;
        ensure!(
            rows.rows == [vec![SqlValue::Integer(kept * 200)]],
            "{rows:?} after {kept}"
        );
        unit.commit()?;
        // A read grant reads and cannot write.
        let reader = Namespace::new("alpha", true)?;
        let mut unit = db.unit()?;
        ensure!(
            unit.plugin_query(&reader, "SELECT count(*) FROM big", &[])
                .is_ok()
        );
        let w = unit.plugin_execute(&reader, "DELETE FROM big", &[]);
        ensure!(matches!(w, Err(SqlError::AccessDenied(_))), "{w:?}");
        Ok(())
    }
}

/// A plugin's statements run in a session that is its own role's: every
/// road by which plugin SQL once acted as plinth's user is tried, through
/// the store (where the parse refuses first) and — for the engine's own
/// boundary — straight on a connection logged in as the plugin's role, as
/// if the parse had let everything through. What resulted is checked as
/// the server's superuser.
mod plugin_session {
    use plinth_store::sql::{Namespace, SqlError};

    use super::*;

    fn ns(plugin: &str) -> Result<Namespace> {
        Ok(Namespace::new(plugin, false)?.with_quota(Some(1 << 20)))
    }

    /// A host with a user `ada` and plugin `alpha`'s role made (it ran one
    /// statement), and the database's name.
    fn setup(test: &str) -> Result<Option<(&'static Cluster, String, Db)>> {
        let Some((cluster, url)) = database(test)? else {
            return Ok(None);
        };
        let db = host(&url)?;
        db.with_unit(|u| u.create_user(&user("ada")).map(|_| ()))?;
        let mut unit = db.unit()?;
        unit.plugin_execute(&ns("alpha")?, "CREATE TABLE mine (x INT)", &[])?;
        unit.commit()?;
        let name = plinth_pg_cluster::database_name(&url).to_string();
        Ok(Some((cluster, name, db)))
    }

    /// A client logged in as `plugin`'s role, with the secret plinth made
    /// (read as the superuser).
    fn as_plugin_role(
        cluster: &Cluster,
        name: &str,
        plugin: &str,
    ) -> Result<(tokio::runtime::Runtime, tokio_postgres::Client)> {
        let row = cluster.psql(
            name,
            &format!("SELECT role || ' ' || secret FROM plugin_roles WHERE plugin = '{plugin}'"),
        )?;
        let (role, secret) = row
            .split_once(' ')
            .ok_or_else(|| anyhow::anyhow!("no role recorded for {plugin}: {row:?}"))?;
        let url = format!(
            "postgres://{role}:{secret}@127.0.0.1:{}/{name}",
            cluster.port()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok::<_, tokio_postgres::Error>(client)
        })?;
        Ok((rt, client))
    }

    fn refused(db: &Db, sql: &str) -> Result<()> {
        let mut unit = db.unit()?;
        match unit.plugin_query(&ns("alpha")?, sql, &[]) {
            Err(SqlError::AccessDenied(_)) => Ok(()),
            other => anyhow::bail!("{sql}: expected access-denied, got {other:?}"),
        }
    }

    #[test]
    fn functions_in_from_and_lateral_are_listed_or_refused() -> Result<()> {
        let Some((_cluster, _name, db)) = setup("plugin_session::from_items")? else {
            return Ok(());
        };
        for sql in [
            "SELECT * FROM current_setting('is_superuser') AS s",
            "SELECT * FROM (SELECT 1) AS t, LATERAL pg_catalog.current_setting('role') AS r",
            "SELECT * FROM (SELECT 1) AS t, LATERAL current_setting('role') AS r",
            "SELECT * FROM query_to_xml('select set_config(''role'',''none'',true); select email, password_hash from public.users', true, false, '')",
            "SELECT * FROM table_to_xml('public.users', true, false, '')",
            "SELECT * FROM set_config('search_path', 'public', false)",
            "SELECT * FROM pg_advisory_lock(1886154356)",
            "SELECT * FROM lo_from_bytea(0, 'x')",
            "SELECT * FROM setval('public.users_id_seq', 1, false)",
            "SELECT * FROM pg_terminate_backend(1)",
            "SELECT * FROM pg_stat_activity",
            "SELECT * FROM ts_stat('select 1')",
        ] {
            refused(&db, sql)?;
        }
        // A listed function in FROM still works.
        let mut unit = db.unit()?;
        let rows = unit.plugin_query(
            &ns("alpha")?,
            "SELECT n FROM generate_series(1, 3) AS n",
            &[],
        )?;
        ensure!(rows.rows.len() == 3, "{rows:?}");
        Ok(())
    }

    #[test]
    fn the_plugins_own_session_gains_nothing_of_plinths() -> Result<()> {
        let Some((cluster, name, db)) = setup("plugin_session::role")? else {
            return Ok(());
        };
        let (rt, client) = as_plugin_role(cluster, &name, "alpha")?;
        let denied = |sql: &str| -> Result<String> {
            match rt.block_on(client.batch_execute(sql)) {
                Err(e) => Ok(e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_default()),
                Ok(()) => anyhow::bail!("{sql}: ran as the plugin's role"),
            }
        };
        // Resetting the role gets back to the plugin's own: nothing else.
        denied("SELECT set_config('role', 'none', true); SELECT email FROM public.users")?;
        denied("SET ROLE plinth")?;
        denied("SET SESSION AUTHORIZATION plinth")?;
        let xml = "SELECT query_to_xml('select set_config(''role'',''none'',true); select password_hash from public.users', true, false, '')";
        denied(xml)?;
        denied("SELECT table_to_xml('public.users', true, false, '')")?;
        denied("SELECT setval('public.users_id_seq', 1, false)")?;
        denied("SELECT * FROM plugin_roles")?;
        let plinth_pid = cluster.psql(
            &name,
            "SELECT pid FROM pg_stat_activity WHERE usename = 'plinth' LIMIT 1",
        )?;
        if !plinth_pid.is_empty() {
            denied(&format!("SELECT pg_terminate_backend({plinth_pid})"))?;
            // Other sessions' statements are not the plugin's to read.
            let seen: String = rt
                .block_on(client.query_one(
                    &format!(
                        "SELECT coalesce(query, '') FROM pg_stat_activity WHERE pid = {plinth_pid}"
                    ),
                    &[],
                ))?
                .get(0);
            ensure!(
                seen == "<insufficient privilege>" || seen.is_empty(),
                "{seen}"
            );
        }
        denied("SELECT pg_read_file('postgresql.conf')")?;
        denied("CREATE SCHEMA elsewhere")?;
        denied("CREATE TABLE public.planted (x INT)")?;
        // Its own schema is its own.
        rt.block_on(client.batch_execute("INSERT INTO mine VALUES (1)"))?;
        ensure!(cluster.psql(&name, "SELECT count(*) FROM users")? == "1");
        let member_of = cluster.psql(
            &name,
            "SELECT count(*) FROM pg_auth_members AS m JOIN plugin_roles AS r
             ON m.member = (SELECT oid FROM pg_roles WHERE rolname = r.role)",
        )?;
        ensure!(
            member_of == "0",
            "the plugin's role is a member of {member_of} roles"
        );
        drop(db);
        Ok(())
    }

    #[test]
    fn nothing_a_plugin_sets_outlives_its_session_or_reaches_the_hosts() -> Result<()> {
        let Some((cluster, name, db)) = setup("plugin_session::settings")? else {
            return Ok(());
        };
        // A plugin table named like a core one: the host's statements never
        // read it, whatever the plugin's session set.
        let mut unit = db.unit()?;
        unit.plugin_execute(&ns("alpha")?, "CREATE TABLE outbox (x INT)", &[])?;
        unit.plugin_execute(&ns("alpha")?, "CREATE TABLE users (x INT)", &[])?;
        unit.commit()?;
        for _ in 0..3 {
            db.with_unit(|u| u.get_user_by_name("ada").map(|_| ()))?;
        }
        // A session advisory lock on the migration key, taken by the role
        // outside plinth, does not stop a host from starting once released
        // by its session's end; inside plinth it cannot be taken at all.
        refused(&db, "SELECT pg_advisory_lock(1886154356)")?;
        drop(db);
        let again = host(&cluster.url(&name))?;
        again.with_unit(|u| u.get_user_by_name("ada").map(|_| ()))?;
        ensure!(cluster.psql(&name, "SELECT count(*) FROM pg_largeobject_metadata")? == "0");
        Ok(())
    }

    #[test]
    fn a_role_or_schema_someone_else_made_is_refused_not_adopted() -> Result<()> {
        let Some((cluster, url)) = database("plugin_session::adopt")? else {
            return Ok(());
        };
        let db = host(&url)?;
        let name = plinth_pg_cluster::database_name(&url);
        let tag = cluster.psql(name, "SELECT left(md5(current_database()), 8)")?;
        cluster.psql(
            name,
            &format!(
                "CREATE ROLE plugin_gamma_{tag} LOGIN PASSWORD 'x';
                 GRANT SELECT ON public.users TO plugin_gamma_{tag};
                 CREATE SCHEMA plugin_delta"
            ),
        )?;
        for plugin in ["gamma", "delta"] {
            let mut unit = db.unit()?;
            match unit.plugin_execute(&ns(plugin)?, "CREATE TABLE t (x INT)", &[]) {
                Err(SqlError::Internal(why)) => {
                    ensure!(why.contains("plinth did not create"), "{why}");
                }
                other => anyhow::bail!("{plugin}: {other:?}"),
            }
        }
        ensure!(cluster.psql(name, "SELECT count(*) FROM plugin_roles")? == "0");
        Ok(())
    }

    #[test]
    fn a_superuser_as_plinths_user_is_refused_unless_allowed() -> Result<()> {
        let Some((cluster, url)) = database("plugin_session::superuser")? else {
            return Ok(());
        };
        let name = plinth_pg_cluster::database_name(&url);
        let admin = cluster.admin_url(name);
        match Db::connect(&admin, Options::default()) {
            Err(Error::ServerSetup(why)) => ensure!(why.contains("superuser"), "{why}"),
            other => anyhow::bail!("{other:?}"),
        }
        let mut pg = plinth_store::PostgresOptions::default();
        pg.allow_superuser = true;
        let db = Db::connect_deferred(&admin, Options::default(), pg)?;
        db.ensure_open()?;
        Ok(())
    }

    /// The README's set-up, as an operator runs it: a user with LOGIN
    /// CREATEROLE owning its database, nothing more.
    #[test]
    fn the_readme_set_up_runs_plugin_sql() -> Result<()> {
        let Some((cluster, _url)) = database("plugin_session::readme")? else {
            return Ok(());
        };
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))?;
        let block = readme
            .split("```sql\n")
            .skip(1)
            .find(|b| b.contains("CREATEROLE"))
            .and_then(|b| b.split("```").next())
            .ok_or_else(|| anyhow::anyhow!("no set-up SQL in the README"))?;
        // The README's names, made unique for this test.
        let n = std::process::id();
        let sql = block
            .replace("plinth_app", &format!("readme_{n}"))
            .replace("'change me'", "'readme'");
        // One statement at a time, as psql runs a file (CREATE DATABASE
        // cannot run inside the transaction `psql -c` makes of several).
        for statement in sql.split(';').map(str::trim) {
            let statement: String = statement
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            if !statement.trim().is_empty() {
                cluster.psql("postgres", &statement)?;
            }
        }
        let url = format!(
            "postgres://readme_{n}:readme@127.0.0.1:{}/readme_{n}",
            cluster.port()
        );
        let db = host(&url)?;
        db.with_unit(|u| u.create_user(&user("ada")).map(|_| ()))?;
        let mut unit = db.unit()?;
        unit.plugin_execute(&ns("notes")?, "CREATE TABLE notes (body TEXT)", &[])?;
        unit.plugin_execute(&ns("notes")?, "INSERT INTO notes VALUES ('hi')", &[])?;
        unit.create_user(&user("bob"))?;
        unit.commit()?;
        let rows = db
            .unit()?
            .plugin_query(&ns("notes")?, "SELECT body FROM notes", &[])?;
        ensure!(rows.rows.len() == 1, "{rows:?}");
        Ok(())
    }
}

/// A host killed between the steps of a two-phase commit: the next host to
/// start resolves what it left prepared by the decision in the database.
mod two_phase {
    use plinth_store::sql::{Namespace, SqlValue};

    use super::*;

    const WORKER: &str = "PLINTH_TEST_2PC_WORKER";
    const STEP: &str = "PLINTH_TEST_2PC_STEP";

    fn ns() -> Result<Namespace> {
        Ok(Namespace::new("alpha", false)?.with_quota(Some(1 << 20)))
    }

    /// The worker: one unit writing a plugin row, a key and a user, then a
    /// commit that dies at the step the parent named.
    #[test]
    #[ignore = "run by a_host_killed_mid_commit_leaves_all_or_nothing"]
    fn worker() -> Result<()> {
        let (Some(url), Some(step)) = (std::env::var_os(WORKER), std::env::var_os(STEP)) else {
            return Ok(());
        };
        let url = url.to_string_lossy().into_owned();
        let step: &'static str = match step.to_string_lossy().as_ref() {
            "decided" => "decided",
            _ => "committed",
        };
        let mut pg = plinth_store::PostgresOptions::default();
        pg.abort_commit_after = Some(step);
        let db = Db::connect_deferred(&url, Options::default(), pg)?;
        let mut unit = db.unit()?;
        let n = ns()?;
        unit.plugin_execute(&n, "INSERT INTO mine VALUES ($1)", &[SqlValue::Integer(7)])?;
        unit.kv_set(&n, "b", "k", b"v")?;
        unit.create_user(&user(step))?;
        unit.commit()?;
        anyhow::bail!("the commit went through: the worker should have died");
    }

    #[test]
    fn a_host_killed_mid_commit_leaves_all_or_nothing() -> Result<()> {
        let Some((cluster, url)) = database("two_phase")? else {
            return Ok(());
        };
        let name = plinth_pg_cluster::database_name(&url).to_string();
        {
            let db = host(&url)?;
            let mut unit = db.unit()?;
            unit.plugin_execute(&ns()?, "CREATE TABLE mine (x INT)", &[])?;
            unit.commit()?;
        }
        for (step, kept) in [("decided", false), ("committed", true)] {
            let out = std::process::Command::new(std::env::current_exe()?)
                .args(["--exact", "two_phase::worker", "--ignored", "--nocapture"])
                .env(WORKER, &url)
                .env(STEP, step)
                .output()?;
            ensure!(
                !out.status.success(),
                "{step}: the worker lived: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            let prepared = cluster.psql(&name, "SELECT count(*) FROM pg_prepared_xacts")?;
            ensure!(
                prepared == "1",
                "{step}: {prepared} prepared transactions left"
            );
            // The next host to start resolves it.
            let _next = host(&url)?;
            let left = cluster.psql(&name, "SELECT count(*) FROM pg_prepared_xacts")?;
            ensure!(left == "0", "{step}: {left} left after a host started");
            let users = cluster.psql(
                &name,
                &format!("SELECT count(*) FROM users WHERE name = '{step}'"),
            )?;
            let rows = cluster.psql(&name, "SELECT count(*) FROM plugin_alpha.mine")?;
            let keys = cluster.psql(&name, "SELECT count(*) FROM plugin_keyvalue")?;
            let expected = if kept { "1" } else { "0" };
            ensure!(
                users == expected && rows == expected && keys == expected,
                "{step}: users {users}, plugin rows {rows}, keys {keys}; expected {expected} each"
            );
            // The next round starts clean.
            cluster.psql(
                &name,
                "DELETE FROM plugin_alpha.mine; DELETE FROM plugin_keyvalue",
            )?;
        }
        Ok(())
    }
}
