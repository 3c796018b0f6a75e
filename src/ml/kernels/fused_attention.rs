//! Causal self-attention from a packed `qkv` `[batch*time, 3*width]` to the merged heads
//! `[batch*time, width]`, as one candle op with its own backward. The composed form
//! (narrow, transpose, contiguous copies, two matmuls, softmax, transpose back) put a dozen
//! nodes per layer in the graph, each costing candle's backprop a zero-filled buffer and an
//! add (the narrows also a zero-padded concatenation); here every head is multiplied in place
//! through strided views of `qkv`, and the probabilities are kept for the backward pass.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::ml::kernels::{dot, matmul, slice, softmax_in_place, with_f32, Mat};

struct Attention {
    batch: usize,
    time: usize,
    heads: usize,
    scale: f32,
    /// Softmax probabilities `[batch, heads, time, time]` from the forward pass.
    probs: Mutex<Option<Vec<f32>>>,
}

/// Runs `f(pair, chunk)` over `(batch, head)` pairs and their disjoint output chunks, in
/// parallel when there are threads to use.
fn per_pair(
    out: &mut [f32],
    chunk: usize,
    f: impl Fn(usize, &mut [f32]) -> candle_core::Result<()> + Sync,
) -> candle_core::Result<()> {
    if rayon::current_num_threads() > 1 {
        out.par_chunks_mut(chunk)
            .enumerate()
            .try_for_each(|(p, c)| f(p, c))
    } else {
        out.chunks_mut(chunk)
            .enumerate()
            .try_for_each(|(p, c)| f(p, c))
    }
}

impl Attention {
    /// `(width, head_dim)` for a `qkv` of `cols` columns.
    fn widths(&self, cols: usize) -> candle_core::Result<(usize, usize)> {
        let c = cols / 3;
        if !cols.is_multiple_of(3) || self.heads == 0 || !c.is_multiple_of(self.heads) {
            candle_core::bail!("attention: {cols} qkv columns for {} heads", self.heads);
        }
        Ok((c, c / self.heads))
    }

    /// Probabilities `p` `[t, t]` for pair `pair`: causal softmax of `scale · q kᵀ`.
    fn probs(
        &self,
        qkv: &[f32],
        c: usize,
        d: usize,
        pair: usize,
        p: &mut [f32],
    ) -> candle_core::Result<()> {
        let t = self.time;
        let (b, h) = (pair / self.heads, pair % self.heads);
        let base = b * t * 3 * c + h * d;
        matmul(
            (t, t, d),
            p,
            Mat::rows(0, t),
            false,
            qkv,
            Mat::rows(base, 3 * c),
            qkv,
            Mat::trans(base + c, 3 * c),
        )?;
        for (i, row) in p.chunks_mut(t).enumerate() {
            let (seen, masked) = row.split_at_mut(i + 1);
            softmax_in_place(seen, self.scale);
            masked.iter_mut().for_each(|v| *v = 0.0);
        }
        Ok(())
    }
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "fused-causal-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, cols) = l.shape().dims2()?;
        let (b, t, nh) = (self.batch, self.time, self.heads);
        if rows != b * t {
            candle_core::bail!("attention: {rows} rows for batch {b} x time {t}");
        }
        let (c, d) = self.widths(cols)?;
        let qkv = slice(s, l, "attention")?;
        // Per pair: probabilities [t, t] then that head's output [t, d].
        let chunk = t * t + t * d;
        let mut work = vec![0f32; b * nh * chunk];
        per_pair(&mut work, chunk, |pair, w| {
            let (p, y) = w.split_at_mut(t * t);
            self.probs(qkv, c, d, pair, p)?;
            let base = (pair / nh) * t * 3 * c + (pair % nh) * d;
            matmul(
                (t, d, t),
                y,
                Mat::rows(0, d),
                false,
                p,
                Mat::rows(0, t),
                qkv,
                Mat::rows(base + 2 * c, 3 * c),
            )
        })?;
        // Merge heads: [b, h, t, d] -> [b, t, h*d]; keep the probabilities.
        let mut out = vec![0f32; rows * c];
        let mut probs = Vec::with_capacity(b * nh * t * t);
        for (pair, w) in work.chunks(chunk).enumerate() {
            probs.extend_from_slice(&w[..t * t]);
            let (bi, h) = (pair / nh, pair % nh);
            for (i, yr) in w[t * t..].chunks(d).enumerate() {
                let o = (bi * t + i) * c + h * d;
                out[o..o + d].copy_from_slice(yr);
            }
        }
        if let Ok(mut g) = self.probs.lock() {
            *g = Some(probs);
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, c))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (rows, cols) = arg.dims2()?;
        let (b, t, nh) = (self.batch, self.time, self.heads);
        let (c, d) = self.widths(cols)?;
        let saved = self.probs.lock().ok().and_then(|mut p| p.take());
        // Per pair: dq, dk, dv [t, d] each, then scratch [t, t] for dp / ds.
        let chunk = 3 * t * d + t * t;
        let mut work = vec![0f32; b * nh * chunk];
        with_f32(arg, |qkv| {
            with_f32(grad, |gy| {
                per_pair(&mut work, chunk, |pair, w| {
                    let (bi, h) = (pair / nh, pair % nh);
                    let base = bi * t * 3 * c + h * d;
                    let gbase = bi * t * c + h * d;
                    let (dqkv, ds) = w.split_at_mut(3 * t * d);
                    let mut own = Vec::new();
                    let p: &[f32] = match &saved {
                        Some(all) => &all[pair * t * t..(pair + 1) * t * t],
                        None => {
                            // Saved state gone (a second backward): recompute it.
                            own.resize(t * t, 0.0);
                            self.probs(qkv, c, d, pair, &mut own)?;
                            &own
                        }
                    };
                    let (dq, rest) = dqkv.split_at_mut(t * d);
                    let (dk, dv) = rest.split_at_mut(t * d);
                    // dv = pᵀ · gy
                    matmul(
                        (t, d, t),
                        dv,
                        Mat::rows(0, d),
                        false,
                        p,
                        Mat::trans(0, t),
                        gy,
                        Mat::rows(gbase, c),
                    )?;
                    // dp = gy · vᵀ
                    matmul(
                        (t, t, d),
                        ds,
                        Mat::rows(0, t),
                        false,
                        gy,
                        Mat::rows(gbase, c),
                        qkv,
                        Mat::trans(base + 2 * c, 3 * c),
                    )?;
                    // ds = scale · p ⊙ (dp − Σ dp ⊙ p); masked entries have p = 0.
                    for (i, row) in ds.chunks_mut(t).enumerate() {
                        let pr = &p[i * t..(i + 1) * t];
                        let dot = dot(row, pr);
                        for (v, &pv) in row.iter_mut().zip(pr) {
                            *v = self.scale * pv * (*v - dot);
                        }
                    }
                    // dq = ds · k, dk = dsᵀ · q
                    matmul(
                        (t, d, t),
                        dq,
                        Mat::rows(0, d),
                        false,
                        ds,
                        Mat::rows(0, t),
                        qkv,
                        Mat::rows(base + c, 3 * c),
                    )?;
                    matmul(
                        (t, d, t),
                        dk,
                        Mat::rows(0, d),
                        false,
                        ds,
                        Mat::trans(0, t),
                        qkv,
                        Mat::rows(base, 3 * c),
                    )
                })
            })
        })?;
        // Scatter [b, h, (q|k|v), t, d] back into the packed [b*t, 3*width] layout.
        let mut out = vec![0f32; rows * cols];
        for (pair, w) in work.chunks(chunk).enumerate() {
            let (bi, h) = (pair / nh, pair % nh);
            for part in 0..3 {
                let src = &w[part * t * d..(part + 1) * t * d];
                for (i, r) in src.chunks(d).enumerate() {
                    let o = (bi * t + i) * cols + part * c + h * d;
                    out[o..o + d].copy_from_slice(r);
                }
            }
        }
        Ok(Some(Tensor::from_vec(out, arg.shape(), arg.device())?))
    }
}

/// Causal multi-head attention of `heads` heads over `qkv` `[batch*time, 3*width]` (GPT-2's
/// packed q|k|v), scores scaled by `scale`; returns `[batch*time, width]`, differentiable.
pub fn causal_attention(
    qkv: &Tensor,
    batch: usize,
    time: usize,
    heads: usize,
    scale: f64,
) -> candle_core::Result<Tensor> {
    qkv.contiguous()?.apply_op1(Attention {
        batch,
        time,
        heads,
        scale: scale as f32,
        probs: Mutex::new(None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    /// The composed reference: split heads, masked softmax, merge.
    fn composed(qkv: &Tensor, b: usize, t: usize, h: usize) -> Tensor {
        let c = qkv.dims()[1] / 3;
        let d = c / h;
        let x = qkv.reshape((b, t, 3, h, d)).unwrap();
        let part = |i| {
            x.narrow(2, i, 1)
                .unwrap()
                .squeeze(2)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let mask = crate::ml::layers::causal_bias(t, t, &Device::Cpu).unwrap();
        let s = (q.matmul(&k.t().unwrap()).unwrap() * (1.0 / (d as f64).sqrt()))
            .unwrap()
            .broadcast_add(&mask)
            .unwrap();
        let p = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
        p.matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b * t, c))
            .unwrap()
    }

    #[test]
    fn fused_attention_matches_composed() {
        let (b, t, h, c) = (2, 5, 2, 6);
        let mut rng = crate::ml::init::rng(3);
        let v = crate::ml::init::normal(&mut rng, b * t * 3 * c, 1.0);
        let qkv =
            Var::from_tensor(&Tensor::from_vec(v, (b * t, 3 * c), &Device::Cpu).unwrap()).unwrap();
        let pv = crate::ml::init::normal(&mut rng, b * t * c, 1.0);
        let proj = Tensor::from_vec(pv, (b * t, c), &Device::Cpu).unwrap();
        let scale = 1.0 / ((c / h) as f64).sqrt();
        let yf = causal_attention(qkv.as_tensor(), b, t, h, scale).unwrap();
        let yc = composed(qkv.as_tensor(), b, t, h);
        let loss_f = (&yf * &proj).unwrap().sum_all().unwrap();
        let gc = (&yc * &proj)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gc = gc.get(qkv.as_tensor()).unwrap().clone();
        // The second backward runs without the saved probabilities.
        let g1 = loss_f.backward().unwrap();
        let g2 = loss_f.backward().unwrap();
        let pairs = [
            (yf, yc),
            (g1.get(qkv.as_tensor()).unwrap().clone(), gc.clone()),
            (g2.get(qkv.as_tensor()).unwrap().clone(), gc),
        ];
        for (a, e) in pairs {
            let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
            let e: Vec<f32> = e.flatten_all().unwrap().to_vec1().unwrap();
            for (x, y) in a.iter().zip(&e) {
                assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
            }
        }
    }
}
