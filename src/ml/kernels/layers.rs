//! Differentiable building blocks. Everything here records a gradient: no candle-nn fused
//! kernels (their 0.11 CPU versions silently drop the backward pass).

use candle_core::{Device, Tensor, D};

use crate::ml::config::LAYER_NORM_EPS;
use crate::ml::error::Result;
use crate::ml::fused;

/// `x · w + b` with GPT-2's Conv1D orientation (`w` is `[in, out]`); `x` is 2-D.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(crate::ml::fused_linear::linear(
        x,
        w,
        b,
        crate::ml::fused_linear::Act::None,
    )?)
}

/// Layer norm over the last dimension (fused kernel with its own backward).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(fused::layer_norm(x, w, b, LAYER_NORM_EPS)?)
}

/// Layer norm from differentiable candle ops: the reference the fused kernel is tested
/// against.
pub fn layer_norm_composed(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (var + LAYER_NORM_EPS)?.sqrt()?.recip()?;
    Ok(xc.broadcast_mul(&inv)?.broadcast_mul(w)?.broadcast_add(b)?)
}

pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    Ok(fused::softmax_last(x)?)
}

pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::log_softmax(x, D::Minus1)?)
}

/// A large finite negative (not -inf, so a fully masked row stays finite).
pub const MASKED: f32 = -1e9;

/// Additive causal mask `[1, 1, q, k]` for `q` new queries after `k - q` cached keys.
pub fn causal_bias(q: usize, k: usize, device: &Device) -> Result<Tensor> {
    let offset = k - q.min(k);
    let v: Vec<f32> = (0..q)
        .flat_map(|i| (0..k).map(move |j| if j <= i + offset { 0.0 } else { MASKED }))
        .collect();
    Ok(Tensor::from_vec(v, (1, 1, q, k), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_normalises_and_masks_are_causal() {
        let d = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0, 3.0, 4.0]], &d).unwrap();
        let w = Tensor::ones(4, candle_core::DType::F32, &d).unwrap();
        let b = Tensor::zeros(4, candle_core::DType::F32, &d).unwrap();
        let y: Vec<f32> = layer_norm(&x, &w, &b)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mean: f32 = y.iter().sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6);
        assert!((y[3] - 1.3416).abs() < 1e-3, "{y:?}");
        let m: Vec<f32> = causal_bias(2, 3, &d)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(m, vec![0.0, 0.0, MASKED, 0.0, 0.0, 0.0]);
    }
}
