//! `GET /openapi.json`: an OpenAPI 3.1 document of every export served
//! over HTTP, generated from the exports' WIT types
//! ([`plinth_host::json`]'s schemas), so that any language's HTTP tooling
//! can call them.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::catalog::Served;

/// The document for what is served now.
pub fn document(served: &HashMap<String, Arc<Served>>) -> Value {
    let mut names: Vec<&String> = served.keys().collect();
    names.sort();
    let mut paths = Map::new();
    for name in names {
        let s = &served[name];
        for (export, func) in &s.exports {
            let operation_id = format!("{name}.{export}");
            let mut op = plinth_host::json::openapi_operation(func, &operation_id, 422);
            if let Some(obj) = op.as_object_mut() {
                obj.insert("tags".into(), json!([name]));
                let err = plinth_host::json::result_schemas(func).map(|r| r.err);
                if let Some(responses) = obj.get_mut("responses").and_then(Value::as_object_mut) {
                    add_server_responses(responses, err);
                }
            }
            paths.insert(format!("/plugins/{name}/{export}"), json!({ "post": op }));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "plinth",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The plugin exports this plinth serve offers over HTTP. Each takes a JSON object of its named arguments; a WIT result answers {\"ok\": …} with 200 or {\"err\": …} with 422 (429 with Retry-After for a rate-limited error, 503 for busy, 500 for internal).",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "description": "A failure of the server or the runtime, not of the export: what kind, a message, and the request id under which the details were logged.",
                    "properties": {
                        "error": { "type": "string" },
                        "message": { "type": "string" },
                        "request_id": { "type": "string" },
                    },
                    "required": ["error", "message", "request_id"],
                    "additionalProperties": false,
                },
            },
        },
    })
}

/// The answers every call may get from the server itself; where the
/// export's own error may also answer with that status, either body.
fn add_server_responses(responses: &mut Map<String, Value>, err: Option<Value>) {
    let error_ref = json!({ "$ref": "#/components/schemas/Error" });
    let either = |err: &Option<Value>| match err {
        Some(e) => json!({ "oneOf": [e, error_ref] }),
        None => error_ref.clone(),
    };
    for (status, description, schema) in [
        (
            "400",
            "The body is not JSON, or the arguments do not fit the export's types (the field is named)",
            error_ref.clone(),
        ),
        (
            "404",
            "No such plugin or export is served",
            error_ref.clone(),
        ),
        ("408", "The body was not sent in time", error_ref.clone()),
        (
            "413",
            "The body is over the server's cap",
            error_ref.clone(),
        ),
        ("415", "The body is not JSON", error_ref.clone()),
        (
            "429",
            "The export's error rate-limited (see Retry-After)",
            either(&err),
        ),
        (
            "500",
            "The plugin trapped or could not commit (nothing was kept), or the export's error internal",
            either(&err),
        ),
        (
            "503",
            "Too many calls in flight, or the call ran out of time, memory or rows (nothing was kept), or the export's error busy; see Retry-After",
            either(&err),
        ),
    ] {
        if status == "429" && err.is_none() {
            continue;
        }
        responses.entry(status.to_string()).or_insert_with(|| {
            json!({
                "description": description,
                "content": { "application/json": { "schema": schema } },
            })
        });
    }
}
