//! The ML core (placeholder docs; see below).
pub mod error;
pub mod tokenizer;
pub use error::{MlError, Result};
pub use tokenizer::Tokenizer;
