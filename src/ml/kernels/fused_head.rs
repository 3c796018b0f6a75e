//! The tied output head as candle ops with their own backward: logits `h · wteᵀ`, and the
//! per-token log-likelihood `log_softmax(h · wteᵀ)[target]` straight from the hidden states.
//! The composed head (transpose, matmul, two reshapes, log-softmax pick) put several
//! `[tokens, vocab]` nodes in the graph, each costing candle's backprop a zero-filled
//! buffer and an add of the largest activation in the model; the fused pick keeps the
//! softmax from its forward pass and turns it into the logits' gradient in place.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use rayon::prelude::*;

use crate::ml::kernels::{matmul, rows_mut, slice, softmax_in_place, with_f32, Mat, PAR_MIN};

/// `logits[n×v] = h[n×c] · wteᵀ` (`wte` is `[v, c]`).
fn logits(h: &[f32], wte: &[f32], n: usize, c: usize, v: usize) -> candle_core::Result<Vec<f32>> {
    logits_with(h, wte, Mat::trans(0, c), n, c, v)
}

/// The logits with the embedding read through `wm`: `wteᵀ` of `[v, c]`, or a `[c, v]`
/// copy as is (one product for both layouts, so both give the same bits).
fn logits_with(
    h: &[f32],
    w: &[f32],
    wm: Mat,
    n: usize,
    c: usize,
    v: usize,
) -> candle_core::Result<Vec<f32>> {
    let mut out = vec![0f32; n * v];
    matmul(
        (n, v, c),
        &mut out,
        Mat::rows(0, v),
        false,
        h,
        Mat::rows(0, c),
        w,
        wm,
    )?;
    Ok(out)
}

/// [`tied_head`]'s forward from the embedding laid out `[width, vocab]` (`wteᵀ`), for
/// decoding steps (see `llama_ops`, "Decoding steps"); no gradient.
pub fn tied_head_t(h: &Tensor, wte_t: &Tensor) -> candle_core::Result<Tensor> {
    let (c, v) = wte_t.dims2()?;
    if c == 0 || h.dims().last() != Some(&c) {
        candle_core::bail!("head: hidden {:?} vs wteᵀ {:?}", h.dims(), wte_t.dims());
    }
    let n = h.elem_count() / c;
    let out = with_f32(h, |hs| {
        with_f32(wte_t, |w| logits_with(hs, w, Mat::rows(0, v), n, c, v))
    })?;
    Tensor::from_vec(out, (n, v), h.device())
}

/// `(dh, dwte)` from the logits' gradient `gl` `[n, v]`.
fn head_grads(
    gl: &[f32],
    h_t: &Tensor,
    wte_t: &Tensor,
) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
    let (v, c) = wte_t.dims2()?;
    let n = h_t.elem_count() / c.max(1);
    let mut dh = vec![0f32; n * c];
    // A frozen head (LoRA) gets no gradient and costs no product.
    let need_dw = wte_t.track_op();
    // dh = gl · wte
    with_f32(wte_t, |w| {
        matmul(
            (n, c, v),
            &mut dh,
            Mat::rows(0, c),
            false,
            gl,
            Mat::rows(0, v),
            w,
            Mat::rows(0, c),
        )
    })?;
    let dev = h_t.device();
    let dh = Some(Tensor::from_vec(dh, h_t.shape(), dev)?);
    if !need_dw {
        return Ok((dh, None));
    }
    let mut dw = vec![0f32; v * c];
    // dwte = glᵀ · h
    with_f32(h_t, |h| {
        matmul(
            (v, c, n),
            &mut dw,
            Mat::rows(0, c),
            false,
            gl,
            Mat::trans(0, v),
            h,
            Mat::rows(0, c),
        )
    })?;
    Ok((dh, Some(Tensor::from_vec(dw, wte_t.shape(), dev)?)))
}

fn head_dims(h: &Layout, w: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    let (v, c) = w.shape().dims2()?;
    if c == 0 || h.dims().last() != Some(&c) {
        candle_core::bail!("head: hidden {:?} vs wte {:?}", h.dims(), w.dims());
    }
    Ok((h.shape().elem_count() / c, c, v))
}

struct TiedHead;

impl CustomOp2 for TiedHead {
    fn name(&self) -> &'static str {
        "fused-tied-head"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, v) = head_dims(l1, l2)?;
        let out = logits(slice(s1, l1, "head")?, slice(s2, l2, "head")?, n, c, v)?;
        Ok((CpuStorage::F32(out), Shape::from((n, v))))
    }
    fn bwd(
        &self,
        h: &Tensor,
        wte: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        with_f32(grad, |g| head_grads(g, h, wte))
    }
}

/// Logits `[n, vocab]` of hidden states `h` `[n, width]` under the tied embedding `wte`
/// `[vocab, width]`, differentiable in both.
pub fn tied_head(h: &Tensor, wte: &Tensor) -> candle_core::Result<Tensor> {
    h.contiguous()?.apply_op2(&wte.contiguous()?, TiedHead)
}

struct HeadLogprob {
    /// Softmax of the logits `[n, v]` from the forward pass.
    probs: Mutex<Option<Vec<f32>>>,
}

fn targets(s: &CpuStorage, l: &Layout, n: usize, v: usize) -> candle_core::Result<Vec<usize>> {
    let tg: Vec<usize> = match (s, l.contiguous_offsets()) {
        (CpuStorage::U32(t), Some((a, b))) => t[a..b].iter().map(|&x| x as usize).collect(),
        _ => candle_core::bail!("head_logprob: targets must be contiguous u32"),
    };
    if tg.len() != n || tg.iter().any(|&t| t >= v) {
        candle_core::bail!(
            "head_logprob: {} targets for {n} rows of {v} logits",
            tg.len()
        );
    }
    Ok(tg)
}

/// Turns logit rows of `v` into softmax rows, in place.
fn softmax_rows(x: &mut [f32], v: usize) {
    rows_mut(x, v, |_, r| {
        softmax_in_place(r, 1.0);
    });
}

impl CustomOp3 for HeadLogprob {
    fn name(&self) -> &'static str {
        "fused-head-logprob"
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
        let (n, c, v) = head_dims(l1, l2)?;
        let tg = targets(s3, l3, n, v)?;
        let mut p = logits(slice(s1, l1, "head")?, slice(s2, l2, "head")?, n, c, v)?;
        // log p[target] = x[target] - max - ln(sum exp(x - max)) (finite even where p
        // underflows), computed per row before the row is overwritten with its softmax.
        let mut out = vec![0f32; n];
        let pick = |((row, o), &t): ((&mut [f32], &mut f32), &usize)| {
            let xt = row[t];
            let (max, sum) = softmax_in_place(row, 1.0);
            *o = xt - max - sum.ln();
        };
        if p.len() >= PAR_MIN && rayon::current_num_threads() > 1 {
            p.par_chunks_mut(v)
                .zip(out.par_iter_mut())
                .zip(tg.par_iter())
                .for_each(pick);
        } else {
            p.chunks_mut(v).zip(out.iter_mut()).zip(&tg).for_each(pick);
        }
        if let Ok(mut g) = self.probs.lock() {
            *g = Some(p);
        }
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
    fn bwd(
        &self,
        h: &Tensor,
        wte: &Tensor,
        tg_t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (v, c) = wte.dims2()?;
        let n = h.elem_count() / c.max(1);
        let mut p = match self.probs.lock().ok().and_then(|mut p| p.take()) {
            Some(p) => p,
            None => {
                // Saved state gone (a second backward): recompute it.
                let mut x = with_f32(h, |hs| with_f32(wte, |w| logits(hs, w, n, c, v)))?;
                softmax_rows(&mut x, v);
                x
            }
        };
        let tg: Vec<u32> = tg_t.flatten_all()?.to_vec1()?;
        // d/dx_j = g · (1[j = t] − p_j), written over p.
        with_f32(grad, |g| {
            rows_mut(&mut p, v, |i, r| {
                let gi = g[i];
                r.iter_mut().for_each(|e| *e *= -gi);
                r[tg[i] as usize] += gi;
            });
            Ok(())
        })?;
        let (dh, dw) = head_grads(&p, h, wte)?;
        Ok((dh, dw, None))
    }
}

/// `log_softmax(h · wteᵀ)[n, targets[n]]` `[n]` for hidden states `h` `[n, width]` and u32
/// `targets` `[n]`, differentiable in `h` and `wte`.
pub fn head_logprob(h: &Tensor, wte: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    h.contiguous()?.apply_op3(
        &wte.contiguous()?,
        &targets.contiguous()?,
        HeadLogprob {
            probs: Mutex::new(None),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn var(seed: u64, shape: (usize, usize)) -> Var {
        let mut rng = crate::ml::init::rng(seed);
        let v = crate::ml::init::normal(&mut rng, shape.0 * shape.1, 1.0);
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn close(a: &Tensor, b: &Tensor) {
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    /// Logits, log-likelihoods and their gradients match candle's composed ops, also on a
    /// second backward through the same graph (when the saved softmax is gone).
    #[test]
    fn fused_head_matches_composed() {
        let (h, wte) = (var(1, (9, 6)), var(2, (11, 6)));
        let tg = Tensor::from_vec(
            (0..9u32).map(|i| (i * 5) % 11).collect::<Vec<_>>(),
            9,
            &Device::Cpu,
        )
        .unwrap();
        let logits_c = h.as_tensor().matmul(&wte.as_tensor().t().unwrap()).unwrap();
        close(
            &tied_head(h.as_tensor(), wte.as_tensor()).unwrap(),
            &logits_c,
        );
        let lp_c = candle_nn::ops::log_softmax(&logits_c, D::Minus1)
            .unwrap()
            .gather(&tg.unsqueeze(1).unwrap(), D::Minus1)
            .unwrap()
            .squeeze(1)
            .unwrap();
        let lp_f = head_logprob(h.as_tensor(), wte.as_tensor(), &tg).unwrap();
        close(&lp_f, &lp_c);
        let w =
            Tensor::from_vec((0..9).map(|i| i as f32 - 4.0).collect(), 9, &Device::Cpu).unwrap();
        let loss_f = (&lp_f * &w).unwrap().sum_all().unwrap();
        let gc = (&lp_c * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for _ in 0..2 {
            let gf = loss_f.backward().unwrap();
            for v in [&h, &wte] {
                close(
                    gf.get(v.as_tensor()).unwrap(),
                    gc.get(v.as_tensor()).unwrap(),
                );
            }
        }
        assert!(head_logprob(h.as_tensor(), wte.as_tensor(), &(tg + 20.0).unwrap()).is_err());
    }
}
