//! Data files an experiment reads (`jsonl(path: ...)`, `pretrained(path: ..., adapter:
//! ...)`): resolved against the experiment's directory as the operation resolves them,
//! reported here if missing or outside the project, and their content hash pinned into the
//! node's arguments. A `jsonl` file's first rows are read too ([`super::datarows`]).
//!
//! Why pin: a key built from the path string alone would serve a stale dataset after the
//! user edits the file (lm-eval's cache had exactly this class of bug). With the hash as
//! the hidden argument `content`, editing the file changes that node's key, and `plan`
//! reports "argument changed (content)".

use std::path::Path;

use super::codes;
use super::lints::ArgSpans;
use crate::data::paths::{resolve_in_project, PathError};
use crate::diag::{Diagnostic, FileId, Label};
use crate::ir::{Node, Program, Value};
use crate::store::PinError;

/// `(operation, argument naming a user file or directory, hidden argument that carries
/// its hash)`.
const FILE_OPS: [(&str, &str, &str); 3] = [
    ("jsonl", "path", CONTENT_ARG),
    ("pretrained", "path", CONTENT_ARG),
    ("pretrained", "adapter", ADAPTER_CONTENT_ARG),
];

/// The hidden argument that carries the file's blake3.
pub const CONTENT_ARG: &str = "content";

/// The hidden argument that carries the blake3 of `pretrained(adapter: ...)`'s directory.
pub const ADAPTER_CONTENT_ARG: &str = "adapter_content";

/// The files of a PEFT adapter directory (`save_pretrained` of a PEFT model).
pub const ADAPTER_FILES: [&str; 2] = ["adapter_config.json", "adapter_model.safetensors"];

/// Pins every data file's hash into `program`; returns an error per file that cannot be read.
pub fn pin(program: &mut Program, dir: &Path, spans: &ArgSpans, file: FileId) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for node in &mut program.nodes {
        for (op, arg, hidden) in FILE_OPS {
            if node.op == op {
                out.extend(pin_one(node, arg, hidden, dir, spans, file));
            }
        }
    }
    out
}

/// Pins argument `arg` of `node` (if it names a path) as the hidden argument `hidden`.
fn pin_one(
    node: &mut Node,
    arg: &str,
    hidden: &str,
    dir: &Path,
    spans: &ArgSpans,
    file: FileId,
) -> Option<Diagnostic> {
    let Some(Value::Str(path)) = node.args.get(arg) else {
        return None;
    };
    let adapter = hidden == ADAPTER_CONTENT_ARG;
    // Name the file as the user wrote it: absolute paths would make messages (and
    // their snapshots) depend on where the project is checked out.
    let why = |e: PathError| match e {
        PathError::Io { source, .. } => format!("`{path}`: {source}"),
        other => other.to_string(),
    };
    // The same hash the operation checks its bytes against (`store::read_pinned`, or
    // `store::hash_path` for a model directory); a FIFO or device is refused here
    // instead of blocking the checker.
    let hashed = resolve_in_project(dir, path).map_err(why).and_then(|p| {
        if adapter {
            if !p.is_dir() {
                return Err(format!(
                    "`{path}` is not a directory: an adapter is a PEFT adapter directory \
                         ({})",
                    ADAPTER_FILES.join(", ")
                ));
            }
            if let Some(f) = ADAPTER_FILES.iter().find(|f| !p.join(f).is_file()) {
                return Err(format!(
                    "`{path}` is not a PEFT adapter directory: it has no `{f}`"
                ));
            }
        }
        let hash = crate::store::hash_path(&p).map_err(|e| match e {
            PinError::NotRegular { what, .. } => {
                format!("`{path}` is {what}, not a regular file")
            }
            PinError::Io { source, .. } => format!("`{path}`: {source}"),
            other => other.to_string(),
        })?;
        Ok((p, hash))
    });
    let at = || {
        spans
            .get(&(node.id.0, arg.to_string()))
            .cloned()
            .unwrap_or((node.origin.file.unwrap_or(file), node.origin.span.clone()))
    };
    match hashed {
        Ok((p, hash)) => {
            let path = path.clone();
            node.args.insert(hidden.to_string(), Value::Str(hash));
            if node.op == "jsonl" {
                return super::datarows::try_head(node, &p, &path, at());
            }
            None
        }
        Err(why) => {
            let (f, span) = at();
            let (what, label) = if adapter {
                ("adapter", "this directory")
            } else {
                ("data file", "this file")
            };
            let help = format!(
                "paths are relative to the experiment's directory ({}) and must stay inside \
                 the project",
                dir.display()
            );
            Some(
                Diagnostic::error(
                    codes::DATA_FILE,
                    format!("cannot read the {what} of `{}`: {why}", node.name),
                    Label::new(f, span, label),
                )
                .with_help(help),
            )
        }
    }
}
