//! The db-test plugin: runs every `plinth:database` operation and its error
//! cases against the database the host provides, and reports one typed
//! [`Check`] per case. It never panics on a failed check: each check returns
//! a `Result` whose error says what was expected, what came back, and where.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/test",
        world: "plinth:test/db-test",
        generate_all,
    });
}

mod checks;

use bindings::plinth::test::report::Check;

struct DbTest;

impl bindings::Guest for DbTest {
    fn run() -> Vec<Check> {
        checks::run_all()
    }

    fn probe_sandbox() -> Vec<String> {
        let mut seen = Vec::new();
        for (key, value) in std::env::vars() {
            seen.push(format!("env: {key}={value}"));
        }
        for arg in std::env::args() {
            seen.push(format!("arg: {arg}"));
        }
        for path in ["/", ".", "/etc", "/tmp"] {
            match std::fs::read_dir(path) {
                Ok(entries) => seen.push(format!("dir: {path} has {} entries", entries.count())),
                Err(e) => seen.push(format!("denied: read_dir {path}: {e}")),
            }
        }
        for path in ["/etc/passwd", "app.db"] {
            match std::fs::File::open(path) {
                Ok(_) => seen.push(format!("file: {path} opened")),
                Err(e) => seen.push(format!("denied: open {path}: {e}")),
            }
        }
        match std::fs::write("plinth-probe.txt", b"x") {
            Ok(()) => seen.push("file: plinth-probe.txt written".into()),
            Err(e) => seen.push(format!("denied: write plinth-probe.txt: {e}")),
        }
        match std::net::TcpStream::connect("127.0.0.1:80") {
            Ok(_) => seen.push("net: connected to 127.0.0.1:80".into()),
            Err(e) => seen.push(format!("denied: connect 127.0.0.1:80: {e}")),
        }
        seen
    }
}

bindings::export!(DbTest with_types_in bindings);
