//! `EmbeddingBag`: pooled lookups, as `torch.nn.EmbeddingBag`. Each bag of
//! ids becomes one row (sum, mean or max of its rows) in one fused kernel,
//! `embedding_bag`; the gathered rows never reach memory.
//!
//! The backward pass (all three modes, and the per-sample-weight gradient)
//! is in `embedding_bag/backward.rs`: it builds on the embedding gradient's sorted segment
//! sum. Max mode keeps what it needs: the winning position of every output
//! element ([`BagOutput::max_positions`]).

use std::path::Path;

use crate::binding::Span;
use crate::cpu::embedding_bag::BagMode;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::embedding_bag::{self, BagArgs, BagWindow};
use crate::kernels::embedding_gather::{self, GatherArgs, Window, STATUS_OK};
use crate::memory::GpuBuffer;
use crate::nn::check_indices;
use crate::nn::weight::Weight;
use crate::nn::{Embedding, EmbeddingOptions};
use crate::tensor::{IndexTensor, Tensor};

mod backward;

/// The options of `torch.nn.EmbeddingBag` that `torch.nn.Embedding` lacks.
/// (`padding_idx`, the seed, `freeze` and the dtype are in [`EmbeddingOptions`].)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmbeddingBagOptions {
    /// How a bag's rows reduce (PyTorch's default: mean).
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
}

impl BagOutput {
    /// Copies the max-mode winning positions to the host (empty in other modes).
    pub fn max_positions_to_vec(&self) -> Result<Vec<u32>> {
        match &self.max_positions {
            Some(buffer) => {
                let bytes = crate::readback::read_bytes(
                    self.output.gpu(),
                    buffer.raw(),
                    0,
                    self.output.numel() as u64 * 4,
                    "max positions",
                )?;
                Ok(bytemuck::pod_collect_to_vec(&bytes))
            }
            None => Ok(Vec::new()),
        }
    }
}

/// The CSR offsets of `shape[0]` bags of `shape[1]` ids (PyTorch's 2-D input).
fn csr_2d(n: usize, shape: [usize; 2]) -> Result<Vec<u32>> {
    let [bags, len] = shape;
    if bags.checked_mul(len) != Some(n) {
        return Err(Error::ShapeMismatch {
            what: "EmbeddingBag 2-D indices ([bags, bag length])",
            expected: vec![bags, len],
            found: vec![n],
        });
    }
    (0..=bags)
        .map(|b| crate::kernels::to_u32("offset", b * len))
        .collect()
}

/// A `[num_embeddings, dim]` table whose `forward` pools bags of rows.
pub struct EmbeddingBag {
    table: Embedding,
    options: EmbeddingBagOptions,
}

impl EmbeddingBag {
    /// N(0, 1) weights from the default seed, as PyTorch initialises them.
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

    /// N(0, 1) weights from `table.seed`; the `padding_idx` row is zero.
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
    pub fn weight(&self) -> &Weight {
        self.table.weight()
    }
    /// The bag options.
    pub fn options(&self) -> &EmbeddingBagOptions {
        &self.options
    }

    /// Pools `indices` in bags that start at `offsets` (PyTorch's 1-D input):
    /// a `[num_bags, dim]` tensor. `per_sample_weights` (one per index) scale
    /// the rows in sum mode. Errors, all before any work: offsets that do not
    /// describe bags of `indices` ([`Error::InvalidOffsets`]), an index past
    /// the table ([`Error::IndexOutOfRange`]), weights in another mode or of
    /// the wrong length.
    pub fn forward(
        &self,
        indices: &[u32],
        offsets: &[u32],
        per_sample_weights: Option<&[f32]>,
    ) -> Result<Tensor> {
        Ok(self
            .forward_with_positions(indices, offsets, per_sample_weights)?
            .output)
    }

    /// Pools fixed-length bags (PyTorch's 2-D input): `indices` holds
    /// `shape[0]` bags of `shape[1]` ids, row-major; no offsets.
    pub fn forward_2d(
        &self,
        indices: &[u32],
        shape: [usize; 2],
        per_sample_weights: Option<&[f32]>,
    ) -> Result<Tensor> {
        let csr = csr_2d(indices.len(), shape)?;
        Ok(self.run(indices, &csr, per_sample_weights)?.output)
    }

    /// [`EmbeddingBag::forward`] that also returns max mode's winning positions.
    pub fn forward_with_positions(
        &self,
        indices: &[u32],
        offsets: &[u32],
        per_sample_weights: Option<&[f32]>,
    ) -> Result<BagOutput> {
        let csr = self.csr_offsets(offsets, indices.len())?;
        self.run(indices, &csr, per_sample_weights)
    }

    /// Validates `offsets` against `n` indices and returns the CSR form
    /// (`num_bags + 1` entries, the last `n`) that the kernel reads.
    fn csr_offsets(&self, offsets: &[u32], n: usize) -> Result<Vec<u32>> {
        let mut csr = offsets.to_vec();
        if self.options.include_last_offset {
            let Some(&last) = offsets.last() else {
                return Err(Error::InvalidArgument {
                    name: "offsets",
                    reason: "include_last_offset needs at least one offset (the end)".into(),
                });
            };
            if last as usize != n {
                return Err(Error::InvalidOffsets {
                    position: offsets.len() - 1,
                    offset: last as u64,
                    reason: format!(
                        "with include_last_offset the last offset must equal the number of \
                         indices, {n}"
                    ),
                });
            }
        } else {
            if offsets.is_empty() && n > 0 {
                return Err(Error::InvalidArgument {
                    name: "offsets",
                    reason: format!("no bags (empty offsets) but {n} indices"),
                });
            }
            csr.push(crate::kernels::to_u32("index count", n)?);
        }
        if let Some(&first) = offsets.first() {
            if first != 0 {
                return Err(Error::InvalidOffsets {
                    position: 0,
                    offset: first as u64,
                    reason: "the first bag must start at 0".into(),
                });
            }
        }
        for (position, &offset) in offsets.iter().enumerate() {
            if offset as usize > n {
                return Err(Error::InvalidOffsets {
                    position,
                    offset: offset as u64,
                    reason: format!("past the end of the {n} indices"),
                });
            }
            if position > 0 && offset < offsets[position - 1] {
                return Err(Error::InvalidOffsets {
                    position,
                    offset: offset as u64,
                    reason: format!(
                        "below offsets[{}] = {}: offsets must not decrease",
                        position - 1,
                        offsets[position - 1]
                    ),
                });
            }
        }
        Ok(csr)
    }

    /// Per-sample weights: only in sum mode, one per index.
    fn check_weights(&self, n: usize, per_sample_weights: Option<&[f32]>) -> Result<()> {
        let mode = self.options.mode;
        if let Some(w) = per_sample_weights {
            if mode != BagMode::Sum {
                return Err(Error::InvalidArgument {
                    name: "per_sample_weights",
                    reason: format!(
                        "only mode Sum takes per-sample weights (as in PyTorch); mode is {mode:?}"
                    ),
                });
            }
            if w.len() != n {
                return Err(Error::LengthMismatch {
                    what: "per_sample_weights (one per index)",
                    expected: n,
                    found: w.len(),
                });
            }
        }
        Ok(())
    }

    fn run(
        &self,
        indices: &[u32],
        csr: &[u32],
        per_sample_weights: Option<&[f32]>,
    ) -> Result<BagOutput> {
        self.check_weights(indices.len(), per_sample_weights)?;
        let mode = self.options.mode;
        let emb = &self.table;
        check_indices(indices, emb.num_embeddings())?;
        let gpu = emb.gpu();
        let num_bags = csr.len() - 1;
        let dim = emb.dim();
        let row_bytes = dim as u64 * 4;
        let bytes = (num_bags as u64).saturating_mul(row_bytes);
        gpu.check_size("embedding_bag output", bytes, false)?;
        // A table in row-chunks is read through a scratch copy of the batch's
        // rows (see the shader); batches past one binding pool in windows of bags.
        let gathered = emb.weight().chunks().len() > 1;
        let windows = embedding_bag::windows(gpu, csr, dim, gathered)?;
        let output = Tensor::zeros(gpu, &[num_bags, dim])?;
        let max_positions = match mode {
            BagMode::Max => Some(gpu.storage("embedding_bag max positions", bytes)?),
            _ => None,
        };
        let idx = IndexTensor::from_slice(gpu, indices)?;
        let offsets = gpu.storage_from("embedding_bag offsets", csr)?;
        let weights = per_sample_weights
            .map(|w| gpu.storage_from("per_sample_weights", w))
            .transpose()?;
        let status = gpu.storage_from("embedding_bag status", &[STATUS_OK])?;
        let scratch = if gathered {
            let rows = windows.iter().map(|w| w.positions.len()).max().unwrap_or(0);
            Some(gpu.storage(
                "embedding_bag gathered rows",
                (rows as u64).saturating_mul(row_bytes),
            )?)
        } else {
            None
        };
        let mut encoder = gpu.encoder("EmbeddingBag::forward");
        for window in &windows {
            let table = match &scratch {
                Some(scratch) => {
                    self.encode_gather_window(&mut encoder, &idx, status.raw(), scratch, window)?;
                    scratch.raw()
                }
                None => emb.weight().buffer()?,
            };
            embedding_bag::encode_window(
                gpu,
                &mut encoder,
                &BagArgs {
                    mode,
                    table,
                    dtype: emb.dtype(),
                    num_embeddings: emb.num_embeddings(),
                    dim,
                    indices: idx.buffer(),
                    n: indices.len(),
                    offsets: offsets.raw(),
                    num_bags,
                    max_bag_len: window.longest,
                    per_sample_weights: weights.as_ref().map(|w| w.raw()),
                    padding_idx: emb.options().padding_idx.map(|p| p as u32),
                    status: status.raw(),
                    max_positions: max_positions.as_ref().map(|m| m.raw()),
                    out: output.buffer(),
                    threads_per_bag: None,
                },
                window,
                gathered,
            )?;
        }
        gpu.submit_and_wait(encoder)?;
        Ok(BagOutput {
            output,
            max_positions,
        })
    }

    /// Gathers the rows of a window's positions from the table's row-chunks
    /// into `scratch`, row `k` for position `window.positions.start + k`.
    fn encode_gather_window(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        idx: &IndexTensor,
        status: &wgpu::Buffer,
        scratch: &GpuBuffer,
        window: &BagWindow,
    ) -> Result<()> {
        let emb = &self.table;
        let positions = &window.positions;
        if positions.is_empty() {
            return Ok(());
        }
        let row_bytes = emb.dim() as u64 * 4;
        let blocks = emb.weight().blocks();
        let args = GatherArgs {
            table: blocks[0].span.buffer,
            num_embeddings: emb.num_embeddings(),
            dim: emb.dim(),
            indices: idx.buffer(),
            n: idx.len(),
            status,
            out: scratch.raw(),
            threads_per_row: None,
            workgroup_size: None,
            const_dim: false,
            chunk: None,
        };
        let gather_window = Window {
            indices: Span::items(idx.buffer(), positions, 4),
            out: Span::items(scratch.raw(), &(0..positions.len()), row_bytes),
            pos_base: positions.start,
            n: positions.len(),
        };
        embedding_gather::encode_blocks(emb.gpu(), encoder, &args, false, &blocks, &[gather_window])
    }
}
