//! Per-layer keys and values of the tokens seen so far, for incremental generation.

use candle_core::Tensor;

use crate::ml::error::{MlError, Result};

/// Per-layer keys and values `[batch, kv_heads, time, head_dim]`.
/// Not `Clone`: the buffers are written in place, so a clone would share them.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
}

/// One layer's keys and values, in buffers sized for the whole context and written in
/// place. Growing them by concatenation allocated a new, larger buffer every token, which
/// the tuned allocator (`alloc.rs`) kept in the heap: 3.4 GB of RSS for 200 answers of 256
/// tokens.
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

    /// Layer `l`'s slot (empty until the first [`LayerKv::append`]).
    pub fn layer_mut(&mut self, l: usize) -> Option<&mut Option<LayerKv>> {
        self.layers.get_mut(l)
    }
}

impl LayerKv {
    /// Appends `k`, `v` `[batch, heads, new, head_dim]` (allocating `capacity` positions
    /// on first use) and returns views of every cached position.
    pub fn append(
        slot: &mut Option<LayerKv>,
        k: &Tensor,
        v: &Tensor,
        capacity: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (b, h, t, d) = k.dims4()?;
        let layer = match slot {
            Some(l) => l,
            None => slot.insert(LayerKv {
                k: Tensor::zeros((b, h, capacity, d), k.dtype(), k.device())?,
                v: Tensor::zeros((b, h, capacity, v.dim(3)?), v.dtype(), v.device())?,
                len: 0,
            }),
        };
        if layer.len + t > capacity || layer.k.dims()[0] != b {
            return Err(MlError::Invalid(format!(
                "key/value cache of {capacity} positions for batch {} cannot take {t} more for batch {b}",
                layer.k.dims()[0]
            )));
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
