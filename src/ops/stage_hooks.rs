//! The hooks every training stage gives the `ml` loops: progress, metrics and
//! cancellation forwarded to the executor, checkpoints and resumable state saved into the
//! node's work dir (so an interrupted run keeps them).

use std::path::PathBuf;

use super::common::step_dir;
use super::{OpCtx, ProgressUpdate};
use crate::ml::rl::{RlHooks, RlState};
use crate::ml::sft::{SftHooks, TrainProgress, TrainState};
use crate::ml::{save_checkpoint, Gpt, Tokenizer};

/// Forwards progress, metrics and cancellation; saves checkpoints and state into the
/// work dir. Shared by the SFT and RL loops.
pub(crate) struct StageHooks<'a, 'b> {
    pub ctx: &'a OpCtx<'b>,
    pub tok: &'a Tokenizer,
    /// Where checkpoints go (`checkpoints/step-NNNNNN/` under it).
    pub ckpt_root: PathBuf,
    /// Where resumable state goes.
    pub state_dir: PathBuf,
}

impl StageHooks<'_, '_> {
    fn progress(&self, p: &TrainProgress) {
        self.ctx.progress.update(ProgressUpdate {
            step: p.step,
            total: p.total,
            loss: Some(p.loss),
            tokens_per_sec: Some(p.tokens_per_sec),
            message: None,
        });
    }
}

impl SftHooks for StageHooks<'_, '_> {
    fn progress(&mut self, p: &TrainProgress) {
        StageHooks::progress(self, p);
    }
    fn metric(&mut self, name: &str, step: u64, value: f64) {
        self.ctx.progress.metric(name, step, value);
    }
    fn checkpoint(&mut self, step: u64, model: &Gpt) -> crate::ml::Result<()> {
        save_checkpoint(&self.ckpt_root.join(step_dir(step)), model, self.tok)
    }
    fn save_state(&mut self, state: &TrainState<'_>) -> crate::ml::Result<()> {
        state.save(&self.state_dir)?;
        self.ctx.seal_work_dir()
    }
    fn should_stop(&mut self) -> bool {
        self.ctx.cancelled()
    }
}

impl RlHooks for StageHooks<'_, '_> {
    fn progress(&mut self, p: &TrainProgress) {
        StageHooks::progress(self, p);
    }
    fn metric(&mut self, name: &str, step: u64, value: f64) {
        self.ctx.progress.metric(name, step, value);
    }
    fn checkpoint(&mut self, step: u64, model: &Gpt) -> crate::ml::Result<()> {
        save_checkpoint(&self.ckpt_root.join(step_dir(step)), model, self.tok)
    }
    fn save_state(&mut self, state: &RlState<'_>) -> crate::ml::Result<()> {
        state.save(&self.state_dir)?;
        self.ctx.seal_work_dir()
    }
    fn should_stop(&mut self) -> bool {
        self.ctx.cancelled()
    }
}
