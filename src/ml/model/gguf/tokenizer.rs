//! The `tokenizers` pipeline a GGUF's `tokenizer.ggml.*` metadata describes, and back.
//!
//! Only byte-level BPE (`tokenizer.ggml.model = "gpt2"`) is built; sentencepiece (`"llama"`)
//! and the others are refused with a clear error. The construction mirrors transformers'
//! GGUF loader (`integrations/gguf/gguf_tokenizer_mapping.py`: `byte_level_tokenizer`,
//! `add_gguf_special_tokens`, `set_split_regex`) where that reproduces the model's original
//! `tokenizer.json`, and follows the original (and llama.cpp) where transformers does not:
//!
//! | `tokenizer.ggml.pre` | pre-tokenizer | notes |
//! |---|---|---|
//! | `gpt-2`, `default`, absent | `ByteLevel(use_regex)` (GPT-2 regex) | |
//! | `smollm`, `starcoder`, `refact` | `Digits(individual)`, `ByteLevel(use_regex)` | transformers has no entry and falls back to plain GPT-2, which does not split digit runs |
//! | `llama3`, `llama-v3`, `llama-bpe`, `falcon3`, `pixtral` | `Split(LLAMA3, isolated)`, `ByteLevel(no regex)` | BPE `ignore_merges` (as Llama 3's `tokenizer.json` and llama.cpp) |
//! | `dbrx`, `smaug-bpe` | same split | merges not ignored |
//! | `qwen2`, `deepseek-r1-qwen` | NFC normaliser, `Split(QWEN2, isolated)`, `ByteLevel(no regex)` | NFC as in Qwen2's `tokenizer.json` (transformers' GGUF path and llama.cpp skip it) |
//!
//! Any other `pre` value is refused rather than silently tokenised with the wrong regex.
//! Tokens marked CONTROL (3) whose characters are all in the byte-level alphabet become
//! special added tokens; USER_DEFINED (4) ones become plain (non-special) added tokens; all
//! are matched whole, unnormalised. The decoder is byte-level; with
//! `tokenizer.ggml.add_bos_token` (or `add_eos_token`) the post-processor adds BOS (EOS).

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use serde_json::json;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::{SpecialToken, TemplateProcessing};
use tokenizers::{
    AddedToken, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    SplitDelimiterBehavior, Tokenizer,
};

use super::reader::MetaView;
use crate::ml::error::{MlError, Result};

/// llama.cpp's token types (`llama_token_type`).
pub const TOKEN_NORMAL: i64 = 1;
pub const TOKEN_CONTROL: i64 = 3;
pub const TOKEN_USER_DEFINED: i64 = 4;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How a family of `pre` values tokenises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PreKind {
    Gpt2,
    DigitsGpt2,
    Llama3,
    Llama3KeepMerges,
    Qwen2,
}

/// Recognised `tokenizer.ggml.pre` values; the first of each kind is the one
/// [`gguf_pre_name`] writes.
const PRE_NAMES: &[(&str, PreKind)] = &[
    ("gpt-2", PreKind::Gpt2),
    ("default", PreKind::Gpt2),
    ("smollm", PreKind::DigitsGpt2),
    ("starcoder", PreKind::DigitsGpt2),
    ("refact", PreKind::DigitsGpt2),
    ("llama-bpe", PreKind::Llama3),
    ("llama3", PreKind::Llama3),
    ("llama-v3", PreKind::Llama3),
    ("falcon3", PreKind::Llama3),
    ("pixtral", PreKind::Llama3),
    ("dbrx", PreKind::Llama3KeepMerges),
    ("smaug-bpe", PreKind::Llama3KeepMerges),
    ("qwen2", PreKind::Qwen2),
    ("deepseek-r1-qwen", PreKind::Qwen2),
];

fn tok_err(e: impl std::fmt::Display) -> MlError {
    MlError::Tokenizer(e.to_string())
}

/// GPT-2's `bytes_to_unicode`: byte `b` is spelled as this char in byte-level vocabularies.
pub fn bytes_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        map[b as usize] = if printable {
            b as char
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('\u{FFFD}')
        };
    }
    map
}

/// The pieces of the pipeline for one kind.
struct Pipeline {
    normalizer: Option<NormalizerWrapper>,
    pre: PreTokenizerWrapper,
    ignore_merges: bool,
}

fn pipeline(kind: PreKind) -> Result<Pipeline> {
    let split = |re: &str| -> Result<PreTokenizerWrapper> {
        let s = Split::new(
            SplitPattern::Regex(re.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(tok_err)?;
        Ok(Sequence::new(vec![s.into(), ByteLevel::new(false, true, false).into()]).into())
    };
    Ok(match kind {
        PreKind::Gpt2 => Pipeline {
            normalizer: None,
            pre: ByteLevel::new(false, true, true).into(),
            ignore_merges: false,
        },
        PreKind::DigitsGpt2 => Pipeline {
            normalizer: None,
            pre: Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ])
            .into(),
            ignore_merges: false,
        },
        PreKind::Llama3 | PreKind::Llama3KeepMerges => Pipeline {
            normalizer: None,
            pre: split(LLAMA3_SPLIT)?,
            ignore_merges: kind == PreKind::Llama3,
        },
        PreKind::Qwen2 => Pipeline {
            normalizer: Some(NFC.into()),
            pre: split(QWEN2_SPLIT)?,
            ignore_merges: false,
        },
    })
}

/// The tokenizer and its `tokenizer_config.json` from the metadata of a GGUF file.
pub(crate) fn build_tokenizer(
    m: &MetaView<'_>,
    context: Option<usize>,
) -> Result<(Tokenizer, serde_json::Value)> {
    let bad = |msg: String| MlError::bad_file(m.path, msg);
    let model = m.opt_str("tokenizer.ggml.model")?.ok_or_else(|| {
        bad("metadata `tokenizer.ggml.model` is missing: the file carries no tokenizer".into())
    })?;
    if model != "gpt2" {
        let hint = if model == "llama" {
            " (sentencepiece tokenizers are not supported yet)"
        } else {
            ""
        };
        return Err(bad(format!(
            "tokenizer.ggml.model is {model:?}; only \"gpt2\" (byte-level BPE) is supported{hint}"
        )));
    }
    let pre_name = m.opt_str("tokenizer.ggml.pre")?.unwrap_or("default");
    let kind = PRE_NAMES
        .iter()
        .find(|(n, _)| *n == pre_name)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            let known: Vec<&str> = PRE_NAMES.iter().map(|(n, _)| *n).collect();
            bad(format!(
                "tokenizer.ggml.pre {pre_name:?} is not supported (supported: {})",
                known.join(", ")
            ))
        })?;
    let tokens = m
        .opt_strs("tokenizer.ggml.tokens")?
        .ok_or_else(|| bad("metadata `tokenizer.ggml.tokens` is missing".into()))?;
    if tokens.is_empty() || tokens.len() > u32::MAX as usize / 2 {
        return Err(bad(format!(
            "tokenizer.ggml.tokens has {} entries",
            tokens.len()
        )));
    }
    let types: Vec<i64> = match m.opt_ints("tokenizer.ggml.token_type")? {
        Some(t) if t.len() == tokens.len() => t.to_vec(),
        Some(t) => {
            return Err(bad(format!(
                "tokenizer.ggml.token_type has {} entries for {} tokens",
                t.len(),
                tokens.len()
            )))
        }
        None => vec![TOKEN_NORMAL; tokens.len()],
    };
    let merges_raw = m
        .opt_strs("tokenizer.ggml.merges")?
        .ok_or_else(|| bad("metadata `tokenizer.ggml.merges` is missing".into()))?;

    // The vocabulary, respelled into the byte alphabet where a token is not (as transformers
    // does: llama.cpp writes some added tokens with raw characters).
    let spelling = bytes_to_unicode();
    let alphabet: std::collections::HashSet<char> = spelling.iter().copied().collect();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
    let mut vocab: Vocab = Vocab::default();
    for (i, t) in tokens.iter().enumerate() {
        let key = if in_alphabet(t) {
            t.clone()
        } else {
            t.bytes().map(|b| spelling[b as usize]).collect()
        };
        vocab.insert(key, i as u32);
    }
    let mut merges = Vec::with_capacity(merges_raw.len());
    for (i, mg) in merges_raw.iter().enumerate() {
        let (a, b) = mg.split_once(' ').ok_or_else(|| {
            bad(format!(
                "tokenizer.ggml.merges[{i}] = {mg:?} is not two tokens separated by a space"
            ))
        })?;
        if b.contains(' ') {
            return Err(bad(format!(
                "tokenizer.ggml.merges[{i}] = {mg:?} has more than two parts"
            )));
        }
        merges.push((a.to_string(), b.to_string()));
    }
    let p = pipeline(kind)?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(p.ignore_merges)
        .build()
        .map_err(|e| bad(format!("tokenizer vocabulary and merges do not fit: {e}")))?;
    let mut tk = Tokenizer::new(bpe);
    tk.with_normalizer(p.normalizer).map_err(tok_err)?;
    tk.with_pre_tokenizer(Some(p.pre));
    tk.with_decoder(Some(ByteLevelDecoder::default()));

    // Special ids.
    let id = |key: &str| -> Result<Option<u32>> {
        match m.opt_usize(key, tokens.len() - 1) {
            Ok(v) => Ok(v.map(|v| v as u32)),
            Err(_) if m.opt_int(key)?.is_some_and(|v| v < 0) => Ok(None),
            Err(e) => Err(e),
        }
    };
    let bos = id("tokenizer.ggml.bos_token_id")?;
    let eos = id("tokenizer.ggml.eos_token_id")?;
    let unk = id("tokenizer.ggml.unknown_token_id")?;
    let pad = id("tokenizer.ggml.padding_token_id")?;
    let add_bos = m.opt_bool("tokenizer.ggml.add_bos_token")?;
    let add_eos = m.opt_bool("tokenizer.ggml.add_eos_token")?;

    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(t, ty)| **ty == TOKEN_CONTROL && in_alphabet(t))
        .map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false))
        .collect();
    tk.add_special_tokens(special).map_err(tok_err)?;
    let user: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(t, ty)| **ty == TOKEN_USER_DEFINED && in_alphabet(t))
        .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
        .collect();
    tk.add_tokens(user).map_err(tok_err)?;

    // The template names BOS/EOS by key ("bos", "eos"), so token texts containing `:`,
    // spaces or a leading `$` cannot break its syntax.
    let bos_t = bos.filter(|_| add_bos == Some(true));
    let eos_t = eos.filter(|_| add_eos == Some(true));
    let post: PostProcessorWrapper = if bos_t.is_some() || eos_t.is_some() {
        let mut specials = Vec::new();
        let (mut single, mut pair) = (Vec::new(), Vec::new());
        if let Some(b) = bos_t {
            specials.push(
                SpecialToken::new("bos".into(), vec![b], vec![tokens[b as usize].clone()])
                    .map_err(tok_err)?,
            );
            single.push("bos:0");
            pair.push("bos:0");
        }
        single.push("$A:0");
        pair.push("$A:0");
        if let Some(e) = eos_t {
            specials.push(
                SpecialToken::new("eos".into(), vec![e], vec![tokens[e as usize].clone()])
                    .map_err(tok_err)?,
            );
            single.push("eos:0");
            pair.push("eos:0");
        }
        if bos_t.is_some() {
            pair.push("bos:1");
        }
        pair.push("$B:1");
        if eos_t.is_some() {
            pair.push("eos:1");
        }
        TemplateProcessing::builder()
            .try_single(single)
            .map_err(tok_err)?
            .try_pair(pair)
            .map_err(tok_err)?
            .special_tokens(specials)
            .build()
            .map_err(tok_err)?
            .into()
    } else {
        ByteLevel::new(true, false, true).into()
    };
    tk.with_post_processor(Some(post));

    let name = |i: Option<u32>| i.map(|i| json!(tokens[i as usize]));
    let mut cfg = serde_json::Map::new();
    cfg.insert("tokenizer_class".into(), json!("GPT2Tokenizer"));
    if let Some(t) = m.opt_str("tokenizer.chat_template")? {
        cfg.insert("chat_template".into(), json!(t));
    }
    for (k, v) in [
        ("bos_token", name(bos)),
        ("eos_token", name(eos)),
        ("unk_token", name(unk)),
        ("pad_token", name(pad)),
    ] {
        if let Some(v) = v {
            cfg.insert(k.into(), v);
        }
    }
    if let Some(b) = add_bos {
        cfg.insert("add_bos_token".into(), json!(b));
    }
    if let Some(b) = add_eos {
        cfg.insert("add_eos_token".into(), json!(b));
    }
    if let Some(n) = context {
        cfg.insert("model_max_length".into(), json!(n));
    }
    cfg.insert("clean_up_tokenization_spaces".into(), json!(false));
    Ok((tk, serde_json::Value::Object(cfg)))
}

/// The `tokenizer.ggml.pre` value whose pipeline is `tk`'s (normaliser, pre-tokenizer and
/// BPE `ignore_merges` compared as JSON).
pub fn gguf_pre_name(tk: &Tokenizer) -> Result<&'static str> {
    let j = serde_json::to_value(tk).map_err(tok_err)?;
    let ignore = j["model"]["ignore_merges"].as_bool().unwrap_or(false);
    for (name, kind) in PRE_NAMES {
        let p = pipeline(*kind)?;
        let norm = serde_json::to_value(&p.normalizer).map_err(tok_err)?;
        let pre = serde_json::to_value(&p.pre).map_err(tok_err)?;
        if norm == j["normalizer"]
            && same_pre(&pre, &j["pre_tokenizer"])
            && ignore == p.ignore_merges
        {
            return Ok(name);
        }
    }
    Err(MlError::Tokenizer(format!(
        "no GGUF pre-tokenizer name matches this tokenizer's pipeline (normalizer {}, pre_tokenizer {})",
        j["normalizer"], j["pre_tokenizer"]
    )))
}

/// Pre-tokenizers equal up to ByteLevel's `trim_offsets` (offsets only, not ids).
fn same_pre(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    fn strip(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(o) => serde_json::Value::Object(
                o.iter()
                    .filter(|(k, _)| k.as_str() != "trim_offsets")
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(strip).collect()),
            v => v.clone(),
        }
    }
    strip(a) == strip(b)
}

/// The `tokenizer.*` metadata llama.cpp's converter would write for `tk` (byte-level BPE
/// only) and its `tokenizer_config`.
pub fn tokenizer_metadata(
    tk: &Tokenizer,
    tokenizer_config: &serde_json::Value,
) -> Result<Vec<(String, Value)>> {
    let j = serde_json::to_value(tk).map_err(tok_err)?;
    if j["model"]["type"] != "BPE" {
        return Err(MlError::Tokenizer(format!(
            "only BPE tokenizers can be written to GGUF, not {}",
            j["model"]["type"]
        )));
    }
    let n = tk.get_vocab_size(true);
    let added: HashMap<u32, bool> = tk
        .get_added_tokens_decoder()
        .into_iter()
        .map(|(id, t)| (id, t.special))
        .collect();
    let mut tokens = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    for i in 0..n as u32 {
        let t = tk.id_to_token(i).ok_or_else(|| {
            MlError::Tokenizer(format!("token ids are not contiguous: {i} missing"))
        })?;
        tokens.push(Value::String(t));
        types.push(Value::I32(match added.get(&i) {
            Some(true) => TOKEN_CONTROL,
            Some(false) => TOKEN_USER_DEFINED,
            None => TOKEN_NORMAL,
        } as i32));
    }
    let merges: Vec<Value> = j["model"]["merges"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => Ok(Value::String(s.clone())),
            serde_json::Value::Array(p) if p.len() == 2 => Ok(Value::String(format!(
                "{} {}",
                p[0].as_str().unwrap_or_default(),
                p[1].as_str().unwrap_or_default()
            ))),
            other => Err(MlError::Tokenizer(format!("unexpected merge {other}"))),
        })
        .collect::<Result<_>>()?;
    let mut out = vec![
        (
            "tokenizer.ggml.model".to_string(),
            Value::String("gpt2".into()),
        ),
        (
            "tokenizer.ggml.pre".to_string(),
            Value::String(gguf_pre_name(tk)?.into()),
        ),
        ("tokenizer.ggml.tokens".to_string(), Value::Array(tokens)),
        ("tokenizer.ggml.token_type".to_string(), Value::Array(types)),
        ("tokenizer.ggml.merges".to_string(), Value::Array(merges)),
    ];
    let cfg = tokenizer_config;
    for (key, gguf) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
    ] {
        let name = match &cfg[key] {
            serde_json::Value::String(s) => Some(s.as_str()),
            serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()),
            _ => None,
        };
        if let Some(name) = name {
            let id = tk.token_to_id(name).ok_or_else(|| {
                MlError::Tokenizer(format!("{key} {name:?} is not in the vocabulary"))
            })?;
            out.push((gguf.to_string(), Value::U32(id)));
        }
    }
    for (key, gguf) in [
        ("add_bos_token", "tokenizer.ggml.add_bos_token"),
        ("add_eos_token", "tokenizer.ggml.add_eos_token"),
    ] {
        if let Some(b) = cfg[key].as_bool() {
            out.push((gguf.to_string(), Value::Bool(b)));
        }
    }
    if let Some(t) = cfg["chat_template"].as_str() {
        out.push((
            "tokenizer.chat_template".to_string(),
            Value::String(t.into()),
        ));
    }
    Ok(out)
}
