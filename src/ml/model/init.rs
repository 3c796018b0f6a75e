//! Deterministic parameter initialisation from a seeded ChaCha stream (never candle's RNG),
//! following GPT-2: N(0, 0.02) weights, residual projections scaled by 1/sqrt(2 * layers),
//! zero biases, unit layer-norm gains.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` samples of N(0, std) by Box-Muller, consuming the rng in a fixed order.
pub fn normal(rng: &mut ChaCha8Rng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // u1 in (0, 1] so ln(u1) is finite.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let th = 2.0 * std::f64::consts::PI * u2;
        out.push((r * th.cos()) as f32);
        out.push((r * th.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// How one named GPT-2 tensor starts.
pub fn init_values(name: &str, numel: usize, layers: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    if name.ends_with(".bias") {
        vec![0.0; numel]
    } else if name.contains("ln_") {
        vec![1.0; numel]
    } else if name.ends_with("c_proj.weight") {
        normal(rng, numel, 0.02 / (2.0 * layers as f64).sqrt())
    } else {
        normal(rng, numel, 0.02)
    }
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_has_the_right_moments_and_is_seeded() {
        let a = normal(&mut rng(3), 20_000, 2.0);
        let b = normal(&mut rng(3), 20_000, 2.0);
        assert_eq!(a, b);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "{var}");
    }
}
