//! `pretrained(path)`: a pretrained model from a Hugging Face directory or a GGUF file in
//! the project, written into the cache as a checkpoint directory (`model/`, Hugging Face
//! layout, f32) that every other op loads like any model.
//!
//! The checker pinned the file's (or directory's) hash (`store::hash_path`) as the hidden
//! `content` argument;
//! the op hashes what it is about to read and refuses to run if it differs, so an entry is
//! never stored under a key whose bytes it was not computed from. It hashes again after
//! loading, so a file replaced while it was being read is caught too.

use super::common::{bad_arg, ml_err};
use super::data_ops::resolve_in_project;
use super::{OpArgs, OpCtx, OpError, OpSpec, ProgressUpdate};
use crate::ml::checkpoint::{load_pretrained, save_checkpoint};

pub const OPS: &[OpSpec] = &[OpSpec {
    name: "pretrained",
    version: 1,
    run: run_pretrained,
}];

fn run_pretrained(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let written = args.str("path")?;
    let path = resolve_in_project(&ctx.project_dir, written)?;
    let pinned = args.str("content")?;
    let verify = |when: &str| -> Result<(), OpError> {
        let now = crate::store::hash_path(&path).map_err(|e| bad_arg("path", e))?;
        if now != pinned {
            return Err(bad_arg("path", format!(
                "`{written}` changed {when} (blake3 {} at check time, {} now): run again so that the new bytes get their own cache key",
                &pinned[..pinned.len().min(12)],
                &now[..now.len().min(12)],
            )));
        }
        Ok(())
    };
    verify("since it was checked")?;
    ctx.progress.update(ProgressUpdate {
        message: Some(format!("loading {written}")),
        ..ProgressUpdate::default()
    });
    let (model, tok) = load_pretrained(&path).map_err(|e| bad_arg("path", e))?;
    verify("while it was being read")?;
    ctx.check_cancel()?;
    save_checkpoint(&ctx.out_dir.join("model"), model.as_ref(), &tok).map_err(ml_err)
}
