//! Training: batches and loss masks, per-token log-probabilities, AdamW and the learner
//! (with its data-parallel SFT step), resumable state, the SFT loop and the hooks every
//! training loop reports through.

pub mod batch;
pub mod data_parallel;
pub mod hooks;
pub mod logprobs;
pub mod optim;
pub mod sft;
pub(crate) mod state;
