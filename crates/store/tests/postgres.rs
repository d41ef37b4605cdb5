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
