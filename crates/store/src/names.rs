//! What makes two names the same name, and which names are refused.
//!
//! A name is shown to other people, so one user must not be able to pose as
//! another with a name that looks like theirs. Two rules, after Unicode
//! TR #39's "highly restrictive" level:
//!
//! * **One script per name.** Letters come from one script — or from Latin
//!   with Han and Japanese kana, Latin with Han and Bopomofo, or Latin with
//!   Han and Hangul, the mixes real names use; digits and `_ - .` go with
//!   any. `аdmin` (a Cyrillic `а` among Latin letters) is refused.
//! * **One key per name.** Names are compared by their key: NFKC, then
//!   lowercase. `Admin` and `ADMIN` are the name `admin`; the second to come
//!   gets `conflict(name)`.
//!
//! What this does not catch: whole-script look-alikes (a name written
//! entirely in Cyrillic letters that resemble Latin ones) and look-alikes
//! within one script (`rn` and `m`). TR #39's full skeleton mapping would;
//! it needs the confusables table, which plinth does not carry.

use unicode_normalization::UnicodeNormalization;
use unicode_script::{Script, UnicodeScript};

use crate::{Error, Result};

/// The mixes of scripts one name may use (besides any single script).
const MIXES: [&[Script]; 3] = [
    &[
        Script::Latin,
        Script::Han,
        Script::Hiragana,
        Script::Katakana,
    ],
    &[Script::Latin, Script::Han, Script::Bopomofo],
    &[Script::Latin, Script::Han, Script::Hangul],
];

/// The key `name` is compared by, or why the name is refused.
///
/// # Errors
/// [`Error::InvalidInput`] for a name that mixes scripts.
pub fn name_key(name: &str) -> Result<String> {
    let normal: String = name.nfkc().collect();
    let mut scripts: Vec<Script> = Vec::new();
    for c in normal.chars() {
        let script = c.script();
        if matches!(script, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        if !scripts.contains(&script) {
            scripts.push(script);
        }
    }
    let allowed = scripts.len() <= 1
        || MIXES
            .iter()
            .any(|mix| scripts.iter().all(|s| mix.contains(s)));
    if !allowed {
        let names: Vec<&str> = scripts.iter().map(|s| s.full_name()).collect();
        return Err(Error::invalid(format!(
            "a name is written in one script; this one mixes {}",
            names.join(" and ")
        )));
    }
    Ok(normal.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_share_a_key_or_are_refused() {
        assert_eq!(name_key("Admin").ok(), name_key("admin").ok());
        assert_eq!(name_key("ＡＤＭＩＮ").ok(), Some("admin".to_string()));
        // A Cyrillic а among Latin letters.
        assert!(name_key("\u{430}dmin").is_err());
        // Whole names in other scripts, and the mixes names really use.
        for ok in [
            "Дмитрий",
            "山田太郎",
            "やまだ_taro",
            "김민준",
            "ada.lovelace-1815",
        ] {
            assert!(name_key(ok).is_ok(), "{ok}");
        }
    }
}
