//! The ML core on candle: tokenizer, GPT, SFT, sampling, checkpoints. Knows nothing of the
//! language; uses [`crate::chat`] for the conversation format and [`crate::data::Example`]
//! as the row type. CPU, f32.
//!
//! # API for other modules
//! ```text
//! // tokenizer (tokenizer.json, byte-level BPE, chat::SPECIAL_TOKENS as single tokens)
//! Tokenizer::train(corpus: &[S], vocab_size: usize) -> Result<Tokenizer>   // S: AsRef<str>+Sync
//! Tokenizer::{load(&Path), save(&Path), encode(&str), decode(&[u32]), pad_id(), eot_id(), vocab_size()}
//!
//! // model (GPT-2 layout and names; loads with transformers.GPT2LMHeadModel)
//! GptConfig { vocab_size, layers, width, heads, context, mlp_ratio, activation: Activation::{Gelu, Relu} }
//! Gpt::init(&GptConfig, seed: u64) -> Result<Gpt>
//! Gpt::forward(&self, ids: &Tensor /*[b,t] u32*/) -> Result<Tensor /*[b,t,vocab]*/>
//! Gpt::token_logprobs(&self, ids, targets) -> Result<Tensor /*[b,t]*/>      // differentiable
//! Gpt::masked_loss(&self, ids, targets, mask) -> Result<Tensor /*scalar*/>
//! Gpt::{vars(), names(), config(), deep_clone()}
//! save_checkpoint(dir: &Path, &Gpt, &Tokenizer) -> Result<()>   // model.safetensors, config.json, tokenizer.json
//! load_checkpoint(dir: &Path) -> Result<(Gpt, Tokenizer)>
//!
//! // SFT (sft.rs); the batch at step s is a function of (seed, s): resuming is bit-exact
//! train_sft(model: Gpt, &Tokenizer, train: &[Example], heldout: &[Example], &SftConfig,
//!           resume: Option<Resume>, hooks: &mut dyn SftHooks) -> Result<(Gpt, TrainLog)>
//! SftHooks { progress(&TrainProgress), metric(name, step, value), checkpoint(step, &Gpt),
//!            save_state(&TrainState), should_stop() -> bool }      // all default no-ops
//! TrainState::save(&self, dir) / Resume::load(dir) -> Result<Option<Resume>>
//!
//! // RL building blocks (optim.rs, logprobs.rs, batch.rs)
//! Encoded::from_pair(&tok, prompt, response, context) / Encoded::from_ids(prompt_ids, continuation_ids, context)
//! continuation_logprobs(&Gpt, rows: &[Encoded], pad_id) -> Result<(Tensor logprobs [b,t], Tensor mask [b,t])>
//! sequence_logprob(&Gpt, rows, pad_id) -> Result<Tensor /*[b], sum over continuation*/>
//! Learner::new(model, AdamWConfig, grad_clip) ; learner.step_on_loss(&loss, lr) -> Result<StepStats>
//! learner.step_on_batch(ids, targets, mask, lr) -> Result<StepStats>   // SFT: 2 data-parallel shards
//! Schedule { peak, warmup, total, min_ratio }.lr(step)
//!
//! // sampling (sample.rs): batched, KV cache, greedy (temperature 0) or temperature/top-p
//! generate(&Gpt, &Tokenizer, prompts: &[String] /*user prompts, render_prompt applied*/, &SampleConfig)
//!     -> Result<Vec<Sample { text, ids, logprobs /*untempered*/, finished }>>
//! generate_ids(&Gpt, prompts: &[Vec<u32>], pad_id, eot_id, &SampleConfig) -> Result<Vec<(ids, logprobs, finished)>>
//!
//! // defection probes (probe.rs): residual stream at the last token, contrast-pair direction
//! probe_scores(&Gpt, &Tokenizer, prompts: &[String], layer) -> Result<Vec<f64>> ; default_layer(&Gpt)
//! ```

pub mod alloc;
pub mod error;
pub mod infer;
pub mod kernels;
pub mod model;
pub mod runtime;
pub mod safety;
pub mod text;
pub mod train;

// Each module is also reachable at `ml::<name>` (`ml::sft`, `ml::tokenizer`, ...): the
// layered directories are the code map, not a change of API.
pub use infer::{probe, responder, sample};
pub use kernels::{fused, fused_attention, fused_head, fused_linear, layers};
pub use model::{checkpoint, config, gpt, init};
pub use safety::{adversarial, redteam, reward, rl, scratchpad};
pub use text::{chat_template, tokenizer};
pub(crate) use train::state;
pub use train::{batch, data_parallel, hooks, logprobs, optim, sft};

pub use checkpoint::{load_checkpoint, save_checkpoint};
pub use config::{Activation, GptConfig};
pub use error::{MlError, Result};
pub use gpt::Gpt;
pub use model::{CausalLm, KvCache, Model, ModelDims};
pub use tokenizer::Tokenizer;
