//! The one error type of the ML core.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Invalid(String),
    /// The caller asked to stop (e.g. Ctrl-C) between steps.
    #[error("interrupted")]
    Interrupted,
}

impl MlError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MlError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn bad_file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        MlError::BadFile {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = MlError> = std::result::Result<T, E>;
