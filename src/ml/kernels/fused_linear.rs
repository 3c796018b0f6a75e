//! `act(x · w + b)` as one candle op with its own backward. The composed form (matmul,
//! broadcast add, activation) put three nodes in the graph, each costing candle's backprop a
//! zero-filled buffer plus an add per input, and reduced the bias gradient with candle's
//! slow strided sum; here the backward is two strided matmuls and a column sum.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use crate::ml::fused::{gelu_grad_scalar, gelu_scalar};
use crate::ml::kernels::{col_sums, matmul, rows_mut, slice, with_f32, Mat};

/// Activation fused after the affine map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    /// GPT-2's tanh GELU; the pre-activation is kept for the backward pass.
    Gelu,
    Relu,
}

struct Linear {
    act: Act,
    /// Pre-activation values (GELU only), saved by the forward pass.
    pre: Mutex<Option<Vec<f32>>>,
}

impl Linear {
    fn dims(x: &Layout, w: &Layout, b: &Layout) -> candle_core::Result<(usize, usize, usize)> {
        let (k, n) = w.shape().dims2()?;
        let xk = x.dims().last().copied().unwrap_or(0);
        if xk != k || b.shape().elem_count() != n || k == 0 {
            candle_core::bail!(
                "linear: x {:?}, w {:?}, b {:?} do not fit",
                x.dims(),
                w.dims(),
                b.dims()
            );
        }
        Ok((x.shape().elem_count() / k, k, n))
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
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
        let (m, k, n) = Self::dims(l1, l2, l3)?;
        let x = slice(s1, l1, "linear")?;
        let w = slice(s2, l2, "linear")?;
        let b = slice(s3, l3, "linear")?;
        // Start from the bias and let the matmul accumulate onto it: no separate add pass.
        let mut out = Vec::with_capacity(m * n);
        for _ in 0..m {
            out.extend_from_slice(b);
        }
        matmul(
            (m, n, k),
            &mut out,
            Mat::rows(0, n),
            true,
            x,
            Mat::rows(0, k),
            w,
            Mat::rows(0, n),
        )?;
        match self.act {
            Act::None => {}
            Act::Relu => out.iter_mut().for_each(|v| *v = v.max(0.0)),
            Act::Gelu => {
                // Keep the pre-activation buffer for the backward pass and write the output
                // into a fresh one (rather than copying the pre-activation first).
                let mut y = vec![0f32; out.len()];
                rows_mut(&mut y, n, |i, r| {
                    for (o, &u) in r.iter_mut().zip(&out[i * n..]) {
                        *o = gelu_scalar(u);
                    }
                });
                let pre = std::mem::replace(&mut out, y);
                if let Ok(mut g) = self.pre.lock() {
                    *g = Some(pre);
                }
            }
        }
        let mut dims = l1.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x_t: &Tensor,
        w_t: &Tensor,
        b_t: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = w_t.dims2()?.1;
        // Gradient with respect to the pre-activation.
        if self.act == Act::None {
            return with_f32(grad, |g| grads(g, x_t, w_t, b_t));
        }
        let gu: Vec<f32> = with_f32(grad, |g| match self.act {
            Act::None => Ok(g.to_vec()),
            Act::Relu => with_f32(res, |y| {
                Ok(g.iter()
                    .zip(y)
                    .map(|(&g, &y)| if y > 0.0 { g } else { 0.0 })
                    .collect())
            }),
            Act::Gelu => {
                let saved = self.pre.lock().ok().and_then(|mut p| p.take());
                let pre = match saved {
                    Some(p) => p,
                    // Saved state gone (a second backward): recompute it.
                    None => with_f32(&x_t.matmul(w_t)?.broadcast_add(b_t)?, |u| Ok(u.to_vec()))?,
                };
                let mut out = g.to_vec();
                rows_mut(&mut out, n, |i, r| {
                    let u = &pre[i * n..i * n + r.len()];
                    for (o, &u) in r.iter_mut().zip(u) {
                        *o *= gelu_grad_scalar(u);
                    }
                });
                Ok(out)
            }
        })?;
        grads(&gu, x_t, w_t, b_t)
    }
}

/// `(dx, dw, db)` from the pre-activation gradient `gu` `[m, n]`.
fn grads(
    gu: &[f32],
    x_t: &Tensor,
    w_t: &Tensor,
    b_t: &Tensor,
) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let (k, n) = w_t.dims2()?;
    let m = x_t.elem_count() / k.max(1);
    let mut dx = vec![0f32; m * k];
    // A frozen layer (LoRA) gets no weight or bias gradient and costs no product.
    let need_dw = w_t.track_op() || b_t.track_op();
    let mut dw = vec![0f32; if need_dw { k * n } else { 0 }];
    let (xc, wc) = (x_t.contiguous()?, w_t.contiguous()?);
    let (xc, wc, dxm, dwm) = (&xc, &wc, &mut dx, &mut dw);
    let mut dx_job = move || {
        with_f32(wc, |w| {
            // dx = gu · wᵀ
            matmul(
                (m, k, n),
                dxm,
                Mat::rows(0, k),
                false,
                gu,
                Mat::rows(0, n),
                w,
                Mat::trans(0, n),
            )
        })
    };
    let mut dw_job = move || {
        if !need_dw {
            return Ok(Vec::new());
        }
        with_f32(xc, |x| {
            // dw = xᵀ · gu
            matmul(
                (k, n, m),
                dwm,
                Mat::rows(0, n),
                false,
                x,
                Mat::trans(0, k),
                gu,
                Mat::rows(0, n),
            )?;
            Ok(col_sums(gu, n))
        })
    };
    // The two products have the same cost, so running them side by side (each on one
    // thread) splits the work evenly; gemm's own per-call threading scales poorly at these
    // sizes. Neither product is split, so the result does not depend on the thread count.
    // With more threads, gemm's own splitting of each product can use them all.
    let (rx, rw) = if need_dw && rayon::current_num_threads() == 2 && m * n * k >= 1 << 18 {
        rayon::join(dx_job, dw_job)
    } else {
        (dx_job(), dw_job())
    };
    rx?;
    let db = rw?;
    let dev = x_t.device();
    let dx = Some(Tensor::from_vec(dx, x_t.shape(), dev)?);
    if !need_dw {
        return Ok((dx, None, None));
    }
    Ok((
        dx,
        Some(Tensor::from_vec(dw, w_t.shape(), dev)?),
        Some(Tensor::from_vec(db, b_t.shape(), dev)?),
    ))
}

/// `act(x · w + b)` with `w` `[in, out]` (GPT-2's Conv1D orientation), differentiable in all
/// three; `x` is `[.., in]`.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, act: Act) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        Linear {
            act,
            pre: Mutex::new(None),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn var(seed: u64, shape: &[usize]) -> Var {
        let mut rng = crate::ml::init::rng(seed);
        let n = shape.iter().product();
        let v = crate::ml::init::normal(&mut rng, n, 1.0);
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

    /// Values and all three gradients match candle's composed ops, for each activation.
    #[test]
    fn fused_linear_matches_composed() {
        let (x, w, b) = (var(1, &[13, 7]), var(2, &[7, 5]), var(3, &[5]));
        let proj = var(4, &[13, 5]).as_tensor().clone();
        for act in [Act::None, Act::Gelu, Act::Relu] {
            let yf = linear(x.as_tensor(), w.as_tensor(), b.as_tensor(), act).unwrap();
            let u = x
                .as_tensor()
                .matmul(w.as_tensor())
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap();
            let yc = match act {
                Act::None => u,
                Act::Gelu => u.gelu().unwrap(),
                Act::Relu => u.relu().unwrap(),
            };
            close(&yf, &yc);
            let loss_f = (yf * &proj).unwrap().sum_all().unwrap();
            let gc = (yc * &proj).unwrap().sum_all().unwrap().backward().unwrap();
            // The second backward runs without the saved pre-activation.
            for _ in 0..2 {
                let gf = loss_f.backward().unwrap();
                for v in [&x, &w, &b] {
                    close(
                        gf.get(v.as_tensor()).unwrap(),
                        gc.get(v.as_tensor()).unwrap(),
                    );
                }
            }
        }
    }
}
