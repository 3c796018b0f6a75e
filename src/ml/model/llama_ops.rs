//! Fused CPU ops for the Llama family, each a candle `CustomOp` with its own backward pass:
//! the linear map in Hugging Face's `[out, in]` orientation, RMSNorm, rotary embeddings,
//! SwiGLU (gate and up projections with the activation in one op), and causal grouped-query
//! attention over separate q/k/v.
//!
//! Why: candle-nn 0.11's fused `rms_norm`, `rotary_emb` and `softmax_last_dim` record no
//! gradient, and the composed forms put many small nodes in the graph, each costing
//! candle's backprop a zero-filled buffer and an add per input. These ops keep a Llama
//! block at a handful of large nodes and multiply strided views with the `gemm` crate
//! (`ml/kernels.rs`) instead of materialising transposes or repeated keys.
//!
//! They are f32 and CPU only; `llama.rs` keeps a composed-op path for other devices and
//! dtypes, and the tests check every op here against it (values and gradients).
//! Reductions over rows use fixed blocks (`row_block_sums`), so results do not depend on
//! the thread count.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::ml::kernels::{
    col_sums, dot, exp, matmul, row_block_sums, rows_mut, slice, softmax_in_place, with_f32, Mat,
    SUM_BLOCK_ROWS,
};

/// Runs two independent jobs side by side when there are exactly two threads and the work
/// is large (each gemm on one thread splits poorly at these sizes), else one after the
/// other. Neither job is split, so the result does not depend on the thread count.
fn join2<A: Send, B: Send>(
    big: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if big && rayon::current_num_threads() == 2 {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}

/// `[rows, k]` of an input whose last dimension is `k`.
fn rows_of(l: &Layout, k: usize, op: &str) -> candle_core::Result<usize> {
    let last = l.dims().last().copied().unwrap_or(0);
    if k == 0 || last != k {
        candle_core::bail!("{op}: input {:?} does not end in {k}", l.dims());
    }
    Ok(l.shape().elem_count() / k)
}

fn out_shape(l: &Layout, n: usize) -> Shape {
    let mut dims = l.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = n;
    }
    Shape::from(dims)
}

// ---------------------------------------------------------------------------------------
// Linear, `y = x · wᵀ (+ b)` with `w` `[out, in]`.

struct LinearT;

fn linear_fwd(
    x: &[f32],
    xl: &Layout,
    w: &[f32],
    wl: &Layout,
    b: Option<&[f32]>,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (n, k) = wl.shape().dims2()?;
    let m = rows_of(xl, k, "linear")?;
    let out = linear_rows(x, (m, n, k), w, Mat::trans(0, k), b)?;
    Ok((CpuStorage::F32(out), out_shape(xl, n)))
}

/// `x · w (+ b)` `[m, n]` for `x` `[m, k]`, the weight `w` read through `wm` (`wᵀ` of an
/// `[n, k]` weight, or an `[k, n]` one as is): one product for both layouts, so both give
/// the same bits.
fn linear_rows(
    x: &[f32],
    (m, n, k): (usize, usize, usize),
    w: &[f32],
    wm: Mat,
    b: Option<&[f32]>,
) -> candle_core::Result<Vec<f32>> {
    let mut out = match b {
        Some(b) => {
            if b.len() != n {
                candle_core::bail!("linear: bias of {} for {n} outputs", b.len());
            }
            let mut o = Vec::with_capacity(m * n);
            for _ in 0..m {
                o.extend_from_slice(b);
            }
            o
        }
        None => vec![0f32; m * n],
    };
    matmul(
        (m, n, k),
        &mut out,
        Mat::rows(0, n),
        b.is_some(),
        x,
        Mat::rows(0, k),
        w,
        wm,
    )?;
    Ok(out)
}

/// `(dx, dw, db)` of `y = x · wᵀ + b` from `g` `[m, n]`; `dw` and `db` only when `w` is
/// tracked (a frozen weight, as under LoRA, gets no gradient and costs no product).
fn linear_bwd(
    g: &[f32],
    x_t: &Tensor,
    w_t: &Tensor,
    with_bias: bool,
) -> candle_core::Result<(Tensor, Option<Tensor>, Option<Vec<f32>>)> {
    let (n, k) = w_t.dims2()?;
    let m = x_t.elem_count() / k.max(1);
    let need_dw = w_t.track_op();
    let mut dx = vec![0f32; m * k];
    let mut dw = vec![0f32; if need_dw { n * k } else { 0 }];
    let (dxm, dwm) = (&mut dx, &mut dw);
    let dx_job = move || {
        with_f32(w_t, |w| {
            // dx = g · w
            matmul(
                (m, k, n),
                dxm,
                Mat::rows(0, k),
                false,
                g,
                Mat::rows(0, n),
                w,
                Mat::rows(0, k),
            )
        })
    };
    let dw_job = move || {
        if !need_dw {
            return Ok(None);
        }
        with_f32(x_t, |x| {
            // dw = gᵀ · x
            matmul(
                (n, k, m),
                dwm,
                Mat::rows(0, k),
                false,
                g,
                Mat::trans(0, n),
                x,
                Mat::rows(0, k),
            )?;
            Ok(if with_bias {
                Some(col_sums(g, n))
            } else {
                None
            })
        })
    };
    let (rx, rw) = join2(need_dw && m * n * k >= 1 << 18, dx_job, dw_job);
    rx?;
    let db = rw?;
    let dev = x_t.device();
    let dw = if need_dw {
        Some(Tensor::from_vec(dw, w_t.shape(), dev)?)
    } else {
        None
    };
    Ok((Tensor::from_vec(dx, x_t.shape(), dev)?, dw, db))
}

impl CustomOp2 for LinearT {
    fn name(&self) -> &'static str {
        "llama-linear"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        linear_fwd(
            slice(s1, l1, "linear")?,
            l1,
            slice(s2, l2, "linear")?,
            l2,
            None,
        )
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = with_f32(grad, |g| linear_bwd(g, x, w, false))?;
        Ok((Some(dx), dw))
    }
}

struct LinearTBias;

impl CustomOp3 for LinearTBias {
    fn name(&self) -> &'static str {
        "llama-linear-bias"
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
        linear_fwd(
            slice(s1, l1, "linear")?,
            l1,
            slice(s2, l2, "linear")?,
            l2,
            Some(slice(s3, l3, "linear")?),
        )
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = with_f32(grad, |g| linear_bwd(g, x, w, true))?;
        let db = match db {
            Some(v) => Some(Tensor::from_vec(v, b.shape(), b.device())?),
            None => None,
        };
        Ok((Some(dx), dw, db))
    }
}

/// `x · wᵀ + b` for `x` `[.., in]`, `w` `[out, in]` (Hugging Face's orientation), optional
/// `b` `[out]`; differentiable in all.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    match b {
        None => x.apply_op2(&w, LinearT),
        Some(b) => x.apply_op3(&w, &b.contiguous()?, LinearTBias),
    }
}

// ---------------------------------------------------------------------------------------
// RMSNorm, `y = x · rsqrt(mean(x²) + eps) · w`.

struct RmsNorm {
    eps: f32,
}

/// `1 / sqrt(mean(x²) + eps)` of one row.
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    1.0 / (dot(x, x) / x.len() as f32 + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "llama-rms-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "rms_norm")?;
        let w = slice(s2, l2, "rms_norm")?;
        let c = w.len();
        rows_of(l1, c, "rms_norm")?;
        let eps = self.eps;
        let mut out = vec![0f32; x.len()];
        rows_mut(&mut out, c, |i, r| {
            let xs = &x[i * c..(i + 1) * c];
            let inv = inv_rms(xs, eps);
            for ((o, &xv), &wv) in r.iter_mut().zip(xs).zip(w) {
                *o = wv * (xv * inv);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(
        &self,
        x_t: &Tensor,
        w_t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let eps = self.eps;
        let (dx, dw) = with_f32(x_t, |x| {
            with_f32(w_t, |w| {
                with_f32(grad, |g| {
                    let c = w.len();
                    let nf = c as f32;
                    let rows = x.len() / c.max(1);
                    // dx = inv · g⊙w − x · inv³ · Σ(g⊙w⊙x) / c
                    let mut dx = vec![0f32; x.len()];
                    rows_mut(&mut dx, c, |i, r| {
                        let (xs, gs) = (&x[i * c..(i + 1) * c], &g[i * c..(i + 1) * c]);
                        let inv = inv_rms(xs, eps);
                        let mut acc = [0f32; 8];
                        for ((xc, gc), wc) in xs.chunks(8).zip(gs.chunks(8)).zip(w.chunks(8)) {
                            for j in 0..xc.len() {
                                acc[j] += gc[j] * wc[j] * xc[j];
                            }
                        }
                        let s: f32 = acc.iter().sum();
                        let k = inv * inv * inv * s / nf;
                        for (((d, &xv), &gv), &wv) in r.iter_mut().zip(xs).zip(gs).zip(w) {
                            *d = inv * gv * wv - xv * k;
                        }
                    });
                    // dw = Σ_rows g ⊙ x · inv, over fixed row blocks (frozen: none).
                    if !w_t.track_op() {
                        return Ok((dx, None));
                    }
                    let dw = row_block_sums(rows, c, |blk, n, acc| {
                        let r0 = blk * SUM_BLOCK_ROWS;
                        for r in r0..r0 + n {
                            let (xs, gs) = (&x[r * c..(r + 1) * c], &g[r * c..(r + 1) * c]);
                            let inv = inv_rms(xs, eps);
                            for ((a, &xv), &gv) in acc.iter_mut().zip(xs).zip(gs) {
                                *a += gv * xv * inv;
                            }
                        }
                    });
                    Ok((dx, Some(dw)))
                })
            })
        })?;
        let dev = x_t.device();
        let dw = match dw {
            Some(dw) => Some(Tensor::from_vec(dw, w_t.shape(), dev)?),
            None => None,
        };
        Ok((Some(Tensor::from_vec(dx, x_t.shape(), dev)?), dw))
    }
}

/// RMSNorm over the last dimension with gain `w`, differentiable in both.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    x.contiguous()?
        .apply_op2(&w.contiguous()?, RmsNorm { eps: eps as f32 })
}

// ---------------------------------------------------------------------------------------
// Rotary embeddings, Hugging Face's rotate_half layout.

/// Per-row `cos`/`sin` `[rows, half]` held by the op (constants: no gradient).
struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl Rope {
    /// Rotates each head of each row by `sign` times its angles.
    fn apply(&self, x: &[f32], cols: usize, sign: f32) -> candle_core::Result<Vec<f32>> {
        let (half, d) = (self.half, 2 * self.half);
        if half == 0 || !cols.is_multiple_of(d) || x.len() / cols * half != self.cos.len() {
            candle_core::bail!(
                "rope: {} values of {cols} columns for tables of {} (half {half})",
                x.len(),
                self.cos.len()
            );
        }
        let mut out = vec![0f32; x.len()];
        rows_mut(&mut out, cols, |i, r| {
            let (c, s) = (
                &self.cos[i * half..(i + 1) * half],
                &self.sin[i * half..(i + 1) * half],
            );
            let xs = &x[i * cols..(i + 1) * cols];
            for (oh, xh) in r.chunks_mut(d).zip(xs.chunks(d)) {
                let (o1, o2) = oh.split_at_mut(half);
                let (x1, x2) = xh.split_at(half);
                for j in 0..half {
                    let sj = sign * s[j];
                    o1[j] = x1[j] * c[j] - x2[j] * sj;
                    o2[j] = x2[j] * c[j] + x1[j] * sj;
                }
            }
        });
        Ok(out)
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "llama-rope"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let cols = l.dims().last().copied().unwrap_or(0);
        let out = self.apply(slice(s, l, "rope")?, cols, 1.0)?;
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        // A rotation's transpose is the rotation by the opposite angle.
        let cols = arg.dims().last().copied().unwrap_or(0);
        let out = with_f32(grad, |g| self.apply(g, cols, -1.0))?;
        Ok(Some(Tensor::from_vec(out, arg.shape(), arg.device())?))
    }
}

/// Rotary embedding of `x` `[rows, heads*head_dim]` with per-row `cos`, `sin`
/// `[rows, head_dim/2]`: `(x1·c − x2·s, x2·c + x1·s)` per head, where x1/x2 are the first
/// and second halves (transformers' rotate_half). Differentiable in `x`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let half = cos.dims().last().copied().unwrap_or(0);
    let op = Rope {
        cos: cos.flatten_all()?.to_vec1()?,
        sin: sin.flatten_all()?.to_vec1()?,
        half,
    };
    x.contiguous()?.apply_op1(op)
}

// ---------------------------------------------------------------------------------------
// SwiGLU, `silu(x · wgᵀ) ⊙ (x · wuᵀ)`.

struct SwiGlu {
    /// Gate and up pre-activations `[m, f]` each, saved by the forward pass.
    saved: Mutex<Option<(Vec<f32>, Vec<f32>)>>,
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

fn project(x: &[f32], w: &[f32], m: usize, f: usize, k: usize) -> candle_core::Result<Vec<f32>> {
    project_with(x, w, Mat::trans(0, k), m, f, k)
}

/// `x · w` `[m, f]` with the weight read through `wm` (see [`linear_rows`]).
fn project_with(
    x: &[f32],
    w: &[f32],
    wm: Mat,
    m: usize,
    f: usize,
    k: usize,
) -> candle_core::Result<Vec<f32>> {
    let mut out = vec![0f32; m * f];
    matmul(
        (m, f, k),
        &mut out,
        Mat::rows(0, f),
        false,
        x,
        Mat::rows(0, k),
        w,
        wm,
    )?;
    Ok(out)
}

/// `silu(g) ⊙ u`, row by row.
fn swiglu_combine(g: &[f32], u: &[f32], m: usize, f: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * f];
    rows_mut(&mut out, f, |i, r| {
        let (gr, ur) = (&g[i * f..(i + 1) * f], &u[i * f..(i + 1) * f]);
        for ((o, &gv), &uv) in r.iter_mut().zip(gr).zip(ur) {
            *o = gv * sigmoid(gv) * uv;
        }
    });
    out
}

impl SwiGlu {
    fn dims(x: &Layout, wg: &Layout, wu: &Layout) -> candle_core::Result<(usize, usize, usize)> {
        let (f, k) = wg.shape().dims2()?;
        if wu.dims() != wg.dims() {
            candle_core::bail!("swiglu: gate {:?} vs up {:?}", wg.dims(), wu.dims());
        }
        Ok((rows_of(x, k, "swiglu")?, f, k))
    }
}

impl CustomOp3 for SwiGlu {
    fn name(&self) -> &'static str {
        "llama-swiglu"
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
        let (m, f, k) = Self::dims(l1, l2, l3)?;
        let x = slice(s1, l1, "swiglu")?;
        let (wg, wu) = (slice(s2, l2, "swiglu")?, slice(s3, l3, "swiglu")?);
        let (g, u) = join2(
            m * f * k >= 1 << 18,
            || project(x, wg, m, f, k),
            || project(x, wu, m, f, k),
        );
        let (g, u) = (g?, u?);
        let out = swiglu_combine(&g, &u, m, f);
        if let Ok(mut s) = self.saved.lock() {
            *s = Some((g, u));
        }
        Ok((CpuStorage::F32(out), out_shape(l1, f)))
    }
    fn bwd(
        &self,
        x_t: &Tensor,
        wg_t: &Tensor,
        wu_t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (f, k) = wg_t.dims2()?;
        let m = x_t.elem_count() / k.max(1);
        let saved = self.saved.lock().ok().and_then(|mut s| s.take());
        let (g, u) = match saved {
            Some(s) => s,
            // Saved state gone (a second backward): recompute it.
            None => with_f32(x_t, |x| {
                with_f32(wg_t, |wg| {
                    with_f32(wu_t, |wu| {
                        Ok((project(x, wg, m, f, k)?, project(x, wu, m, f, k)?))
                    })
                })
            })?,
        };
        // dg = dy ⊙ u ⊙ silu'(g), du = dy ⊙ silu(g), written over g and u.
        let (mut dg, mut du) = (g, u);
        with_f32(grad, |dy| {
            let upd = |((gv, uv), &d): ((&mut f32, &mut f32), &f32)| {
                let s = sigmoid(*gv);
                let silu = *gv * s;
                let dsilu = s * (1.0 + *gv * (1.0 - s));
                *gv = d * *uv * dsilu;
                *uv = d * silu;
            };
            if dy.len() >= 1 << 14 && rayon::current_num_threads() > 1 {
                dg.par_iter_mut()
                    .zip(du.par_iter_mut())
                    .zip(dy.par_iter())
                    .for_each(upd);
            } else {
                dg.iter_mut()
                    .zip(du.iter_mut())
                    .zip(dy.iter())
                    .for_each(upd);
            }
            Ok(())
        })?;
        // Frozen weights (LoRA) get no gradient and cost no product.
        let need_dw = wg_t.track_op() || wu_t.track_op();
        let mut dx = vec![0f32; m * k];
        let wlen = if need_dw { f * k } else { 0 };
        let mut dwg = vec![0f32; wlen];
        let mut dwu = vec![0f32; wlen];
        let (dgr, dur) = (&dg, &du);
        let (dxm, dwgm, dwum) = (&mut dx, &mut dwg, &mut dwu);
        let (ra, rb) = join2(
            need_dw && m * f * k >= 1 << 18,
            move || {
                // dx = dg · wg + du · wu
                with_f32(wg_t, |wg| {
                    with_f32(wu_t, |wu| {
                        matmul(
                            (m, k, f),
                            dxm,
                            Mat::rows(0, k),
                            false,
                            dgr,
                            Mat::rows(0, f),
                            wg,
                            Mat::rows(0, k),
                        )?;
                        matmul(
                            (m, k, f),
                            dxm,
                            Mat::rows(0, k),
                            true,
                            dur,
                            Mat::rows(0, f),
                            wu,
                            Mat::rows(0, k),
                        )
                    })
                })
            },
            move || {
                if !need_dw {
                    return Ok(());
                }
                // dwg = dgᵀ · x, dwu = duᵀ · x
                with_f32(x_t, |x| {
                    matmul(
                        (f, k, m),
                        dwgm,
                        Mat::rows(0, k),
                        false,
                        dgr,
                        Mat::trans(0, f),
                        x,
                        Mat::rows(0, k),
                    )?;
                    matmul(
                        (f, k, m),
                        dwum,
                        Mat::rows(0, k),
                        false,
                        dur,
                        Mat::trans(0, f),
                        x,
                        Mat::rows(0, k),
                    )
                })
            },
        );
        ra?;
        rb?;
        let dev = x_t.device();
        let grad_of = |v: Vec<f32>, w: &Tensor| -> candle_core::Result<Option<Tensor>> {
            if w.track_op() {
                Ok(Some(Tensor::from_vec(v, w.shape(), dev)?))
            } else {
                Ok(None)
            }
        };
        Ok((
            Some(Tensor::from_vec(dx, x_t.shape(), dev)?),
            grad_of(dwg, wg_t)?,
            grad_of(dwu, wu_t)?,
        ))
    }
}

/// `silu(x · wgᵀ) ⊙ (x · wuᵀ)` for `x` `[.., in]` and `wg`, `wu` `[ff, in]`; differentiable
/// in all three.
pub fn swiglu(x: &Tensor, wg: &Tensor, wu: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op3(
        &wg.contiguous()?,
        &wu.contiguous()?,
        SwiGlu {
            saved: Mutex::new(None),
        },
    )
}

// ---------------------------------------------------------------------------------------
// Decoding steps from weights laid out `[in, out]`.
//
// Why: a decoding step multiplies a few rows by every weight matrix, and gemm (0.19) copies
// ("packs") an operand that it cannot read column by column; for `x · wᵀ` with `w`
// `[out, in]` that operand is the weight, so each step re-copied every matrix of the model
// (41% of SmolLM2's generation time). Laid out `[in, out]` (made once per generation, see
// `KvCache::transposed`), the same products read the weights in place. Packing only copies,
// so these give the bits of [`linear`], [`swiglu`] and the fused head (a test checks).
// Forward only: nothing trains through a decoding step.

/// `(rows, in)` of `x` against a weight `[in, out]`.
fn step_dims(x: &Tensor, wt: &Tensor) -> candle_core::Result<(usize, usize, usize)> {
    let (k, n) = wt.dims2()?;
    let m = rows_of(x.layout(), k, "decode step")?;
    Ok((m, n, k))
}

/// The output shape `[.., out]` of `x` `[.., in]`.
fn step_shape(x: &Tensor, n: usize) -> Shape {
    out_shape(x.layout(), n)
}

/// [`linear`]'s forward from `wt` `[in, out]` (= `wᵀ`).
pub fn linear_t(x: &Tensor, wt: &Tensor, b: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let (m, n, k) = step_dims(x, wt)?;
    let out = with_f32(x, |xs| {
        with_f32(wt, |w| match b {
            Some(b) => with_f32(b, |bs| {
                linear_rows(xs, (m, n, k), w, Mat::rows(0, n), Some(bs))
            }),
            None => linear_rows(xs, (m, n, k), w, Mat::rows(0, n), None),
        })
    })?;
    Tensor::from_vec(out, step_shape(x, n), x.device())
}

/// [`swiglu`]'s forward from `wgt`, `wut` `[in, ff]`.
pub fn swiglu_t(x: &Tensor, wgt: &Tensor, wut: &Tensor) -> candle_core::Result<Tensor> {
    let (m, f, k) = step_dims(x, wgt)?;
    if wut.dims() != wgt.dims() {
        candle_core::bail!("swiglu: gate {:?} vs up {:?}", wgt.dims(), wut.dims());
    }
    let out = with_f32(x, |xs| {
        with_f32(wgt, |wg| {
            with_f32(wut, |wu| {
                let (g, u) = join2(
                    m * f * k >= 1 << 18,
                    || project_with(xs, wg, Mat::rows(0, f), m, f, k),
                    || project_with(xs, wu, Mat::rows(0, f), m, f, k),
                );
                Ok(swiglu_combine(&g?, &u?, m, f))
            })
        })
    })?;
    Tensor::from_vec(out, step_shape(x, f), x.device())
}

// ---------------------------------------------------------------------------------------
// Causal grouped-query attention.

struct Gqa {
    batch: usize,
    time: usize,
    heads: usize,
    kv_heads: usize,
    scale: f32,
    /// Probabilities `[batch, heads, time, time]` from the forward pass.
    probs: Mutex<Option<Vec<f32>>>,
}

/// Runs `f(unit, chunk)` over disjoint chunks of `out`, in parallel when there are threads.
fn per_unit(
    out: &mut [f32],
    chunk: usize,
    f: impl Fn(usize, &mut [f32]) -> candle_core::Result<()> + Sync,
) -> candle_core::Result<()> {
    if chunk == 0 {
        return Ok(());
    }
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

impl Gqa {
    /// `(head_dim, q width, kv width)` from the inputs' layouts.
    fn widths(
        &self,
        q: &Layout,
        k: &Layout,
        v: &Layout,
    ) -> candle_core::Result<(usize, usize, usize)> {
        let (rows, qw) = q.shape().dims2()?;
        let (kr, kw) = k.shape().dims2()?;
        let (vr, vw) = v.shape().dims2()?;
        let n = self.batch * self.time;
        let ok = self.heads > 0
            && self.kv_heads > 0
            && self.heads.is_multiple_of(self.kv_heads)
            && rows == n
            && kr == n
            && vr == n
            && qw.is_multiple_of(self.heads)
            && kw == vw
            && kw * self.heads == qw * self.kv_heads;
        if !ok {
            candle_core::bail!(
                "attention: q {:?}, k {:?}, v {:?} for batch {} x time {}, {} heads, {} kv heads",
                q.dims(),
                k.dims(),
                v.dims(),
                self.batch,
                self.time,
                self.heads,
                self.kv_heads
            );
        }
        Ok((qw / self.heads, qw, kw))
    }

    /// Causal softmax probabilities `p` `[t, t]` of query head `h` in batch row `bi`.
    #[allow(clippy::too_many_arguments)]
    fn probs(
        &self,
        q: &[f32],
        k: &[f32],
        d: usize,
        qw: usize,
        kw: usize,
        bi: usize,
        h: usize,
        p: &mut [f32],
    ) -> candle_core::Result<()> {
        let t = self.time;
        let g = h / (self.heads / self.kv_heads);
        matmul(
            (t, t, d),
            p,
            Mat::rows(0, t),
            false,
            q,
            Mat::rows(bi * t * qw + h * d, qw),
            k,
            Mat::trans(bi * t * kw + g * d, kw),
        )?;
        for (i, row) in p.chunks_mut(t).enumerate() {
            let (seen, masked) = row.split_at_mut(i + 1);
            softmax_in_place(seen, self.scale);
            masked.iter_mut().for_each(|v| *v = 0.0);
        }
        Ok(())
    }
}

impl CustomOp3 for Gqa {
    fn name(&self) -> &'static str {
        "llama-gqa-attention"
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
        let (d, qw, kw) = self.widths(l1, l2, l3)?;
        let (q, k, v) = (
            slice(s1, l1, "attention")?,
            slice(s2, l2, "attention")?,
            slice(s3, l3, "attention")?,
        );
        let (b, t, nh) = (self.batch, self.time, self.heads);
        let rep = nh / self.kv_heads;
        // Per (batch, head): probabilities [t, t] then that head's output [t, d].
        let chunk = t * t + t * d;
        let mut work = vec![0f32; b * nh * chunk];
        per_unit(&mut work, chunk, |pair, w| {
            let (bi, h) = (pair / nh, pair % nh);
            let (p, y) = w.split_at_mut(t * t);
            self.probs(q, k, d, qw, kw, bi, h, p)?;
            matmul(
                (t, d, t),
                y,
                Mat::rows(0, d),
                false,
                p,
                Mat::rows(0, t),
                v,
                Mat::rows(bi * t * kw + (h / rep) * d, kw),
            )
        })?;
        let mut out = vec![0f32; b * t * qw];
        let mut probs = Vec::with_capacity(b * nh * t * t);
        for (pair, w) in work.chunks(chunk).enumerate() {
            probs.extend_from_slice(&w[..t * t]);
            let (bi, h) = (pair / nh, pair % nh);
            for (i, yr) in w[t * t..].chunks(d).enumerate() {
                let o = (bi * t + i) * qw + h * d;
                out[o..o + d].copy_from_slice(yr);
            }
        }
        if let Ok(mut g) = self.probs.lock() {
            *g = Some(probs);
        }
        Ok((CpuStorage::F32(out), Shape::from((b * t, qw))))
    }

    fn bwd(
        &self,
        q_t: &Tensor,
        k_t: &Tensor,
        v_t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, nh, nkv) = (self.batch, self.time, self.heads, self.kv_heads);
        let rep = nh / nkv.max(1);
        let saved = self.probs.lock().ok().and_then(|mut p| p.take());
        let (dq, dk, dv) = with_f32(q_t, |q| {
            with_f32(k_t, |k| {
                with_f32(v_t, |v| {
                    with_f32(grad, |gy| {
                        let (qw, kw) = (q_t.dims2()?.1, k_t.dims2()?.1);
                        let d = qw / nh.max(1);
                        // Per (batch, kv head) group: dq for its `rep` query heads
                        // [rep, t, d], dk and dv [t, d] summed over them in head order,
                        // scratch [t, t] for dp / ds, and [t, t] for recomputed p.
                        let chunk = rep * t * d + 2 * t * d + 2 * t * t;
                        let mut work = vec![0f32; b * nkv * chunk];
                        per_unit(&mut work, chunk, |grp, w| {
                            let (bi, g) = (grp / nkv, grp % nkv);
                            let (dq, rest) = w.split_at_mut(rep * t * d);
                            let (dk, rest) = rest.split_at_mut(t * d);
                            let (dv, rest) = rest.split_at_mut(t * d);
                            let (ds, own) = rest.split_at_mut(t * t);
                            let kbase = bi * t * kw + g * d;
                            for r in 0..rep {
                                let h = g * rep + r;
                                let pair = bi * nh + h;
                                let qbase = bi * t * qw + h * d;
                                let p: &[f32] = match &saved {
                                    Some(all) => &all[pair * t * t..(pair + 1) * t * t],
                                    None => {
                                        self.probs(q, k, d, qw, kw, bi, h, own)?;
                                        &*own
                                    }
                                };
                                let acc = r > 0;
                                // dv += pᵀ · gy
                                matmul(
                                    (t, d, t),
                                    dv,
                                    Mat::rows(0, d),
                                    acc,
                                    p,
                                    Mat::trans(0, t),
                                    gy,
                                    Mat::rows(qbase, qw),
                                )?;
                                // dp = gy · vᵀ
                                matmul(
                                    (t, t, d),
                                    ds,
                                    Mat::rows(0, t),
                                    false,
                                    gy,
                                    Mat::rows(qbase, qw),
                                    v,
                                    Mat::trans(kbase, kw),
                                )?;
                                // ds = scale · p ⊙ (dp − Σ dp ⊙ p); masked p are 0.
                                for (i, row) in ds.chunks_mut(t).enumerate() {
                                    let pr = &p[i * t..(i + 1) * t];
                                    let dt = dot(row, pr);
                                    for (x, &pv) in row.iter_mut().zip(pr) {
                                        *x = self.scale * pv * (*x - dt);
                                    }
                                }
                                // dq = ds · k, dk += dsᵀ · q
                                matmul(
                                    (t, d, t),
                                    &mut dq[r * t * d..(r + 1) * t * d],
                                    Mat::rows(0, d),
                                    false,
                                    ds,
                                    Mat::rows(0, t),
                                    k,
                                    Mat::rows(kbase, kw),
                                )?;
                                matmul(
                                    (t, d, t),
                                    dk,
                                    Mat::rows(0, d),
                                    acc,
                                    ds,
                                    Mat::trans(0, t),
                                    q,
                                    Mat::rows(qbase, qw),
                                )?;
                            }
                            Ok(())
                        })?;
                        // Scatter back into the [b*t, width] layouts.
                        let mut dq_out = vec![0f32; b * t * qw];
                        let mut dk_out = vec![0f32; b * t * kw];
                        let mut dv_out = vec![0f32; b * t * kw];
                        for (grp, w) in work.chunks(chunk).enumerate() {
                            let (bi, g) = (grp / nkv, grp % nkv);
                            for r in 0..rep {
                                let h = g * rep + r;
                                let src = &w[r * t * d..(r + 1) * t * d];
                                for (i, row) in src.chunks(d).enumerate() {
                                    let o = (bi * t + i) * qw + h * d;
                                    dq_out[o..o + d].copy_from_slice(row);
                                }
                            }
                            let kv = &w[rep * t * d..rep * t * d + 2 * t * d];
                            for (i, (kr, vr)) in
                                kv[..t * d].chunks(d).zip(kv[t * d..].chunks(d)).enumerate()
                            {
                                let o = (bi * t + i) * kw + g * d;
                                dk_out[o..o + d].copy_from_slice(kr);
                                dv_out[o..o + d].copy_from_slice(vr);
                            }
                        }
                        Ok((dq_out, dk_out, dv_out))
                    })
                })
            })
        })?;
        let dev = q_t.device();
        Ok((
            Some(Tensor::from_vec(dq, q_t.shape(), dev)?),
            Some(Tensor::from_vec(dk, k_t.shape(), dev)?),
            Some(Tensor::from_vec(dv, v_t.shape(), dev)?),
        ))
    }
}

/// Causal attention of `q` `[batch*time, heads*d]` over `k`, `v`
/// `[batch*time, kv_heads*d]` (query head `h` reads kv head `h / (heads/kv_heads)`, as
/// transformers' `repeat_kv`), scores scaled by `scale`; returns `[batch*time, heads*d]`.
/// Differentiable in q, k and v; keys are never repeated in memory.
pub fn gqa_causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (batch, time): (usize, usize),
    (heads, kv_heads): (usize, usize),
    scale: f64,
) -> candle_core::Result<Tensor> {
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        Gqa {
            batch,
            time,
            heads,
            kv_heads,
            scale: scale as f32,
            probs: Mutex::new(None),
        },
    )
}
