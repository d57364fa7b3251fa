//! Layers built from the kernels, mirroring PyTorch's `torch.nn`.

pub(crate) mod adam;
mod embedding;
mod embedding_bag;
mod files;
mod gradient;
mod linear;

pub use crate::cpu::embedding_bag::BagMode;
pub use adam::{AdamOptions, AdamState};
pub use embedding::{Embedding, EmbeddingOptions, F16Rounding, DEFAULT_SEED};
pub use embedding_bag::{BagOutput, EmbeddingBag, EmbeddingBagOptions};
pub use gradient::{Gradient, GradientMode};
pub use linear::{Linear, LinearGrad, LinearOptions};

use crate::error::{Error, Result};

/// The first index not below `num_embeddings`, as `IndexOutOfRange` (and a
/// list past u32 positions as `TooMany`).
pub(crate) fn check_indices(indices: &[u32], num_embeddings: usize) -> Result<()> {
    // Positions are u32 in the kernels: refuse a longer list before it is uploaded.
    crate::kernels::to_u32("index count", indices.len())?;
    match indices.iter().position(|&i| i as usize >= num_embeddings) {
        Some(position) => Err(Error::IndexOutOfRange {
            position,
            index: indices[position] as u64,
            num_embeddings,
        }),
        None => Ok(()),
    }
}

/// A learning rate or `eps` of the SGD and Adagrad steps: finite and not
/// negative, as PyTorch's optimizers require (a negative `eps` can make
/// Adagrad's denominator 0 and write ±∞ into the weights).
pub(crate) fn check_rate(name: &'static str, value: f32) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        name,
        reason: format!("must be finite and at least 0, got {value}"),
    })
}

/// An `eps` that `step` divides by (or SparseAdam's lr, which PyTorch also
/// wants above 0): finite and a normal f32. At 0 a referenced row whose
/// gradient is zero on a zero state divides 0 by 0 and its weights turn
/// NaN; a subnormal one is 0 on a GPU that flushes them.
pub(crate) fn check_above_zero(step: &str, name: &'static str, value: f32) -> Result<()> {
    if value.is_finite() && value >= f32::MIN_POSITIVE {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        name,
        reason: format!(
            "{step} needs it finite and at least the smallest normal f32 (0 would make \
             a row with a zero gradient NaN; a GPU may flush a subnormal one to 0), got {value}"
        ),
    })
}
