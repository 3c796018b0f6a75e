//! Low-level helpers shared by the fused CPU ops: borrowing a tensor's f32 data without a
//! copy, mutating a tensor in place, and a bounds-checked strided matmul on the `gemm`
//! crate (the kernel candle itself uses), so ops can multiply transposed or interleaved
//! views (heads inside a packed qkv, `wᵀ`) without materialising them.

pub mod fused;
pub mod fused_attention;
pub mod fused_head;
pub mod fused_linear;
pub mod graded;
pub mod layers;

use std::sync::Mutex;

use candle_core::{CpuStorage, InplaceOp1, Layout, Storage, Tensor};

/// Work below this many elements stays on the calling thread.
pub const PAR_MIN: usize = 1 << 14;

/// The contiguous f32 data described by `l` inside `s`.
pub fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let v = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("{op}: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// Runs `f` on the f32 data of `t` (made contiguous first), without copying it to the host
/// as `to_vec1` would.
pub fn with_f32<R>(
    t: &Tensor,
    f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => f(slice(c, l, "with_f32")?),
        _ => candle_core::bail!("with_f32: only the CPU device is supported"),
    }
}

/// An in-place op running a closure on the tensor's data (candle's `InplaceOp1` takes
/// `&self`, hence the mutex around the `FnOnce`).
struct Mutate<F>(Mutex<Option<F>>);

impl<F: FnOnce(&mut [f32]) -> candle_core::Result<()>> InplaceOp1 for Mutate<F> {
    fn name(&self) -> &'static str {
        "mutate-f32"
    }
    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        let (a, b) = match l.contiguous_offsets() {
            Some(o) => o,
            None => candle_core::bail!("mutate: tensor must be contiguous"),
        };
        let v = match s {
            CpuStorage::F32(v) => &mut v[a..b],
            _ => candle_core::bail!("mutate: only f32 is supported"),
        };
        let f = match self.0.lock() {
            Ok(mut g) => g.take(),
            Err(_) => None,
        };
        match f {
            Some(f) => f(v),
            None => candle_core::bail!("mutate: closure already used"),
        }
    }
}

/// Runs `f` on the data of the contiguous f32 tensor `t`, in place: every tensor sharing its
/// storage (a `Var` and its clones) sees the change.
pub fn mutate_f32(
    t: &Tensor,
    f: impl FnOnce(&mut [f32]) -> candle_core::Result<()>,
) -> candle_core::Result<()> {
    t.inplace_op1(&Mutate(Mutex::new(Some(f))))
}

/// A row-major-or-strided matrix view: `data[off + r * rs + c * cs]` for `r < rows`,
/// `c < cols`.
#[derive(Clone, Copy)]
pub struct Mat {
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl Mat {
    /// Row-major with `ld` elements between rows.
    pub const fn rows(off: usize, ld: usize) -> Mat {
        Mat { off, rs: ld, cs: 1 }
    }
    /// The transpose of a row-major matrix with leading dimension `ld`.
    pub const fn trans(off: usize, ld: usize) -> Mat {
        Mat { off, rs: 1, cs: ld }
    }
    fn check(&self, len: usize, rows: usize, cols: usize, what: &str) -> candle_core::Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        let last = self.off + (rows - 1) * self.rs + (cols - 1) * self.cs;
        if last >= len {
            candle_core::bail!("matmul: {what} view ends at {last}, past its {len} elements");
        }
        Ok(())
    }
}

/// `gemm`'s own threading for one product big enough to split, none otherwise (and none
/// inside ops that already split work over rayon).
fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && m * n * k >= 1 << 18 && rayon::current_thread_index().is_none() {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// `dst[m×n] (+)= a[m×k] · b[k×n]` over strided views; adds into `dst` when `accumulate`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    d: Mat,
    accumulate: bool,
    a_data: &[f32],
    a: Mat,
    b_data: &[f32],
    b: Mat,
) -> candle_core::Result<()> {
    d.check(dst.len(), m, n, "dst")?;
    a.check(a_data.len(), m, k, "lhs")?;
    b.check(b_data.len(), k, n, "rhs")?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    dst[d.off + r * d.rs + c * d.cs] = 0.0;
                }
            }
        }
        return Ok(());
    }
    let block = k_block((m, n, k), d, a, b);
    let mut k0 = 0;
    while k0 < k {
        let kb = block.min(k - k0);
        // SAFETY: the three views were bounds-checked above against their slices (a block
        // is a sub-view: columns k0..k0+kb of `a`, rows k0..k0+kb of `b`); `dst` is
        // borrowed mutably, so it cannot alias the inputs.
        unsafe {
            gemm::gemm(
                m,
                n,
                kb,
                dst.as_mut_ptr().add(d.off),
                d.cs as isize,
                d.rs as isize,
                accumulate || k0 > 0,
                a_data.as_ptr().add(a.off + k0 * a.cs),
                a.cs as isize,
                a.rs as isize,
                b_data.as_ptr().add(b.off + k0 * b.rs),
                b.cs as isize,
                b.rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism(m, n, k),
            );
        }
        k0 += kb;
    }
    Ok(())
}

/// The k-block of one product, fixed so that the bits never depend on the machine.
///
/// Why: for most shapes gemm (0.19) splits k into blocks sized from the L1 data cache it
/// detects at run time (`gemm_common::cache::kernel_params`: 1024 on a 48 KiB 12-way L1d,
/// 512 on a 32 KiB 8-way one), and each block's partial sums are added to `dst` in turn:
/// the block size is the summation order. Two machines of one type with different L1
/// caches trained different bits under one key. Here k is split before gemm sees it, as
/// gemm splits it on a 32 KiB 8-way L1d (`ceil(k / 512)` equal blocks): a call with
/// `k <= 512` is never split further on any machine (512 is gemm's floor). Shapes that
/// gemm routes elsewhere (tiny outputs, matrix-vector products, `m, n <= 64`) use fixed
/// blocks already and are passed whole, so their bits are as before.
fn k_block((m, n, k): (usize, usize, usize), d: Mat, a: Mat, b: Mat) -> usize {
    const KC: usize = 512;
    // gemm's own normalisation: it transposes the problem when dst is column-oriented.
    let (m, n, dst_cs, dst_rs, lhs_cs, lhs_rs, rhs_cs, rhs_rs) = if d.cs < d.rs {
        (n, m, d.rs, d.cs, b.rs, b.cs, a.rs, a.cs)
    } else {
        (m, n, d.cs, d.rs, a.cs, a.rs, b.cs, b.rs)
    };
    // The dispatch of `gemm_common::gemm::gemm_basic_generic` before `kernel_params`.
    let fixed = (lhs_cs == 1 && rhs_rs == 1 && m * n <= 16 * 16)
        || k <= 2
        || (n <= 1 && ((lhs_rs == 1 && dst_rs == 1) || (lhs_cs == 1 && rhs_rs == 1)))
        || (m <= 1 && ((rhs_cs == 1 && dst_cs == 1) || (rhs_rs == 1 && lhs_cs == 1)))
        || (m <= 64 && n <= 64)
        || k <= KC;
    if fixed {
        return k;
    }
    k.div_ceil(k.div_ceil(KC))
}

/// Whether an `[m, k] · [k, n]` product takes gemm's general (packing) path whichever
/// way its right operand is laid out, so that reading a weight as `[in, out]` instead of
/// `wᵀ` of `[out, in]` only skips a copy and keeps the bits (`llama_ops`, "Decoding
/// steps"). The shapes gemm routes elsewhere ([`k_block`]'s `fixed` cases: dot-product
/// kernels for tiny outputs, matrix-vector products, `m, n <= 64`) reduce in another order
/// for each layout, so they keep the `[out, in]` weight.
pub fn layout_free(m: usize, n: usize, k: usize) -> bool {
    m > 1 && n > 1 && k > 2 && m.saturating_mul(n) > 16 * 16 && (m > 64 || n > 64)
}

/// The transpose `[cols, rows]` of the row-major `[rows, cols]` matrix `a`, copied in
/// 32 x 32 tiles (row bands in parallel): candle's strided copy walks the source one
/// element at a time and took a tenth of a generation making SmolLM2's `[in, out]` copies.
pub fn transpose(a: &[f32], rows: usize, cols: usize) -> candle_core::Result<Vec<f32>> {
    use rayon::prelude::*;
    const T: usize = 32;
    if rows.checked_mul(cols) != Some(a.len()) {
        candle_core::bail!("transpose: {} elements for {rows} x {cols}", a.len());
    }
    let mut out = vec![0f32; a.len()];
    if a.is_empty() {
        return Ok(out);
    }
    // Output rows `j0..j0 + T` (input columns) per band: each band writes its own rows.
    let band = |(b, o): (usize, &mut [f32])| {
        let j0 = b * T;
        let jn = o.len() / rows;
        for i0 in (0..rows).step_by(T) {
            for j in 0..jn {
                for i in i0..(i0 + T).min(rows) {
                    o[j * rows + i] = a[i * cols + j0 + j];
                }
            }
        }
    };
    if a.len() >= PAR_MIN && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(T * rows).enumerate().for_each(band);
    } else {
        out.chunks_mut(T * rows).enumerate().for_each(band);
    }
    Ok(out)
}

/// Applies `f` to rows of `cols` elements, in parallel when large.
pub fn rows_mut(out: &mut [f32], cols: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    use rayon::prelude::*;
    if out.len() >= PAR_MIN && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    } else {
        out.chunks_mut(cols).enumerate().for_each(|(i, r)| f(i, r));
    }
}

/// `e^x` from arithmetic only (Cody-Waite reduction, degree-6 polynomial): unlike libm's
/// `expf`, a loop over it vectorises. Relative error below 3e-7; inputs are clamped to the
/// normal range, so it never returns 0 or infinity (callers that need exact zeros, such as
/// masked attention, set them explicitly).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2E + 0.5).floor();
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// Sum of `x` in eight independent lanes, so the loop vectorises (a single running sum
/// cannot be reordered by the compiler).
#[inline]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Dot product of `a` and `b` (same length), vectorised like [`sum`].
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element of `x` (-inf if empty), vectorised like [`sum`].
#[inline]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

/// Replaces `row` by `softmax(scale * row)` (`scale > 0`); returns the row's
/// `(max, sum)` before normalising, so `ln p_j = scale * x_j - max - ln(sum)`.
#[inline]
pub fn softmax_in_place(row: &mut [f32], scale: f32) -> (f32, f32) {
    let m = max(row) * scale;
    row.iter_mut().for_each(|v| *v = exp(*v * scale - m));
    let total = sum(row);
    let inv = 1.0 / total;
    row.iter_mut().for_each(|v| *v *= inv);
    (m, total)
}

/// Rows per block in [`row_block_sums`]: fixed (not derived from the thread count) so a
/// reduction adds the same partial sums in the same order on any number of threads.
pub const SUM_BLOCK_ROWS: usize = 64;

/// Column sums over row blocks: `f(block, rows, acc)` adds block `block`'s contribution
/// (its `rows` rows, starting at row `block * SUM_BLOCK_ROWS`) into the zeroed `acc` of
/// `cols` elements; the partials are then added in block order. Blocks run in parallel when
/// the work is large, yet the result is bit-identical for any thread count because the
/// blocking and the order of the final additions are fixed.
pub fn row_block_sums(
    rows: usize,
    cols: usize,
    f: impl Fn(usize, usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let blocks = rows.div_ceil(SUM_BLOCK_ROWS);
    let mut partial = vec![0f32; blocks * cols];
    if cols == 0 {
        return partial;
    }
    let run = |(i, acc): (usize, &mut [f32])| {
        let n = SUM_BLOCK_ROWS.min(rows - i * SUM_BLOCK_ROWS);
        f(i, n, acc);
    };
    if rows * cols >= PAR_MIN && blocks > 1 && rayon::current_num_threads() > 1 {
        partial.par_chunks_mut(cols).enumerate().for_each(run);
    } else {
        partial.chunks_mut(cols).enumerate().for_each(run);
    }
    let mut out = vec![0f32; cols];
    for p in partial.chunks_exact(cols) {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// Column sums of a row-major `[rows, cols]` matrix (a bias gradient).
pub fn col_sums(x: &[f32], cols: usize) -> Vec<f32> {
    if cols == 0 {
        return Vec::new();
    }
    let rows = x.len() / cols;
    row_block_sums(rows, cols, |b, n, acc| {
        let start = b * SUM_BLOCK_ROWS * cols;
        for row in x[start..start + n * cols].chunks_exact(cols) {
            for (o, v) in acc.iter_mut().zip(row) {
                *o += v;
            }
        }
    })
}

/// Sum of squares of `x`, over fixed blocks (see [`row_block_sums`]) so the result does
/// not depend on the thread count; `f64` partials keep a global gradient norm accurate.
pub fn sum_squares(x: &[f32]) -> f64 {
    use rayon::prelude::*;
    const BLOCK: usize = 1 << 14;
    let part = |c: &[f32]| dot(c, c) as f64;
    let partial: Vec<f64> = if x.len() >= 2 * BLOCK && rayon::current_num_threads() > 1 {
        x.par_chunks(BLOCK).map(part).collect()
    } else {
        x.chunks(BLOCK).map(part).collect()
    };
    partial.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_moves_every_element_on_ragged_tiles() {
        for (r, c) in [(1, 1), (3, 70), (70, 3), (33, 65), (200, 100)] {
            let a: Vec<f32> = (0..r * c).map(|v| v as f32).collect();
            let t = transpose(&a, r, c).unwrap();
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(t[j * r + i], a[i * c + j], "{r}x{c} at {i},{j}");
                }
            }
        }
        assert!(transpose(&[1.0; 5], 2, 3).is_err());
        assert!(transpose(&[], 0, 7).unwrap().is_empty());
    }

    #[test]
    fn k_blocks_are_fixed_where_gemm_would_size_them_from_the_cache() {
        let r = |ld| Mat::rows(0, ld);
        // A weight gradient: k = batch x tokens rows, blocks of at most 512, equal sizes.
        assert_eq!(
            k_block((128, 384, 4096), r(384), Mat::trans(0, 128), r(384)),
            512
        );
        assert_eq!(
            k_block((128, 384, 1500), r(384), Mat::trans(0, 128), r(384)),
            500
        );
        // Shapes gemm blocks by fixed sizes stay whole: small outputs, k <= 512, vectors.
        assert_eq!(k_block((64, 64, 4096), r(64), r(4096), r(64)), 4096);
        assert_eq!(k_block((128, 384, 512), r(384), r(512), r(384)), 512);
        assert_eq!(k_block((1, 1000, 4096), r(1000), r(4096), r(1000)), 4096);
    }

    #[test]
    fn strided_matmul_matches_naive_and_checks_bounds() {
        // a: 2x3 row-major, b given as the transpose of a 2x3 row-major matrix (3x2).
        let a = [1f32, 2., 3., 4., 5., 6.];
        let bt = [1f32, 0., 1., 0., 1., 1.];
        let mut d = vec![1f32; 4];
        matmul(
            (2, 2, 3),
            &mut d,
            Mat::rows(0, 2),
            true,
            &a,
            Mat::rows(0, 3),
            &bt,
            Mat::trans(0, 3),
        )
        .unwrap();
        assert_eq!(d, vec![1. + 4., 1. + 5., 1. + 10., 1. + 11.]);
        let err = matmul(
            (2, 2, 4),
            &mut d,
            Mat::rows(0, 2),
            false,
            &a,
            Mat::rows(0, 3),
            &bt,
            Mat::trans(0, 3),
        );
        assert!(err.is_err());
    }

    #[test]
    fn fast_exp_is_accurate() {
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (a, e) = (exp(x), x.exp());
            assert!((a - e).abs() <= 4e-7 * e, "{x}: {a} vs {e}");
        }
        let v: Vec<f32> = (0..21).map(|i| i as f32 * 0.5).collect();
        assert_eq!(sum(&v), v.iter().sum::<f32>());
        assert_eq!(dot(&v, &v), v.iter().map(|x| x * x).sum::<f32>());
    }

    #[test]
    fn mutate_changes_every_clone() {
        let t = Tensor::new(&[1f32, 2.0], &candle_core::Device::Cpu).unwrap();
        let c = t.clone();
        mutate_f32(&t, |v| {
            v[0] = 5.0;
            Ok(())
        })
        .unwrap();
        assert_eq!(c.to_vec1::<f32>().unwrap(), vec![5.0, 2.0]);
    }
}
