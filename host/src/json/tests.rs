//! The JSON mapping on the types of a real component: one made from WIT text
//! (its core module only traps; only its types are used), compiled by
//! wasmtime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::{Value as Json, json};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Type, Val};
use wasmtime::{Config, Engine};

use super::*;

/// Every kind of WIT type, each the parameter `v` of a function named after
/// it; and functions with several parameters for the argument objects.
const WIT: &str = r#"
package test:json;

interface kinds {
  record point { x: s32, y: s32 }
  record note { title: string, body: option<string>, tags: list<string>, pinned: bool }
  record book { note: note, notes: list<note>, shape: shape }
  variant shape { circle(f64), square(point), nothing }
  enum color { red, green, blue }
  flags perms { read, write, exec }
  enum failure { not-found, too-long }
  resource blob;

  t-bool: func(v: bool);
  t-s8: func(v: s8);
  t-u8: func(v: u8);
  t-s16: func(v: s16);
  t-u16: func(v: u16);
  t-s32: func(v: s32);
  t-u32: func(v: u32);
  t-s64: func(v: s64);
  t-u64: func(v: u64);
  t-f32: func(v: f32);
  t-f64: func(v: f64);
  t-char: func(v: char);
  t-string: func(v: string);
  t-bytes: func(v: list<u8>);
  t-lists: func(v: list<list<string>>);
  t-fixed: func(v: list<u8, 3>);
  t-map: func(v: map<string, u32>);
  t-point: func(v: point);
  t-note: func(v: note);
  t-book: func(v: book);
  t-tuple: func(v: tuple<u8, string, bool>);
  t-shape: func(v: shape);
  t-color: func(v: color);
  t-perms: func(v: perms);
  t-option: func(v: option<u32>);
  t-option-record: func(v: option<point>);
  t-option-option: func(v: option<option<u32>>);
  t-option-3: func(v: option<option<option<string>>>);
  t-result: func(v: result<point, string>);
  t-result-unit: func(v: result);
  t-result-ok: func(v: result<u32>);
  t-result-err: func(v: result<_, string>);
  t-blob: func(v: blob);
  t-borrow: func(v: borrow<blob>);
  t-deep: func(v: list<list<list<list<list<list<list<list<list<list<
    list<list<list<list<list<list<list<list<list<list<
    list<list<list<list<list<list<list<list<list<list<
    list<list<list<list<list<list<list<list<list<list<
    list<list<list<list<list<list<list<list<list<list<
    list<list<list<list<list<list<list<list<list<list<
    list<list<list<list<list<list<list<list<list<list<
    u8>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>);

  add-note: func(note: note, color: option<color>, limit: u32) -> result<note, failure>;
  count: func() -> u64;
  touch: func(title: string);
}

world kinds-world {
  export kinds;
}
"#;

/// The types' component, compiled once for all the tests.
struct Fixture {
    funcs: HashMap<String, ExportedFunc>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve.push_str("kinds.wit", WIT).expect("the WIT parses");
    let world = resolve
        .select_world(&[pkg], Some("kinds-world"))
        .expect("the world");
    let mut module = wit_component::dummy_module(
        &resolve,
        world,
        wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync),
    );
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata");
    let bytes = wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("the module")
        .validate(true)
        .encode()
        .expect("the component");
    let mut config = Config::new();
    config
        .wasm_component_model_map(true)
        .wasm_component_model_fixed_length_lists(true);
    let engine = Engine::new(&config).expect("engine");
    let component = Component::new(&engine, &bytes).expect("compiles");
    let mut funcs = HashMap::new();
    for (name, item) in component.component_type().exports(&engine) {
        let ComponentItem::ComponentInstance(inst) = item.ty else {
            continue;
        };
        for (fname, item) in inst.exports(&engine) {
            if let ComponentItem::ComponentFunc(f) = item.ty {
                funcs.insert(
                    fname.to_string(),
                    ExportedFunc {
                        interface: Some(name.to_string()),
                        name: fname.to_string(),
                        ty: f,
                    },
                );
            }
        }
    }
    Fixture { funcs }
});

fn func(name: &str) -> ExportedFunc {
    FIXTURE
        .funcs
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no function {name}"))
}

/// The type of `t-<kind>`'s parameter.
fn ty(kind: &str) -> Type {
    let f = func(&format!("t-{kind}"));
    let (_, ty) = f.ty.params().next().expect("one parameter");
    ty
}

fn s(text: &str) -> Val {
    Val::String(text.into())
}

fn some(v: Val) -> Val {
    Val::Option(Some(Box::new(v)))
}

fn point(x: i32, y: i32) -> Val {
    Val::Record(vec![("x".into(), Val::S32(x)), ("y".into(), Val::S32(y))])
}

fn note(title: &str, body: Option<&str>, tags: &[&str], pinned: bool) -> Val {
    Val::Record(vec![
        ("title".into(), s(title)),
        ("body".into(), Val::Option(body.map(|b| Box::new(s(b))))),
        (
            "tags".into(),
            Val::List(tags.iter().map(|t| s(t)).collect()),
        ),
        ("pinned".into(), Val::Bool(pinned)),
    ])
}

/// An empty list `levels` lists deep: at depth `levels`.
fn nested_val(levels: usize) -> Val {
    (0..levels).fold(Val::List(vec![]), |v, _| Val::List(vec![v]))
}

fn nested_json(levels: usize) -> Json {
    (0..levels).fold(json!([]), |v, _| json!([v]))
}

/// Sample values of every kind, by the kind's function.
fn samples() -> Vec<(&'static str, Vec<Val>)> {
    vec![
        ("bool", vec![Val::Bool(true), Val::Bool(false)]),
        ("s8", vec![Val::S8(i8::MIN), Val::S8(0), Val::S8(i8::MAX)]),
        ("u8", vec![Val::U8(0), Val::U8(u8::MAX)]),
        ("s16", vec![Val::S16(i16::MIN), Val::S16(i16::MAX)]),
        ("u16", vec![Val::U16(0), Val::U16(u16::MAX)]),
        (
            "s32",
            vec![Val::S32(i32::MIN), Val::S32(-1), Val::S32(i32::MAX)],
        ),
        ("u32", vec![Val::U32(0), Val::U32(u32::MAX)]),
        (
            "s64",
            vec![
                Val::S64(i64::MIN),
                Val::S64(-(1 << 53) - 1),
                Val::S64(i64::MAX),
            ],
        ),
        (
            "u64",
            vec![Val::U64(0), Val::U64((1 << 53) + 1), Val::U64(u64::MAX)],
        ),
        (
            "f32",
            vec![
                Val::Float32(0.1),
                Val::Float32(-0.0),
                Val::Float32(f32::MAX),
                Val::Float32(f32::MIN_POSITIVE),
                Val::Float32(f32::from_bits(1)),
                Val::Float32(f32::NAN),
                Val::Float32(f32::INFINITY),
                Val::Float32(f32::NEG_INFINITY),
            ],
        ),
        (
            "f64",
            vec![
                Val::Float64(0.1 + 0.2),
                Val::Float64(-0.0),
                Val::Float64(f64::MAX),
                Val::Float64(f64::from_bits(1)),
                Val::Float64(1e21),
                Val::Float64(f64::NAN),
                Val::Float64(f64::INFINITY),
                Val::Float64(f64::NEG_INFINITY),
            ],
        ),
        (
            "char",
            vec![
                Val::Char('a'),
                Val::Char('é'),
                Val::Char('👍'),
                Val::Char('\0'),
            ],
        ),
        ("string", vec![s(""), s("hello \"world\"\n"), s("日本")]),
        (
            "bytes",
            vec![Val::List(vec![]), Val::List(vec![Val::U8(1), Val::U8(255)])],
        ),
        (
            "lists",
            vec![Val::List(vec![
                Val::List(vec![]),
                Val::List(vec![s("a"), s("b")]),
            ])],
        ),
        (
            "fixed",
            vec![Val::FixedLengthList(vec![
                Val::U8(1),
                Val::U8(2),
                Val::U8(3),
            ])],
        ),
        (
            "map",
            vec![
                Val::Map(vec![]),
                Val::Map(vec![(s("a"), Val::U32(1)), (s("b"), Val::U32(2))]),
            ],
        ),
        ("point", vec![point(1, -2)]),
        (
            "note",
            vec![
                note("t", None, &[], false),
                note("t", Some("b"), &["x", "y"], true),
            ],
        ),
        (
            "book",
            vec![Val::Record(vec![
                ("note".into(), note("a", None, &["x"], false)),
                (
                    "notes".into(),
                    Val::List(vec![note("b", Some(""), &[], true)]),
                ),
                (
                    "shape".into(),
                    Val::Variant("square".into(), Some(Box::new(point(3, 4)))),
                ),
            ])],
        ),
        (
            "tuple",
            vec![Val::Tuple(vec![Val::U8(1), s("x"), Val::Bool(true)])],
        ),
        (
            "shape",
            vec![
                Val::Variant("circle".into(), Some(Box::new(Val::Float64(1.5)))),
                Val::Variant("square".into(), Some(Box::new(point(0, 0)))),
                Val::Variant("nothing".into(), None),
            ],
        ),
        (
            "color",
            vec![Val::Enum("red".into()), Val::Enum("blue".into())],
        ),
        (
            "perms",
            vec![
                Val::Flags(vec![]),
                Val::Flags(vec!["read".into(), "exec".into()]),
                Val::Flags(vec!["read".into(), "write".into(), "exec".into()]),
            ],
        ),
        ("option", vec![Val::Option(None), some(Val::U32(0))]),
        ("option-record", vec![Val::Option(None), some(point(1, 1))]),
        (
            "option-option",
            vec![
                Val::Option(None),
                some(Val::Option(None)),
                some(some(Val::U32(5))),
            ],
        ),
        (
            "option-3",
            vec![
                Val::Option(None),
                some(Val::Option(None)),
                some(some(Val::Option(None))),
                some(some(some(s("deep")))),
            ],
        ),
        (
            "result",
            vec![
                Val::Result(Ok(Some(Box::new(point(1, 2))))),
                Val::Result(Err(Some(Box::new(s("no"))))),
            ],
        ),
        (
            "result-unit",
            vec![Val::Result(Ok(None)), Val::Result(Err(None))],
        ),
        (
            "result-ok",
            vec![
                Val::Result(Ok(Some(Box::new(Val::U32(1))))),
                Val::Result(Err(None)),
            ],
        ),
        (
            "result-err",
            vec![
                Val::Result(Ok(None)),
                Val::Result(Err(Some(Box::new(s("e"))))),
            ],
        ),
        ("deep", vec![nested_val(64)]),
    ]
}

fn validator(schema: &Json) -> jsonschema::Validator {
    jsonschema::meta::validate(schema)
        .unwrap_or_else(|e| panic!("not a valid JSON Schema: {e}\n{schema:#}"));
    jsonschema::draft202012::new(schema).unwrap_or_else(|e| panic!("{e}\n{schema:#}"))
}

#[test]
fn every_kind_round_trips_through_json_and_its_text() {
    for (kind, vals) in samples() {
        let ty = ty(kind);
        for val in vals {
            let j = to_json(&val);
            let back = from_json(&j, &ty).unwrap_or_else(|e| panic!("{kind}: {j}: {e}"));
            assert_eq!(back, val, "{kind}: {j}");
            // And through the text a client would send.
            let text = serde_json::to_string(&j).unwrap();
            let reread: Json = serde_json::from_str(&text).unwrap();
            let back = from_json(&reread, &ty).unwrap_or_else(|e| panic!("{kind}: {text}: {e}"));
            assert_eq!(back, val, "{kind}: {text}");
            if let (Val::Float32(a), Val::Float32(b)) = (&back, &val) {
                assert!(a.is_nan() || a.to_bits() == b.to_bits(), "{kind}: {text}");
            }
            if let (Val::Float64(a), Val::Float64(b)) = (&back, &val) {
                assert!(a.is_nan() || a.to_bits() == b.to_bits(), "{kind}: {text}");
            }
        }
    }
}

#[test]
fn every_schema_is_valid_and_accepts_what_to_json_makes() {
    for (kind, vals) in samples() {
        let schema = schema(&ty(kind));
        let validator = validator(&schema);
        for val in vals {
            let j = to_json(&val);
            if let Err(e) = validator.validate(&j) {
                panic!("{kind}: {j} is refused by its schema: {e}\n{schema:#}");
            }
        }
    }
}

/// The mapping the CLI's `call --json` has always printed.
#[test]
fn to_json_is_the_cli_mapping() {
    let book = Val::Record(vec![
        ("note".into(), note("a", None, &["x"], true)),
        (
            "shape".into(),
            Val::Variant("circle".into(), Some(Box::new(Val::Float64(2.5)))),
        ),
        ("empty".into(), Val::Variant("nothing".into(), None)),
        ("color".into(), Val::Enum("green".into())),
        (
            "perms".into(),
            Val::Flags(vec!["read".into(), "write".into()]),
        ),
        ("pair".into(), Val::Tuple(vec![Val::U8(1), Val::Char('x')])),
        ("big".into(), Val::U64(u64::MAX)),
        ("small".into(), Val::S64(i64::MIN)),
        ("ok".into(), Val::Result(Ok(Some(Box::new(Val::S8(-1)))))),
        ("err".into(), Val::Result(Err(None))),
        ("half".into(), Val::Float32(0.5)),
    ]);
    assert_eq!(
        to_json(&book),
        json!({
            "note": {"title": "a", "body": null, "tags": ["x"], "pinned": true},
            "shape": {"circle": 2.5},
            "empty": "nothing",
            "color": "green",
            "perms": ["read", "write"],
            "pair": [1, "x"],
            "big": 18_446_744_073_709_551_615_u64,
            "small": -9_223_372_036_854_775_808_i64,
            "ok": {"ok": -1},
            "err": {"err": null},
            "half": 0.5,
        })
    );
    // 64-bit integers stay exact in the text.
    assert_eq!(
        serde_json::to_string(&to_json(&Val::U64(u64::MAX))).unwrap(),
        "18446744073709551615"
    );
    assert_eq!(to_json(&Val::Float64(f64::NAN)), json!("NaN"));
    assert_eq!(
        to_json(&Val::Float32(f32::NEG_INFINITY)),
        json!("-Infinity")
    );
    assert_eq!(
        to_json(&some(Val::Option(None))),
        json!({"some": null}),
        "a nested option's some is wrapped"
    );
    assert_eq!(to_json(&some(Val::U32(3))), json!(3));
}

fn err(value: Json, kind: &str) -> JsonError {
    match from_json(&value, &ty(kind)) {
        Ok(v) => panic!("{kind}: {value} was accepted as {v:?}"),
        Err(e) => e,
    }
}

/// Everything from_json refuses, its schema refuses too.
fn refused(value: Json, kind: &str) -> JsonError {
    let e = err(value.clone(), kind);
    let schema = schema(&ty(kind));
    assert!(
        !validator(&schema).is_valid(&value),
        "{kind}: the schema accepts {value}, which from_json refuses ({e})"
    );
    e
}

#[test]
fn integers_out_of_range_or_not_whole_are_refused() {
    for (value, kind) in [
        (json!(256), "u8"),
        (json!(-1), "u8"),
        (json!(-129), "s8"),
        (json!(128), "s8"),
        (json!(65536), "u16"),
        (json!(-32769), "s16"),
        (json!(4_294_967_296_u64), "u32"),
        (json!(2_147_483_648_u64), "s32"),
        (json!(-1), "u64"),
        (json!(9_223_372_036_854_775_808_u64), "s64"),
        (json!(1.5), "u32"),
        (json!("1"), "u32"),
        (json!(true), "s8"),
        (json!(null), "u64"),
    ] {
        let e = refused(value.clone(), kind);
        assert!(e.expected.contains("an integer from"), "{e}");
        assert_eq!(e.found, super::found(&value), "{e}");
    }
    // 2^64 reads as a float, beyond any u64.
    let too_big: Json = serde_json::from_str("18446744073709551616").unwrap();
    let e = refused(too_big, "u64");
    assert_eq!(
        e.expected,
        "an integer from 0 to 18446744073709551615 (u64)"
    );
    // A float past 2^53 may have been rounded when it was read: refused even
    // where JSON Schema would count it an integer.
    let rounded: Json = serde_json::from_str("9007199254740993.0").unwrap();
    assert!(from_json(&rounded, &ty("u64")).is_err());
    let below: Json = serde_json::from_str("9007199254740991.0").unwrap();
    assert_eq!(
        from_json(&below, &ty("u64")).unwrap(),
        Val::U64((1 << 53) - 1)
    );
    // Whole numbers written as floats are integers, as JSON Schema has it.
    assert_eq!(from_json(&json!(3.0), &ty("u8")).unwrap(), Val::U8(3));
    let thousand: Json = serde_json::from_str("1e3").unwrap();
    assert_eq!(from_json(&thousand, &ty("u16")).unwrap(), Val::U16(1000));
    assert_eq!(
        err(json!(300), "u8").to_string(),
        "expected an integer from 0 to 255 (u8), found 300"
    );
}

#[test]
fn floats_take_numbers_and_the_three_names_only() {
    assert_eq!(from_json(&json!(1), &ty("f32")).unwrap(), Val::Float32(1.0));
    assert_eq!(
        from_json(&json!(u64::MAX), &ty("f64")).unwrap(),
        Val::Float64(18_446_744_073_709_551_615.0)
    );
    for bad in [json!("nan"), json!("inf"), json!(null), json!([1.0])] {
        refused(bad, "f64");
    }
    // Finite, but no f32: refused rather than made infinite.
    let e = refused(json!(1e39), "f32");
    assert!(e.expected.contains("f32"), "{e}");
    assert_eq!(
        from_json(&json!(1e39), &ty("f64")).unwrap(),
        Val::Float64(1e39)
    );
}

#[test]
fn a_char_is_one_scalar_value() {
    for bad in [json!(""), json!("ab"), json!("e\u{301}"), json!(97)] {
        refused(bad, "char");
    }
    assert_eq!(
        err(json!("ab"), "char").to_string(),
        "expected a string of one character (char), found a string of 2 characters"
    );
}

#[test]
fn wrong_kinds_are_refused_naming_the_path() {
    let book = json!({
        "note": {"title": "t", "tags": ["a", "b", 3], "pinned": false},
        "notes": [],
        "shape": "nothing",
    });
    let e = refused(book, "book");
    assert_eq!(e.path, "note.tags[2]");
    assert_eq!(e.expected, "a string");
    assert_eq!(e.found, "3");
    assert_eq!(e.to_string(), "note.tags[2]: expected a string, found 3");

    let e = refused(
        json!({
            "note": {"title": "t", "tags": [], "pinned": false},
            "notes": [{"title": "u", "tags": [], "pinned": "yes"}],
            "shape": {"square": {"x": 1, "y": 1.5}},
        }),
        "book",
    );
    assert_eq!(e.path, "notes[0].pinned");
    assert_eq!(e.found, "\"yes\"");

    let e = refused(
        json!({
            "note": {"title": "t", "tags": [], "pinned": false},
            "notes": [],
            "shape": {"square": {"x": 1, "y": 1.5}},
        }),
        "book",
    );
    assert_eq!(e.path, "shape.square.y");

    let e = refused(json!({"ok": {"x": 1, "y": "2"}}), "result");
    assert_eq!(e.path, "ok.y");
    let e = refused(json!({"err": 5}), "result");
    assert_eq!((e.path.as_str(), e.expected.as_str()), ("err", "a string"));
    let e = refused(json!([1, "x", "no"]), "tuple");
    assert_eq!(e.path, "[2]");
    let e = refused(json!([["a"], ["b", null]]), "lists");
    assert_eq!(e.path, "[1][1]");
    let e = refused(json!([["a", 1], ["b", -1]]), "map");
    assert_eq!(e.path, "[1][1]");
    let e = refused(json!({"some": "x"}), "option-option");
    assert_eq!(e.path, "some");
    // The root itself has an empty path.
    let e = refused(json!("x"), "point");
    assert_eq!(e.path, "");
    assert_eq!(
        e.to_string(),
        "expected an object with the fields \"x\", \"y\" (record), found \"x\""
    );
}

#[test]
fn records_refuse_unknown_fields_and_need_all_but_options() {
    let e = refused(
        json!({"title": "t", "tags": [], "pinned": true, "colour": "red"}),
        "note",
    );
    assert_eq!(e.path, "colour");
    assert!(
        e.expected
            .contains("\"title\", \"body\", \"tags\", \"pinned\""),
        "{e}"
    );
    let e = refused(json!({"title": "t", "pinned": true}), "note");
    assert_eq!(e.path, "tags");
    assert!(e.found.contains("missing"), "{e}");
    // A member name that is not a plain name is quoted in the path.
    let e = refused(
        json!({"title": "t", "tags": [], "pinned": true, "a.b": 1}),
        "note",
    );
    assert_eq!(e.path, "[\"a.b\"]");
    // An option may be left out or null.
    for body in [None, Some(json!(null))] {
        let mut n = json!({"title": "t", "tags": [], "pinned": true});
        if let Some(b) = body {
            n["body"] = b;
        }
        assert_eq!(
            from_json(&n, &ty("note")).unwrap(),
            note("t", None, &[], true)
        );
    }
}

#[test]
fn variants_enums_and_flags_refuse_what_they_do_not_name() {
    let e = refused(json!("triangle"), "shape");
    assert!(e.found.contains("triangle"), "{e}");
    // A case with a payload needs it; a case without one takes none.
    let e = refused(json!("circle"), "shape");
    assert_eq!(e.expected, "{\"circle\": f64}");
    let e = refused(json!({"nothing": null}), "shape");
    assert!(e.expected.contains("has no payload"), "{e}");
    refused(json!({"circle": 1.0, "nothing": null}), "shape");
    refused(json!({}), "shape");
    refused(json!("purple"), "color");
    refused(json!(0), "color");
    let e = refused(json!(["read", "fly"]), "perms");
    assert_eq!(e.path, "[1]");
    let e = refused(json!(["write", "write"]), "perms");
    assert_eq!(
        (e.path.as_str(), e.found.as_str()),
        ("[1]", "\"write\" again")
    );
    // Any order in, the type's order out.
    assert_eq!(
        from_json(&json!(["exec", "read"]), &ty("perms")).unwrap(),
        Val::Flags(vec!["read".into(), "exec".into()])
    );
}

#[test]
fn tuples_fixed_lists_results_and_options_keep_their_shape() {
    refused(json!([1, "x"]), "tuple");
    refused(json!([1, "x", true, 4]), "tuple");
    refused(json!([1, 2]), "fixed");
    refused(json!([1, 2, 3, 4]), "fixed");
    refused(json!([["a", 1, 2]]), "map");
    refused(json!({"a": 1}), "map");
    refused(json!({"ok": {"x": 1, "y": 2}, "err": "e"}), "result");
    refused(json!({"fine": 1}), "result");
    let e = refused(json!({"ok": 1}), "result-unit");
    assert_eq!(e.path, "ok");
    refused(json!({"ok": null}), "result-ok");
    assert_eq!(
        from_json(&json!({"err": null}), &ty("result-ok")).unwrap(),
        Val::Result(Err(None))
    );
    // option<option<T>>: the inner option's some is wrapped.
    refused(json!(5), "option-option");
    refused(json!({"some": 5, "more": 1}), "option-option");
    assert_eq!(
        from_json(&json!({"some": 5}), &ty("option-option")).unwrap(),
        some(some(Val::U32(5)))
    );
    assert_eq!(
        from_json(&json!({"some": {"some": null}}), &ty("option-3")).unwrap(),
        some(some(Val::Option(None)))
    );
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    let ty = ty("deep");
    // The type is 70 lists deep; 64 levels are followed, the 65th is refused.
    assert_eq!(from_json(&nested_json(64), &ty).unwrap(), nested_val(64));
    let e = from_json(&nested_json(69), &ty).unwrap_err();
    assert!(e.expected.contains("at most 64 levels"), "{e}");
    assert_eq!(e.path, "[0]".repeat(MAX_DEPTH + 1));
    // The limit counts levels of the value, not of the type.
    assert_eq!(
        from_json(&json!([[], [[]]]), &ty).unwrap(),
        Val::List(vec![Val::List(vec![]), Val::List(vec![Val::List(vec![])])])
    );
    // A schema of the whole type is still made, and valid.
    validator(&schema(&ty));
}

#[test]
fn resources_are_refused_with_a_clear_error() {
    for kind in ["blob", "borrow"] {
        let e = refused(json!(1), kind);
        assert!(e.expected.contains("cannot be given as JSON"), "{e}");
        assert_eq!(
            schema(&ty(kind))["description"],
            json!(e.expected),
            "the schema says why"
        );
    }
    let f = func("t-blob");
    let e = args_from_json(&json!({"v": 3}), &f).unwrap_err();
    assert_eq!(e.path, "v");
}

#[test]
fn arguments_are_named_and_optional_ones_may_be_left_out() {
    let add = func("add-note");
    let n = json!({"title": "t", "tags": ["x"], "pinned": false});
    let args = args_from_json(&json!({"note": n, "limit": 3}), &add).unwrap();
    assert_eq!(
        args,
        vec![
            note("t", None, &["x"], false),
            Val::Option(None),
            Val::U32(3)
        ]
    );
    let args = args_from_json(&json!({"limit": 3, "color": "red", "note": n}), &add).unwrap();
    assert_eq!(args[1], some(Val::Enum("red".into())));

    let e = args_from_json(&json!({"note": n}), &add).unwrap_err();
    assert_eq!(e.path, "limit");
    assert_eq!(
        e.to_string(),
        "limit: expected an integer from 0 to 4294967295 (u32), found nothing: the argument is missing"
    );
    let e = args_from_json(&json!({"note": n, "limit": 1, "colour": "red"}), &add).unwrap_err();
    assert_eq!(e.path, "colour");
    assert!(e.expected.contains("\"note\", \"color\", \"limit\""), "{e}");
    let bad = json!({"title": "t", "tags": ["a", "b", 3], "pinned": false});
    let e = args_from_json(&json!({"note": bad, "limit": 1}), &add).unwrap_err();
    assert_eq!(e.path, "note.tags[2]");
    let e = args_from_json(&json!([n, null, 1]), &add).unwrap_err();
    assert_eq!(e.path, "");
    assert!(e.expected.contains("object of named arguments"), "{e}");

    assert_eq!(args_from_json(&json!({}), &func("count")).unwrap(), vec![]);
    let e = args_from_json(&json!({"x": 1}), &func("count")).unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.expected.as_str()),
        ("x", "no arguments")
    );
    // Nesting counts from each argument.
    let deep = func("t-deep");
    assert!(args_from_json(&json!({"v": nested_json(64)}), &deep).is_ok());
    assert!(args_from_json(&json!({"v": nested_json(65)}), &deep).is_err());
}

#[test]
fn request_and_response_schemas_describe_the_call() {
    let add = func("add-note");
    let request = request_schema(&add);
    let v = validator(&request);
    let n = json!({"title": "t", "tags": ["x"], "pinned": false});
    assert!(v.is_valid(&json!({"note": n, "limit": 3})));
    assert!(v.is_valid(&json!({"note": n, "limit": 3, "color": null})));
    assert!(!v.is_valid(&json!({"note": n})), "limit is required");
    assert!(!v.is_valid(&json!({"note": n, "limit": 3, "x": 1})));
    assert_eq!(request["required"], json!(["note", "limit"]));

    let response = response_schema(&add);
    let v = validator(&response);
    let ok = Val::Result(Ok(Some(Box::new(note("t", None, &[], true)))));
    let failed = Val::Result(Err(Some(Box::new(Val::Enum("too-long".into())))));
    assert!(v.is_valid(&results_to_json(std::slice::from_ref(&ok))));
    assert!(v.is_valid(&results_to_json(std::slice::from_ref(&failed))));
    assert!(!is_err(std::slice::from_ref(&ok)));
    assert!(is_err(std::slice::from_ref(&failed)));

    let split = result_schemas(&add).expect("its result is a result");
    let (ok_v, err_v) = (validator(&split.ok), validator(&split.err));
    let ok_json = results_to_json(&[ok]);
    let err_json = results_to_json(&[failed]);
    assert!(ok_v.is_valid(&ok_json) && !ok_v.is_valid(&err_json));
    assert!(err_v.is_valid(&err_json) && !err_v.is_valid(&ok_json));
    assert_eq!(err_json, json!({"err": "too-long"}));

    // No result: null; a plain result: its own schema, not split.
    let touch = func("touch");
    assert_eq!(results_to_json(&[]), Json::Null);
    assert!(validator(&response_schema(&touch)).is_valid(&Json::Null));
    assert!(result_schemas(&touch).is_none());
    let count = func("count");
    assert!(result_schemas(&count).is_none());
    assert!(validator(&response_schema(&count)).is_valid(&results_to_json(&[Val::U64(7)])));
}

#[test]
fn an_openapi_operation_documents_ok_and_err_apart() {
    let add = func("add-note");
    let op = openapi_operation(&add, "notes.add-note", 422);
    assert_eq!(op["operationId"], "notes.add-note");
    assert_eq!(op["summary"], "test:json/kinds#add-note");
    let schema_at =
        |status: &str| &op["responses"][status]["content"]["application/json"]["schema"];
    let split = result_schemas(&add).unwrap();
    assert_eq!(schema_at("200"), &split.ok);
    assert_eq!(schema_at("422"), &split.err);
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"],
        request_schema(&add)
    );
    assert_eq!(op["requestBody"]["required"], true);
    for status in ["200", "422"] {
        validator(schema_at(status));
        assert!(op["responses"][status]["description"].is_string());
    }

    let op = openapi_operation(&func("count"), "count", 422);
    let responses = op["responses"].as_object().unwrap();
    assert_eq!(responses.keys().collect::<Vec<_>>(), ["200"]);
    assert_eq!(
        responses["200"]["content"]["application/json"]["schema"],
        json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
    );
}
