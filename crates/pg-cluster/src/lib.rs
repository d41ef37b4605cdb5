//! Throwaway PostgreSQL clusters for tests.
//!
//! [`Cluster::shared`] starts one cluster per test process, the first time a
//! test asks: `initdb` into a temp dir, `pg_ctl start` on a free loopback
//! port (and a socket in the same dir). It is set up as the README tells an
//! operator to: a superuser `admin` that plinth never uses (the tests check
//! with it, through [`Cluster::psql`]), and plinth's own user `plinth`,
//! `LOGIN CREATEROLE` and nothing more, owning each test's database
//! ([`Cluster::database`]); both by trust on loopback, every other role
//! (the plugins' roles plinth creates) by password (SCRAM); prepared
//! transactions enabled (`max_prepared_transactions`). The cluster is stopped and its directory removed
//! when the test process exits, however it exits: a watchdog process waits
//! for a pipe this process holds open, and the kernel closes that pipe.
//!
//! PostgreSQL's binaries are found in `$PLINTH_PG_BIN`, else in the newest
//! `/usr/lib/postgresql/*/bin`, else beside `pg_ctl` on the `PATH`. Run as
//! root, the server runs as the `postgres` user (it refuses root).
//!
//! Without binaries, [`Cluster::shared`] answers [`Availability::Missing`]
//! and tests skip, saying so loudly; under `CI=true` that is an error
//! instead, so a CI log cannot show a pass that tested nothing.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// Why a cluster could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No PostgreSQL binaries on this machine, and `CI=true`.
    #[error(
        "PostgreSQL binaries not found ({0}); CI=true, so the PostgreSQL tests fail instead of skipping"
    )]
    Missing(String),
    /// A step of setting the cluster up failed.
    #[error("{step} failed: {detail}")]
    Setup {
        /// The command.
        step: String,
        /// Its output.
        detail: String,
    },
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    /// Held open while this process lives: its closing stops the cluster.
    _watchdog: Mutex<(Child, ChildStdin)>,
    next: AtomicU32,
}

/// Whether the shared cluster is there.
#[derive(Debug)]
pub enum Availability {
    /// Running.
    Running(&'static Cluster),
    /// No binaries on this machine (and not under CI): skip, loudly.
    Missing(String),
}

/// plinth's user: `LOGIN CREATEROLE`, not a superuser.
const USER: &str = "plinth";
/// The cluster's superuser, for tests' checks only.
pub const ADMIN: &str = "admin";

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Writes `line` to stderr past the test harness's capture of output (which
/// takes only the print macros), so that a skip is seen in a passing run.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn find_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PLINTH_PG_BIN") {
        let dir = PathBuf::from(dir);
        if dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
        return Err(format!("PLINTH_PG_BIN={} has no pg_ctl", dir.display()));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join("pg_ctl").is_file() && dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    Err("no $PLINTH_PG_BIN, no /usr/lib/postgresql/*/bin, no pg_ctl on the PATH".into())
}

fn is_root() -> bool {
    // The `id` command rather than libc: no unsafe code in this crate.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Cluster {
    /// The cluster of this test process, started on first use.
    ///
    /// # Errors
    /// [`Error::Missing`] under `CI=true` when there are no binaries;
    /// [`Error::Setup`] when the cluster cannot be started.
    pub fn shared() -> Result<Availability, Error> {
        static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
        let bin = match find_bin() {
            Ok(bin) => bin,
            Err(why) if under_ci() => return Err(Error::Missing(why)),
            Err(why) => return Ok(Availability::Missing(why)),
        };
        match SHARED.get_or_init(|| Cluster::start(&bin).map_err(|e| e.to_string())) {
            Ok(cluster) => Ok(Availability::Running(cluster)),
            Err(why) => Err(Error::Setup {
                step: "starting PostgreSQL".into(),
                detail: why.clone(),
            }),
        }
    }

    fn start(bin: &Path) -> Result<Cluster, Error> {
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!(
            "plinth-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        std::fs::create_dir_all(&dir)?;
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&dir), "chown")?;
        }
        let data = dir.join("data");
        let cluster_cmd = |program: &str| {
            let path = bin.join(program);
            if as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(path);
                c
            } else {
                Command::new(path)
            }
        };
        run(
            cluster_cmd("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", ADMIN, "--auth=trust", "-E", "UTF8", "--no-sync"])
                .args(["--locale=C"]),
            "initdb",
        )?;
        // Trust for the two users the tests connect as; a password for
        // every other role (plugins' roles log in with what plinth made).
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\nhost all {ADMIN} 127.0.0.1/32 trust\n\
                 host all {USER} 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
            ),
        )?;
        // The watchdog: stops the cluster and removes its dir once this
        // process's end closes its stdin.
        let stop = format!(
            "read _; {runas}'{ctl}' -D '{data}' stop -m immediate >/dev/null 2>&1; rm -rf '{dir}'",
            runas = if as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        let mut watchdog = Command::new("sh")
            .args(["-c", &stop])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let pipe = watchdog.stdin.take().ok_or_else(|| Error::Setup {
            step: "watchdog".into(),
            detail: "no stdin".into(),
        })?;
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let options = format!(
                "-p {port} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
                 -c max_prepared_transactions=100",
                dir.display()
            );
            let started = run(
                cluster_cmd("pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .args(["-o", &options, "-l"])
                    .arg(dir.join("log"))
                    .args(["-w", "-t", "60", "start"]),
                "pg_ctl start",
            );
            match started {
                Ok(()) => {
                    let cluster = Cluster {
                        bin: bin.to_path_buf(),
                        dir,
                        port,
                        as_postgres,
                        _watchdog: Mutex::new((watchdog, pipe)),
                        next: AtomicU32::new(0),
                    };
                    cluster.psql("postgres", &format!("CREATE ROLE {USER} LOGIN CREATEROLE"))?;
                    return Ok(cluster);
                }
                Err(e) => {
                    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                    last = format!("{e}\n{log}");
                }
            }
        }
        Err(Error::Setup {
            step: "pg_ctl start".into(),
            detail: last,
        })
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a new, empty database owned by plinth's user; returns its URL
    /// (TCP on loopback, as plinth's user).
    ///
    /// # Errors
    /// [`Error::Setup`] when `createdb` fails.
    pub fn database(&self) -> Result<String, Error> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        run(
            Command::new(self.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-U", ADMIN, "-O", USER, "-p"])
                .arg(self.port.to_string())
                .arg(&name),
            "createdb",
        )?;
        Ok(self.url(&name))
    }

    /// The URL of database `name`, over TCP on loopback.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// The URL of database `name` as the cluster's superuser (for tests
    /// that check what plinth's user cannot see).
    pub fn admin_url(&self, name: &str) -> String {
        format!("postgres://{ADMIN}@127.0.0.1:{}/{name}", self.port)
    }

    /// The URL of database `name`, over the server's Unix socket.
    pub fn socket_url(&self, name: &str) -> String {
        format!(
            "postgres://{USER}@/{name}?host={}&port={}",
            self.dir.display(),
            self.port
        )
    }

    /// Runs `sql` in database `name` with `psql`, as the superuser `admin`; returns
    /// what it printed (unaligned, tuples only).
    ///
    /// # Errors
    /// [`Error::Setup`] when psql fails.
    pub fn psql(&self, name: &str, sql: &str) -> Result<String, Error> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                ADMIN,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-p", &self.port.to_string(), "-d", name, "-c", sql])
            .output()?;
        if !out.status.success() {
            return Err(Error::Setup {
                step: format!("psql -c {sql}"),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The data of database `name` as `pg_dump --data-only` writes it: what
    /// a backup of it holds.
    ///
    /// # Errors
    /// [`Error::Setup`] when pg_dump fails.
    pub fn dump(&self, name: &str) -> Result<String, Error> {
        let out = Command::new(self.bin.join("pg_dump"))
            .args(["-h", "127.0.0.1", "-U", ADMIN, "--data-only", "-p"])
            .arg(self.port.to_string())
            .arg(name)
            .output()?;
        if !out.status.success() {
            return Err(Error::Setup {
                step: "pg_dump".into(),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether the server runs as the `postgres` user (this process is root).
    pub fn runs_as_postgres(&self) -> bool {
        self.as_postgres
    }
}

/// The database name in a URL this crate made.
pub fn database_name(url: &str) -> &str {
    let tail = url.rsplit('/').next().unwrap_or(url);
    tail.split('?').next().unwrap_or(tail)
}

fn run(cmd: &mut Command, step: &str) -> Result<(), Error> {
    let out = cmd.output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Setup {
        step: step.into(),
        detail: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// A database of its own on the shared cluster for one test, or `None`
/// (after saying so loudly) when this machine has no PostgreSQL and the
/// run is not under CI.
///
/// # Errors
/// As [`Cluster::shared`] and [`Cluster::database`].
pub fn test_database(test: &str) -> Result<Option<(&'static Cluster, String)>, Error> {
    match Cluster::shared()? {
        Availability::Running(cluster) => Ok(Some((cluster, cluster.database()?))),
        Availability::Missing(why) => {
            say(&format!(
                "SKIPPED (no PostgreSQL: {why}): {test} — install postgresql or set PLINTH_PG_BIN"
            ));
            Ok(None)
        }
    }
}
