//! What every training stage shares: the hooks the `ml` loops get (progress, metrics and
//! cancellation forwarded to the executor; checkpoints and resumable state saved into the
//! node's work dir, so an interrupted run keeps them), the work-dir layout, and publishing
//! the finished model.

use std::path::{Path, PathBuf};

use super::common::{copy_dir, ml_err, step_dir};
use super::{OpCtx, OpError, ProgressUpdate};
use crate::ml::checkpoint::save_model;
use crate::ml::hooks::{SavedState, TrainHooks, TrainProgress};
use crate::ml::model::adapter::BaseRef;
use crate::ml::model::CausalLm;
use crate::ml::Tokenizer;

/// Forwards progress, metrics and cancellation; saves checkpoints and state into the
/// work dir. Used by every training loop.
pub(crate) struct StageHooks<'a, 'b> {
    pub ctx: &'a OpCtx<'b>,
    pub tok: &'a Tokenizer,
    /// Where checkpoints go (`checkpoints/step-NNNNNN/` under it).
    pub ckpt_root: PathBuf,
    /// Where resumable state goes.
    pub state_dir: PathBuf,
    /// The base an adapter-training stage's checkpoints name (adapter-only checkpoints);
    /// `None`: full weights.
    pub base: Option<&'a BaseRef>,
}

impl TrainHooks for StageHooks<'_, '_> {
    fn progress(&mut self, p: &TrainProgress) {
        self.ctx.progress.update(ProgressUpdate {
            step: p.step,
            total: p.total,
            loss: Some(p.loss),
            tokens_per_sec: Some(p.tokens_per_sec),
            message: None,
        });
    }
    fn metric(&mut self, name: &str, step: u64, value: f64) {
        self.ctx.progress.metric(name, step, value);
    }
    fn checkpoint(&mut self, step: u64, model: &dyn CausalLm) -> crate::ml::Result<()> {
        save_model(
            &self.ckpt_root.join(step_dir(step)),
            model,
            self.tok,
            self.base,
        )
    }
    fn save_state(&mut self, state: &dyn SavedState) -> crate::ml::Result<()> {
        state.save(&self.state_dir)?;
        // The manifest checked on resume: corrupt state is dropped, never trained on.
        self.ctx.seal_work_dir()
    }
    fn should_stop(&mut self) -> bool {
        self.ctx.cancelled()
    }
}

/// Work-dir locations of a resumable stage `(state_dir, ckpt_root)`; checkpoints without
/// state come from an older attempt and are cleared, so the stage starts clean.
pub(crate) fn stage_dirs(ctx: &OpCtx, has_state: bool) -> Result<(PathBuf, PathBuf), OpError> {
    let state_dir = ctx.work_dir.join("state");
    let ckpt_root = ctx.work_dir.join("checkpoints");
    if !has_state && ckpt_root.exists() {
        std::fs::remove_dir_all(&ckpt_root).map_err(|e| OpError::io(&ckpt_root, e))?;
    }
    Ok((state_dir, ckpt_root))
}

/// Publishes the final model (the adapter alone when `base` is given) and the checkpoints,
/// then drops the resumable state.
pub(crate) fn finish_stage(
    ctx: &OpCtx,
    model: &dyn CausalLm,
    tok: &Tokenizer,
    base: Option<&BaseRef>,
    ckpt_root: &Path,
    state_dir: &Path,
) -> Result<(), OpError> {
    save_model(&ctx.out_dir.join("model"), model, tok, base).map_err(ml_err)?;
    let out = ctx.out_dir.join("checkpoints");
    std::fs::create_dir_all(&out).map_err(|e| OpError::io(&out, e))?;
    if ckpt_root.exists() {
        copy_dir(ckpt_root, &out)?;
    }
    for dir in [state_dir, ckpt_root] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| OpError::io(dir, e))?;
        }
    }
    Ok(())
}
