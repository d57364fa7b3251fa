//! `EmbeddingBag`: pooled lookups, as `torch.nn.EmbeddingBag`. Each bag of
//! ids becomes one row (sum, mean or max of its rows) in one fused kernel,
//! `embedding_bag`; the gathered rows never reach memory.
//!
//! The type, its options, its output and its constructors are here; the
//! forward pass (and the checks on offsets and per-sample weights) is in
//! `embedding_bag/forward.rs`. The backward pass (all three modes, and the
//! per-sample-weight gradient) is in `embedding_bag/backward.rs`: it builds
//! on the embedding gradient's sorted segment sum. Max mode keeps what it
//! needs: the winning position of every output element
//! ([`BagOutput::max_positions`]).

use std::path::Path;

use crate::cpu::embedding_bag::BagMode;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::memory::GpuBuffer;
use crate::nn::{Embedding, EmbeddingOptions};
use crate::tensor::{Table, Tensor};

mod backward;
mod forward;

/// The options of `torch.nn.EmbeddingBag` that `torch.nn.Embedding` lacks.
/// (`padding_idx`, the seed, `freeze` and the dtype are in [`EmbeddingOptions`].)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmbeddingBagOptions {
    /// How a bag's rows reduce (PyTorch's default: mean). Max mode with the
    /// table's `scale_grad_by_freq` pools, but its backward calls refuse it
    /// (`InvalidArgument`), as `F.embedding_bag` does (PyTorch refuses it
    /// at the forward already); a sparse max gradient is allowed here.
    pub mode: BagMode,
    /// `offsets` has one more entry than there are bags, the last equal to
    /// the number of indices (CSR form).
    pub include_last_offset: bool,
}

/// A forward pass's output and, in max mode, what backward needs.
pub struct BagOutput {
    /// `[num_bags, dim]`.
    pub output: Tensor,
    /// Max mode: `[num_bags, dim]` u32, the position in `indices` whose row
    /// won each output element (ties: the lowest position);
    /// [`crate::cpu::embedding_bag::NO_POSITION`] where the bag had no
    /// non-padding entry. `None` in the other modes.
    pub max_positions: Option<GpuBuffer>,
    /// Whether the forward scaled rows by per-sample weights: a backward
    /// from this output must be given them again.
    pub(crate) weighted: bool,
    /// `forward::batch_fingerprint` of the batch it pooled.
    pub(crate) batch: Option<u64>,
}

impl BagOutput {
    /// Copies the max-mode winning positions to the host (empty in other modes).
    pub fn max_positions_to_vec(&self) -> Result<Vec<u32>> {
        match &self.max_positions {
            Some(buffer) => {
                let _scope = self.output.gpu().scope();
                crate::readback::read(
                    self.output.gpu(),
                    buffer.raw(),
                    0,
                    self.output.numel() as u64 * 4,
                    "max positions",
                )
            }
            None => Ok(Vec::new()),
        }
    }
}

/// A `[num_embeddings, dim]` table whose `forward` pools bags of rows.
pub struct EmbeddingBag {
    table: Embedding,
    options: EmbeddingBagOptions,
}

impl EmbeddingBag {
    /// N(0, 1) weights, as PyTorch initialises them, from a seed drawn from
    /// the `Gpu` (see [`EmbeddingOptions::seed`]).
    pub fn new(
        gpu: &Gpu,
        num_embeddings: usize,
        dim: usize,
        mode: BagMode,
    ) -> Result<EmbeddingBag> {
        EmbeddingBag::with_options(
            gpu,
            num_embeddings,
            dim,
            EmbeddingOptions::default(),
            EmbeddingBagOptions {
                mode,
                ..Default::default()
            },
        )
    }

    /// N(0, 1) weights from `table.seed` (or one drawn from the `Gpu`); the
    /// `padding_idx` row is zero.
    pub fn with_options(
        gpu: &Gpu,
        num_embeddings: usize,
        dim: usize,
        table: EmbeddingOptions,
        options: EmbeddingBagOptions,
    ) -> Result<EmbeddingBag> {
        let table = Embedding::with_options(gpu, num_embeddings, dim, table)?;
        Ok(EmbeddingBag::from_embedding(table, options))
    }

    /// `EmbeddingBag.from_pretrained`: a table holding `weights` (row-major).
    pub fn from_pretrained(
        gpu: &Gpu,
        weights: &[f32],
        num_embeddings: usize,
        dim: usize,
        freeze: bool,
        mode: BagMode,
    ) -> Result<EmbeddingBag> {
        let table = Embedding::from_pretrained(gpu, weights, num_embeddings, dim, freeze)?;
        Ok(EmbeddingBag::from_embedding(
            table,
            EmbeddingBagOptions {
                mode,
                ..Default::default()
            },
        ))
    }

    /// Pools with the table of `embedding` (any dtype, any source).
    pub fn from_embedding(embedding: Embedding, options: EmbeddingBagOptions) -> EmbeddingBag {
        EmbeddingBag {
            table: embedding,
            options,
        }
    }

    /// A table from a safetensors file (see [`Embedding::from_safetensors`]).
    pub fn from_safetensors(
        gpu: &Gpu,
        path: impl AsRef<Path>,
        tensor_name: &str,
        freeze: bool,
        options: EmbeddingBagOptions,
    ) -> Result<EmbeddingBag> {
        let table = Embedding::from_safetensors(gpu, path, tensor_name, freeze)?;
        Ok(EmbeddingBag::from_embedding(table, options))
    }

    /// A table from a `.npy` file (see [`Embedding::from_npy`]).
    pub fn from_npy(
        gpu: &Gpu,
        path: impl AsRef<Path>,
        freeze: bool,
        options: EmbeddingBagOptions,
    ) -> Result<EmbeddingBag> {
        let table = Embedding::from_npy(gpu, path, freeze)?;
        Ok(EmbeddingBag::from_embedding(table, options))
    }

    /// The table (weights, dtype, padding row, file saving).
    pub fn embedding(&self) -> &Embedding {
        &self.table
    }
    /// The table, taken back (to pool it another way, or look rows up one by one).
    pub fn into_embedding(self) -> Embedding {
        self.table
    }
    /// The weight `[num_embeddings, dim]`.
    pub fn weight(&self) -> &Table {
        self.table.weight()
    }
    /// The bag options.
    pub fn options(&self) -> &EmbeddingBagOptions {
        &self.options
    }
}
