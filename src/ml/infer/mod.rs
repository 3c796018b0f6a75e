//! Inference: batched sampling with a key/value cache, and defection probes that read the
//! residual stream.

pub mod probe;
pub mod responder;
pub mod sample;
