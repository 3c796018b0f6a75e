//! What the scheduler tells the user while it runs: an indicatif bar per running node on a
//! terminal, plain log lines otherwise, nothing in tests.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::outcome::{NodeOutcome, NodeStatus};
use crate::ops::ProgressUpdate;

/// Receives scheduler events; must be callable from every worker thread.
pub trait Events: Sync {
    fn started(&self, _node: &str) {}
    fn progress(&self, _node: &str, _update: &ProgressUpdate) {}
    fn finished(&self, _outcome: &NodeOutcome) {}
}

/// Drops every event.
pub struct Silent;
impl Events for Silent {}

/// Bars on a terminal (stderr), log lines on stderr otherwise.
pub struct Console {
    bars: Option<MultiProgress>,
    running: Mutex<HashMap<String, ProgressBar>>,
    /// For log lines: the last tenth of progress printed per node, to keep logs short.
    printed: Mutex<HashMap<String, u64>>,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    pub fn new() -> Console {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Console {
            bars,
            running: Mutex::new(HashMap::new()),
            printed: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: &str) {
        match &self.bars {
            Some(mp) => {
                let _ = mp.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

fn describe(u: &ProgressUpdate) -> String {
    let mut parts = Vec::new();
    if let Some(l) = u.loss {
        parts.push(format!("loss {l:.4}"));
    }
    if let Some(t) = u.tokens_per_sec {
        parts.push(format!("{t:.0} tok/s"));
    }
    if let Some(m) = &u.message {
        parts.push(m.clone());
    }
    parts.join("  ")
}

/// `step/total` and the details of a progress update with a step count.
fn progress_text(u: &ProgressUpdate) -> String {
    format!("{}/{} {}", u.step, u.total, describe(u))
        .trim_end()
        .to_string()
}

impl Events for Console {
    fn started(&self, node: &str) {
        match &self.bars {
            Some(mp) => {
                let bar = mp.add(ProgressBar::new(0));
                let style = ProgressStyle::with_template(
                    "{spinner} {prefix:30!} [{bar:30}] {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style.progress_chars("=> "));
                bar.set_prefix(node.to_string());
                if let Ok(mut r) = self.running.lock() {
                    r.insert(node.to_string(), bar);
                }
            }
            None => self.line(&format!("[run] {node}: started")),
        }
    }

    fn progress(&self, node: &str, u: &ProgressUpdate) {
        if self.bars.is_some() {
            if let Ok(r) = self.running.lock() {
                if let Some(bar) = r.get(node) {
                    // `total: 0` means "no step count in this update" (e.g. "resuming at
                    // step 300" before training reports its total): keep the bar as it is.
                    if u.total > 0 {
                        bar.set_length(u.total);
                        bar.set_position(u.step);
                    }
                    bar.set_message(describe(u));
                }
            }
            return;
        }
        let tenth = (u.step * 10).checked_div(u.total).unwrap_or(0);
        let mut printed = match self.printed.lock() {
            Ok(p) => p,
            Err(_) => return,
        };
        let last = printed.entry(node.to_string()).or_insert(u64::MAX);
        if u.total == 0 {
            // A message without a step count: print it as it is, never as `300/0`.
            drop(printed);
            self.line(&format!("[run] {node}: {}", describe(u)));
        } else if *last != tenth {
            *last = tenth;
            drop(printed);
            self.line(&format!("[run] {node}: {}", progress_text(u)));
        }
    }

    fn finished(&self, o: &NodeOutcome) {
        if let Ok(mut r) = self.running.lock() {
            if let Some(bar) = r.remove(&o.name) {
                bar.finish_and_clear();
            }
        }
        let text = match o.status {
            NodeStatus::Cached => return,
            NodeStatus::Computed => format!(
                "[done] {} ({:.1}s){}",
                o.name,
                o.seconds,
                o.job
                    .as_ref()
                    .map(|j| format!(
                        " in {} job {}{}",
                        j.scheduler,
                        j.id,
                        j.nodes
                            .as_deref()
                            .map(|n| format!(" on {n}"))
                            .unwrap_or_default()
                    ))
                    .unwrap_or_default()
            ),
            _ => format!(
                "[{}] {}{}",
                o.status.word(),
                o.name,
                o.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        };
        self.line(&text);
        if let Some(note) = &o.note {
            self.line(&format!("[note] {}: {note}", o.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_without_a_total_is_never_shown_as_a_fraction() {
        let u = ProgressUpdate {
            step: 300,
            message: Some("resuming at step 300".into()),
            ..ProgressUpdate::default()
        };
        assert_eq!(describe(&u), "resuming at step 300");
        let v = ProgressUpdate {
            step: 3,
            total: 10,
            ..ProgressUpdate::default()
        };
        assert_eq!(progress_text(&v), "3/10");
    }
}
