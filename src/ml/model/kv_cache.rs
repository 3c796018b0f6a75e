//! Per-layer keys and values of the tokens seen so far, for incremental generation.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::ml::error::{MlError, Result};

/// Positions a layer's buffers start with (unless the prefill or the context says otherwise).
pub const MIN_POSITIONS: usize = 256;

/// Per-layer keys and values `[batch, kv_heads, time, head_dim]`.
/// Not `Clone`: the buffers are written in place, so a clone would share them.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    /// Weight matrices laid out `[in, out]` for decoding steps, by parameter index (see
    /// `llama_ops`, "Decoding steps"). Made on first use and dropped with the cache: a
    /// model trained between two generations (RL) never decodes with stale copies.
    transposed: HashMap<usize, Tensor>,
}

/// One layer's keys and values, in buffers written in place. Growing them by concatenation
/// allocated a new, larger buffer every token, which the tuned allocator (`alloc.rs`) kept
/// in the heap: 3.4 GB of RSS for 200 answers of 256 tokens. Sizing them for the whole
/// context up front cost a long-context model (SmolLM2: 8192 positions, 30 layers) 377 MB
/// per row before the first token; so they start at [`MIN_POSITIONS`] (or the prefill) and
/// double when full, up to the context: a handful of reallocations per answer.
#[derive(Debug)]
pub struct LayerKv {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl KvCache {
    pub fn new(layers: usize) -> Self {
        KvCache {
            layers: (0..layers).map(|_| None).collect(),
            transposed: HashMap::new(),
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some(l)) => l.len,
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes the cache hold `layers` layers, emptying it if it held another number.
    pub fn ensure_layers(&mut self, layers: usize) {
        if self.layers.len() != layers {
            *self = KvCache::new(layers);
        }
    }

    /// Parameter `i` (the matrix `w` `[out, in]`) laid out `[in, out]`, made on first use.
    pub fn transposed(&mut self, i: usize, w: &Tensor) -> Result<Tensor> {
        if let Some(t) = self.transposed.get(&i) {
            return Ok(t.clone());
        }
        let (rows, cols) = w.dims2()?;
        let data =
            crate::ml::kernels::with_f32(w, |a| crate::ml::kernels::transpose(a, rows, cols))?;
        let t = Tensor::from_vec(data, (cols, rows), w.device())?;
        self.transposed.insert(i, t.clone());
        Ok(t)
    }

    /// Layer `l`'s slot (empty until the first [`LayerKv::append`]).
    pub fn layer_mut(&mut self, l: usize) -> Option<&mut Option<LayerKv>> {
        self.layers.get_mut(l)
    }
}

impl LayerKv {
    /// Appends `k`, `v` `[batch, heads, new, head_dim]` (growing the buffers as needed, to
    /// at most `capacity` positions) and returns views of every cached position.
    pub fn append(
        slot: &mut Option<LayerKv>,
        k: &Tensor,
        v: &Tensor,
        capacity: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (b, h, t, d) = k.dims4()?;
        let alloc = |n: usize| -> Result<(Tensor, Tensor)> {
            Ok((
                Tensor::zeros((b, h, n, d), k.dtype(), k.device())?,
                Tensor::zeros((b, h, n, v.dim(3)?), v.dtype(), v.device())?,
            ))
        };
        let layer = match slot {
            Some(l) => l,
            None => {
                let (k0, v0) = alloc(capacity.min(t.max(MIN_POSITIONS)))?;
                slot.insert(LayerKv {
                    k: k0,
                    v: v0,
                    len: 0,
                })
            }
        };
        if layer.len + t > capacity || layer.k.dims()[0] != b {
            return Err(MlError::Invalid(format!(
                "key/value cache of {capacity} positions for batch {} cannot take {t} more for batch {b}",
                layer.k.dims()[0]
            )));
        }
        let held = layer.k.dim(2)?;
        if layer.len + t > held {
            let grown = capacity.min((layer.len + t).max(held.saturating_mul(2)));
            let (k1, v1) = alloc(grown)?;
            if layer.len > 0 {
                k1.slice_set(&layer.k.narrow(2, 0, layer.len)?.contiguous()?, 2, 0)?;
                v1.slice_set(&layer.v.narrow(2, 0, layer.len)?.contiguous()?, 2, 0)?;
            }
            layer.k = k1;
            layer.v = v1;
        }
        layer.k.slice_set(&k.contiguous()?, 2, layer.len)?;
        layer.v.slice_set(&v.contiguous()?, 2, layer.len)?;
        layer.len += t;
        Ok((
            layer.k.narrow(2, 0, layer.len)?,
            layer.v.narrow(2, 0, layer.len)?,
        ))
    }
}
