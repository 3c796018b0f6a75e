//! Softmax and picked log-probabilities on candle-nn's fused softmax kernel (one pass on the
//! GPU, f32 accumulation for bf16), with backward passes: the composed-op path's (any device,
//! any dtype) replacement for chains of broadcast ops, which were most of a GPU step's time
//! (each op one strided kernel forward, two or three backward, plus candle's gradient sum).
//!
//! candle-nn 0.11's `softmax_last_dim` records no gradient, so each value here is computed
//! outside the graph and re-attached to its inputs by a custom op that is the identity on
//! that value and whose backward is the function's.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp2, CustomOp3, Layout, Shape};
use candle_core::{Tensor, D};

/// The forward of every op here: a copy of the value computed outside the graph (`v`, a
/// fresh contiguous tensor), whatever the device.
fn identity<S: BackendStorage>(v: &S, l: &Layout) -> candle_core::Result<(S, Shape)> {
    Ok((v.try_clone(l)?, l.shape().clone()))
}

/// Identity on the second argument; backward: softmax's, to the first.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "softmax-last-dim-with-grad"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        y: &CpuStorage,
        l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        identity(y, l)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        y: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        identity(y, l)
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _y: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // dx = y ⊙ (g − Σ g ⊙ y)
        let dot = (grad * res)?.sum_keepdim(D::Minus1)?;
        Ok((Some((res * grad.broadcast_sub(&dot)?)?), None))
    }
}

/// `softmax(x)` over the last dimension, differentiable.
pub fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let x = x.contiguous()?;
    let y = candle_nn::ops::softmax_last_dim(&x.detach())?;
    x.apply_op2(&y, SoftmaxGrad)
}

/// Identity on the third argument (the picked log-probabilities); backward: to the logits
/// (first argument) `g · (onehot(target) − softmax(logits))`.
struct PickedLogProbGrad;

impl CustomOp3 for PickedLogProbGrad {
    fn name(&self) -> &'static str {
        "picked-log-prob-with-grad"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        v: &CpuStorage,
        l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        identity(v, l)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        v: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        identity(v, l)
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.unsqueeze(1)?;
        let p = candle_nn::ops::softmax_last_dim(&logits.detach())?;
        let dx = p.broadcast_mul(&g)?.neg()?;
        let dx = dx.scatter_add(&targets.unsqueeze(1)?, &g, 1)?;
        Ok((Some(dx), None, None))
    }
}

/// `log softmax(logits)[i, targets[i]]` for logits `[n, vocab]` and u32 targets `[n]`,
/// differentiable in the logits; the `[n, vocab]` log-softmax never enters the graph.
pub fn picked_log_prob(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let logits = logits.contiguous()?;
    let x = logits.detach();
    let max = x.max_keepdim(D::Minus1)?;
    let lse = (x
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + &max)?;
    let picked = x.gather(&targets.unsqueeze(1)?, 1)?;
    let v = (picked - lse)?.squeeze(1)?;
    logits.apply_op3(targets, &v, PickedLogProbGrad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn var(v: Vec<f64>, shape: (usize, usize)) -> Var {
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = crate::ml::init::rng(seed);
        crate::ml::init::normal(&mut rng, n, 2.0)
            .into_iter()
            .map(f64::from)
            .collect()
    }

    fn flat(t: &Tensor) -> Vec<f64> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// `ours` and `reference` (functions of `x`) agree, and so do the gradients of
    /// `sum(f(x) ⊙ w)` with respect to `x`.
    fn assert_same_values_and_grads(x: &Var, ours: &Tensor, reference: &Tensor, w: &Tensor) {
        for (a, b) in flat(ours).iter().zip(flat(reference)) {
            assert!((a - b).abs() < 1e-12, "{a} {b}");
        }
        let grad = |f: &Tensor| {
            let g = (f * w).unwrap().sum_all().unwrap().backward().unwrap();
            flat(g.get(x.as_tensor()).unwrap())
        };
        for (a, b) in grad(ours).iter().zip(grad(reference)) {
            assert!((a - b).abs() < 1e-12, "{a} {b}");
        }
    }

    #[test]
    fn softmax_and_its_gradient_match_the_composed_ops() {
        let x = var(values(15, 1), (3, 5));
        let w = Tensor::from_vec(values(15, 2), (3, 5), &Device::Cpu).unwrap();
        let ours = softmax_last(x.as_tensor()).unwrap();
        let max = x.as_tensor().max_keepdim(D::Minus1).unwrap().detach();
        let e = x.as_tensor().broadcast_sub(&max).unwrap().exp().unwrap();
        let reference = e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap();
        assert_same_values_and_grads(&x, &ours, &reference, &w);
    }

    #[test]
    fn picked_log_probs_and_their_gradient_match_the_composed_ops() {
        let x = var(values(12, 3), (3, 4));
        let tg = Tensor::new(&[2u32, 0, 3], &Device::Cpu).unwrap();
        let w = Tensor::new(&[0.5f64, -1.0, 2.0], &Device::Cpu).unwrap();
        let ours = picked_log_prob(x.as_tensor(), &tg).unwrap();
        let lsm = candle_nn::ops::log_softmax(x.as_tensor(), D::Minus1).unwrap();
        let reference = lsm
            .gather(&tg.unsqueeze(1).unwrap(), 1)
            .unwrap()
            .squeeze(1)
            .unwrap();
        assert_same_values_and_grads(&x, &ours, &reference, &w);
        assert_eq!(ours.dtype(), DType::F64);
    }
}
