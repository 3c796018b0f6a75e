//! Byte-level BPE trained in-process with the `tokenizers` crate, saved as a standard
//! `tokenizer.json` that Python's `tokenizers` / `transformers` load unchanged.

use std::collections::HashSet;
use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer, TokenizerBuilder};

use super::error::{MlError, Result};
use crate::chat;

fn tok_err(e: impl std::fmt::Display) -> MlError {
    MlError::Tokenizer(e.to_string())
}

/// A byte-level BPE tokenizer carrying [`chat::SPECIAL_TOKENS`] as single tokens.
#[derive(Clone)]
pub struct Tokenizer {
    inner: HfTokenizer,
    pad_id: u32,
    eot_id: u32,
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
        })
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
