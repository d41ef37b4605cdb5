//! What plinth's fuzz targets run, as plain functions of the fuzzer's bytes.
//!
//! The targets in `fuzz/` (cargo-fuzz, on nightly) call these; so does this
//! crate's test, which replays the checked-in corpus (`fuzz/corpus/<target>/`)
//! on stable within `cargo test`. Each function panics only on a bug:
//! a typed error is the right answer to bad input.
//!
//! * [`manifest`]: bytes as a manifest file. A manifest that parses writes
//!   back ([`plinth_host::Manifest::to_toml`]) to the same manifest and lies
//!   within itself.
//! * [`wave_call`]: bytes as the CLI's `function(args…)` text, run through
//!   [`plinth_host::Plugin::call_dynamic`] on a real plugin: parsed against
//!   the export's types, then called. Any input ends as a value or a typed
//!   error.
//! * [`component_imports`]: bytes as a component, read by the import check
//!   that runs before the compile ([`plinth_host::imports::component_imports`],
//!   which skips nested modules unread). For every valid component it lists
//!   exactly the top-level imports a full parse finds: skipping cannot hide
//!   an import.
//! * [`store_ops`]: bytes as a sequence of the operations behind the
//!   `plinth:database` interfaces, on small domains of names, emails and
//!   tokens so that collisions happen, checked against a model: no two users
//!   share an email or a name key, a token is consumed at most once, a
//!   deleted user leaves no session or token behind.

use std::collections::{BTreeMap, BTreeSet};

use plinth_host::wasmtime::component::wasm_wave::untyped::UntypedFuncCall;
use plinth_host::{Manifest, Plugin, Val};
use plinth_store::{Db, NewUser, TokenKind};

/// Bytes as a component, through the import reader that runs before the
/// compile.
///
/// # Panics
/// When the reader panics, or lists other imports than a full parse for a
/// component the validator accepts.
pub fn component_imports(data: &[u8]) {
    let ours = plinth_host::imports::component_imports(data);
    let valid = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(data)
        .is_ok();
    if !valid || !wasmparser::Parser::is_component(data) {
        return;
    }
    let mut theirs = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(data) {
        let Ok(payload) = payload else { return };
        match payload {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader.into_iter().flatten() {
                    if !matches!(import.ty, wasmparser::ComponentTypeRef::Type(_)) {
                        theirs.push(import.name.name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    match ours {
        Ok(names) => assert_eq!(
            names, theirs,
            "the import reader disagrees with a full parse"
        ),
        Err(e) => panic!("a valid component was refused by the import reader: {e}"),
    }
}

/// Bytes as a manifest file.
///
/// # Panics
/// When a manifest that parsed does not survive being written and read back.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = Manifest::from_toml(text, "fuzz.toml") else {
        return;
    };
    let again = Manifest::from_toml(&m.to_toml(), "written back");
    assert_eq!(
        again.ok().as_ref(),
        Some(&m),
        "a manifest did not survive to_toml:\n{text}"
    );
    assert!(m.within(&m).is_ok(), "a manifest is not within itself");
}

/// Bytes as `function(args…)` (WAVE) for `plugin`, called when they parse.
///
/// # Panics
/// Never on purpose: the runtime must answer every input with a value or a
/// typed error (a panic in the runtime is the bug this finds).
pub fn wave_call(plugin: &Plugin, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(call) = UntypedFuncCall::parse(text) else {
        return;
    };
    let Ok(func) = plugin.function(call.name()) else {
        return;
    };
    let types: Vec<_> = func.ty.params().map(|(_, t)| t).collect();
    let Ok(args) = call.to_wasm_params::<Val>(types.iter()) else {
        return;
    };
    let _ = plugin.call_dynamic(&func.qualified_name(), &args);
}

/// Names, emails and tokens come from small sets, so operations collide.
const DOMAIN: u8 = 6;

fn name(b: u8) -> String {
    // Case and width variants of a few names: one name key each.
    ["ada", "Ada", "ＡＤＡ", "bob", "BOB", "cy"][usize::from(b % DOMAIN)].to_string()
}

fn email(b: u8) -> String {
    format!("u{}@example.com", b % DOMAIN)
}

fn token(b: u8) -> String {
    format!("{:064x}", b % DOMAIN)
}

/// Bytes as a sequence of store operations, checked against a model.
///
/// # Panics
/// When the store breaks an invariant: two users with one email or name
/// key, a token consumed twice, a session or token outliving its user.
pub fn store_ops(db: &Db, data: &[u8]) {
    let mut consumed: BTreeSet<(u8, String)> = BTreeSet::new();
    for op in data.chunks(3) {
        let [code, a, b] = [op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0)];
        let Ok(mut unit) = db.unit() else { return };
        let users: Vec<String> = user_uuids(db);
        let user = |i: u8| users.get(usize::from(i) % users.len().max(1)).cloned();
        let kind = if b % 2 == 0 {
            TokenKind::EmailVerification
        } else {
            TokenKind::PasswordReset
        };
        let mut just_consumed = None;
        let _ = match code % 8 {
            0 => unit
                .create_user(&NewUser {
                    name: name(a),
                    email: email(b),
                })
                .map(drop),
            1 => user(a).map_or(Ok(()), |u| unit.delete_user(&u)),
            2 => user(a).map_or(Ok(()), |u| unit.create_session(&token(b), &u, 60).map(drop)),
            3 => user(a).map_or(Ok(()), |u| {
                unit.create_token(kind, &token(b), &u, 60).map(drop)
            }),
            4 => unit.consume_token(kind, &token(a)).map(|t| {
                just_consumed = Some((b % 2, t.token));
            }),
            5 => user(a).map_or(Ok(()), |u| unit.delete_user_sessions(&u).map(drop)),
            6 => user(a).map_or(Ok(()), |u| {
                unit.update_user_email_verified(&u, b % 2 == 0).map(drop)
            }),
            _ => user(a).map_or(Ok(()), |u| {
                unit.update_user_profile(
                    &u,
                    &plinth_store::ProfileChanges {
                        name: Some(name(b)),
                        ..Default::default()
                    },
                )
                .map(drop)
            }),
        };
        // Half the units commit, half roll back.
        let committed = a % 2 == 0 && unit.commit().is_ok();
        if committed {
            if let Some(key) = just_consumed {
                // Single use: a token consumed (and committed) once cannot
                // be consumed again unless it was created anew since.
                assert!(
                    consumed.insert(key.clone()),
                    "a token was consumed twice: {key:?}"
                );
            }
            if code % 8 == 3 {
                consumed.remove(&(b % 2, token(b)));
            }
        }
        check(db);
    }
}

fn user_uuids(db: &Db) -> Vec<String> {
    let Ok(mut unit) = db.unit() else {
        return Vec::new();
    };
    (0..DOMAIN)
        .filter_map(|b| unit.get_user_by_email(&email(b)).ok())
        .map(|u| u.uuid)
        .collect()
}

/// The invariants, read back through the store.
fn check(db: &Db) {
    let Ok(mut unit) = db.unit() else { return };
    let mut by_key: BTreeMap<String, String> = BTreeMap::new();
    let mut uuids = BTreeSet::new();
    for b in 0..DOMAIN {
        if let Ok(u) = unit.get_user_by_email(&email(b)) {
            assert_eq!(u.email, email(b), "a lookup by email found another email");
            let key = plinth_store::names::name_key(&u.name).unwrap_or_default();
            if let Some(other) = by_key.insert(key.clone(), u.uuid.clone()) {
                assert_eq!(other, u.uuid, "two users share the name key {key}");
            }
            uuids.insert(u.uuid);
        }
    }
    for b in 0..DOMAIN {
        if let Ok(s) = unit.get_session(&token(b)) {
            assert!(uuids.contains(&s.user_uuid), "a session outlived its user");
        }
        for kind in [TokenKind::EmailVerification, TokenKind::PasswordReset] {
            if let Ok(t) = unit.get_token(kind, &token(b)) {
                assert!(uuids.contains(&t.user_uuid), "a token outlived its user");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// The checked-in corpus of one target.
    fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        assert!(!files.is_empty(), "no corpus in {}", dir.display());
        files
            .into_iter()
            .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
            .collect()
    }

    #[test]
    fn the_component_imports_corpus_replays_clean() {
        for (_, data) in corpus("component_imports") {
            component_imports(&data);
        }
        // The shipped guests, whole: each lists its imports as a full
        // parse does.
        for guest in plinth_guests::ALL {
            if let Ok(bytes) = std::fs::read(guest.wasm) {
                // Valid, so the comparison with the full parse runs.
                assert!(
                    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
                        .validate_all(&bytes)
                        .is_ok(),
                    "{}",
                    guest.name
                );
                component_imports(&bytes);
                assert!(
                    plinth_host::imports::component_imports(&bytes)
                        .is_ok_and(|names| !names.is_empty()),
                    "{}",
                    guest.name
                );
            }
        }
    }

    #[test]
    fn the_manifest_corpus_replays_clean() {
        for (_, data) in corpus("manifest") {
            manifest(&data);
        }
    }

    #[test]
    fn the_wave_call_corpus_replays_clean() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let runtime = plinth_host::Runtime::new(Db::open(dir.path().join("db"))?)?;
        let guest = plinth_guests::TEMPLATE;
        let plugin = runtime.load_file(
            guest.wasm.as_ref(),
            Manifest::from_file(guest.manifest.as_ref())?,
        )?;
        for (_, data) in corpus("wave_call") {
            wave_call(&plugin, &data);
        }
        Ok(())
    }

    #[test]
    fn the_store_ops_corpus_replays_clean() -> anyhow::Result<()> {
        for (path, data) in corpus("store_ops") {
            let dir = tempfile::tempdir()?;
            let db = Db::open(dir.path().join("db"))?;
            store_ops(&db, &data);
            let _ = path;
        }
        Ok(())
    }
}
