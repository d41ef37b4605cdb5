//! Values and types for the shell: WAVE in and out, WIT-like type names
//! for `plugin inspect`. JSON out is the runtime's mapping
//! (`plinth_host::json`), the one an HTTP face speaks.

use plinth_host::Val;
use plinth_host::wasmtime::component::Type;
use plinth_host::wasmtime::component::wasm_wave;

/// Parses `name(args…)` against a function's parameter types.
pub fn parse_call(
    source: &str,
) -> Result<(String, wasm_wave::untyped::UntypedFuncCall<'_>), String> {
    let call = wasm_wave::untyped::UntypedFuncCall::parse(source)
        .map_err(|e| format!("malformed call {source:?}: {e}"))?;
    Ok((call.name().to_string(), call))
}

/// The WAVE text of a value.
pub fn wave(val: &Val) -> String {
    wasm_wave::to_string(val).unwrap_or_else(|e| format!("<unprintable: {e}>"))
}

/// A WIT-like name for a type, records and variants spelled out one level.
pub fn type_name(ty: &Type, depth: usize) -> String {
    let inner = |t: &Type| type_name(t, depth + 1);
    if let Some(name) = plinth_host::json::scalar_name(ty) {
        return name.into();
    }
    match ty {
        Type::List(l) => format!("list<{}>", inner(&l.ty())),
        Type::Option(o) => format!("option<{}>", inner(&o.ty())),
        Type::Result(r) => {
            let part = |t: Option<Type>| t.map_or("_".to_string(), |t| inner(&t));
            format!("result<{}, {}>", part(r.ok()), part(r.err()))
        }
        Type::Tuple(t) => format!(
            "tuple<{}>",
            t.types().map(|t| inner(&t)).collect::<Vec<_>>().join(", ")
        ),
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        _ if depth > 1 => match ty {
            Type::Record(_) => "record {…}".into(),
            Type::Variant(_) => "variant {…}".into(),
            _ => "…".into(),
        },
        Type::Record(r) => format!(
            "record {{ {} }}",
            r.fields()
                .map(|f| format!("{}: {}", f.name, inner(&f.ty)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Variant(v) => format!(
            "variant {{ {} }}",
            v.cases()
                .map(|c| match c.ty {
                    Some(t) => format!("{}({})", c.name, inner(&t)),
                    None => c.name.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other:?}"),
    }
}
