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
use crate::ml::model::adapter::{load_peft_adapter, merge_adapter};

pub const OPS: &[OpSpec] = &[OpSpec {
    name: "pretrained",
    version: 1,
    run: run_pretrained,
    draws_seed: false,
}];

/// A user path argument (`path` or `adapter`) and the hash the checker pinned for it
/// (`content` or `adapter_content`).
struct Pinned<'a> {
    arg: &'static str,
    written: &'a str,
    path: std::path::PathBuf,
    pinned: &'a str,
}

impl<'a> Pinned<'a> {
    fn new(
        ctx: &OpCtx,
        args: &'a OpArgs,
        arg: &'static str,
        hash_arg: &str,
    ) -> Result<Self, OpError> {
        let written = args.str(arg)?;
        Ok(Pinned {
            arg,
            written,
            path: resolve_in_project(&ctx.project_dir, written)?,
            pinned: args.str(hash_arg)?,
        })
    }

    /// Refuses bytes other than the pinned ones.
    fn verify(&self, when: &str) -> Result<(), OpError> {
        let now = crate::store::hash_path(&self.path).map_err(|e| bad_arg(self.arg, e))?;
        if now != self.pinned {
            return Err(bad_arg(self.arg, format!(
                "`{}` changed {when} (blake3 {} at check time, {} now): run again so that the new bytes get their own cache key",
                self.written,
                &self.pinned[..self.pinned.len().min(12)],
                &now[..now.len().min(12)],
            )));
        }
        Ok(())
    }
}

fn run_pretrained(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let model_file = Pinned::new(ctx, args, "path", "content")?;
    let adapter = match args.opt_str("adapter")? {
        Some(_) => Some(Pinned::new(ctx, args, "adapter", "adapter_content")?),
        None => None,
    };
    let all: Vec<&Pinned> = std::iter::once(&model_file).chain(&adapter).collect();
    for p in &all {
        p.verify("since it was checked")?;
    }
    ctx.progress.update(ProgressUpdate {
        message: Some(format!("loading {}", model_file.written)),
        ..ProgressUpdate::default()
    });
    let (mut model, tok) = load_pretrained(&model_file.path).map_err(|e| bad_arg("path", e))?;
    if let Some(a) = &adapter {
        // A PEFT adapter, merged into the weights this node stores.
        load_peft_adapter(model.as_mut(), &a.path).map_err(|e| bad_arg("adapter", e))?;
        merge_adapter(model.as_mut()).map_err(ml_err)?;
    }
    for p in &all {
        p.verify("while it was being read")?;
    }
    ctx.check_cancel()?;
    save_checkpoint(&ctx.out_dir.join("model"), model.as_ref(), &tok).map_err(ml_err)
}
