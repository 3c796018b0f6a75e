//! The ML core (placeholder docs; see below).
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod gpt;
pub mod init;
pub mod layers;
pub mod optim;
pub mod tokenizer;
pub use config::{Activation, GptConfig};
pub use error::{MlError, Result};
pub use gpt::{Gpt, KvCache};
pub use tokenizer::Tokenizer;
pub use checkpoint::{load_checkpoint, save_checkpoint};
