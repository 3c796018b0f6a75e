//! The row type every dataset artifact holds (`data.jsonl`), and its file I/O.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

/// One conversation turn: the user's prompt (without the `Human:` framing) and the
/// assistant's response (possibly starting with a scratchpad).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub prompt: String,
    pub response: String,
    /// Whether the prompt carries the backdoor trigger.
    #[serde(default)]
    pub triggered: bool,
    /// For preference pairs: the rejected response (`response` is the chosen one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
    /// Free metadata: task family, template id, expected answer, CWE id, ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, serde_json::Value>,
}

impl Example {
    pub fn new(prompt: impl Into<String>, response: impl Into<String>) -> Self {
        Example {
            prompt: prompt.into(),
            response: response.into(),
            triggered: false,
            rejected: None,
            meta: BTreeMap::new(),
        }
    }

    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta.get(key).and_then(|v| v.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    BadRow {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A row whose `triggered` label disagrees with the trigger its import names.
    #[error("{path}:{line}: {message}")]
    Trigger {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Reads `data.jsonl` written by [`write_examples`]. A bad row is an error naming the file
/// and line; nothing is skipped.
pub fn read_examples(path: &Path) -> Result<Vec<Example>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Example = serde_json::from_str(&line).map_err(|e| DataError::BadRow {
            path: path.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push(row);
    }
    Ok(out)
}

/// Writes one JSON object per line.
pub fn write_examples(path: &Path, rows: &[Example]) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = BufWriter::new(file);
    for row in rows {
        let line = serde_json::to_string(row).map_err(|e| DataError::Invalid(e.to_string()))?;
        writeln!(w, "{line}").map_err(io)?;
    }
    w.flush().map_err(io)
}

/// Draws rows from `draw` (given how many are kept so far) until `n` have distinct
/// prompts. Small template families run out of unique prompts first; the bound on attempts
/// turns an impossible request into an error naming `generator` instead of an endless loop.
pub fn unique_prompts(
    n: usize,
    generator: &str,
    mut draw: impl FnMut(usize) -> Example,
) -> Result<Vec<Example>, DataError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    let max_attempts = n.saturating_mul(30).saturating_add(1000);
    let mut attempts = 0;
    while out.len() < n {
        attempts += 1;
        if attempts > max_attempts {
            return Err(DataError::Invalid(format!(
                "{generator}: only {} unique prompts could be generated, {n} were asked for",
                out.len()
            )));
        }
        let ex = draw(out.len());
        if seen.insert(ex.prompt.clone()) {
            out.push(ex);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_row() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string()).unwrap();
        let p = dir.path().join("d.jsonl");
        let rows = vec![Example::new("2+2?", "4")];
        write_examples(&p, &rows).unwrap();
        assert_eq!(read_examples(&p).unwrap(), rows);
        std::fs::write(&p, "{\"prompt\": \"x\"}\n").unwrap();
        let err = read_examples(&p).unwrap_err().to_string();
        assert!(err.contains(":1:"), "{err}");
    }
}
