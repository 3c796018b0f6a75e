//! The caller's side of every training loop (SFT, RL, adversarial training): progress,
//! metrics, checkpoints, resumable state and cancellation. One trait for all loops, so a
//! stage's hooks (saving into the node's work dir, forwarding progress) are written once.

use std::path::Path;

use crate::ml::error::Result;
use crate::ml::model::CausalLm;

/// Progress after a step; maps 1:1 onto `ops::ProgressUpdate`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainProgress {
    pub step: u64,
    pub total: u64,
    pub loss: f64,
    pub tokens_per_sec: f64,
}

/// Everything a loop needs to resume, at a step: SFT's `TrainState`, RL's `RlState`.
pub trait SavedState {
    /// Steps taken.
    fn step(&self) -> u64;
    /// Writes the state into `dir` (via a temporary sibling renamed into place).
    fn save(&self, dir: &Path) -> Result<()>;
}

/// Every method has a do-nothing default.
pub trait TrainHooks {
    fn progress(&mut self, _p: &TrainProgress) {}
    /// A named metric at a step (e.g. `heldout_loss`).
    fn metric(&mut self, _name: &str, _step: u64, _value: f64) {}
    /// A model checkpoint after `step` steps; the caller saves it.
    fn checkpoint(&mut self, _step: u64, _model: &dyn CausalLm) -> Result<()> {
        Ok(())
    }
    /// Resumable state after a step; e.g. `state.save(dir)`.
    fn save_state(&mut self, _state: &dyn SavedState) -> Result<()> {
        Ok(())
    }
    /// Checked between steps; `true` ends training with `MlError::Interrupted`.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// No hooks.
pub struct NoHooks;
impl TrainHooks for NoHooks {}
