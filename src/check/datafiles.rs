//! Data files an experiment reads (`jsonl(path: ...)`): resolved against the experiment's
//! directory as the `jsonl` operation resolves them, reported here if missing or outside
//! the project, and their content hash pinned into the node's arguments.
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
use crate::ir::{Program, Value};
use crate::store::PinError;

/// Operations whose `path` argument names a user data file.
const FILE_OPS: [&str; 2] = ["jsonl", "pretrained"];

/// The hidden argument that carries the file's blake3.
pub const CONTENT_ARG: &str = "content";

/// Pins every data file's hash into `program`; returns an error per file that cannot be read.
pub fn pin(program: &mut Program, dir: &Path, spans: &ArgSpans, file: FileId) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for node in &mut program.nodes {
        if !FILE_OPS.contains(&node.op.as_str()) {
            continue;
        }
        let Some(Value::Str(path)) = node.args.get("path") else {
            continue;
        };
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
            crate::store::hash_path(&p).map_err(|e| match e {
                PinError::NotRegular { what, .. } => {
                    format!("`{path}` is {what}, not a regular file")
                }
                PinError::Io { source, .. } => format!("`{path}`: {source}"),
                other => other.to_string(),
            })
        });
        match hashed {
            Ok(hash) => {
                node.args.insert(CONTENT_ARG.to_string(), Value::Str(hash));
            }
            Err(why) => {
                let (f, span) = spans
                    .get(&(node.id.0, "path".to_string()))
                    .cloned()
                    .unwrap_or((node.origin.file.unwrap_or(file), node.origin.span.clone()));
                out.push(
                    Diagnostic::error(
                        codes::DATA_FILE,
                        format!("cannot read the data file of `{}`: {why}", node.name),
                        Label::new(f, span, "this file"),
                    )
                    .with_help(format!(
                        "paths are relative to the experiment's directory ({}) and must stay inside the project",
                        dir.display()
                    )),
                );
            }
        }
    }
    out
}
