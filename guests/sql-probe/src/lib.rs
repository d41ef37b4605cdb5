//! Hands statements through `plinth:sql`: the tests' way to try every road
//! into (and out of) a plugin's own tables.

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "local:sql-probe/sql-probe",
        generate_all,
    });
}

use bindings::plinth::sql::sql;
use bindings::plinth::sql::types::{Dialect, Error, Outcome, Rows, Value};

struct Probe;

impl bindings::Guest for Probe {
    fn run_execute(statement: String, params: Vec<Value>) -> Result<Outcome, Error> {
        sql::execute(&statement, &params)
    }

    fn run_query(statement: String, params: Vec<Value>) -> Result<Rows, Error> {
        sql::query(&statement, &params)
    }

    fn which_dialect() -> Dialect {
        sql::current_dialect()
    }

    fn execute_then_trap(statements: Vec<String>) {
        for s in &statements {
            if sql::execute(s, &[]).is_err() {
                break;
            }
        }
        panic!("trapping after {} statements", statements.len());
    }
}

bindings::export!(Probe with_types_in bindings);
