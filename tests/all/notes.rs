//! The notes plugin: a plugin that keeps its own data — tables created by
//! its migrations, full-text search, settings in `wasi:keyvalue` — behind
//! auth's sessions.

use anyhow::{Result, ensure};
use plinth_guests::NOTES;
use plinth_host::{Error, Manifest, Plugin, Val};
use plinth_store::plugin::PluginMigration;
use plinth_store::sql::{Namespace, SqlValue};

use crate::util::{Fixture, ok};

const PW: &str = "correct horse battery staple";

/// Signs `name` up and in; the session token.
fn session(f: &Fixture, name: &str) -> Result<String> {
    let auth = f.auth()?;
    let email = format!("{name}@example.com");
    ok(auth.sign_up(name, &email, PW))?;
    Ok(ok(auth.sign_in(&email, PW))?.token)
}

fn s(text: &str) -> Val {
    Val::String(text.into())
}

/// Calls a notes export; its `result` as Rust's, the error as its case.
fn call(p: &Plugin, function: &str, args: Vec<Val>) -> Result<Result<Val, String>> {
    let out = p.call_dynamic(function, &args)?;
    match out.as_slice() {
        [Val::Result(Ok(v))] => Ok(Ok(v.as_deref().cloned().unwrap_or(Val::Bool(true)))),
        [Val::Result(Err(e))] => Ok(Err(match e.as_deref() {
            Some(Val::Variant(case, _)) => case.clone(),
            other => format!("{other:?}"),
        })),
        other => anyhow::bail!("unexpected {other:?}"),
    }
}

fn must(r: Result<Result<Val, String>>) -> Result<Val> {
    r?.map_err(|e| anyhow::anyhow!("notes answered {e}"))
}

/// A record's field.
fn field<'v>(v: &'v Val, name: &str) -> Option<&'v Val> {
    match v {
        Val::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

fn titles(list: &Val) -> Vec<String> {
    match list {
        Val::List(items) => items
            .iter()
            .filter_map(|n| match field(n, "title") {
                Some(Val::String(t)) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The notes plugin's migrations for the fixture's database, as shipped.
fn shipped(f: &Fixture) -> Result<Vec<PluginMigration>> {
    let all = Manifest::from_file(NOTES.manifest.as_ref())?.migrations;
    Ok(all.for_dialect(f.runtime.db().dialect()).to_vec())
}

/// `?1` placeholders as the fixture's database writes them.
fn placeholders(f: &Fixture, sql: &str) -> String {
    if f.pg.is_some() {
        sql.replace('?', "$")
    } else {
        sql.to_string()
    }
}

#[test]
fn users_keep_search_and_set_up_notes_of_their_own() -> Result<()> {
    let f = Fixture::new()?;
    let (ada, bob) = (session(&f, "ada")?, session(&f, "bob")?);
    let p = f.load(NOTES)?;
    ensure!(f.runtime.db().plugin_migrations("notes")?.len() == 2);
    must(call(
        &p,
        "add",
        vec![s(&ada), s("Groceries"), s("eggs milk bread")],
    ))?;
    let added = must(call(
        &p,
        "add",
        vec![
            s(&ada),
            s("Plinth"),
            s("a plugin runtime that keeps its own data"),
        ],
    ))?;
    ensure!(field(&added, "words") == Some(&Val::U32(8)), "{added:?}");
    must(call(
        &p,
        "add",
        vec![s(&bob), s("Bob's"), s("a runtime of bob's")],
    ))?;
    // Each sees their own, newest first; search finds only their own.
    let list = must(call(&p, "list", vec![s(&ada)]))?;
    ensure!(titles(&list) == ["Plinth", "Groceries"], "{list:?}");
    let found = must(call(&p, "search", vec![s(&ada), s("runtime")]))?;
    ensure!(titles(&found) == ["Plinth"], "{found:?}");
    let found = must(call(&p, "search", vec![s(&bob), s("runtime")]))?;
    ensure!(titles(&found) == ["Bob's"], "{found:?}");
    // FTS5 syntax in a query is words, not operators.
    let odd = must(call(&p, "search", vec![s(&ada), s("\"eggs\" OR NEAR(* -")]))?;
    ensure!(
        titles(&odd).is_empty() || titles(&odd) == ["Groceries"],
        "{odd:?}"
    );
    let sqlish = must(call(
        &p,
        "search",
        vec![s(&ada), s("'; DROP TABLE notes; --")],
    ))?;
    ensure!(titles(&sqlish).is_empty());
    // Bob cannot read, edit or remove Ada's notes.
    for (function, args) in [
        ("get", vec![s(&bob), Val::S64(1)]),
        ("edit", vec![s(&bob), Val::S64(1), s("mine now")]),
        ("remove", vec![s(&bob), Val::S64(1)]),
    ] {
        let answer = call(&p, function, args)?;
        ensure!(answer == Err("not-found".into()), "{function}: {answer:?}");
    }
    let edited = must(call(&p, "edit", vec![s(&ada), Val::S64(1), s("oat milk")]))?;
    ensure!(field(&edited, "words") == Some(&Val::U32(2)));
    let found = must(call(&p, "search", vec![s(&ada), s("oat")]))?;
    ensure!(titles(&found) == ["Groceries"], "{found:?}");
    // Settings per user, in wasi:keyvalue.
    must(call(
        &p,
        "set-setting",
        vec![s(&ada), s("theme"), s("dark")],
    ))?;
    let theme = must(call(&p, "get-setting", vec![s(&ada), s("theme")]))?;
    ensure!(theme == Val::Option(Some(Box::new(s("dark")))), "{theme:?}");
    let theirs = must(call(&p, "get-setting", vec![s(&bob), s("theme")]))?;
    ensure!(theirs == Val::Option(None), "{theirs:?}");
    // Removing keeps the counter of notes ever added.
    must(call(&p, "remove", vec![s(&ada), Val::S64(2)]))?;
    let stats = must(call(&p, "stats", vec![s(&ada)]))?;
    ensure!(
        field(&stats, "notes") == Some(&Val::U32(1))
            && field(&stats, "added") == Some(&Val::S64(2)),
        "{stats:?}"
    );
    // No session, no notes.
    for token in ["", "not-a-session", &"x".repeat(10_000)] {
        let answer = call(&p, "list", vec![s(token)])?;
        ensure!(answer == Err("unauthorized".into()), "{answer:?}");
    }
    // What it keeps, by the store's account.
    let data = f.runtime.db().plugin_data()?;
    let notes = data.iter().find(|d| d.plugin == "notes");
    ensure!(
        notes.is_some_and(|d| d.version == 2 && d.keys == 3 && d.tables.len() >= 3),
        "{data:?}"
    );
    Ok(())
}

#[test]
fn an_upgrade_counts_the_words_of_notes_written_before_it() -> Result<()> {
    let f = Fixture::new()?;
    let ada = session(&f, "ada")?;
    let user = f.sql("SELECT uuid FROM users WHERE name = 'ada'", &[])?;
    // Version 1, as an earlier build of the plugin left it, with a note.
    let db = f.runtime.db();
    let ns = Namespace::new("notes", false)?;
    let v1 = shipped(&f)?[..1].to_vec();
    db.migrate_plugin(&ns, &v1, plinth_store::plugin::MigrationLimits::default())?;
    let mut unit = db.unit()?;
    unit.plugin_execute(
        &ns,
        &placeholders(
            &f,
            "INSERT INTO notes (owner, title, body, created_at, updated_at) VALUES (?1, 'old', 'written before words were counted', 1, 1)",
        ),
        &[SqlValue::Text(user)],
    )?;
    if f.pg.is_none() {
        unit.plugin_execute(
            &ns,
            "INSERT INTO notes_text (rowid, title, body) VALUES (1, 'old', 'written before words were counted')",
            &[],
        )?;
    }
    unit.commit()?;
    let p = f.load(NOTES)?;
    let old = must(call(&p, "get", vec![s(&ada), Val::S64(1)]))?;
    ensure!(field(&old, "words") == Some(&Val::U32(5)), "{old:?}");
    let found = must(call(&p, "search", vec![s(&ada), s("counted")]))?;
    ensure!(titles(&found) == ["old"]);
    // Loading again applies nothing.
    let before = db.plugin_migrations("notes")?;
    drop(f.load(NOTES)?);
    ensure!(db.plugin_migrations("notes")? == before && before.len() == 2);
    Ok(())
}

/// The plugin's files in a directory of their own, with `extra` migrations
/// added to (or, negative, removed from) the shipped ones.
fn copy_of_notes(
    f: &Fixture,
    dir: &std::path::Path,
    extra: &[(&str, &str)],
    drop_last: bool,
) -> Result<Manifest> {
    let migrations = dir
        .join("notes.migrations")
        .join(f.runtime.db().dialect().to_string());
    std::fs::create_dir_all(&migrations)?;
    let mut shipped = shipped(f)?;
    if drop_last {
        shipped.pop();
    }
    for m in &shipped {
        std::fs::write(
            migrations.join(format!("{:04}-{}.sql", m.version, m.name)),
            &m.sql,
        )?;
    }
    for (file, sql) in extra {
        std::fs::write(migrations.join(file), sql)?;
    }
    std::fs::copy(NOTES.manifest, dir.join("notes.toml"))?;
    Ok(Manifest::from_file(&dir.join("notes.toml"))?)
}

#[test]
fn a_failing_migration_or_an_older_build_leaves_the_notes_as_they_were() -> Result<()> {
    let f = Fixture::new()?;
    let ada = session(&f, "ada")?;
    let p = f.load(NOTES)?;
    must(call(
        &p,
        "add",
        vec![s(&ada), s("kept"), s("through it all")],
    ))?;
    let dir = tempfile::tempdir()?;
    // Version 3 changes the table, then fails.
    let bad = copy_of_notes(
        &f,
        dir.path(),
        &[(
            "0003-broken.sql",
            "ALTER TABLE notes ADD COLUMN colour TEXT; DELETE FROM notes; INSERT INTO nowhere VALUES (1);",
        )],
        false,
    )?;
    match f.load_with(NOTES, bad) {
        Err(e) => ensure!(
            matches!(
                e.downcast_ref::<Error>(),
                Some(Error::Schema {
                    source: plinth_store::Error::PluginMigration { version: 3, .. },
                    ..
                })
            ),
            "{e}"
        ),
        Ok(_) => anyhow::bail!("a failing migration loaded"),
    }
    ensure!(f.runtime.db().plugin_migrations("notes")?.len() == 2);
    let list = must(call(&p, "list", vec![s(&ada)]))?;
    ensure!(titles(&list) == ["kept"], "{list:?}");
    // An older build (one migration) is refused: the database is at 2.
    let older_dir = tempfile::tempdir()?;
    let older = copy_of_notes(&f, older_dir.path(), &[], true)?;
    match f.load_with(NOTES, older) {
        Err(e) => ensure!(
            matches!(
                e.downcast_ref::<Error>(),
                Some(Error::Schema {
                    source: plinth_store::Error::PluginSchemaTooNew {
                        found: 2,
                        shipped: 1,
                        ..
                    },
                    ..
                })
            ),
            "{e}"
        ),
        Ok(_) => anyhow::bail!("an older build loaded"),
    }
    // A shipped migration edited after it was applied is refused too.
    let edited_dir = tempfile::tempdir()?;
    let mut edited = copy_of_notes(&f, edited_dir.path(), &[], false)?;
    for list in [
        &mut edited.migrations.sqlite,
        &mut edited.migrations.postgresql,
    ] {
        if let Some(first) = list.first_mut() {
            first.sql.push_str("\n-- edited");
        }
    }
    ensure!(f.load_with(NOTES, edited).is_err());
    ensure!(titles(&must(call(&p, "list", vec![s(&ada)]))?) == ["kept"]);
    Ok(())
}

/// Four runtimes (as four hosts) load the plugin at once on one database:
/// each migration is applied once.
#[test]
fn runtimes_loading_at_once_apply_each_migration_once() -> Result<()> {
    let f = Fixture::new()?;
    // Each its own database handle (its own pool), as another host's.
    let target = match &f.pg {
        Some((cluster, name)) => cluster.url(name),
        None => f.db_path().display().to_string(),
    };
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let target = target.clone();
                scope.spawn(move || -> Result<()> {
                    let db = plinth_store::Db::at(&target, plinth_store::Options::default())?;
                    let runtime = plinth_host::Runtime::new(db)?;
                    let manifest = Manifest::from_file(NOTES.manifest.as_ref())?;
                    runtime.load_file(NOTES.wasm.as_ref(), manifest)?;
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a thread panicked"))??;
        }
        Ok(())
    })?;
    let applied = f.runtime.db().plugin_migrations("notes")?;
    ensure!(applied.len() == 2, "{applied:?}");
    ensure!(f.sql_i64("SELECT count(*) FROM plugin_migrations", &[])? == 2);
    Ok(())
}

/// A plugin that ships migrations only for the other dialect is refused at
/// load, saying which it ships; nothing is written.
#[test]
fn a_plugin_without_migrations_for_this_database_is_refused() -> Result<()> {
    let f = Fixture::new()?;
    let mut manifest = Manifest::from_file(NOTES.manifest.as_ref())?;
    if f.pg.is_some() {
        manifest.migrations.postgresql.clear();
    } else {
        manifest.migrations.sqlite.clear();
    }
    match f.load_with(NOTES, manifest) {
        Err(e) => ensure!(
            matches!(
                e.downcast_ref::<Error>(),
                Some(Error::DialectUnsupported { .. })
            ),
            "{e}"
        ),
        Ok(_) => anyhow::bail!("loaded without migrations for this database"),
    }
    ensure!(f.runtime.db().plugin_migrations("notes")?.is_empty());
    Ok(())
}
