//! The template plugin works as shipped, so that a copy of it starts working.

use anyhow::{Result, ensure};
use plinth_host::Val;

use crate::util::{Fixture, ok};

#[test]
fn the_template_greets_and_returns_typed_profiles() -> Result<()> {
    let f = Fixture::new()?;
    ok(f.auth()?
        .sign_up("ada", "ada@example.com", "correct horse battery staple"))?;
    let p = f.load(plinth_guests::TEMPLATE)?;
    let greet = p.call_dynamic("greet", &[Val::String("ada@example.com".into())])?;
    ensure!(greet == [Val::String("hello, ada!".into())], "{greet:?}");
    let missing = p.call_dynamic("profile", &[Val::String("nobody@example.com".into())])?;
    ensure!(
        missing
            == [Val::Result(Err(Some(Box::new(Val::Variant(
                "not-found".into(),
                None
            )))))],
        "{missing:?}"
    );
    match &p.call_dynamic("profile", &[Val::String("ada@example.com".into())])?[..] {
        [Val::Result(Ok(Some(user)))] => match &**user {
            Val::Record(fields) => ensure!(
                fields
                    .iter()
                    .any(|(k, v)| k == "name" && *v == Val::String("ada".into()))
            ),
            other => anyhow::bail!("{other:?}"),
        },
        other => anyhow::bail!("{other:?}"),
    }
    Ok(())
}
