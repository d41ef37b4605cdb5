//! Per-user notes: the example of a plugin that keeps its own data.
//!
//! * Whose notes: the caller passes the session token auth gave at sign-in;
//!   the plugin reads the session (`plinth:database/sessions`, read only) by
//!   the token's SHA-256, as auth stores it. An unknown or expired session
//!   is `unauthorized`.
//! * Notes live in the plugin's own tables (`plinth:sql`), created by its
//!   migrations (`notes.migrations/`, one set per dialect). On SQLite, an
//!   FTS5 index `notes_text` kept in step by this code (same rowid); on
//!   PostgreSQL, a generated `tsvector` column with a GIN index. The
//!   statements are the same but for placeholders (`?1` / `$1`) and search.
//! * Settings live in `wasi:keyvalue` (bucket `settings`, key
//!   `<user>/<name>`), and a counter of notes ever added (bucket `counters`,
//!   `atomics.increment`).
//!
//! Everything a call writes commits together when it returns: a note, its
//! index row and its counter, or none of them.

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plinth:notes/notes-plugin",
        generate_all,
    });
}

use bindings::exports::plinth::notes::notes::{Counts, Error, Guest, Note};
use bindings::plinth::database::types::Error as DbError;
use bindings::plinth::database::{clock, sessions};
use bindings::plinth::sql::sql;
use bindings::plinth::sql::types::{Dialect, Error as SqlError, Value};
use bindings::wasi::keyvalue::{atomics, store};
use sha2::{Digest, Sha256};

/// The longest title, in bytes.
const MAX_TITLE: usize = 200;
/// The longest body, in bytes.
const MAX_BODY: usize = 64 * 1024;
/// The longest setting name and value, in bytes.
const MAX_SETTING: usize = 1024;
/// The longest search query, in bytes.
const MAX_QUERY: usize = 200;

const NOTE_COLUMNS: &str = "id, title, body, words, created_at, updated_at";

struct Notes;

type Res<T> = Result<T, Error>;

/// The user whose session `token` is.
fn user_of(token: &str) -> Res<String> {
    if token.is_empty() || token.len() > 256 {
        return Err(Error::Unauthorized);
    }
    let digest = Sha256::digest(token.as_bytes());
    let mut id = String::with_capacity(64);
    for b in digest {
        id.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        id.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    match sessions::get_session(&id) {
        Ok(s) => Ok(s.user_uuid),
        Err(DbError::NotFound) => Err(Error::Unauthorized),
        Err(e) => Err(Error::Storage(format!("sessions: {e:?}"))),
    }
}

fn storage(e: SqlError) -> Error {
    Error::Storage(match e {
        SqlError::TooLarge(m) => format!("too large: {m}"),
        SqlError::Busy => "the database is busy; try again".into(),
        SqlError::TimedOut => "timed out".into(),
        other => format!("{other:?}"),
    })
}

fn kv(e: store::Error) -> Error {
    Error::Storage(match e {
        store::Error::Other(m) => m,
        other => format!("{other:?}"),
    })
}

fn check(what: &str, value: &str, most: usize) -> Res<()> {
    if value.len() > most {
        return Err(Error::Invalid(format!(
            "{what} is {} bytes; at most {most}",
            value.len()
        )));
    }
    Ok(())
}

fn words(body: &str) -> u32 {
    u32::try_from(body.split_whitespace().count()).unwrap_or(u32::MAX)
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Integer(n) => *n,
        _ => 0,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(t) => t.clone(),
        _ => String::new(),
    }
}

fn note(row: &[Value]) -> Res<Note> {
    let [id, title, body, words, created, updated] = row else {
        return Err(Error::Storage("a note row of another shape".into()));
    };
    Ok(Note {
        id: int(id),
        title: text(title),
        body: text(body),
        words: u32::try_from(int(words)).unwrap_or(0),
        created_at: int(created),
        updated_at: int(updated),
    })
}

/// Whether the host's database is PostgreSQL.
fn on_postgres() -> bool {
    sql::current_dialect() == Dialect::Postgresql
}

/// `statement` in the host's dialect: `?1` placeholders become `$1` on
/// PostgreSQL (no statement here has a `?` of its own).
fn dialect(statement: &str) -> String {
    if on_postgres() {
        statement.replace('?', "$")
    } else {
        statement.to_string()
    }
}

fn query(statement: &str, params: &[Value]) -> Res<Vec<Vec<Value>>> {
    Ok(sql::query(&dialect(statement), params)
        .map_err(storage)?
        .rows)
}

fn execute(statement: &str, params: &[Value]) -> Res<u64> {
    Ok(sql::execute(&dialect(statement), params)
        .map_err(storage)?
        .rows_affected)
}

fn notes(statement: &str, params: &[Value]) -> Res<Vec<Note>> {
    let rows = query(statement, params)?;
    rows.iter().map(|r| note(r)).collect()
}

fn one(user: &str, id: i64) -> Res<Note> {
    let found = notes(
        &format!("SELECT {NOTE_COLUMNS} FROM notes WHERE id = ?1 AND owner = ?2"),
        &[Value::Integer(id), Value::Text(user.into())],
    )?;
    found.into_iter().next().ok_or(Error::NotFound)
}

/// Now, by the host's clock (what stamps sessions too).
fn now() -> Res<i64> {
    Ok(clock::now())
}

fn setting_key(user: &str, name: &str) -> String {
    format!("{user}/{name}")
}

impl Guest for Notes {
    fn add(session: String, title: String, body: String) -> Res<Note> {
        let user = user_of(&session)?;
        check("the title", &title, MAX_TITLE)?;
        check("the body", &body, MAX_BODY)?;
        if title.trim().is_empty() {
            return Err(Error::Invalid("the title is empty".into()));
        }
        let at = now()?;
        let inserted = query(
            "INSERT INTO notes (owner, title, body, words, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING id",
            &[
                Value::Text(user.clone()),
                Value::Text(title.clone()),
                Value::Text(body.clone()),
                Value::Integer(i64::from(words(&body))),
                Value::Integer(at),
            ],
        )?;
        let id = inserted
            .first()
            .and_then(|r| r.first())
            .map(int)
            .ok_or_else(|| Error::Storage("no id for the new note".into()))?;
        if !on_postgres() {
            execute(
                "INSERT INTO notes_text (rowid, title, body) VALUES (?1, ?2, ?3)",
                &[Value::Integer(id), Value::Text(title), Value::Text(body)],
            )?;
        }
        let counters = store::open("counters").map_err(kv)?;
        atomics::increment(&counters, &format!("{user}/added"), 1).map_err(kv)?;
        one(&user, id)
    }

    fn get(session: String, id: i64) -> Res<Note> {
        one(&user_of(&session)?, id)
    }

    fn list(session: String) -> Res<Vec<Note>> {
        let user = user_of(&session)?;
        notes(
            &format!("SELECT {NOTE_COLUMNS} FROM notes WHERE owner = ?1 ORDER BY id DESC"),
            &[Value::Text(user)],
        )
    }

    fn search(session: String, query: String) -> Res<Vec<Note>> {
        let user = user_of(&session)?;
        check("the query", &query, MAX_QUERY)?;
        if on_postgres() {
            // websearch_to_tsquery takes any text as words, never as syntax.
            return notes(
                "SELECT id, title, body, words, created_at, updated_at FROM notes
                 WHERE owner = ?2 AND search @@ websearch_to_tsquery('simple', ?1)
                 ORDER BY ts_rank(search, websearch_to_tsquery('simple', ?1)) DESC, id DESC",
                &[Value::Text(query), Value::Text(user)],
            );
        }
        // The query is the user's words, each quoted as an FTS5 string: no
        // operator syntax reaches the index.
        let phrase: Vec<String> = query
            .split_whitespace()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect();
        if phrase.is_empty() {
            return Ok(Vec::new());
        }
        notes(
            "SELECT n.id, n.title, n.body, n.words, n.created_at, n.updated_at
             FROM notes_text(?1) AS t JOIN notes AS n ON n.id = t.rowid
             WHERE n.owner = ?2
             ORDER BY t.rank",
            &[Value::Text(phrase.join(" ")), Value::Text(user)],
        )
    }

    fn edit(session: String, id: i64, body: String) -> Res<Note> {
        let user = user_of(&session)?;
        check("the body", &body, MAX_BODY)?;
        let before = one(&user, id)?;
        let at = now()?;
        execute(
            "UPDATE notes SET body = ?1, words = ?2, updated_at = ?3 WHERE id = ?4 AND owner = ?5",
            &[
                Value::Text(body.clone()),
                Value::Integer(i64::from(words(&body))),
                Value::Integer(at),
                Value::Integer(id),
                Value::Text(user.clone()),
            ],
        )?;
        if !on_postgres() {
            execute(
                "UPDATE notes_text SET body = ?1 WHERE rowid = ?2",
                &[Value::Text(body), Value::Integer(before.id)],
            )?;
        }
        one(&user, id)
    }

    fn remove(session: String, id: i64) -> Res<()> {
        let user = user_of(&session)?;
        let gone = execute(
            "DELETE FROM notes WHERE id = ?1 AND owner = ?2",
            &[Value::Integer(id), Value::Text(user)],
        )?;
        if gone == 0 {
            return Err(Error::NotFound);
        }
        if !on_postgres() {
            execute(
                "DELETE FROM notes_text WHERE rowid = ?1",
                &[Value::Integer(id)],
            )?;
        }
        Ok(())
    }

    fn get_setting(session: String, key: String) -> Res<Option<String>> {
        let user = user_of(&session)?;
        check("the setting's name", &key, MAX_SETTING)?;
        let settings = store::open("settings").map_err(kv)?;
        let value = settings.get(&setting_key(&user, &key)).map_err(kv)?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn set_setting(session: String, key: String, value: String) -> Res<()> {
        let user = user_of(&session)?;
        check("the setting's name", &key, MAX_SETTING)?;
        check("the setting's value", &value, MAX_SETTING)?;
        let settings = store::open("settings").map_err(kv)?;
        settings
            .set(&setting_key(&user, &key), value.as_bytes())
            .map_err(kv)
    }

    fn stats(session: String) -> Res<Counts> {
        let user = user_of(&session)?;
        let rows = query(
            "SELECT count(*) FROM notes WHERE owner = ?1",
            &[Value::Text(user.clone())],
        )?;
        let kept = rows.first().and_then(|r| r.first()).map_or(0, int);
        let counters = store::open("counters").map_err(kv)?;
        let added = counters
            .get(&format!("{user}/added"))
            .map_err(kv)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, i64::from_le_bytes);
        Ok(Counts {
            notes: u32::try_from(kept).unwrap_or(u32::MAX),
            added,
        })
    }
}

bindings::export!(Notes with_types_in bindings);
