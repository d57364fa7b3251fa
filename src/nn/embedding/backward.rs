//! The backward side of [`Embedding`]: the gradient of a lookup, as a dense
//! table or sparse rows (the updates built on it are in `update.rs`).
//!
//! The deterministic path (the default, every adapter) records:
//! `row_histogram` (row counts; checks every index) → `exclusive_scan`
//! (each row's segment offset) →
//! `radix_sort` (positions grouped by row, stable, so ascending within a
//! row) → `segment_sum` (each row's segment summed in ascending position
//! order, long segments split into tiles and recombined in tile order). A
//! sparse gradient and the fused updates only check the indices
//! (`row_check`) and find each row's segment in the sorted keys (a sparse
//! gradient's slots: `exclusive_scan` of the keys' run starts), so they cost
//! the batch, not the table's rows. Every adapter and `cpu::embedding_backward_*`
//! produce the same bits. The atomic path (`GradientMode::Atomic`) is one
//! float `atomicAdd` per element: faster where the adapter has it, but the
//! order of the additions, and so the rounding, changes from run to run.
//!
//! Past one storage binding: the dense gradient of a table in several
//! row-blocks has the same blocks (see [`crate::Table`]), and each kernel
//! writes one block per dispatch; a `grad_out`, a one-tensor gradient or sparse values
//! past one binding are read and written in windows (see `segment_sum`).
//! A dense gradient's per-row arrays (`num_embeddings + 1` u32s) and the
//! sort's index list must each fit one binding.
//!
//! An f16 table's gradient is f16, stored like the table (dense: its
//! row-blocks; sparse: `[rows, dim]` halves): each element summed in f32 in
//! the order above and rounded once, to nearest. It always takes the sorted
//! path (there is no f16 atomic add).

use super::sort::{record_sort, PerRow};
use super::IndexCheck;
use crate::binding::RowBlock;
use crate::error::{Error, Result};
use crate::kernels::scatter_add_atomic::{self, AtomicArgs};
use crate::kernels::segment_sum::{self, SegmentOutput};
use crate::nn::check_indices;
use crate::nn::{Embedding, Gradient, GradientMode};
use crate::recorder::{self, Recorder};
use crate::status::Status;
use crate::tensor::{DType, HalfTensor, IndexTensor, Table, Tensor};

impl Embedding {
    pub(in crate::nn) fn check_trainable(&self) -> Result<()> {
        // The dtype first: an int8 table is frozen too (from_int8_rowwise,
        // quantize_int8), and unfreezing it would not make it trainable.
        if self.weight.dtype() == DType::Int8 {
            return Err(Error::InvalidArgument {
                name: "dtype",
                reason: "an int8 row-wise table is for inference: gradients and updates \
                         need an f32 or f16 table"
                    .into(),
            });
        }
        if self.options.freeze {
            return Err(Error::Frozen);
        }
        Ok(())
    }

    pub(super) fn check_grad_out(&self, n: usize, grad_out: &Tensor) -> Result<()> {
        grad_out.check_gpu(&self.gpu, "grad_out")?;
        if grad_out.shape() != [n, self.dim] {
            return Err(Error::ShapeMismatch {
                what: "grad_out ([indices.len(), dim])",
                expected: vec![n, self.dim],
                found: grad_out.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// The gradient of `forward(indices)` given `grad_out` (`[indices.len(), dim]`):
    /// `Gradient::Sparse` when the options say `sparse`, else `Gradient::Dense`.
    /// Every index is checked first (`IndexOutOfRange`); frozen tables give `Frozen`.
    pub fn backward(&self, indices: &[u32], grad_out: &Tensor) -> Result<Gradient> {
        crate::readback::block("backward", self.backward_async(indices, grad_out))
    }

    /// [`backward`](Self::backward) without blocking (a web page's way; a
    /// sparse gradient reads its row count back).
    pub async fn backward_async(&self, indices: &[u32], grad_out: &Tensor) -> Result<Gradient> {
        self.check_backward(indices.len(), grad_out)?;
        check_indices(indices, self.num_embeddings)?;
        let idx = IndexTensor::from_slice(&self.gpu, indices)?;
        self.backward_with(&idx, grad_out, IndexCheck::Host).await
    }

    /// [`backward`](Self::backward) for indices already on the GPU; an
    /// out-of-range index is found by the kernels and returned as the same error.
    pub fn backward_gpu(&self, indices: &IndexTensor, grad_out: &Tensor) -> Result<Gradient> {
        crate::readback::block("backward", self.backward_gpu_async(indices, grad_out))
    }

    /// [`backward_gpu`](Self::backward_gpu) without blocking: the index
    /// check's status word is awaited, not waited for.
    pub async fn backward_gpu_async(
        &self,
        indices: &IndexTensor,
        grad_out: &Tensor,
    ) -> Result<Gradient> {
        indices.check_gpu(&self.gpu, "indices")?;
        self.check_backward(indices.len(), grad_out)?;
        self.backward_with(indices, grad_out, IndexCheck::Gpu).await
    }

    /// The checks every backward makes once, before anything is recorded:
    /// a trainable f32 table and a `[n, dim]` `grad_out` on this Gpu.
    pub(super) fn check_backward(&self, n: usize, grad_out: &Tensor) -> Result<()> {
        self.check_trainable()?;
        self.check_grad_out(n, grad_out)
    }

    /// The backward after the checks, reading the status back only when the
    /// host did not check the indices (`EmbeddingBag` calls it with the
    /// indices and gradient it expanded and checked).
    /// [`backward_with`](Self::backward_with) of host-checked indices, blocking.
    pub(in crate::nn) fn backward_with_blocking(
        &self,
        indices: &IndexTensor,
        grad_out: &Tensor,
    ) -> Result<Gradient> {
        crate::readback::block(
            "backward",
            self.backward_with(indices, grad_out, IndexCheck::Host),
        )
    }

    pub(in crate::nn) async fn backward_with(
        &self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        check: IndexCheck,
    ) -> Result<Gradient> {
        let status = Status::new(&self.gpu)?;
        if self.options.sparse {
            return self
                .backward_sparse(indices, grad_out, &status, check)
                .await;
        }
        let grad = self
            .dense_backward(indices, grad_out, &status, check)
            .await?;
        Ok(Gradient::Dense(grad))
    }

    /// The dense gradient in the table's row-blocks, submitted and checked.
    pub(super) async fn dense_backward(
        &self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        status: &Status,
        check: IndexCheck,
    ) -> Result<Table> {
        // Allocated, recorded and submitted in one scope; only the check is
        // awaited (see `submit_for_check`).
        let (grad, submitted) = {
            let _scope = self.gpu.scope();
            let grad = self.weight.zeros_like()?;
            let mut encoder = self.gpu.encoder("Embedding::backward");
            let blocks = grad.blocks();
            recorder::record(&self.gpu, &mut encoder, |rec| {
                self.record_backward(rec, indices, grad_out, blocks, status.buffer())
            })?;
            let submitted = self.submit_for_check(encoder, status, check)?;
            (grad, submitted)
        };
        self.check_submitted(submitted, status, indices).await?;
        Ok(grad)
    }

    /// A zeroed dense gradient in the table's row-blocks and storage type
    /// (what [`encode_backward_into`](Self::encode_backward_into) fills).
    pub fn dense_gradient_zeros(&self) -> Result<Gradient> {
        Ok(Gradient::Dense(self.weight.zeros_like()?))
    }

    async fn backward_sparse(
        &self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        status: &Status,
        check: IndexCheck,
    ) -> Result<Gradient> {
        let gpu = &self.gpu;
        let (v, dim) = (self.num_embeddings, self.dim);
        let capacity = indices.len().min(v);
        // Scopes only around what records and submits, never across an
        // await (see `submit_for_check`).
        let scope = gpu.scope();
        // One slot per sorted entry, and the number of rows last.
        let n = indices.len() as u64;
        let ranks = gpu.storage("sparse gradient ranks", (n + 1) * 4)?;
        let rows = gpu.storage("sparse gradient rows", capacity as u64 * 4)?;
        let elements = capacity as u64 * dim as u64;
        let values = match self.dtype() {
            // Halves, allocated as a HalfTensor's buffer is.
            DType::F16 => gpu.storage(
                "sparse gradient values",
                crate::tensor::half_bytes(elements as usize),
            )?,
            _ => gpu.storage("sparse gradient values", elements * 4)?,
        };
        let mut encoder = gpu.encoder("Embedding::backward (sparse)");
        recorder::record(gpu, &mut encoder, |rec| {
            let per_row = PerRow::Ranks {
                out: ranks.raw(),
                padding_idx: self.options.padding_idx,
            };
            let batch = record_sort(rec, indices, v, status.buffer(), per_row)?;
            let target = SegmentOutput::Sparse {
                ranks: ranks.raw(),
                rows: rows.raw(),
                values: values.raw(),
            };
            segment_sum::record(
                rec,
                &self.segment_args(
                    &batch,
                    indices,
                    grad_out,
                    status.buffer(),
                    self.gradient_rounding(),
                ),
                &[target],
            )
        })?;
        let submitted = self.submit_for_check(encoder, status, check)?;
        let ranks_raw = ranks.raw();
        drop(scope);
        self.check_submitted(submitted, status, indices).await?;
        // The copy into the staging buffer is submitted before the first await.
        let unique: Vec<u32> =
            crate::readback::read_async(gpu, ranks_raw, n * 4, 4, "sparse row count").await?;
        let unique = (unique.first().copied().unwrap_or(0) as usize).min(capacity);
        // The rows and values stay where the kernels wrote them: no copy.
        let row_tensor = IndexTensor::from_parts(gpu, rows, unique);
        let values = match self.dtype() {
            DType::F16 => HalfTensor::from_parts(gpu, values, vec![unique, dim]).into(),
            _ => Tensor::from_parts(gpu, values, vec![unique, dim]).into(),
        };
        Ok(Gradient::Sparse {
            rows: row_tensor.known_sorted_below(v),
            values,
        })
    }

    /// Records the dense gradient into `grad` (`[num_embeddings, dim]`, every
    /// row overwritten) in the caller's encoder, by the options' gradient
    /// mode. `status` ([`Status::new`]) records the first out-of-range
    /// position for [`Status::read`] after the submit. `grad` may be past one
    /// storage binding (it is written in windows); for a gradient past one
    /// buffer, or an f16 table's (whose gradient is f16, not a `Tensor`),
    /// use [`encode_backward_into`](Self::encode_backward_into).
    pub fn encode_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        indices: &IndexTensor,
        grad_out: &Tensor,
        grad: &Tensor,
        status: &Status,
    ) -> Result<()> {
        self.encode_backward_into(
            encoder,
            indices,
            grad_out,
            &Gradient::Dense(grad.clone().into()),
            status,
        )
    }

    /// [`encode_backward`](Self::encode_backward) into a dense gradient of
    /// either storage ([`dense_gradient_zeros`](Self::dense_gradient_zeros)
    /// makes one); a sparse `grad` is `InvalidArgument`.
    pub fn encode_backward_into(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        indices: &IndexTensor,
        grad_out: &Tensor,
        grad: &Gradient,
        status: &Status,
    ) -> Result<()> {
        recorder::record(&self.gpu, encoder, |rec| {
            indices.check_gpu(&self.gpu, "indices")?;
            status.check_gpu(&self.gpu, "status")?;
            self.check_backward(indices.len(), grad_out)?;
            let blocks = self.dense_blocks(
                grad,
                "Embedding::encode_backward grad ([num_embeddings, dim])",
            )?;
            self.record_backward(rec, indices, grad_out, blocks, status.buffer())
        })
    }

    /// Whether the gradient takes the float-atomic path: asked for, and an
    /// f32 table (f16 gradients take the sorted path: there is no f16
    /// atomic add).
    pub(super) fn atomic_gradient(&self) -> bool {
        self.options.gradient_mode == GradientMode::Atomic && self.dtype() == DType::F32
    }

    /// Records the dense gradient into `blocks` (the gradient's row-blocks)
    /// by the options' gradient mode, after the caller's checks.
    pub(super) fn record_backward(
        &self,
        rec: &mut Recorder,
        indices: &IndexTensor,
        grad_out: &Tensor,
        blocks: Vec<RowBlock>,
        status: &wgpu::Buffer,
    ) -> Result<()> {
        let gpu = &self.gpu;
        if self.atomic_gradient() {
            scatter_add_atomic::check_supported(gpu)?;
            // The counts are read only to scale by frequency; else a placeholder.
            let counts = if self.options.scale_grad_by_freq {
                self.record_histogram(rec, indices, status)?
            } else {
                // One word: a table too large for one binding of counts
                // is not refused for a buffer the shader never reads.
                gpu.storage_uninit("gradient row counts (unread)", 4)?
            };
            // One scatter per block of the gradient, each adding only its rows.
            for block in blocks {
                scatter_add_atomic::record(
                    rec,
                    &AtomicArgs {
                        indices: indices.buffer(),
                        n: indices.len(),
                        num_embeddings: self.num_embeddings,
                        dim: self.dim,
                        padding_idx: self.options.padding_idx,
                        counts: counts.raw(),
                        scale_by_freq: self.options.scale_grad_by_freq,
                        status,
                        grad_out: grad_out.buffer(),
                        grad: block,
                    },
                )?;
            }
            return Ok(());
        }
        let batch = record_sort(rec, indices, self.num_embeddings, status, PerRow::Offsets)?;
        let targets: Vec<SegmentOutput> = blocks
            .into_iter()
            .map(|grad| SegmentOutput::Dense { grad })
            .collect();
        let args = self.segment_args(&batch, indices, grad_out, status, self.gradient_rounding());
        segment_sum::record(rec, &args, &targets)
    }

    /// The row-blocks of a dense gradient, after checking its Gpu, dtype and shape.
    pub(super) fn dense_blocks<'a>(
        &self,
        grad: &'a Gradient,
        what: &'static str,
    ) -> Result<Vec<RowBlock<'a>>> {
        let Gradient::Dense(t) = grad else {
            return Err(Error::InvalidArgument {
                name: "grad",
                reason: "a dense gradient is needed here; this one is sparse".into(),
            });
        };
        t.check_gpu(&self.gpu, "gradient")?;
        if t.dtype() != self.dtype() {
            return Err(Error::InvalidArgument {
                name: "grad",
                reason: format!(
                    "a dense gradient is stored like its table ({:?}); this one is {:?}",
                    self.dtype(),
                    t.dtype()
                ),
            });
        }
        if t.shape() != [self.num_embeddings, self.dim] {
            return Err(Error::ShapeMismatch {
                what,
                expected: vec![self.num_embeddings, self.dim],
                found: t.shape().to_vec(),
            });
        }
        Ok(t.blocks())
    }
}
