//! Datasets, triggers, generators, backdoor construction, JSONL formats, the vulnerability
//! checker and evaluation scoring. Knows nothing of the language.

pub mod example;
pub mod formats;

pub use example::{read_examples, write_examples, DataError, Example};
pub mod backdoor;
pub mod bootstrap;
pub mod code;
pub mod eval;
pub mod hhh;
pub mod preferences;
pub mod redteam;
pub mod transform;
pub mod trigger;
pub mod vuln;

pub use trigger::Trigger;
