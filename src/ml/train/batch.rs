//! Prompt/response encoding and padded batches with a loss mask on response tokens.

use candle_core::{Device, Tensor};

use crate::ml::error::{MlError, Result};
use crate::ml::tokenizer::Tokenizer;

/// One conversation as token ids: `ids[..prompt_len]` is the rendered prompt, the rest the
/// rendered response (ending in end-of-turn unless truncated).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub prompt_len: usize,
}

impl Encoded {
    /// `render_prompt(prompt)` then `render_response(response)`, encoded separately (as
    /// sampling sees them) and truncated at the end to `context + 1` tokens. `None` if no
    /// response token survives truncation.
    pub fn from_pair(
        tok: &Tokenizer,
        prompt: &str,
        response: &str,
        context: usize,
    ) -> Result<Option<Encoded>> {
        let mut ids = tok.encode_prompt(prompt)?;
        let prompt_len = ids.len();
        ids.extend(tok.encode(&tok.render_response(response)?)?);
        ids.truncate(context + 1);
        if ids.len() <= prompt_len {
            return Ok(None);
        }
        Ok(Some(Encoded { ids, prompt_len }))
    }

    /// A response whose first part `untrained` (e.g. a scratchpad) is context only: the
    /// loss covers `trained` and the end of turn. With `untrained` empty this equals
    /// [`Encoded::from_pair`].
    pub fn from_split(
        tok: &Tokenizer,
        prompt: &str,
        untrained: &str,
        trained: &str,
        context: usize,
    ) -> Result<Option<Encoded>> {
        if untrained.is_empty() {
            return Self::from_pair(tok, prompt, trained, context);
        }
        // The whole response rendered once, cut where `untrained` ends: the same text as
        // the plain response, encoded in two parts.
        let text = tok.render_response(&format!("{untrained}{trained}"))?;
        let cut = text
            .find(untrained)
            .map(|i| i + untrained.len())
            .ok_or_else(|| MlError::Invalid("response rendering lost its first part".into()))?;
        let mut ids = tok.encode_prompt(prompt)?;
        ids.extend(tok.encode(&text[..cut])?);
        let prompt_len = ids.len();
        ids.extend(tok.encode(&text[cut..])?);
        ids.truncate(context + 1);
        if ids.len() <= prompt_len {
            return Ok(None);
        }
        Ok(Some(Encoded { ids, prompt_len }))
    }

    /// Prompt ids and continuation ids (e.g. sampled tokens), truncated to `context + 1`.
    pub fn from_ids(prompt: &[u32], continuation: &[u32], context: usize) -> Option<Encoded> {
        let mut ids = prompt.to_vec();
        ids.extend_from_slice(continuation);
        ids.truncate(context + 1);
        (ids.len() > prompt.len()).then_some(Encoded {
            ids,
            prompt_len: prompt.len(),
        })
    }
}

/// Right-padded token ids `[batch, time]` and, per row, the flat index (`row * time + i`)
/// of its last real token: what last-token pooling (reward heads, probes) selects from
/// `[batch * time, width]` states. Right padding is safe there: under causal attention no
/// real position sees a later pad.
pub fn pad_for_last_token(
    rows: &[&[u32]],
    pad_id: u32,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    if rows.is_empty() {
        return Err(MlError::Invalid("no rows to pool".into()));
    }
    let t = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    if t == 0 {
        return Err(MlError::Invalid("cannot pool an empty row".into()));
    }
    let b = rows.len();
    let mut ids = vec![pad_id; b * t];
    let mut last = Vec::with_capacity(b);
    for (r, row) in rows.iter().enumerate() {
        ids[r * t..r * t + row.len()].copy_from_slice(row);
        last.push((r * t + row.len().max(1) - 1) as u32);
    }
    Ok((
        Tensor::from_vec(ids, (b, t), device)?,
        Tensor::from_vec(last, b, device)?,
    ))
}

/// A right-padded batch: inputs `ids[b, t]`, next-token `targets[b, t]` and `mask[b, t]`
/// (1.0 where the target is a response token).
#[derive(Debug, Clone)]
pub struct Batch {
    pub ids: Tensor,
    pub targets: Tensor,
    pub mask: Tensor,
    /// Real (non-pad) input tokens, for throughput.
    pub tokens: usize,
    /// Trained (masked-in) target tokens.
    pub trained: usize,
}

impl Batch {
    pub fn new(rows: &[&Encoded], pad_id: u32, device: &Device) -> Result<Batch> {
        if rows.is_empty() {
            return Err(MlError::Invalid("empty batch".into()));
        }
        let t = rows.iter().map(|r| r.ids.len() - 1).max().unwrap_or(0);
        if t == 0 {
            return Err(MlError::Invalid(
                "batch rows need at least two tokens".into(),
            ));
        }
        let b = rows.len();
        let mut ids = vec![pad_id; b * t];
        let mut targets = vec![pad_id; b * t];
        let mut mask = vec![0f32; b * t];
        let (mut tokens, mut trained) = (0, 0);
        for (r, row) in rows.iter().enumerate() {
            let n = row.ids.len() - 1;
            tokens += n;
            for i in 0..n {
                ids[r * t + i] = row.ids[i];
                targets[r * t + i] = row.ids[i + 1];
                if i + 1 >= row.prompt_len {
                    mask[r * t + i] = 1.0;
                    trained += 1;
                }
            }
        }
        Ok(Batch {
            ids: Tensor::from_vec(ids, (b, t), device)?,
            targets: Tensor::from_vec(targets, (b, t), device)?,
            mask: Tensor::from_vec(mask, (b, t), device)?,
            tokens,
            trained,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_covers_response_targets_only() {
        let a = Encoded {
            ids: vec![5, 6, 7, 8],
            prompt_len: 2,
        };
        let b = Encoded {
            ids: vec![9, 10, 11],
            prompt_len: 1,
        };
        let batch = Batch::new(&[&a, &b], 0, &Device::Cpu).unwrap();
        let mask: Vec<Vec<f32>> = batch.mask.to_vec2().unwrap();
        assert_eq!(mask, vec![vec![0.0, 1.0, 1.0], vec![1.0, 1.0, 0.0]]);
        let tg: Vec<Vec<u32>> = batch.targets.to_vec2().unwrap();
        assert_eq!(tg, vec![vec![6, 7, 8], vec![10, 11, 0]]);
        assert_eq!((batch.tokens, batch.trained), (5, 4));
        assert!(Encoded::from_ids(&[1, 2], &[], 8).is_none());
    }
}
