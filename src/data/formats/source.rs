//! The rows of a user file as objects with their line numbers: one JSON object per line
//! (JSONL), or the records of a CSV file with a header (the form some public sets are
//! published in; a quoted field may span lines, so a record's line is where it starts).

use serde_json::{Map, Value};
use std::io::BufRead;
use std::path::Path;

use crate::data::DataError;

/// Whether `path` is read as CSV (by its extension, case-insensitive).
pub fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Calls `f(line, fields)` for each row of `reader`, at most `limit` rows; blank lines
/// are not rows (in CSV, a record of empty fields is one, and fails as a row). Stops at the first error (from the file or from `f`).
pub fn for_each_row(
    reader: impl BufRead,
    path: &Path,
    limit: Option<usize>,
    f: impl FnMut(usize, Map<String, Value>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    if is_csv(path) {
        csv_rows(reader, path, limit, f)
    } else {
        jsonl_rows(reader, path, limit, f)
    }
}

fn bad_row(path: &Path, line: usize, message: String) -> DataError {
    DataError::BadRow {
        path: path.to_path_buf(),
        line,
        message,
    }
}

fn jsonl_rows(
    mut reader: impl BufRead,
    path: &Path,
    limit: Option<usize>,
    mut f: impl FnMut(usize, Map<String, Value>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    let mut rows = 0usize;
    while limit.is_none_or(|l| rows < l) {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| DataError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line_no = line_no.saturating_add(1);
        let line = std::str::from_utf8(&buf).map_err(|e| {
            bad_row(
                path,
                line_no,
                format!("not valid UTF-8 (byte {} of the line)", e.valid_up_to() + 1),
            )
        })?;
        // Editors on Windows start files with a byte-order mark.
        let line = if line_no == 1 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| bad_row(path, line_no, format!("not valid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(bad_row(path, line_no, "expected a JSON object".into()));
        };
        f(line_no, obj)?;
        rows += 1;
    }
    Ok(())
}

fn csv_rows(
    reader: impl BufRead,
    path: &Path,
    limit: Option<usize>,
    mut f: impl FnMut(usize, Map<String, Value>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| csv_error(path, &e))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    for (i, h) in headers.iter().enumerate() {
        if headers[..i].contains(h) {
            return Err(bad_row(
                path,
                1,
                format!("column `{h}` appears twice in the header"),
            ));
        }
    }
    for record in rdr.records().take(limit.unwrap_or(usize::MAX)) {
        let record = record.map_err(|e| csv_error(path, &e))?;
        let line = record
            .position()
            .and_then(|p| usize::try_from(p.line()).ok())
            .unwrap_or(0);
        let obj: Map<String, Value> = headers
            .iter()
            .zip(record.iter())
            .map(|(h, c)| (h.clone(), Value::String(c.to_string())))
            .collect();
        f(line, obj)?;
    }
    Ok(())
}

fn csv_error(path: &Path, e: &csv::Error) -> DataError {
    let line = e
        .position()
        .and_then(|p| usize::try_from(p.line()).ok())
        .unwrap_or(1);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("a CSV record of {len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "not valid UTF-8 (field {}, byte {})",
            err.field() + 1,
            err.valid_up_to() + 1
        ),
        csv::ErrorKind::Io(source) => {
            return DataError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            }
        }
        _ => format!("not valid CSV: {e}"),
    };
    bad_row(path, line, message)
}
