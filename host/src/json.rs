//! WIT values as JSON, both ways, and JSON Schemas (OpenAPI 3.1, that is
//! JSON Schema 2020-12) of that JSON for WIT types: what an HTTP face of a
//! plugin (and the CLI's `call --json`) speaks.
//!
//! # The mapping
//!
//! | WIT | JSON |
//! | --- | --- |
//! | `bool` | `true` / `false` |
//! | `u8` … `u64`, `s8` … `s64` | a number (exact: `serde_json` keeps 64-bit integers whole) |
//! | `f32`, `f64` | a number; `"NaN"`, `"Infinity"`, `"-Infinity"` for the non-finite |
//! | `char` | a string of one Unicode scalar value |
//! | `string` | a string |
//! | `list<T>`, `list<T, N>` | an array |
//! | `tuple<…>` | an array of exactly its length |
//! | `record` | an object with a member per field, named as in WIT (`kebab-case`) |
//! | `variant` | `"case"` for a case with no payload, `{"case": payload}` otherwise |
//! | `enum` | the case's name |
//! | `option<T>` | `null` or the value |
//! | `option<option<T>>` | `null`, or `{"some": …}` around the inner option |
//! | `result<T, E>` | `{"ok": …}` / `{"err": …}` (`null` where there is no payload) |
//! | `flags` | an array of the names that are set |
//! | `map<K, V>` | an array of `[key, value]` pairs |
//! | resources, futures, streams, error contexts | not representable |
//!
//! Decisions the table does not show:
//!
//! * **64-bit integers** are JSON numbers, never strings: `serde_json` keeps
//!   every `u64` and `s64` exact. A reader that holds numbers as doubles
//!   (JavaScript's `JSON.parse`) loses precision beyond 2^53; the schema
//!   says so only through the range. Going in, an integer may be written as
//!   `3` or `3.0` (JSON Schema counts both as integers), but a number with a
//!   fraction is refused, and so is a float of 2^53 or more written with a
//!   fraction or an exponent (it may have been rounded when it was read).
//! * **Non-finite floats** are the strings `"NaN"`, `"Infinity"` and
//!   `"-Infinity"` (as in protobuf's JSON mapping), so that every float
//!   round-trips; NaN's payload bits are not kept. A finite number too large
//!   for an `f32` is refused rather than made infinite; other numbers are
//!   rounded to the nearest `f32`. (The CLI printed `null` for these before.)
//! * **Nested options**: an `option` whose payload is itself an option wraps
//!   its `some` in `{"some": …}`, so that `none` (`null`), `some(none)`
//!   (`{"some": null}`) and `some(some(x))` (`{"some": x}`) stay apart.
//!   Every other option is `null` or its bare value, which is never `null`.
//! * **Optional fields and arguments**: a record field or an argument whose
//!   type is an option may be left out (it is `none`) or be `null`; any other
//!   one is required. Unknown fields and arguments are refused.
//! * **Results with no payload** on a side are `{"ok": null}` / `{"err": null}`;
//!   going in, that side must be `null`.
//! * **Flags** come out in the type's order; going in, any order, each name
//!   at most once.
//! * **Bounded work**: [`from_json`] refuses values nested more than
//!   [`MAX_DEPTH`] levels deep (before any stack is at risk; wasmparser
//!   allows types 100 deep). [`to_json`] and [`schema`] follow a value or a
//!   type a component produced, whose depth wasmparser bounds.
//!
//! Errors name where they are, as a path in the JSON (`note.tags[2]`,
//! `shape.circle.radius`: a variant's or a result's payload is under its
//! case's name), with what was expected and what was found.

use serde_json::{Map, Number, Value as Json, json};
use wasmtime::component::{Type, Val};

use crate::dynamic::ExportedFunc;

/// How deep [`from_json`] follows a value: a value nested deeper (a list in
/// a list in … more than this many levels down) is refused.
pub const MAX_DEPTH: usize = 64;

/// Strings that stand for the non-finite floats.
const NAN: &str = "NaN";
const INFINITY: &str = "Infinity";
const NEG_INFINITY: &str = "-Infinity";

/// The member that wraps the `some` of an option whose payload is an option.
const SOME: &str = "some";

/// Integers from this magnitude on, written as floats, may have been rounded
/// when they were parsed (2^53 + 1 reads as 2^53).
const EXACT_FLOAT_INT: f64 = 9_007_199_254_740_992.0; // 2^53

/// A JSON value that does not fit the WIT type it was read as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
#[non_exhaustive]
pub struct JsonError {
    /// Where: a path from the value (or, from [`args_from_json`], from the
    /// argument's name) to the offending part, `note.tags[2]`; empty for the
    /// value itself.
    pub path: String,
    /// What would have fitted there.
    pub expected: String,
    /// What was there instead.
    pub found: String,
}

impl JsonError {
    fn message(&self) -> String {
        if self.path.is_empty() {
            format!("expected {}, found {}", self.expected, self.found)
        } else {
            format!(
                "{}: expected {}, found {}",
                self.path, self.expected, self.found
            )
        }
    }
}

// ---------------------------------------------------------------------------
// Values to JSON

/// A value as JSON (see the [module docs](self) for the mapping). Total: a
/// resource, future, stream or error context, which JSON cannot carry, is
/// the string of its debug form.
pub fn to_json(val: &Val) -> Json {
    let boxed = |v: &Option<Box<Val>>| v.as_deref().map_or(Json::Null, to_json);
    let one = |key: &str, value: Json| Json::Object(Map::from_iter([(key.to_string(), value)]));
    match val {
        Val::Bool(b) => Json::Bool(*b),
        Val::S8(n) => (*n).into(),
        Val::U8(n) => (*n).into(),
        Val::S16(n) => (*n).into(),
        Val::U16(n) => (*n).into(),
        Val::S32(n) => (*n).into(),
        Val::U32(n) => (*n).into(),
        Val::S64(n) => (*n).into(),
        Val::U64(n) => (*n).into(),
        Val::Float32(n) => float(f64::from(*n)),
        Val::Float64(n) => float(*n),
        Val::Char(c) => Json::String(c.to_string()),
        Val::String(s) => Json::String(s.clone()),
        Val::List(v) | Val::Tuple(v) | Val::FixedLengthList(v) => {
            Json::Array(v.iter().map(to_json).collect())
        }
        Val::Map(pairs) => Json::Array(
            pairs
                .iter()
                .map(|(k, v)| Json::Array(vec![to_json(k), to_json(v)]))
                .collect(),
        ),
        Val::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        Val::Variant(case, None) | Val::Enum(case) => Json::String(case.clone()),
        Val::Variant(case, Some(v)) => one(case, to_json(v)),
        Val::Option(Some(v)) if matches!(**v, Val::Option(_)) => one(SOME, to_json(v)),
        Val::Option(v) => boxed(v),
        Val::Result(Ok(v)) => one("ok", boxed(v)),
        Val::Result(Err(v)) => one("err", boxed(v)),
        Val::Flags(names) => Json::Array(names.iter().map(|n| Json::String(n.clone())).collect()),
        other @ (Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_)) => {
            Json::String(format!("{other:?}"))
        }
    }
}

/// A float as a JSON number, or the string that names it when it is not
/// finite.
fn float(n: f64) -> Json {
    match Number::from_f64(n) {
        Some(n) => Json::Number(n),
        None if n.is_nan() => Json::String(NAN.into()),
        None if n > 0.0 => Json::String(INFINITY.into()),
        None => Json::String(NEG_INFINITY.into()),
    }
}

/// The JSON of a call's results, as an HTTP answer carries them: `null` for
/// none, the one result's [`to_json`] (every WIT function has at most one),
/// an array should there be several.
pub fn results_to_json(results: &[Val]) -> Json {
    match results {
        [] => Json::Null,
        [one] => to_json(one),
        many => Json::Array(many.iter().map(to_json).collect()),
    }
}

/// Whether a call's results are a WIT `result`'s `err` (an HTTP answer of
/// 4xx, see [`result_schemas`]).
pub fn is_err(results: &[Val]) -> bool {
    matches!(results, [Val::Result(Err(_))])
}

// ---------------------------------------------------------------------------
// JSON to values

/// One step of a path in the JSON.
#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Member(&'a str),
    Index(usize),
}

/// Where in the JSON a conversion is: a list of steps kept on the stack,
/// made into text only for an error.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Step<'a>,
    depth: usize,
}

/// The value itself.
const ROOT: Path<'static> = Path {
    parent: None,
    step: Step::Root,
    depth: 0,
};

impl<'a> Path<'a> {
    fn member(&'a self, name: &'a str) -> Path<'a> {
        self.child(Step::Member(name))
    }

    fn index(&'a self, i: usize) -> Path<'a> {
        self.child(Step::Index(i))
    }

    fn child(&'a self, step: Step<'a>) -> Path<'a> {
        Path {
            parent: Some(self),
            step,
            depth: self.depth + 1,
        }
    }

    fn render(&self) -> String {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            steps.push(p.step);
            at = p.parent;
        }
        let mut out = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Root => {}
                Step::Member(name) if is_plain_name(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Step::Member(name) => {
                    out.push('[');
                    out.push_str(&Json::String(truncate(name, 40)).to_string());
                    out.push(']');
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    fn error(&self, expected: impl Into<String>, found: impl Into<String>) -> JsonError {
        JsonError {
            path: self.render(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// The error of a value that is not what `ty` wants.
    fn mismatch(&self, ty: &Type, value: &Json) -> JsonError {
        self.error(expected(ty), found(value))
    }
}

/// A name that reads unambiguously after a `.` in a path.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// At most `max` characters of `s`, marked when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A short description of a JSON value, for errors: its kind, and its text
/// when short.
fn found(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => {
            let n = s.chars().count();
            if n <= 40 {
                value.to_string()
            } else {
                format!("a string of {n} characters")
            }
        }
        Json::Array(a) => match a.len() {
            1 => "an array of 1 item".into(),
            n => format!("an array of {n} items"),
        },
        Json::Object(o) => match o.len() {
            0 => "an empty object".into(),
            1 => "an object with 1 member".into(),
            n => format!("an object with {n} members"),
        },
    }
}

/// The WIT name of a scalar type (`bool`, `u32`, `f64`, `char`,
/// `string`…); `None` for a compound one.
pub fn scalar_name(ty: &Type) -> Option<&'static str> {
    Some(match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        _ => return None,
    })
}

/// A WIT type's name, one level deep (`list<…>`, `record`), for errors.
fn short(ty: &Type) -> String {
    if let Some(name) = scalar_name(ty) {
        return name.into();
    }
    match ty {
        Type::List(_) => "list".into(),
        Type::FixedLengthList(l) => format!("list of {}", l.len()),
        Type::Map(_) => "map".into(),
        Type::Record(_) => "record".into(),
        Type::Tuple(_) => "tuple".into(),
        Type::Variant(_) => "variant".into(),
        Type::Enum(_) => "enum".into(),
        Type::Option(_) => "option".into(),
        Type::Result(_) => "result".into(),
        Type::Flags(_) => "flags".into(),
        Type::Own(_) => "own resource".into(),
        Type::Borrow(_) => "borrowed resource".into(),
        Type::Future(_) => "future".into(),
        Type::Stream(_) => "stream".into(),
        Type::ErrorContext => "error-context".into(),
        // Scalars are named above.
        _ => String::new(),
    }
}

/// The range of an integer type.
fn int_range(ty: &Type) -> Option<(i128, i128)> {
    Some(match ty {
        Type::S8 => (i8::MIN.into(), i8::MAX.into()),
        Type::U8 => (0, u8::MAX.into()),
        Type::S16 => (i16::MIN.into(), i16::MAX.into()),
        Type::U16 => (0, u16::MAX.into()),
        Type::S32 => (i32::MIN.into(), i32::MAX.into()),
        Type::U32 => (0, u32::MAX.into()),
        Type::S64 => (i64::MIN.into(), i64::MAX.into()),
        Type::U64 => (0, u64::MAX.into()),
        _ => return None,
    })
}

/// Names, quoted, listed: `"a", "b"`.
fn quoted<'n>(names: impl Iterator<Item = &'n str>) -> String {
    names
        .map(|n| Json::String(n.to_string()).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a JSON value of type `ty` looks like, for errors.
fn expected(ty: &Type) -> String {
    if let Some((min, max)) = int_range(ty) {
        return format!("an integer from {min} to {max} ({})", short(ty));
    }
    match ty {
        Type::Bool => "true or false".into(),
        Type::Float32 | Type::Float64 => format!(
            "a number, or \"{NAN}\", \"{INFINITY}\" or \"{NEG_INFINITY}\" ({})",
            short(ty)
        ),
        Type::Char => "a string of one character (char)".into(),
        Type::String => "a string".into(),
        Type::List(l) => format!("an array (list<{}>)", short(&l.ty())),
        Type::FixedLengthList(l) => format!("an array of {} items", l.len()),
        Type::Map(_) => "an array of [key, value] pairs (map)".into(),
        Type::Record(r) => format!(
            "an object with the fields {} (record)",
            quoted(r.fields().map(|f| f.name))
        ),
        Type::Tuple(t) => format!("an array of {} items (tuple)", t.types().len()),
        Type::Variant(v) => format!(
            "one of {} (variant)",
            v.cases()
                .map(|c| match c.ty {
                    None => Json::String(c.name.into()).to_string(),
                    Some(t) => format!("{{{}: {}}}", Json::String(c.name.into()), short(&t)),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Enum(e) => format!("one of {} (enum)", quoted(e.names())),
        Type::Option(o) if matches!(o.ty(), Type::Option(_)) => {
            format!("null or {{\"{SOME}\": …}} (option<option<…>>)")
        }
        Type::Option(o) => format!("null or {}", expected_short(&o.ty())),
        Type::Result(r) => {
            let side = |t: Option<Type>| t.map_or("null".to_string(), |t| short(&t));
            format!(
                "{{\"ok\": {}}} or {{\"err\": {}}} (result)",
                side(r.ok()),
                side(r.err())
            )
        }
        Type::Flags(f) => format!(
            "an array of distinct names from {} (flags)",
            quoted(f.names())
        ),
        _ => unrepresentable(ty),
    }
}

/// [`expected`] without spelling out the cases or fields of what is inside.
fn expected_short(ty: &Type) -> String {
    match ty {
        Type::Record(_) => "an object (record)".into(),
        Type::Variant(_) => "a case of a variant".into(),
        Type::Enum(_) => "a case of an enum".into(),
        Type::Flags(_) => "an array of flag names".into(),
        Type::Result(_) => "{\"ok\": …} or {\"err\": …}".into(),
        _ => expected(ty),
    }
}

/// Why a value of a type JSON cannot carry cannot be given.
fn unrepresentable(ty: &Type) -> String {
    let what = match ty {
        Type::Own(_) => "a resource",
        Type::Borrow(_) => "a borrowed resource",
        Type::Future(_) => "a future",
        Type::Stream(_) => "a stream",
        Type::ErrorContext => "an error-context",
        _ => "this value",
    };
    format!("nothing: {what} cannot be given as JSON")
}

/// The value of type `ty` that `value` stands for (see the
/// [module docs](self) for the mapping).
///
/// # Errors
/// [`JsonError`] naming the path to the first part of `value` that does not
/// fit: a JSON kind the type does not take, an integer out of range, a
/// `char` that is not one character, an unknown or missing record field, an
/// unknown case or flag, a repeated flag, a tuple of another length, a value
/// nested deeper than [`MAX_DEPTH`], or a resource, future, stream or error
/// context (which JSON cannot carry).
pub fn from_json(value: &Json, ty: &Type) -> Result<Val, JsonError> {
    convert(value, ty, &ROOT)
}

/// The arguments of `func` from a JSON object of named arguments
/// (`{"email": "ada@example.com", "limit": 10}`), in the function's order.
/// An argument whose type is an option may be left out (it is `none`).
///
/// # Errors
/// [`JsonError`] when `object` is not an object, when an argument is missing
/// or not a parameter of `func`, and as [`from_json`] for each argument; its
/// path starts with the argument's name.
pub fn args_from_json(object: &Json, func: &ExportedFunc) -> Result<Vec<Val>, JsonError> {
    let root = ROOT;
    let Json::Object(members) = object else {
        let names = quoted(func.ty.params().map(|(n, _)| n));
        let what = if names.is_empty() {
            "an empty object (no arguments)".to_string()
        } else {
            format!("an object of named arguments ({names})")
        };
        return Err(root.error(what, found(object)));
    };
    if let Some(unknown) = members
        .keys()
        .find(|k| !func.ty.params().any(|(n, _)| n == k.as_str()))
    {
        let names = quoted(func.ty.params().map(|(n, _)| n));
        let what = if names.is_empty() {
            "no arguments".to_string()
        } else {
            format!("one of the parameters {names}")
        };
        return Err(root
            .member(unknown)
            .error(what, "an argument the function does not take"));
    }
    func.ty
        .params()
        .map(|(name, ty)| {
            // An argument is a value in its own right: the depth starts again.
            let at = Path {
                parent: None,
                step: Step::Member(name),
                depth: 0,
            };
            match members.get(name) {
                Some(v) => convert(v, &ty, &at),
                None if matches!(ty, Type::Option(_)) => Ok(Val::Option(None)),
                None => Err(at.error(expected(&ty), "nothing: the argument is missing")),
            }
        })
        .collect()
}

fn convert(value: &Json, ty: &Type, at: &Path<'_>) -> Result<Val, JsonError> {
    if at.depth > MAX_DEPTH {
        return Err(at.error(
            format!("a value nested at most {MAX_DEPTH} levels deep"),
            "a value nested deeper",
        ));
    }
    if let Some((min, max)) = int_range(ty) {
        return integer(value, ty, min, max, at);
    }
    let mismatch = || Err(at.mismatch(ty, value));
    Ok(match ty {
        Type::Bool => match value {
            Json::Bool(b) => Val::Bool(*b),
            _ => return mismatch(),
        },
        Type::Float64 => Val::Float64(float_from(value, ty, at)?),
        Type::Float32 => {
            let x = float_from(value, ty, at)?;
            if x.is_finite() && x.abs() > f64::from(f32::MAX) {
                return Err(at.error(format!("a number within ±{} (f32)", f32::MAX), found(value)));
            }
            // Rounded to the nearest f32.
            Val::Float32(x as f32)
        }
        Type::Char => {
            let Json::String(s) = value else {
                return mismatch();
            };
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => {
                    let n = s.chars().count();
                    let what = if n == 0 {
                        "an empty string".to_string()
                    } else {
                        format!("a string of {n} characters")
                    };
                    return Err(at.error(expected(ty), what));
                }
            }
        }
        Type::String => match value {
            Json::String(s) => Val::String(s.clone()),
            _ => return mismatch(),
        },
        Type::List(l) => {
            let Json::Array(items) = value else {
                return mismatch();
            };
            let item_ty = l.ty();
            Val::List(items_of(items, &item_ty, at)?)
        }
        Type::FixedLengthList(l) => {
            let Json::Array(items) = value else {
                return mismatch();
            };
            if u32::try_from(items.len()).ok() != Some(l.len()) {
                return mismatch();
            }
            Val::FixedLengthList(items_of(items, &l.ty(), at)?)
        }
        Type::Map(m) => {
            let Json::Array(pairs) = value else {
                return mismatch();
            };
            let (key_ty, value_ty) = (m.key(), m.value());
            let mut out = Vec::with_capacity(pairs.len());
            for (i, pair) in pairs.iter().enumerate() {
                let at = at.index(i);
                match pair.as_array().map(Vec::as_slice) {
                    Some([k, v]) => out.push((
                        convert(k, &key_ty, &at.index(0))?,
                        convert(v, &value_ty, &at.index(1))?,
                    )),
                    _ => return Err(at.error("a [key, value] pair", found(pair))),
                }
            }
            Val::Map(out)
        }
        Type::Tuple(t) => {
            let Json::Array(items) = value else {
                return mismatch();
            };
            if items.len() != t.types().len() {
                return mismatch();
            }
            Val::Tuple(
                items
                    .iter()
                    .zip(t.types())
                    .enumerate()
                    .map(|(i, (v, ty))| convert(v, &ty, &at.index(i)))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Record(r) => {
            let Json::Object(members) = value else {
                return mismatch();
            };
            if let Some(unknown) = members
                .keys()
                .find(|k| !r.fields().any(|f| f.name == k.as_str()))
            {
                return Err(at.member(unknown).error(
                    format!(
                        "no other member (the fields are {})",
                        quoted(r.fields().map(|f| f.name))
                    ),
                    "a member that is not a field of the record",
                ));
            }
            let mut fields = Vec::with_capacity(r.fields().len());
            for f in r.fields() {
                let field_at = at.member(f.name);
                let v = match members.get(f.name) {
                    Some(v) => convert(v, &f.ty, &field_at)?,
                    None if matches!(f.ty, Type::Option(_)) => Val::Option(None),
                    None => {
                        return Err(
                            field_at.error(expected(&f.ty), "nothing: the field is missing")
                        );
                    }
                };
                fields.push((f.name.to_string(), v));
            }
            Val::Record(fields)
        }
        Type::Variant(v) => {
            let (name, payload) = match value {
                Json::String(name) => (name, None),
                Json::Object(o) if o.len() == 1 => match o.iter().next() {
                    Some((name, payload)) => (name, Some(payload)),
                    None => return mismatch(),
                },
                _ => return mismatch(),
            };
            let Some(case) = v.cases().find(|c| c.name == name.as_str()) else {
                return Err(at.error(
                    expected(ty),
                    format!("the unknown case {}", Json::String(truncate(name, 40))),
                ));
            };
            match (case.ty, payload) {
                (None, None) => Val::Variant(name.clone(), None),
                (Some(pt), Some(p)) => Val::Variant(
                    name.clone(),
                    Some(Box::new(convert(p, &pt, &at.member(case.name))?)),
                ),
                (None, Some(_)) => {
                    return Err(at.error(
                        format!(
                            "{} (the case {name} has no payload)",
                            Json::String(name.clone())
                        ),
                        found(value),
                    ));
                }
                (Some(pt), None) => {
                    return Err(at.error(
                        format!("{{{}: {}}}", Json::String(name.clone()), short(&pt)),
                        found(value),
                    ));
                }
            }
        }
        Type::Enum(e) => match value {
            Json::String(name) if e.names().any(|n| n == name) => Val::Enum(name.clone()),
            _ => return mismatch(),
        },
        Type::Option(o) => {
            let inner = o.ty();
            match value {
                Json::Null => Val::Option(None),
                _ if matches!(inner, Type::Option(_)) => match value {
                    Json::Object(m) if m.len() == 1 => match m.get(SOME) {
                        Some(some) => {
                            Val::Option(Some(Box::new(convert(some, &inner, &at.member(SOME))?)))
                        }
                        None => return mismatch(),
                    },
                    _ => return mismatch(),
                },
                _ => Val::Option(Some(Box::new(convert(value, &inner, at)?))),
            }
        }
        Type::Result(r) => {
            let Json::Object(m) = value else {
                return mismatch();
            };
            let side = |key: &'static str, side_ty: Option<Type>| {
                let payload = m.get(key).unwrap_or(&Json::Null);
                let at = at.member(key);
                match side_ty {
                    Some(t) => convert(payload, &t, &at).map(|v| Some(Box::new(v))),
                    None if payload.is_null() => Ok(None),
                    None => Err(at.error("null (this side has no payload)", found(payload))),
                }
            };
            match (m.len(), m.contains_key("ok"), m.contains_key("err")) {
                (1, true, _) => Val::Result(Ok(side("ok", r.ok())?)),
                (1, _, true) => Val::Result(Err(side("err", r.err())?)),
                _ => return mismatch(),
            }
        }
        Type::Flags(f) => {
            let Json::Array(items) = value else {
                return mismatch();
            };
            let mut set = vec![false; f.names().len()];
            for (i, item) in items.iter().enumerate() {
                let at = at.index(i);
                let index = item.as_str().and_then(|s| f.names().position(|n| n == s));
                let Some(index) = index else {
                    return Err(
                        at.error(format!("one of {} (flags)", quoted(f.names())), found(item))
                    );
                };
                if set[index] {
                    return Err(at.error("each flag at most once", format!("{item} again")));
                }
                set[index] = true;
            }
            Val::Flags(
                f.names()
                    .zip(set)
                    .filter(|(_, on)| *on)
                    .map(|(n, _)| n.to_string())
                    .collect(),
            )
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return mismatch();
        }
        // Integers are handled above.
        Type::S8
        | Type::U8
        | Type::S16
        | Type::U16
        | Type::S32
        | Type::U32
        | Type::S64
        | Type::U64 => return mismatch(),
    })
}

fn items_of(items: &[Json], ty: &Type, at: &Path<'_>) -> Result<Vec<Val>, JsonError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| convert(v, ty, &at.index(i)))
        .collect()
}

/// An integer of `ty` in `min..=max`.
fn integer(value: &Json, ty: &Type, min: i128, max: i128, at: &Path<'_>) -> Result<Val, JsonError> {
    let n = match value {
        Json::Number(n) => exact_integer(n),
        _ => None,
    };
    let Some(n) = n.filter(|n| (min..=max).contains(n)) else {
        return Err(at.mismatch(ty, value));
    };
    let out_of_range = || at.mismatch(ty, value);
    Ok(match ty {
        Type::S8 => Val::S8(i8::try_from(n).map_err(|_| out_of_range())?),
        Type::U8 => Val::U8(u8::try_from(n).map_err(|_| out_of_range())?),
        Type::S16 => Val::S16(i16::try_from(n).map_err(|_| out_of_range())?),
        Type::U16 => Val::U16(u16::try_from(n).map_err(|_| out_of_range())?),
        Type::S32 => Val::S32(i32::try_from(n).map_err(|_| out_of_range())?),
        Type::U32 => Val::U32(u32::try_from(n).map_err(|_| out_of_range())?),
        Type::S64 => Val::S64(i64::try_from(n).map_err(|_| out_of_range())?),
        Type::U64 => Val::U64(u64::try_from(n).map_err(|_| out_of_range())?),
        _ => return Err(out_of_range()),
    })
}

/// A JSON number's integer value, when it has one exactly: an integer, or a
/// float with no fraction small enough not to have been rounded.
fn exact_integer(n: &Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        return Some(i.into());
    }
    if let Some(u) = n.as_u64() {
        return Some(u.into());
    }
    let f = n.as_f64()?;
    if f.fract() == 0.0 && f.abs() < EXACT_FLOAT_INT {
        // Integral and below 2^53: exact.
        return Some(f as i128);
    }
    None
}

/// A float: a number, or one of the strings for the non-finite.
fn float_from(value: &Json, ty: &Type, at: &Path<'_>) -> Result<f64, JsonError> {
    match value {
        Json::Number(n) => n.as_f64().ok_or_else(|| at.mismatch(ty, value)),
        Json::String(s) if s == NAN => Ok(f64::NAN),
        Json::String(s) if s == INFINITY => Ok(f64::INFINITY),
        Json::String(s) if s == NEG_INFINITY => Ok(f64::NEG_INFINITY),
        _ => Err(at.mismatch(ty, value)),
    }
}

// ---------------------------------------------------------------------------
// Schemas

/// The JSON Schema (2020-12, as OpenAPI 3.1 uses) of the JSON that
/// [`to_json`] makes and [`from_json`] takes for values of `ty`. A resource,
/// future, stream or error context gets a schema nothing is valid against.
pub fn schema(ty: &Type) -> Json {
    if let Some((min, max)) = int_range(ty) {
        let mut s = json!({"type": "integer", "minimum": min_max(min), "maximum": min_max(max)});
        match ty {
            Type::S32 => s["format"] = "int32".into(),
            Type::S64 => s["format"] = "int64".into(),
            _ => {}
        }
        return s;
    }
    let closed_object = |key: &str, value: Json| {
        json!({
            "type": "object",
            "properties": {key: value},
            "required": [key],
            "additionalProperties": false,
        })
    };
    match ty {
        Type::Bool => json!({"type": "boolean"}),
        Type::Float32 => json!({"anyOf": [
            {"type": "number", "format": "float",
             "minimum": -f64::from(f32::MAX), "maximum": f64::from(f32::MAX)},
            {"enum": [NAN, INFINITY, NEG_INFINITY]},
        ]}),
        Type::Float64 => json!({"anyOf": [
            {"type": "number", "format": "double"},
            {"enum": [NAN, INFINITY, NEG_INFINITY]},
        ]}),
        Type::Char => json!({"type": "string", "minLength": 1, "maxLength": 1}),
        Type::String => json!({"type": "string"}),
        Type::List(l) => json!({"type": "array", "items": schema(&l.ty())}),
        Type::FixedLengthList(l) => json!({
            "type": "array", "items": schema(&l.ty()), "minItems": l.len(), "maxItems": l.len(),
        }),
        Type::Map(m) => json!({
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [schema(&m.key()), schema(&m.value())],
                "minItems": 2,
                "maxItems": 2,
                "items": false,
            },
        }),
        Type::Record(r) => {
            let properties: Map<String, Json> = r
                .fields()
                .map(|f| (f.name.to_string(), schema(&f.ty)))
                .collect();
            let required: Vec<&str> = r
                .fields()
                .filter(|f| !matches!(f.ty, Type::Option(_)))
                .map(|f| f.name)
                .collect();
            json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            })
        }
        Type::Tuple(t) if t.types().len() == 0 => json!({"type": "array", "maxItems": 0}),
        Type::Tuple(t) => {
            let n = t.types().len();
            json!({
                "type": "array",
                "prefixItems": t.types().map(|t| schema(&t)).collect::<Vec<_>>(),
                "minItems": n,
                "maxItems": n,
                "items": false,
            })
        }
        Type::Variant(v) => json!({"oneOf": v.cases().map(|c| match c.ty {
            None => json!({"const": c.name}),
            Some(t) => closed_object(c.name, schema(&t)),
        }).collect::<Vec<_>>()}),
        Type::Enum(e) => json!({"type": "string", "enum": e.names().collect::<Vec<_>>()}),
        Type::Option(o) => {
            let inner = o.ty();
            let some = if matches!(inner, Type::Option(_)) {
                closed_object(SOME, schema(&inner))
            } else {
                schema(&inner)
            };
            json!({"oneOf": [{"type": "null"}, some]})
        }
        Type::Result(r) => {
            let side = |t: Option<Type>| t.map_or_else(|| json!({"type": "null"}), |t| schema(&t));
            json!({"oneOf": [
                closed_object("ok", side(r.ok())),
                closed_object("err", side(r.err())),
            ]})
        }
        Type::Flags(f) if f.names().len() == 0 => json!({"type": "array", "maxItems": 0}),
        Type::Flags(f) => json!({
            "type": "array",
            "items": {"type": "string", "enum": f.names().collect::<Vec<_>>()},
            "uniqueItems": true,
        }),
        _ => json!({"not": {}, "description": unrepresentable(ty)}),
    }
}

/// An integer bound as a JSON number (every bound fits an `i64` or a `u64`).
fn min_max(n: i128) -> Json {
    if let Ok(i) = i64::try_from(n) {
        Json::from(i)
    } else if let Ok(u) = u64::try_from(n) {
        Json::from(u)
    } else {
        Json::Null
    }
}

/// The schema of the JSON object of named arguments [`args_from_json`]
/// takes for `func`: a member per parameter, required unless its type is an
/// option, no others.
pub fn request_schema(func: &ExportedFunc) -> Json {
    let properties: Map<String, Json> = func
        .ty
        .params()
        .map(|(name, ty)| (name.to_string(), schema(&ty)))
        .collect();
    let required: Vec<&str> = func
        .ty
        .params()
        .filter(|(_, ty)| !matches!(ty, Type::Option(_)))
        .map(|(name, _)| name)
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The schema of [`results_to_json`] of `func`'s results: `null` when it
/// returns nothing, its result's schema otherwise.
pub fn response_schema(func: &ExportedFunc) -> Json {
    let results: Vec<Type> = func.ty.results().collect();
    match results.as_slice() {
        [] => json!({"type": "null"}),
        [one] => schema(one),
        many => {
            let n = many.len();
            json!({
                "type": "array",
                "prefixItems": many.iter().map(schema).collect::<Vec<_>>(),
                "minItems": n,
                "maxItems": n,
                "items": false,
            })
        }
    }
}

/// The two halves of the answer of a function whose one result is a WIT
/// `result<T, E>`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ResultSchemas {
    /// `{"ok": T}`: the answer on success (200).
    pub ok: Json,
    /// `{"err": E}`: the answer on the function's own failure (4xx, see
    /// [`is_err`]).
    pub err: Json,
}

/// When `func`'s one result is a WIT `result`, the schemas of its `ok` and
/// its `err` answers apart (each the whole answer, `{"ok": …}` or
/// `{"err": …}`, as [`results_to_json`] writes it); `None` otherwise.
pub fn result_schemas(func: &ExportedFunc) -> Option<ResultSchemas> {
    let mut results = func.ty.results();
    let (Some(Type::Result(r)), None) = (results.next(), results.next()) else {
        return None;
    };
    let side = |key: &str, t: Option<Type>| {
        json!({
            "type": "object",
            "properties": {key: t.map_or_else(|| json!({"type": "null"}), |t| schema(&t))},
            "required": [key],
            "additionalProperties": false,
        })
    };
    Some(ResultSchemas {
        ok: side("ok", r.ok()),
        err: side("err", r.err()),
    })
}

/// An OpenAPI 3.1 operation object for calling `func` with a JSON body of
/// named arguments: its `requestBody` ([`request_schema`]) and its
/// `responses`: `200` with [`response_schema`], or, when its result is a
/// WIT `result`, `200` with the `ok` answer and `err_status` with the `err`
/// answer ([`result_schemas`]). The server's own failures (a malformed
/// body, a trap) are its to add.
pub fn openapi_operation(func: &ExportedFunc, operation_id: &str, err_status: u16) -> Json {
    let body = |description: String, schema: Json| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": schema}},
        })
    };
    let name = func.qualified_name();
    let mut responses = Map::new();
    match result_schemas(func) {
        Some(ResultSchemas { ok, err }) => {
            responses.insert("200".into(), body(format!("{name} returned ok"), ok));
            responses.insert(
                err_status.to_string(),
                body(format!("{name} returned err"), err),
            );
        }
        None => {
            responses.insert(
                "200".into(),
                body(format!("what {name} returned"), response_schema(func)),
            );
        }
    }
    json!({
        "operationId": operation_id,
        "summary": name,
        "requestBody": {
            "required": true,
            "content": {"application/json": {"schema": request_schema(func)}},
        },
        "responses": responses,
    })
}

#[cfg(test)]
mod tests;
