//! The backward side of [`Embedding`]: the gradient of a lookup, as a dense
//! table or sparse rows (the updates built on it are in `update.rs`).
//!
//! The deterministic path (the default, every adapter) records:
//! `row_histogram` (row counts; checks every index) → `exclusive_scan`
//! (each row's segment offset) → `radix_sort` (positions grouped by row,
//! stable, so ascending within a row) → `segment_sum` (each row's segment
//! summed in ascending position order, long segments split into tiles and
//! recombined in tile order). Every adapter and `cpu::embedding_backward_*`
//! produce the same bits. The atomic path (`GradientMode::Atomic`) is one
//! float `atomicAdd` per element: faster where the adapter has it, but the
//! order of the additions, and so the rounding, changes from run to run.
//!
//! Past one storage binding: the dense gradient of a row-chunked table is
//! chunked like it ([`Gradient::DenseChunked`]), and each kernel writes one
//! chunk per dispatch; a `grad_out`, a one-tensor gradient or sparse values
//! past one binding are read and written in windows (see `segment_sum`).
//! The per-row arrays (`num_embeddings + 1` u32s) and the sort's index list
//! must each fit one binding.

use std::ops::Range;

use super::sort::encode_sort;
use super::IndexCheck;
use crate::error::{Error, Result};
use crate::kernels::exclusive_scan::{self, ScanArgs};
use crate::kernels::row_histogram::{self, HistogramArgs};
use crate::kernels::scatter_add_atomic::{self, AtomicArgs};
use crate::kernels::segment_sum::{self, SegmentOutput, SegmentTarget};
use crate::nn::check_indices;
use crate::nn::weight::Weight;
use crate::nn::{Embedding, Gradient, GradientMode};
use crate::status::Status;
use crate::tensor::{IndexTensor, Tensor};

impl Embedding {
    pub(in crate::nn) fn check_trainable(&self) -> Result<()> {
        if self.options.freeze {
            return Err(Error::Frozen);
        }
        if self.weight.dtype() != crate::nn::DType::F32 {
            // Training an f16 table needs an f32 master copy; not built yet.
            return Err(Error::InvalidArgument {
                name: "dtype",
                reason: "gradients and updates need an f32 table; this one is stored as f16".into(),
            });
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
        self.check_trainable()?;
        self.check_grad_out(indices.len(), grad_out)?;
        check_indices(indices, self.num_embeddings)?;
        let idx = IndexTensor::from_slice(&self.gpu, indices)?;
        self.backward_with(&idx, grad_out, IndexCheck::Host)
    }

    /// [`backward`](Self::backward) for indices already on the GPU; an
    /// out-of-range index is found by the kernels and returned as the same error.
    pub fn backward_gpu(&self, indices: &IndexTensor, grad_out: &Tensor) -> Result<Gradient> {
        self.check_trainable()?;
        indices.check_gpu(&self.gpu, "indices")?;
        self.check_grad_out(indices.len(), grad_out)?;
        self.backward_with(indices, grad_out, IndexCheck::Gpu)
    }

    /// The backward after the checks, reading the status back only when the
    /// host did not check the indices.
    fn backward_with(
        &self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        check: IndexCheck,
    ) -> Result<Gradient> {
        let status = Status::new(&self.gpu)?;
        if self.options.sparse {
            return self.backward_sparse(indices, grad_out, &status, check);
        }
        let grad = self.dense_gradient_zeros()?;
        let mut encoder = self.gpu.encoder("Embedding::backward");
        self.encode_backward_into(&mut encoder, indices, grad_out, &grad, &status)?;
        self.submit_checked(encoder, &status, indices, check)?;
        Ok(grad)
    }

    /// A zeroed dense gradient stored like the table: [`Gradient::Dense`] for
    /// a table in one binding, [`Gradient::DenseChunked`] in the table's
    /// row-chunks for a chunked one (what [`encode_backward_into`](Self::encode_backward_into) fills).
    pub fn dense_gradient_zeros(&self) -> Result<Gradient> {
        match &self.weight {
            Weight::F32Chunked(t) => Ok(Gradient::DenseChunked(t.zeros_like()?)),
            _ => Ok(Gradient::Dense(Tensor::zeros(
                &self.gpu,
                &[self.num_embeddings, self.dim],
            )?)),
        }
    }

    fn backward_sparse(
        &self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        status: &Status,
        check: IndexCheck,
    ) -> Result<Gradient> {
        let gpu = &self.gpu;
        let (v, dim) = (self.num_embeddings, self.dim);
        let capacity = indices.len().min(v);
        let ranks = gpu.storage("sparse gradient ranks", (v as u64 + 1) * 4)?;
        let rows = gpu.storage("sparse gradient rows", capacity as u64 * 4)?;
        let values = gpu.storage("sparse gradient values", capacity as u64 * dim as u64 * 4)?;
        let mut encoder = gpu.encoder("Embedding::backward (sparse)");
        let batch = encode_sort(gpu, &mut encoder, indices, v, status.buffer())?;
        exclusive_scan::encode(
            gpu,
            &mut encoder,
            &ScanArgs {
                input: batch.counts.raw(),
                len: v,
                out: ranks.raw(),
                exclude: self.options.padding_idx,
                flags: true,
            },
        )?;
        let target = SegmentTarget {
            output: SegmentOutput::Sparse {
                ranks: ranks.raw(),
                rows: rows.raw(),
                values: values.raw(),
            },
            rows: None,
        };
        segment_sum::encode(
            gpu,
            &mut encoder,
            &self.segment_args(&batch, indices, grad_out, status.buffer()),
            &[target],
        )?;
        self.submit_checked(encoder, status, indices, check)?;
        let unique_bytes =
            crate::readback::read_bytes(gpu, ranks.raw(), v as u64 * 4, 4, "sparse row count")?;
        let unique = (bytemuck::pod_read_unaligned::<u32>(&unique_bytes) as usize).min(capacity);
        let row_tensor = IndexTensor::from_slice(gpu, &vec![0u32; unique])?;
        if unique > 0 {
            let mut copy = gpu.encoder("sparse gradient rows");
            copy.copy_buffer_to_buffer(rows.raw(), 0, row_tensor.buffer(), 0, unique as u64 * 4);
            gpu.submit_and_wait(copy)?;
        }
        Ok(Gradient::Sparse {
            rows: row_tensor,
            values: Tensor::from_parts(gpu, values, vec![unique, dim]),
        })
    }

    /// Records the dense gradient into `grad` (`[num_embeddings, dim]`, every
    /// row overwritten) in the caller's encoder, by the options' gradient
    /// mode. `status` ([`Status::new`]) records the first out-of-range
    /// position for [`Status::read`] after the submit. `grad` may be past one
    /// storage binding (it is written in windows); for a gradient past one
    /// buffer use [`encode_backward_into`](Self::encode_backward_into).
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
            &Gradient::Dense(grad.clone()),
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
        self.check_trainable()?;
        indices.check_gpu(&self.gpu, "indices")?;
        status.check_gpu(&self.gpu, "status")?;
        let status = status.buffer();
        self.check_grad_out(indices.len(), grad_out)?;
        let blocks = self.dense_blocks(
            grad,
            "Embedding::encode_backward grad ([num_embeddings, dim])",
        )?;
        let gpu = &self.gpu;
        if self.options.gradient_mode == GradientMode::Atomic {
            scatter_add_atomic::check_supported(gpu)?;
            let counts = gpu.storage("gradient row counts", self.num_embeddings as u64 * 4)?;
            if self.options.scale_grad_by_freq {
                row_histogram::encode(
                    gpu,
                    encoder,
                    &HistogramArgs {
                        indices: indices.buffer(),
                        n: indices.len(),
                        num_embeddings: self.num_embeddings,
                        status,
                        counts: counts.raw(),
                    },
                )?;
            }
            // One scatter per block of the gradient, each adding only its rows.
            for (rows, buffer) in blocks {
                scatter_add_atomic::encode(
                    gpu,
                    encoder,
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
                        grad: buffer,
                        rows: Some(rows),
                    },
                )?;
            }
            return Ok(());
        }
        let batch = encode_sort(gpu, encoder, indices, self.num_embeddings, status)?;
        let targets: Vec<SegmentTarget> = blocks
            .into_iter()
            .map(|(rows, grad)| SegmentTarget {
                output: SegmentOutput::Dense { grad },
                rows: Some(rows),
            })
            .collect();
        segment_sum::encode(
            gpu,
            encoder,
            &self.segment_args(&batch, indices, grad_out, status),
            &targets,
        )
    }

    /// The buffers of a dense gradient and the table rows each holds from its
    /// start, after checking its Gpu and shape.
    pub(super) fn dense_blocks<'a>(
        &self,
        grad: &'a Gradient,
        what: &'static str,
    ) -> Result<Vec<(Range<usize>, &'a wgpu::Buffer)>> {
        let shape = [self.num_embeddings, self.dim];
        let (found, blocks) = match grad {
            Gradient::Dense(t) => {
                t.check_gpu(&self.gpu, "gradient")?;
                (t.shape(), vec![(0..self.num_embeddings, t.buffer())])
            }
            Gradient::DenseChunked(t) => {
                if !t.gpu().same(&self.gpu) {
                    return Err(Error::DifferentGpu { what: "gradient" });
                }
                let blocks = t
                    .tensors()
                    .iter()
                    .zip(t.row_starts())
                    .map(|(c, &b)| (b..b + c.shape()[0], c.buffer()))
                    .collect();
                (t.shape(), blocks)
            }
            Gradient::Sparse { .. } => {
                return Err(Error::InvalidArgument {
                    name: "grad",
                    reason: "a dense gradient is needed here; this one is sparse".into(),
                })
            }
        };
        if found != shape {
            return Err(Error::ShapeMismatch {
                what,
                expected: shape.to_vec(),
                found: found.to_vec(),
            });
        }
        Ok(blocks)
    }
}
