//! The WIT packages a plugin author builds against, carried in this crate
//! (and so in every binary built on it), so that a tool can hand them out
//! with no checkout of the repository at hand.
//!
//! Each is one package: a folder of `.wit` files. Written into a plugin's
//! `wit/deps/`, they resolve the way wit-bindgen, componentize-py and jco
//! expect (`plinth wit DIR` does this).

/// One WIT package: its folder name and its files.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// The package's name, `plinth:database`.
    pub name: &'static str,
    /// Its folder name under `deps/`: `plinth-database`.
    pub dir: &'static str,
    /// `(file name, contents)`.
    pub files: &'static [(&'static str, &'static str)],
}

macro_rules! wit_files {
    ($dir:literal: $($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!("../../wit/", $dir, "/", $file)))),*]
    };
}

/// `plinth:database`: every plugin's imports.
pub const DATABASE: Package = Package {
    name: "plinth:database",
    dir: "plinth-database",
    files: wit_files!("database": "clock.wit", "sessions.wit", "tokens.wit", "types.wit", "users.wit", "world.wit"),
};

/// `plinth:auth`: the auth plugin's export and the mailer and attempts it
/// imports (any plugin may be granted those two). Depends on
/// `plinth:database`.
pub const AUTH: Package = Package {
    name: "plinth:auth",
    dir: "plinth-auth",
    files: wit_files!("auth": "auth.wit", "mailer.wit"),
};

/// `plinth:sql`: a plugin's own SQL tables.
pub const SQL: Package = Package {
    name: "plinth:sql",
    dir: "plinth-sql",
    files: wit_files!("sql": "sql.wit"),
};

/// `wasi:keyvalue` 0.2.0-draft2, vendored unchanged: a plugin's own
/// key-value buckets.
pub const KEYVALUE: Package = Package {
    name: "wasi:keyvalue",
    dir: "wasi-keyvalue",
    files: wit_files!("keyvalue": "atomic.wit", "batch.wit", "store.wit", "watch.wit", "world.wit"),
};

/// Every package a plugin author may need, dependencies first. The test
/// package (`plinth:test`) is not among them: its interfaces are granted to
/// test plugins only.
pub const PACKAGES: &[Package] = &[DATABASE, AUTH, SQL, KEYVALUE];

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.wit` file added to a package folder and not listed here would be
    /// missing from what authors get.
    #[test]
    fn every_wit_file_of_each_package_is_carried() -> std::io::Result<()> {
        for (package, folder) in [
            (DATABASE, "database"),
            (AUTH, "auth"),
            (SQL, "sql"),
            (KEYVALUE, "keyvalue"),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../wit")
                .join(folder);
            let mut on_disk: Vec<String> = std::fs::read_dir(&dir)?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".wit"))
                .collect();
            on_disk.sort();
            let carried: Vec<&str> = package.files.iter().map(|(n, _)| *n).collect();
            assert_eq!(on_disk, carried, "{}", package.name);
        }
        Ok(())
    }
}
