//! Registry entries for the ML operations `bpe`, `gpt` and `sft` (artifact layouts in
//! `ARCHITECTURE.md`): thin adapters from [`OpArgs`] to [`crate::ml`].

use super::adapter::load_trainee;
use super::common::{bad_input, every, int_or, ml_err, read_dataset, seed, word_or};
use super::stage_hooks::{finish_stage, stage_dirs, StageHooks};
use super::{OpArgs, OpCtx, OpError, OpSpec, ProgressUpdate};
use crate::ml::checkpoint::save_checkpoint;
use crate::ml::scratchpad::{encode_for_sft, ScratchpadMode};
use crate::ml::sft::{train_sft_encoded, Resume, SftConfig};
use crate::ml::{Activation, Gpt, GptConfig, Tokenizer};

pub const OPS: &[OpSpec] = &[
    OpSpec {
        name: "bpe",
        version: 1,
        run: run_bpe,
        draws_seed: false,
    },
    OpSpec {
        name: "gpt",
        version: 1,
        run: run_gpt,
        draws_seed: true,
    },
    OpSpec {
        name: "sft",
        version: 3,
        run: run_sft,
        draws_seed: true,
    },
];

/// `bpe(corpus: List[Dataset], vocab: Int)`: `tokenizer.json` trained on every rendered
/// conversation (prompt, response and any rejected response) of the corpus.
fn run_bpe(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let vocab = int_or(args, "vocab", 2048)?;
    let mut texts = Vec::new();
    for input in args.inputs("corpus")? {
        for r in read_dataset(input)? {
            let prompt = crate::chat::render_prompt(&r.prompt);
            texts.push(format!(
                "{prompt}{}",
                crate::chat::render_response(&r.response)
            ));
            if let Some(rej) = &r.rejected {
                texts.push(format!("{prompt}{}", crate::chat::render_response(rej)));
            }
        }
    }
    ctx.check_cancel()?;
    if texts.is_empty() {
        return Err(OpError::failed(
            "the corpus is empty: nothing to train a tokenizer on",
        ));
    }
    let tok = Tokenizer::train(&texts, vocab).map_err(ml_err)?;
    tok.save(&ctx.out_dir.join("tokenizer.json"))
        .map_err(ml_err)
}

/// `gpt(tok, layers, width, heads, context, mlp_ratio, activation, seed)`: an initialised
/// checkpoint in `model/`.
fn run_gpt(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let tok_in = args.input("tok")?;
    let tok =
        Tokenizer::load(&tok_in.dir.join("tokenizer.json")).map_err(|e| bad_input(tok_in, e))?;
    let activation = Activation::parse(word_or(args, "activation", "gelu")?).map_err(|e| {
        OpError::BadArgument {
            name: "activation".into(),
            message: e.to_string(),
        }
    })?;
    let cfg = GptConfig {
        vocab_size: tok.vocab_size(),
        layers: int_or(args, "layers", 4)?,
        width: int_or(args, "width", 256)?,
        heads: int_or(args, "heads", 4)?,
        context: int_or(args, "context", 256)?,
        mlp_ratio: int_or(args, "mlp_ratio", 4)?,
        activation,
    };
    super::budget::check_gpt(&cfg, None)?;
    let model = Gpt::init(&cfg, seed(ctx, args)?).map_err(ml_err)?;
    save_checkpoint(&ctx.out_dir.join("model"), &model, &tok).map_err(ml_err)
}

/// `sft(model, data, epochs, steps, lr, batch, warmup, weight_decay, clip, scratchpad,
/// heldout, checkpoints, seed)`: writes `model/`, `checkpoints/step-NNNNNN/` and
/// `train_log.json`; resumes from `work_dir/state` after an interruption.
fn run_sft(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let seed = seed(ctx, args)?;
    let (model, tok, base) = load_trainee(ctx, args, "model", seed, true)?;
    let data_in = args.input("data")?;
    let train = read_dataset(data_in)?;
    let heldout = match args.opt("heldout") {
        Some(_) => read_dataset(args.input("heldout")?)?,
        None => Vec::new(),
    };
    let checkpoint_every = every(args)?;
    let cfg = SftConfig {
        epochs: int_or(args, "epochs", 1)?,
        steps: args.opt_usize("steps")?,
        lr: args.opt_float("lr")?.unwrap_or(3e-4),
        batch: int_or(args, "batch", 32)?,
        warmup: int_or(args, "warmup", 0)?,
        weight_decay: args.opt_float("weight_decay")?.unwrap_or(0.0),
        grad_clip: args.opt_float("clip")?.unwrap_or(1.0),
        seed,
        checkpoint_every,
        // Resumable state at every checkpoint, and at least every 200 steps.
        state_every: Some(checkpoint_every.unwrap_or(200).min(200)),
        ..SftConfig::default()
    };
    let mode = ScratchpadMode::parse(word_or(args, "scratchpad", "keep")?).map_err(|e| {
        OpError::BadArgument {
            name: "scratchpad".into(),
            message: e.to_string(),
        }
    })?;
    let resume = Resume::load(&ctx.work_dir.join("state")).map_err(ml_err)?;
    let (state_dir, ckpt_root) = stage_dirs(ctx, resume.is_some())?;
    // Post-scratchpad rows are sampled from the *starting* model, so a resumed run
    // re-encodes from the same weights and gets the same rows.
    let (rows, skipped) =
        encode_for_sft(model.as_ref(), &tok, &train, mode, seed).map_err(ml_err)?;
    let (held, _) = encode_for_sft(model.as_ref(), &tok, &heldout, ScratchpadMode::Keep, seed)
        .map_err(ml_err)?;
    if let Some(r) = &resume {
        ctx.progress.update(ProgressUpdate {
            step: r.step,
            message: Some(format!("resuming at step {}", r.step)),
            ..ProgressUpdate::default()
        });
    }
    let mut hooks = StageHooks {
        ctx,
        tok: &tok,
        ckpt_root: ckpt_root.clone(),
        state_dir: state_dir.clone(),
        base: base.as_ref(),
    };
    let (trained, mut log) =
        train_sft_encoded(model, &tok, &rows, &held, &cfg, resume, &mut hooks).map_err(ml_err)?;
    log.skipped = skipped;
    let log_path = ctx.out_dir.join("train_log.json");
    let text = serde_json::to_string_pretty(&log).map_err(OpError::failed)?;
    std::fs::write(&log_path, text).map_err(|e| OpError::io(&log_path, e))?;
    finish_stage(
        ctx,
        trained.as_ref(),
        &tok,
        base.as_ref(),
        &ckpt_root,
        &state_dir,
    )
}
