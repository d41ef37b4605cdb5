//! Values and types for the shell: WAVE in and out, JSON out, WIT-like
//! type names for `plugin inspect`.

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

/// A value as JSON: records are objects, variants `{"case": payload}` (or the
/// case name alone), options `null` or the value, results `{"ok": …}` /
/// `{"err": …}`, flags an array of names.
pub fn json(val: &Val) -> serde_json::Value {
    use serde_json::Value as J;
    let boxed = |v: &Option<Box<Val>>| v.as_deref().map_or(J::Null, json);
    match val {
        Val::Bool(b) => J::Bool(*b),
        Val::S8(n) => (*n).into(),
        Val::U8(n) => (*n).into(),
        Val::S16(n) => (*n).into(),
        Val::U16(n) => (*n).into(),
        Val::S32(n) => (*n).into(),
        Val::U32(n) => (*n).into(),
        Val::S64(n) => (*n).into(),
        Val::U64(n) => (*n).into(),
        Val::Float32(n) => serde_json::Number::from_f64(f64::from(*n)).map_or(J::Null, J::Number),
        Val::Float64(n) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        Val::Char(c) => J::String(c.to_string()),
        Val::String(s) => J::String(s.clone()),
        Val::List(v) | Val::Tuple(v) => J::Array(v.iter().map(json).collect()),
        Val::Record(fields) => {
            J::Object(fields.iter().map(|(k, v)| (k.clone(), json(v))).collect())
        }
        Val::Variant(case, None) | Val::Enum(case) => J::String(case.clone()),
        Val::Variant(case, Some(v)) => J::Object([(case.clone(), json(v))].into_iter().collect()),
        Val::Option(v) => boxed(v),
        Val::Result(Ok(v)) => J::Object([("ok".to_string(), boxed(v))].into_iter().collect()),
        Val::Result(Err(v)) => J::Object([("err".to_string(), boxed(v))].into_iter().collect()),
        Val::Flags(names) => J::Array(names.iter().map(|n| J::String(n.clone())).collect()),
        other => J::String(format!("{other:?}")),
    }
}

/// A WIT-like name for a type, records and variants spelled out one level.
pub fn type_name(ty: &Type, depth: usize) -> String {
    let inner = |t: &Type| type_name(t, depth + 1);
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
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
