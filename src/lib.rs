//! # wgpu-embed
//!
//! Hand-written WGSL compute kernels for an embedding layer's whole life —
//! seeded initialisation, lookup (gather), pooled lookup (bags), the
//! deterministic scatter-add gradient, updates, and the dense matmul of a
//! Linear layer — on any adapter wgpu reaches (Vulkan, Metal, DX12, GL,
//! software rasterizers). Every kernel but the `fma_peak` probe has a CPU
//! twin in [`cpu`] that is its specification and its test oracle.
//!
//! An embedding is a Linear layer applied to a one-hot vector that never
//! builds the one-hot vector: it just reads a row.
//!
//! ```no_run
//! use wgpu_embed::{Embedding, Error, Gpu};
//! # fn main() -> Result<(), Error> {
//! let gpu = Gpu::new()?;                               // best adapter; honours WGPU_BACKEND
//! let mut emb = Embedding::new(&gpu, 10_000, 64)?;     // N(0, 1), seed drawn from the Gpu
//! emb.uniform_(-1.0, 1.0, 42)?;                        // same numbers on every device
//! let out = emb.forward(&[0, 1, 9_999])?;              // [3, 64]
//! let rows: Vec<f32> = out.to_vec()?;
//! assert_eq!(rows.len(), 3 * 64);
//! let grad_out = wgpu_embed::Tensor::from_slice(&gpu, &vec![1.0; 3 * 64], &[3, 64])?;
//! emb.backward_sgd(&[0, 1, 9_999], &grad_out, 0.1)?;  // deterministic, fused update
//! assert!(matches!(emb.forward(&[10_000]), Err(Error::IndexOutOfRange { .. })));
//! # Ok(()) }
//! ```
//!
//! Kernels record into the caller's `wgpu::CommandEncoder` (`encode_*`), so
//! they can share a device with a renderer or trainer ([`Gpu::from_wgpu`]).
//!
//! Sizes: every table is a [`Table`] of row-blocks, one per storage binding
//! (one block when it fits; its dense gradient has the same blocks), f32 or
//! f16 alike, and outputs, index lists and gradients past one binding are processed in
//! windows bound at aligned offsets, so the adapter's memory and
//! `max_buffer_size` are the limits that remain; the README's "Known limits"
//! lists the arrays that must still fit one binding.

// Every public item is documented; CI's clippy -D warnings holds it.
#![warn(missing_docs)]

#[cfg(feature = "bench")]
pub mod bench;
mod binding;
pub mod cpu;
mod error;
mod gl;
mod gpu;
pub mod ids;
pub mod kernels;
mod memory;
pub mod nn;
mod pipeline;
mod readback;
mod recorder;
mod shader;
mod status;
mod tensor;
mod timing;
pub mod web;

pub use binding::{RowBlock, Span};
pub use error::{Error, Result};
pub use gl::GlTurn;
pub use gpu::{Gpu, GpuOptions, DEFAULT_WAIT_TIMEOUT};
pub use kernels::uniform_init::Distribution;
pub use memory::{GpuBuffer, DEFAULT_CACHE_BYTES};
pub use nn::{
    AdamOptions, AdamState, BagMode, BagOutput, Embedding, EmbeddingBag, EmbeddingBagOptions,
    EmbeddingOptions, F16Rounding, Gradient, GradientMode, Linear, LinearGrad, LinearOptions,
};
pub use status::{Status, STATUS_OK};
pub use tensor::{DType, HalfTensor, IndexTensor, Int8Tensor, Table, Tensor};
pub use timing::{Clock, Timing};

/// The README's Rust examples, compiled and run by `cargo test --doc` so
/// the first code a newcomer copies keeps working.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
