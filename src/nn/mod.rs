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
pub use linear::{Linear, LinearGrad, LinearOptions, DEFAULT_LINEAR_SEED};

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
