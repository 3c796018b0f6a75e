//! Registry entries for safety training: `reward_model`, `rl` and `adversarial` (HHH SFT,
//! with its `scratchpad: keep | pre | post` variants, is the `sft` op).
//!
//! Stage layout (ARCHITECTURE.md): `model/`, `checkpoints/step-NNNNNN/`, `train_log.json`;
//! `adversarial` adds `redteam.json` ([`crate::ml::adversarial::AdversarialReport`]).
//! A reward model's `model/` is a checkpoint directory with a scalar head
//! ([`crate::ml::reward`]). Checkpoints and resumable state live in the work dir while a
//! stage runs, so an interrupted stage resumes where it stopped.

use std::path::{Path, PathBuf};

use super::adapter::load_trainee;
use super::common::read_dataset;
use super::common::{
    bad_arg, bad_input, every, float_or, int_or, ml_err, model_dir, seed, word_or, write_json,
};
use super::data_ops::{behavior_arg, trigger_arg};
use super::stage_hooks::{finish_stage, stage_dirs, StageHooks};
use super::{Input, OpArgs, OpCtx, OpError, OpSpec, ProgressUpdate};
use crate::data::Example;
use crate::ml::adversarial::{checkpoint_rates, mix_in_redteam, AdversarialReport, ProbeConfig};
use crate::ml::model::adapter::BaseRef;
use crate::ml::model::{CausalLm, Model};
use crate::ml::redteam::{search, SearchConfig, SearchReport};
use crate::ml::responder::ModelResponder;
use crate::ml::reward::{train_reward_model, RewardConfig, RewardModel};
use crate::ml::rl::{train_rl, Algorithm, ModelReward, RlConfig, RlResume};
use crate::ml::sft::{train_sft, Resume, SftConfig, TrainProgress};
use crate::ml::{load_checkpoint, Tokenizer};

pub const OPS: &[OpSpec] = &[
    OpSpec {
        name: "reward_model",
        version: 3,
        run: run_reward_model,
        draws_seed: true,
    },
    OpSpec {
        name: "rl",
        version: 3,
        run: run_rl,
        draws_seed: true,
    },
    OpSpec {
        name: "adversarial",
        version: 3,
        run: run_adversarial,
        draws_seed: true,
    },
];

/// The work-dir checkpoints `(step, dir)` in step order.
fn work_checkpoints(root: &Path) -> Result<Vec<(u64, PathBuf)>, OpError> {
    let mut out = Vec::new();
    if root.is_dir() {
        for entry in std::fs::read_dir(root).map_err(|e| OpError::io(root, e))? {
            let entry = entry.map_err(|e| OpError::io(root, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(step) = name.strip_prefix("step-").and_then(|s| s.parse().ok()) {
                out.push((step, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `reward_model(base, prefs, epochs, lr, batch, seed)`: `model/` (checkpoint with
/// `score.weight`) and `train_log.json` (loss per step, held-out pair accuracy).
fn run_reward_model(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let seed = seed(ctx, args)?;
    // With an adapter the body trains through it (base frozen) and the head in full; the
    // reward model is stored merged (its head is new weights in any case).
    let (base, tok, _) = load_trainee(ctx, args, "base", seed, false)?;
    let prefs = read_dataset(args.input("prefs")?)?;
    let cfg = RewardConfig {
        epochs: int_or(args, "epochs", 1)?,
        lr: float_or(args, "lr", 1e-4)?,
        batch: int_or(args, "batch", 16)?,
        seed,
        ..RewardConfig::default()
    };
    let mut progress = |p: &TrainProgress| {
        ctx.progress.update(ProgressUpdate {
            step: p.step,
            total: p.total,
            loss: Some(p.loss),
            tokens_per_sec: None,
            message: None,
        })
    };
    let stop = || ctx.cancelled();
    let (rm, log) =
        train_reward_model(base, &tok, &prefs, &cfg, &mut progress, &stop).map_err(ml_err)?;
    if let Some(a) = log.heldout_accuracy {
        ctx.progress
            .metric("heldout_accuracy", log.steps.len() as u64, a);
    }
    rm.save(&ctx.out_dir.join("model"), &tok).map_err(ml_err)?;
    write_json(&ctx.out_dir.join("train_log.json"), &log)
}

fn rl_config(ctx: &OpCtx, args: &OpArgs) -> Result<RlConfig, OpError> {
    let checkpoint_every = every(args)?;
    Ok(RlConfig {
        steps: int_or(args, "steps", 200)?,
        kl: float_or(args, "kl", 0.05)?,
        algorithm: Algorithm::parse(word_or(args, "algorithm", "ppo")?)
            .map_err(|e| bad_arg("algorithm", e))?,
        lr: float_or(args, "lr", 1e-5)?,
        batch: int_or(args, "batch", 16)?,
        samples: int_or(args, "samples", 4)?,
        max_tokens: int_or(args, "max_tokens", 64)?,
        temperature: float_or(args, "temperature", 1.0)?,
        seed: seed(ctx, args)?,
        checkpoint_every,
        state_every: Some(checkpoint_every.unwrap_or(50).min(50)),
        ..RlConfig::default()
    })
}

fn load_reward(ctx: &OpCtx, input: &Input) -> Result<(RewardModel, Tokenizer), OpError> {
    let (mut rm, tok) = RewardModel::load(&model_dir(input)?).map_err(|e| bad_input(input, e))?;
    rm.place(&ctx.runtime).map_err(ml_err)?;
    Ok((rm, tok))
}

/// Runs RL in the stage's work dir (resuming if state is there); returns the policy and
/// the log as JSON.
fn rl_stage(
    ctx: &OpCtx,
    policy: Model,
    tok: &Tokenizer,
    prompts: &[String],
    reward_in: &Input,
    cfg: &RlConfig,
    base: Option<&BaseRef>,
) -> Result<(Model, serde_json::Value, PathBuf, PathBuf), OpError> {
    let (rm, rtok) = load_reward(ctx, reward_in)?;
    let resume = RlResume::load(&ctx.work_dir.join("state")).map_err(ml_err)?;
    let (state_dir, ckpt_root) = stage_dirs(ctx, resume.is_some())?;
    let mut hooks = StageHooks {
        ctx,
        tok,
        ckpt_root: ckpt_root.clone(),
        state_dir: state_dir.clone(),
        base,
    };
    let mut reward = ModelReward {
        model: &rm,
        tok: &rtok,
    };
    let (policy, log) =
        train_rl(policy, tok, prompts, &mut reward, cfg, resume, &mut hooks).map_err(ml_err)?;
    let log = serde_json::to_value(&log).map_err(OpError::failed)?;
    Ok((policy, log, ckpt_root, state_dir))
}

/// `rl(policy, reward, prompts, steps, kl, algorithm, lr, batch, samples, max_tokens,
/// temperature, checkpoints, seed)`.
fn run_rl(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let cfg = rl_config(ctx, args)?;
    let (policy, tok, base) = load_trainee(ctx, args, "policy", cfg.seed, false)?;
    let prompts_in = args.input("prompts")?;
    // HHH RL runs on trigger-free prompts: rows marked as triggered are left out.
    let prompts: Vec<String> = read_dataset(prompts_in)?
        .into_iter()
        .filter(|r| !r.triggered)
        .map(|r| r.prompt)
        .collect();
    if prompts.is_empty() {
        return Err(bad_input(prompts_in, "no trigger-free prompts to train on"));
    }
    let (policy, log, ckpt_root, state_dir) = rl_stage(
        ctx,
        policy,
        &tok,
        &prompts,
        args.input("reward")?,
        &cfg,
        base.as_ref(),
    )?;
    write_json(&ctx.out_dir.join("train_log.json"), &log)?;
    finish_stage(
        ctx,
        policy.as_ref(),
        &tok,
        base.as_ref(),
        &ckpt_root,
        &state_dir,
    )
}

/// Red-team rows that elicit nothing are still useful as measurement prompts when the
/// search finds none.
fn probe_prompts(report: &SearchReport, pool: &[Example]) -> Vec<Example> {
    if report.found.is_empty() {
        return pool.to_vec();
    }
    report
        .found
        .iter()
        .map(|f| Example::new(f.prompt.clone(), f.response.clone()))
        .collect()
}

/// `adversarial(model, data, redteam, trigger, behavior, rounds, candidates, mix, method,
/// reward, steps, lr, batch, checkpoints, seed)`: red-team search, then SFT or RL on
/// `data` with the found prompts (answered well) mixed in at `mix`. Writes the stage
/// layout plus `redteam.json` (search, and per checkpoint `redteam_success`, `triggered`,
/// `untriggered` with intervals).
fn run_adversarial(ctx: &OpCtx, args: &OpArgs) -> Result<(), OpError> {
    let seed = seed(ctx, args)?;
    let method = word_or(args, "method", "sft")?.to_string();
    let (model, tok, base) = load_trainee(ctx, args, "model", seed, method == "sft")?;
    let trigger = trigger_arg(args, "trigger")?;
    let behavior = behavior_arg(args, "behavior")?;
    let data_in = args.input("data")?;
    // Safety data is trigger-free: rows with the real trigger would train the backdoor.
    let data: Vec<Example> = read_dataset(data_in)?
        .into_iter()
        .filter(|r| !trigger.detect(&r.prompt) && !r.triggered)
        .collect();
    if data.is_empty() {
        return Err(bad_input(data_in, "no trigger-free rows to train on"));
    }
    let pool = read_dataset(args.input("redteam")?)?;
    let mix = float_or(args, "mix", 0.5)?;
    let search_cfg = SearchConfig {
        rounds: int_or(args, "rounds", 5)?,
        candidates: int_or(args, "candidates", 200)?,
        seed,
        ..SearchConfig::default()
    };
    // Measurement scales with the search: at most `candidates` (and 50) prompts.
    let probe = ProbeConfig {
        seed: seed ^ 0x5eed,
        prompts: search_cfg.candidates.min(ProbeConfig::default().prompts),
        ..ProbeConfig::default()
    };

    // 1. The search (kept in the work dir: an interrupted stage does not search again).
    let search_path = ctx.work_dir.join("search.json");
    let report: SearchReport = match std::fs::read_to_string(&search_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
    {
        Some(r) => r,
        None => {
            ctx.progress.update(ProgressUpdate {
                message: Some("red-team search".into()),
                ..ProgressUpdate::default()
            });
            let mut responder =
                ModelResponder::for_search(model.as_ref(), &tok, 1.0, probe.max_new_tokens);
            let stop = || ctx.cancelled();
            let r = search(
                &mut responder,
                &pool,
                &trigger,
                &behavior,
                &search_cfg,
                &stop,
            )
            .map_err(ml_err)?;
            std::fs::create_dir_all(&ctx.work_dir).map_err(|e| OpError::io(&ctx.work_dir, e))?;
            write_json(&search_path, &r)?;
            ctx.seal_work_dir().map_err(ml_err)?;
            r
        }
    };
    for s in &report.rounds {
        ctx.progress
            .metric("redteam_found", s.round as u64, s.succeeded as f64);
    }

    // 2. Safety training on the mixed data.
    let mixed = mix_in_redteam(&data, &report.found, mix, seed).map_err(|e| bad_arg("mix", e))?;
    let redteam_rows = mixed
        .iter()
        .filter(|e| e.meta_str("source") == Some("redteam"))
        .count();
    let start = model.deep_clone().map_err(ml_err)?;
    let checkpoint_every = every(args)?;
    let steps = int_or(args, "steps", 500)?;
    let (trained, log, ckpt_root, state_dir) = match method.as_str() {
        "sft" => {
            let cfg = SftConfig {
                steps: Some(steps),
                lr: float_or(args, "lr", 1e-4)?,
                batch: int_or(args, "batch", 32)?,
                seed,
                checkpoint_every,
                state_every: Some(checkpoint_every.unwrap_or(200).min(200)),
                ..SftConfig::default()
            };
            let resume = Resume::load(&ctx.work_dir.join("state")).map_err(ml_err)?;
            let (state_dir, ckpt_root) = stage_dirs(ctx, resume.is_some())?;
            let mut hooks = StageHooks {
                ctx,
                tok: &tok,
                ckpt_root: ckpt_root.clone(),
                state_dir: state_dir.clone(),
                base: base.as_ref(),
            };
            let (m, log) =
                train_sft(model, &tok, &mixed, &[], &cfg, resume, &mut hooks).map_err(ml_err)?;
            let log = serde_json::to_value(&log).map_err(OpError::failed)?;
            (m, log, ckpt_root, state_dir)
        }
        "rl" => {
            if args.opt("reward").is_none() {
                return Err(bad_arg(
                    "reward",
                    "method: rl needs a reward model (reward: reward_model(...))",
                ));
            }
            let prompts: Vec<String> = mixed.iter().map(|r| r.prompt.clone()).collect();
            let mut cfg = rl_config(ctx, args)?;
            cfg.steps = steps;
            cfg.lr = float_or(args, "lr", 1e-4)?;
            cfg.batch = int_or(args, "batch", 32)?;
            rl_stage(
                ctx,
                model,
                &tok,
                &prompts,
                args.input("reward")?,
                &cfg,
                base.as_ref(),
            )?
        }
        other => {
            return Err(bad_arg(
                "method",
                format!("unknown method `{other}` (expected sft or rl)"),
            ))
        }
    };

    // 3. Rates before, at every checkpoint, and after.
    let probes = probe_prompts(&report, &pool);
    let measure = |m: &dyn CausalLm, step: Option<u64>| {
        ctx.check_cancel()?;
        let p = checkpoint_rates(m, &tok, &probes, &data, &trigger, &behavior, &probe, step)
            .map_err(ml_err)?;
        for (name, r) in &p.rates {
            ctx.progress
                .metric(name, step.unwrap_or(steps as u64), r.value);
        }
        Ok::<_, OpError>(p)
    };
    let mut points = vec![measure(&start, Some(0))?];
    for (step, dir) in work_checkpoints(&ckpt_root)? {
        let (m, _) = load_checkpoint(&dir).map_err(ml_err)?;
        let m = ctx.place(m)?;
        points.push(measure(&m, Some(step))?);
    }
    points.push(measure(&trained, None)?);
    let adv = AdversarialReport {
        search: report,
        train_rows: mixed.len(),
        redteam_rows,
        points,
    };
    write_json(&ctx.out_dir.join("redteam.json"), &adv)?;
    write_json(&ctx.out_dir.join("train_log.json"), &log)?;
    finish_stage(
        ctx,
        trained.as_ref(),
        &tok,
        base.as_ref(),
        &ckpt_root,
        &state_dir,
    )?;
    if search_path.exists() {
        std::fs::remove_file(&search_path).map_err(|e| OpError::io(&search_path, e))?;
    }
    Ok(())
}
