//! Fused CPU kernels with their own backward pass (candle `CustomOp`s): GPT-2's tanh GELU,
//! softmax over the last dimension, and layer norm. candle 0.11 composes these from ~10
//! elementwise temporaries each (forward and backward), which dominated training time;
//! here each is one pass over the data. Gradients are checked against the composed forms
//! in the tests below and by the model's finite-difference test.

use candle_core::CustomOp3;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::ml::kernels::{
    exp, row_block_sums, rows_mut, slice, softmax_in_place, sum, with_f32, PAR_MIN, SUM_BLOCK_ROWS,
};

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

/// tanh through one `exp`: glibc's `tanhf` (via `expm1f`) was 18% of training time.
/// Absolute error ~2e-7, saturating correctly at both ends (the clamped `exp` gives 1 and -1).
fn fast_tanh(u: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * u) + 1.0)
}

pub(crate) fn gelu_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + fast_tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x)))
}

pub(crate) fn gelu_grad_scalar(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + GELU_C * x * x * x);
    let t = fast_tanh(u);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "gelu")?;
        let mut out = vec![0f32; x.len()];
        rows_mut(&mut out, 4096, |i, r| {
            let xs = &x[i * 4096..i * 4096 + r.len()];
            for (o, &v) in r.iter_mut().zip(xs) {
                *o = gelu_scalar(v);
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let out = with_f32(arg, |x| {
            with_f32(grad, |g| {
                let mut out = vec![0f32; x.len()];
                rows_mut(&mut out, 4096, |i, r| {
                    let o = i * 4096;
                    for (j, d) in r.iter_mut().enumerate() {
                        *d = g[o + j] * gelu_grad_scalar(x[o + j]);
                    }
                });
                Ok(out)
            })
        })?;
        Ok(Some(Tensor::from_vec(out, arg.shape(), arg.device())?))
    }
}

/// GPT-2's tanh-approximated GELU (`gelu_new`), differentiable.
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}

/// Softmax over the last dimension of `scale * x`, optionally causal: for a square
/// `[.., t, t]` input, row `i` sees columns `0..=i` only (the rest get probability 0).
/// Folding the scale and mask in saves two full passes over the attention scores.
struct Softmax {
    scale: f32,
    causal: bool,
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax-last"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "softmax")?;
        let cols = l.dims().last().copied().unwrap_or(1).max(1);
        let (scale, causal) = (self.scale, self.causal);
        let mut out = vec![0f32; x.len()];
        rows_mut(&mut out, cols, |i, r| {
            let seen = if causal { i % cols + 1 } else { cols };
            r[..seen].copy_from_slice(&x[i * cols..i * cols + seen]);
            softmax_in_place(&mut r[..seen], scale);
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        // dx = scale * y * (dy - sum(dy * y)); masked entries have y = 0.
        let scale = self.scale;
        let cols = res.dims().last().copied().unwrap_or(1).max(1);
        let out = with_f32(res, |y| {
            with_f32(grad, |g| {
                let mut out = vec![0f32; y.len()];
                rows_mut(&mut out, cols, |i, r| {
                    let o = i * cols;
                    let dot: f32 = (0..cols).map(|j| g[o + j] * y[o + j]).sum();
                    for (j, d) in r.iter_mut().enumerate() {
                        *d = scale * y[o + j] * (g[o + j] - dot);
                    }
                });
                Ok(out)
            })
        })?;
        Ok(Some(Tensor::from_vec(out, res.shape(), res.device())?))
    }
}

/// Softmax over the last dimension, differentiable.
pub fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax {
        scale: 1.0,
        causal: false,
    })
}

/// `softmax(scale * x + causal_mask)` over the last dimension of square `[.., t, t]`
/// attention scores, differentiable.
pub fn causal_softmax(x: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
    let d = x.dims();
    if d.len() < 2 || d[d.len() - 1] != d[d.len() - 2] {
        candle_core::bail!("causal_softmax: expected square attention scores, got {d:?}");
    }
    x.contiguous()?.apply_op1(Softmax {
        scale: scale as f32,
        causal: true,
    })
}

struct LayerNorm {
    eps: f32,
}

/// Per-row mean and 1/std.
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += (v - mean) * (v - mean);
        }
    }
    let var = (sum(&acc) + tail) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "layer_norm")?;
        let w = slice(s2, l2, "layer_norm")?;
        let b = slice(s3, l3, "layer_norm")?;
        let cols = w.len();
        if cols == 0 || x.len() % cols != 0 || b.len() != cols {
            candle_core::bail!("layer_norm: shape mismatch");
        }
        let eps = self.eps;
        let mut out = vec![0f32; x.len()];
        rows_mut(&mut out, cols, |i, r| {
            let xs = &x[i * cols..(i + 1) * cols];
            let (mean, inv) = row_stats(xs, eps);
            for (((o, &xv), &wv), &bv) in r.iter_mut().zip(xs).zip(w).zip(b) {
                *o = (xv - mean) * inv * wv + bv;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(
        &self,
        x_t: &Tensor,
        w_t: &Tensor,
        b_t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let eps = self.eps;
        let (dx, dw, db) = with_f32(x_t, |x| {
            with_f32(w_t, |w| {
                with_f32(grad, |g| Ok(layer_norm_bwd(x, w, g, eps)))
            })
        })?;
        let dev = x_t.device();
        let dx = Some(Tensor::from_vec(dx, x_t.shape(), dev)?);
        // Frozen gain and bias (LoRA): no gradient buffers.
        let keep = |v: Vec<f32>, t: &Tensor| -> candle_core::Result<Option<Tensor>> {
            if t.track_op() {
                Ok(Some(Tensor::from_vec(v, t.shape(), dev)?))
            } else {
                Ok(None)
            }
        };
        Ok((dx, keep(dw, w_t)?, keep(db, b_t)?))
    }
}

/// Layer-norm gradients `(dx, dw, db)` for input rows `x`, gain `w` and output gradient `g`.
fn layer_norm_bwd(x: &[f32], w: &[f32], g: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let cols = w.len();
    let n = cols as f32;
    let stats: Vec<(f32, f32)> = if x.len() >= PAR_MIN && rayon::current_num_threads() > 1 {
        x.par_chunks_exact(cols)
            .map(|r| row_stats(r, eps))
            .collect()
    } else {
        x.chunks_exact(cols).map(|r| row_stats(r, eps)).collect()
    };
    // dx = inv * (gw - mean(gw) - xhat * mean(gw * xhat)), gw = g * w, where
    // sum(gw * xhat) = inv * (sum(gw * x) - mean * sum(gw)).
    let mut dx = vec![0f32; x.len()];
    rows_mut(&mut dx, cols, |i, r| {
        let o = i * cols;
        let (xs, gs) = (&x[o..o + cols], &g[o..o + cols]);
        let (mean, inv) = stats[i];
        let (mut a1, mut a2) = ([0f32; 8], [0f32; 8]);
        for ((xc, gc), wc) in xs.chunks(8).zip(gs.chunks(8)).zip(w.chunks(8)) {
            for k in 0..xc.len() {
                let gw = gc[k] * wc[k];
                a1[k] += gw;
                a2[k] += gw * xc[k];
            }
        }
        let m1 = sum(&a1) / n;
        let m2 = inv * (sum(&a2) / n - mean * m1);
        for (((d, &xv), &gv), &wv) in r.iter_mut().zip(xs).zip(gs).zip(w) {
            let xhat = (xv - mean) * inv;
            *d = inv * (gv * wv - m1 - xhat * m2);
        }
    });
    // dw and db side by side in one accumulator, reduced over fixed row blocks.
    let mut dwb = row_block_sums(stats.len(), 2 * cols, |blk, rows, acc| {
        let (dw, db) = acc.split_at_mut(cols);
        let r0 = blk * SUM_BLOCK_ROWS;
        for r in r0..r0 + rows {
            let (xs, gs) = (&x[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
            let (mean, inv) = stats[r];
            for (((dwj, dbj), &xv), &gv) in dw.iter_mut().zip(db.iter_mut()).zip(xs).zip(gs) {
                *dwj += gv * (xv - mean) * inv;
                *dbj += gv;
            }
        }
    });
    let db = dwb.split_off(cols);
    (dx, dwb, db)
}

/// Layer norm over the last dimension with gain `w` and bias `b`, differentiable in all three.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        LayerNorm { eps: eps as f32 },
    )
}

/// `log_softmax(logits)[n, target[n]]` for logits `[n, v]`: the per-token log-likelihood,
/// without materialising the `[n, v]` log-softmax (forward) or a scatter (backward).
struct PickLogprob;

/// Per-row max and log-sum-exp.
fn row_lse(x: &[f32]) -> f32 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = x.iter().map(|v| exp(v - max)).sum();
    max + sum.ln()
}

fn targets(s: &CpuStorage, l: &Layout) -> candle_core::Result<Vec<usize>> {
    let (a, b) = match l.contiguous_offsets() {
        Some(o) => o,
        None => candle_core::bail!("pick_logprob: targets must be contiguous"),
    };
    match s {
        CpuStorage::U32(v) => Ok(v[a..b].iter().map(|&t| t as usize).collect()),
        _ => candle_core::bail!("pick_logprob: targets must be u32"),
    }
}

impl CustomOp2 for PickLogprob {
    fn name(&self) -> &'static str {
        "fused-pick-logprob"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "pick_logprob")?;
        let tg = targets(s2, l2)?;
        let (n, v) = l1.shape().dims2()?;
        if tg.len() != n || tg.iter().any(|&t| t >= v) {
            candle_core::bail!(
                "pick_logprob: {} targets for {n} rows of {v} logits",
                tg.len()
            );
        }
        let mut out = vec![0f32; n];
        let f = |(i, o): (usize, &mut f32)| {
            let row = &x[i * v..(i + 1) * v];
            *o = row[tg[i]] - row_lse(row);
        };
        if x.len() >= PAR_MIN {
            out.par_iter_mut().enumerate().for_each(f);
        } else {
            out.iter_mut().enumerate().for_each(f);
        }
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
    fn bwd(
        &self,
        logits: &Tensor,
        tg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // d/dx_j = g * (1[j = t] - softmax(x)_j)
        let tg: Vec<u32> = tg.flatten_all()?.to_vec1()?;
        let v = logits.dims().last().copied().unwrap_or(1).max(1);
        let out = with_f32(logits, |x| {
            with_f32(grad, |g| {
                let mut out = vec![0f32; x.len()];
                rows_mut(&mut out, v, |i, r| {
                    let row = &x[i * v..(i + 1) * v];
                    let lse = row_lse(row);
                    for (d, &xv) in r.iter_mut().zip(row) {
                        *d = -g[i] * exp(xv - lse);
                    }
                    r[tg[i] as usize] += g[i];
                });
                Ok(out)
            })
        })?;
        Ok((
            Some(Tensor::from_vec(out, logits.shape(), logits.device())?),
            None,
        ))
    }
}

/// Log-probabilities `[n]` of `targets` `[n]` (u32) under `logits` `[n, v]`, differentiable
/// in the logits.
pub fn pick_logprob(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, PickLogprob)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_is_accurate_and_saturates() {
        for i in -2000..=2000 {
            let u = i as f32 * 0.01;
            assert!((fast_tanh(u) - u.tanh()).abs() < 3e-7, "{u}");
        }
        assert_eq!(fast_tanh(100.0), 1.0);
        assert_eq!(fast_tanh(-100.0), -1.0);
    }
    use candle_core::{Device, Var, D};

    fn host(t: &Tensor) -> candle_core::Result<Vec<f32>> {
        t.flatten_all()?.to_vec1::<f32>()
    }

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let a = host(a).unwrap();
        let b = host(b).unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    fn input(seed: u64, shape: (usize, usize)) -> Var {
        let mut rng = crate::ml::init::rng(seed);
        let v = crate::ml::init::normal(&mut rng, shape.0 * shape.1, 1.5);
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    /// Forward values and gradients (through a random projection) match candle's composed ops.
    #[test]
    fn fused_ops_match_composed_ops() {
        let x = input(1, (37, 24));
        let w = input(2, (1, 24));
        let b = input(3, (1, 24));
        let proj = input(4, (37, 24)).as_tensor().clone();
        let w1 = w.as_tensor().flatten_all().unwrap();
        let b1 = b.as_tensor().flatten_all().unwrap();
        type F<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;
        let sq = input(5, (24, 24));
        let mask = crate::ml::layers::causal_bias(24, 24, &Device::Cpu)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap();
        let cf = causal_softmax(sq.as_tensor(), 0.3).unwrap();
        let cc = candle_nn::ops::softmax(
            &(sq.as_tensor() * 0.3)
                .unwrap()
                .broadcast_add(&mask)
                .unwrap(),
            D::Minus1,
        )
        .unwrap();
        close(&cf, &cc, 1e-5);
        let p24 = proj.narrow(0, 0, 24).unwrap();
        let gf = (cf * &p24).unwrap().sum_all().unwrap().backward().unwrap();
        let gc = (cc * &p24).unwrap().sum_all().unwrap().backward().unwrap();
        close(
            gf.get(sq.as_tensor()).unwrap(),
            gc.get(sq.as_tensor()).unwrap(),
            1e-4,
        );
        let cases: Vec<(F, F)> = vec![
            (
                Box::new(|t| gelu(t).unwrap()),
                Box::new(|t| t.gelu().unwrap()),
            ),
            (
                Box::new(|t| softmax_last(t).unwrap()),
                Box::new(|t| candle_nn::ops::softmax(t, D::Minus1).unwrap()),
            ),
            (
                Box::new(|t| layer_norm(t, &w1, &b1, 1e-5).unwrap()),
                Box::new(|t| crate::ml::layers::layer_norm_composed(t, &w1, &b1).unwrap()),
            ),
        ];
        let tg = Tensor::from_vec(
            (0..37u32).map(|i| (i * 7) % 24).collect::<Vec<_>>(),
            37,
            &Device::Cpu,
        )
        .unwrap();
        let tg2 = tg.unsqueeze(1).unwrap();
        let proj1 = proj.narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
        let pf = pick_logprob(x.as_tensor(), &tg).unwrap();
        let pc = candle_nn::ops::log_softmax(x.as_tensor(), D::Minus1)
            .unwrap()
            .gather(&tg2, D::Minus1)
            .unwrap()
            .squeeze(1)
            .unwrap();
        close(&pf, &pc, 1e-5);
        let gf = (pf * &proj1)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gc = (pc * &proj1)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        close(
            gf.get(x.as_tensor()).unwrap(),
            gc.get(x.as_tensor()).unwrap(),
            1e-4,
        );
        assert!(pick_logprob(x.as_tensor(), &(tg + 100.0).unwrap()).is_err());
        for (fused, composed) in cases {
            let yf = fused(x.as_tensor());
            let yc = composed(x.as_tensor());
            close(&yf, &yc, 1e-5);
            let gf = (yf * &proj).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (yc * &proj).unwrap().sum_all().unwrap().backward().unwrap();
            close(
                gf.get(x.as_tensor()).unwrap(),
                gc.get(x.as_tensor()).unwrap(),
                1e-4,
            );
            if let (Some(a), Some(c)) = (gf.get(&w1), gc.get(&w1)) {
                close(a, c, 1e-4);
            }
        }
    }
}
