//! The forward pass of [`EmbeddingBag`]: the checks on offsets and
//! per-sample weights, then the fused `embedding_bag` kernel over windows of
//! bags (after a gather into scratch when the table is in several row-blocks).

use super::{BagOutput, EmbeddingBag};
use crate::binding::Span;
use crate::cpu::embedding_bag::BagMode;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::embedding_bag::{self, BagArgs, BagWindow};
use crate::kernels::embedding_gather::{self, GatherArgs, Window, STATUS_OK};
use crate::memory::GpuBuffer;
use crate::nn::{check_indices, Embedding};
use crate::recorder::{self, Recorder};
use crate::tensor::{DType, IndexTensor, Tensor};

/// The CSR offsets of `shape[0]` bags of `shape[1]` ids (PyTorch's 2-D input).
/// Empty bags make any count of them agree with no ids, so the count is
/// checked against the output's buffer (`[bags, dim]`) and the offsets' own
/// before the host builds `bags + 1` offsets.
pub(super) fn csr_2d(gpu: &Gpu, dim: usize, n: usize, shape: [usize; 2]) -> Result<Vec<u32>> {
    let [bags, len] = shape;
    if bags.checked_mul(len) != Some(n) {
        return Err(Error::ShapeMismatch {
            what: "EmbeddingBag 2-D indices ([bags, bag length])",
            expected: vec![bags, len],
            found: vec![n],
        });
    }
    crate::kernels::to_u32("bag count", bags)?;
    let bytes = |per: u64| (bags as u64).saturating_mul(per);
    gpu.check_size(
        "embedding_bag output ([bags, dim])",
        bytes(dim as u64 * 4),
        false,
    )?;
    gpu.check_size(
        "embedding_bag offsets (bags + 1 u32)",
        bytes(4).saturating_add(4),
        false,
    )?;
    let mut csr = crate::tensor::host_vec("embedding_bag offsets", bags + 1)?;
    for b in 0..=bags {
        csr.push(crate::kernels::to_u32("offset", b * len)?);
    }
    Ok(csr)
}

/// A hash of a batch (its ids and CSR offsets) and of the table it was
/// pooled from (its id and padding row), kept with a forward's winners
/// so that a backward on another batch of the same bag count, or by
/// another bag, is refused rather than routed by winners that are not its
/// own. The weights' values are not in it: as with PyTorch's saved
/// tensors, an update between forward and backward keeps the winners.
pub(super) fn batch_fingerprint(table: &Embedding, indices: &[u32], csr: &[u32]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    table.id.hash(&mut h);
    table.options().padding_idx.hash(&mut h);
    indices.hash(&mut h);
    csr.hash(&mut h);
    h.finish()
}

impl EmbeddingBag {
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
    /// `shape[0]` bags of `shape[1]` ids, row-major; no offsets. Beside
    /// [`forward`](Self::forward)'s errors: a shape that is not the ids'
    /// (`ShapeMismatch`), and a bag count past u32 (`TooMany`) or whose
    /// `[bags, dim]` output is past `max_buffer_size` (`TooLarge`).
    pub fn forward_2d(
        &self,
        indices: &[u32],
        shape: [usize; 2],
        per_sample_weights: Option<&[f32]>,
    ) -> Result<Tensor> {
        let csr = csr_2d(self.table.gpu(), self.table.dim(), indices.len(), shape)?;
        Ok(self.run(indices, &csr, per_sample_weights, true)?.output)
    }

    /// [`EmbeddingBag::forward`] that also returns max mode's winning positions.
    pub fn forward_with_positions(
        &self,
        indices: &[u32],
        offsets: &[u32],
        per_sample_weights: Option<&[f32]>,
    ) -> Result<BagOutput> {
        let csr = self.csr_offsets(offsets, indices.len())?;
        self.run(indices, &csr, per_sample_weights, true)
    }

    /// Validates `offsets` against `n` indices and returns the CSR form
    /// (`num_bags + 1` entries, the last `n`) that the kernel reads.
    pub(super) fn csr_offsets(&self, offsets: &[u32], n: usize) -> Result<Vec<u32>> {
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
    pub(super) fn check_weights(&self, n: usize, per_sample_weights: Option<&[f32]>) -> Result<()> {
        let mode = self.options.mode;
        if let Some(w) = per_sample_weights {
            crate::kernels::embedding_bag::check_weighted_mode(mode)?;
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

    /// The pooled forward. With `renorm` and the table's `max_norm`, the
    /// referenced rows are first renormalised in place, as PyTorch's
    /// `embedding_bag` does (max mode's backward reruns the pooling on the
    /// rows as they are, without it).
    pub(super) fn run(
        &self,
        indices: &[u32],
        csr: &[u32],
        per_sample_weights: Option<&[f32]>,
        renorm: bool,
    ) -> Result<BagOutput> {
        let _scope = crate::memory::Scope::enter();
        self.check_weights(indices.len(), per_sample_weights)?;
        let mode = self.options.mode;
        let emb = &self.table;
        check_indices(indices, emb.num_embeddings())?;
        if renorm {
            emb.check_renorm()?;
        }
        let gpu = emb.gpu();
        let num_bags = csr.len() - 1;
        let dim = emb.dim();
        let row_bytes = dim as u64 * 4;
        let bytes = (num_bags as u64).saturating_mul(row_bytes);
        gpu.check_size("embedding_bag output", bytes, false)?;
        // A table in several row-blocks is read through a scratch copy of the
        // batch's rows, gathered as f32 (see the shader); batches past one
        // binding pool in windows of bags.
        let gathered = emb.weight().num_blocks() > 1;
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
            // At least one row: the shader reads it as vec4 or vec2 words,
            // a binding an empty batch's 4-byte buffer is too short for.
            let rows = windows.iter().map(|w| w.positions.len()).max().unwrap_or(0);
            Some(gpu.storage(
                "embedding_bag gathered rows",
                (rows.max(1) as u64).saturating_mul(row_bytes),
            )?)
        } else {
            None
        };
        let mut encoder = gpu.encoder("EmbeddingBag::forward");
        recorder::record(gpu, &mut encoder, |rec| {
            if renorm {
                emb.record_renorm(rec, &idx, status.raw())?;
            }
            for window in &windows {
                let table = match &scratch {
                    Some(scratch) => {
                        self.record_gather_window(rec, &idx, status.raw(), scratch, window)?;
                        scratch.raw()
                    }
                    None => emb.weight().buffer()?,
                };
                embedding_bag::record_window(
                    rec,
                    &BagArgs {
                        mode,
                        table,
                        dtype: if gathered { DType::F32 } else { emb.dtype() },
                        num_embeddings: emb.num_embeddings(),
                        dim,
                        indices: idx.buffer(),
                        n: indices.len(),
                        offsets: offsets.raw(),
                        num_bags,
                        max_bag_len: window.longest,
                        per_sample_weights: weights.as_ref().map(|w| w.raw()),
                        padding_idx: emb.options().padding_idx,
                        status: status.raw(),
                        max_positions: max_positions.as_ref().map(|m| m.raw()),
                        out: output.buffer(),
                        threads_per_bag: None,
                    },
                    window,
                    gathered,
                )?;
            }
            Ok(())
        })?;
        gpu.submit_and_wait(encoder)?;
        Ok(BagOutput {
            output,
            max_positions,
            weighted: per_sample_weights.is_some(),
            // Only max mode's winners are tied to their batch.
            batch: (mode == BagMode::Max).then(|| batch_fingerprint(emb, indices, csr)),
        })
    }

    /// Gathers the rows of a window's positions from the table's row-blocks
    /// into `scratch`, row `k` for position `window.positions.start + k`.
    fn record_gather_window(
        &self,
        rec: &mut Recorder,
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
            table: &blocks,
            dtype: emb.dtype(),
            num_embeddings: emb.num_embeddings(),
            dim: emb.dim(),
            indices: idx.buffer(),
            n: idx.len(),
            status,
            out: scratch.raw(),
            threads_per_row: None,
            workgroup_size: None,
            const_dim: false,
        };
        let gather_window = Window {
            indices: Span::items(idx.buffer(), positions, 4),
            out: Span::items(scratch.raw(), &(0..positions.len()), row_bytes),
            pos_base: positions.start,
            n: positions.len(),
        };
        embedding_gather::record_windows(rec, &args, &[gather_window])
    }
}
