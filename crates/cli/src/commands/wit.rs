//! `plinth wit DIR`: the WIT a plugin author builds against, written from the
//! copy in this binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use plinth_host::wit::PACKAGES;

use crate::context;

/// `plinth wit`'s arguments.
#[derive(clap::Args)]
pub struct WitArgs {
    /// The plugin's WIT folder, e.g. `wit`.
    dir: PathBuf,
}

/// Writes the packages (and a starter world) and prints each file written.
pub fn run(args: WitArgs) -> context::Result<ExitCode> {
    for line in write(&args.dir)? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The world written into a folder that has none: a starting point that
/// imports exactly what it uses.
const STARTER_WORLD: &str = r#"// Your plugin's own WIT package. Rename the package and the world, import
// exactly the plinth interfaces your code calls (each must be granted by the
// plugin's manifest), and declare your exports.
package my:plugin@0.1.0;

world plugin {
    import plinth:database/users@0.1.0;

    /// A greeting for the user with this email.
    export greet: func(email: string) -> string;
}
"#;

/// Writes every package into `dir/deps/<package>/`, and `dir/world.wit` when
/// `dir` holds no `.wit` file of its own. Returns one line per file written.
fn write(dir: &Path) -> Result<Vec<String>> {
    let mut written: Vec<String> = write_packages(dir)?
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    let has_own = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "wit"));
    if !has_own {
        let path = dir.join("world.wit");
        std::fs::write(&path, STARTER_WORLD)
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(format!("{} (a starter world: edit it)", path.display()));
    }
    Ok(written)
}

/// Writes every package into `dir/deps/<package>/`; returns the files.
pub fn write_packages(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for package in PACKAGES {
        let folder = dir.join("deps").join(package.dir);
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        for (name, text) in package.files {
            let path = folder.join(name);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}
