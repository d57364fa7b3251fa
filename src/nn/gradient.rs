//! The backward side of [`Embedding`]: the gradient of a lookup, as a dense
//! table or sparse rows, and the SGD and row-wise Adagrad updates.
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

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::embedding_gather::{check_status, STATUS_OK};
use crate::kernels::exclusive_scan::{self, ScanArgs};
use crate::kernels::radix_sort::{self, SortArgs};
use crate::kernels::row_histogram::{self, HistogramArgs};
use crate::kernels::scatter_add_atomic::{self, AtomicArgs};
use crate::kernels::segment_sum::{self, SegmentArgs, SegmentOutput};
use crate::kernels::sgd_update::{self, SgdArgs, SgdGrad};
use crate::memory::GpuBuffer;
use crate::nn::check_indices;
use crate::nn::Embedding;
use crate::tensor::{IndexTensor, Tensor};

/// How `backward` and `backward_sgd` add up positions that share a row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GradientMode {
    /// Sort positions by row and sum each row in ascending position order:
    /// bit-identical run to run, across adapters, and to the CPU twin. Every adapter.
    #[default]
    Deterministic,
    /// One float `atomicAdd` per element. Needs `SHADER_FLOAT32_ATOMIC`
    /// (else `Error::MissingFeature`). The sum order varies from run to run, so
    /// rows several positions share differ in their last bits between runs.
    /// Sparse gradients and row-wise Adagrad always use the sorted path (they need it).
    Atomic,
}

/// The gradient of a lookup with respect to the table.
#[derive(Clone)]
pub enum Gradient {
    /// `[num_embeddings, dim]`; rows the batch did not reference are zero.
    Dense(Tensor),
    /// The referenced rows, ascending and unique (the padding row left out),
    /// and `[rows.len(), dim]` summed gradients, one row each.
    Sparse { rows: IndexTensor, values: Tensor },
}

impl std::fmt::Debug for Gradient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gradient::Dense(t) => write!(f, "Gradient::Dense({t:?})"),
            Gradient::Sparse { rows, values } => {
                write!(f, "Gradient::Sparse({} rows, {values:?})", rows.len())
            }
        }
    }
}

impl Gradient {
    /// The dense gradient as a host vector (`num_embeddings × dim`), either variant.
    pub fn to_dense_vec(&self, num_embeddings: usize, dim: usize) -> Result<Vec<f32>> {
        match self {
            Gradient::Dense(t) => {
                if t.shape() != [num_embeddings, dim] {
                    return Err(Error::ShapeMismatch {
                        what: "Gradient::to_dense_vec dense gradient",
                        expected: vec![num_embeddings, dim],
                        found: t.shape().to_vec(),
                    });
                }
                t.to_vec()
            }
            Gradient::Sparse { rows, values } => {
                let rows = rows.to_vec()?;
                let values = values.to_vec()?;
                let expected = rows.len().saturating_mul(dim);
                if values.len() != expected {
                    return Err(Error::LengthMismatch {
                        what: "Gradient::to_dense_vec sparse values (rows × dim)",
                        expected,
                        found: values.len(),
                    });
                }
                let total = num_embeddings.checked_mul(dim).ok_or(Error::TooLarge {
                    what: "dense gradient on the host",
                    bytes: u64::MAX,
                    limit: usize::MAX as u64,
                    limit_name: "usize",
                })?;
                let mut out = vec![0.0f32; total];
                for (i, &r) in rows.iter().enumerate() {
                    let r = r as usize;
                    if r < num_embeddings {
                        out[r * dim..(r + 1) * dim]
                            .copy_from_slice(&values[i * dim..(i + 1) * dim]);
                    }
                }
                Ok(out)
            }
        }
    }
}

/// What the sort stage leaves for the segment stage.
struct SortedBatch {
    counts: GpuBuffer,
    offsets: GpuBuffer,
    keys: GpuBuffer,
    positions: GpuBuffer,
}

fn encode_sort(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    indices: &IndexTensor,
    num_embeddings: usize,
    status: &wgpu::Buffer,
) -> Result<SortedBatch> {
    let n = indices.len();
    let counts = gpu.storage("gradient row counts", num_embeddings as u64 * 4)?;
    let offsets = gpu.storage("gradient row offsets", (num_embeddings as u64 + 1) * 4)?;
    let keys = gpu.storage("gradient sorted rows", n as u64 * 4)?;
    let positions = gpu.storage("gradient sorted positions", n as u64 * 4)?;
    row_histogram::encode(
        gpu,
        encoder,
        &HistogramArgs {
            indices: indices.buffer(),
            n,
            num_embeddings,
            status,
            counts: counts.raw(),
        },
    )?;
    exclusive_scan::encode(
        gpu,
        encoder,
        &ScanArgs {
            input: counts.raw(),
            len: num_embeddings,
            out: offsets.raw(),
            exclude: None,
            flags: false,
        },
    )?;
    radix_sort::encode(
        gpu,
        encoder,
        &SortArgs {
            keys: indices.buffer(),
            n,
            key_bound: num_embeddings,
            keys_out: keys.raw(),
            positions_out: positions.raw(),
        },
    )?;
    Ok(SortedBatch {
        counts,
        offsets,
        keys,
        positions,
    })
}

fn check_rate(name: &'static str, value: f32) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            name,
            reason: format!("must be finite, got {value}"),
        })
    }
}

impl Embedding {
    pub(crate) fn check_trainable(&self) -> Result<()> {
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

    fn check_grad_out(&self, n: usize, grad_out: &Tensor) -> Result<()> {
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

    fn segment_args<'a>(
        &'a self,
        batch: &'a SortedBatch,
        indices: &IndexTensor,
        grad_out: &'a Tensor,
        status: &'a wgpu::Buffer,
        output: SegmentOutput<'a>,
    ) -> SegmentArgs<'a> {
        SegmentArgs {
            n: indices.len(),
            dim: self.dim,
            num_embeddings: self.num_embeddings,
            padding_idx: self.options.padding_idx,
            scale_by_freq: self.options.scale_grad_by_freq,
            status,
            offsets: batch.offsets.raw(),
            sorted_keys: batch.keys.raw(),
            sorted_positions: batch.positions.raw(),
            grad_out: grad_out.buffer(),
            output,
            chunk: None,
            rows: None,
        }
    }

    /// The gradient of `forward(indices)` given `grad_out` (`[indices.len(), dim]`):
    /// `Gradient::Sparse` when the options say `sparse`, else `Gradient::Dense`.
    /// Every index is checked first (`IndexOutOfRange`); frozen tables give `Frozen`.
    pub fn backward(&self, indices: &[u32], grad_out: &Tensor) -> Result<Gradient> {
        self.check_trainable()?;
        self.check_grad_out(indices.len(), grad_out)?;
        check_indices(indices, self.num_embeddings)?;
        let idx = IndexTensor::from_slice(&self.gpu, indices)?;
        self.backward_gpu(&idx, grad_out)
    }

    /// [`backward`](Self::backward) for indices already on the GPU; an
    /// out-of-range index is found by the kernels and returned as the same error.
    pub fn backward_gpu(&self, indices: &IndexTensor, grad_out: &Tensor) -> Result<Gradient> {
        self.check_trainable()?;
        indices.check_gpu(&self.gpu, "indices")?;
        self.check_grad_out(indices.len(), grad_out)?;
        let gpu = &self.gpu;
        let status = gpu.storage_from("gradient status", &[STATUS_OK])?;
        if self.options.sparse {
            return self.backward_sparse(indices, grad_out, &status);
        }
        let grad = Tensor::zeros(gpu, &[self.num_embeddings, self.dim])?;
        let mut encoder = gpu.encoder("Embedding::backward");
        self.encode_backward(&mut encoder, indices, grad_out, &grad, status.raw())?;
        gpu.submit_and_wait(encoder)?;
        check_status(gpu, status.raw(), indices, self.num_embeddings)?;
        Ok(Gradient::Dense(grad))
    }

    fn backward_sparse(
        &self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        status: &GpuBuffer,
    ) -> Result<Gradient> {
        let gpu = &self.gpu;
        let (v, dim) = (self.num_embeddings, self.dim);
        let capacity = indices.len().min(v);
        let ranks = gpu.storage("sparse gradient ranks", (v as u64 + 1) * 4)?;
        let rows = gpu.storage("sparse gradient rows", capacity as u64 * 4)?;
        let values = gpu.storage("sparse gradient values", capacity as u64 * dim as u64 * 4)?;
        let mut encoder = gpu.encoder("Embedding::backward (sparse)");
        let batch = encode_sort(gpu, &mut encoder, indices, v, status.raw())?;
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
        let output = SegmentOutput::Sparse {
            ranks: ranks.raw(),
            rows: rows.raw(),
            values: values.raw(),
        };
        segment_sum::encode(
            gpu,
            &mut encoder,
            &self.segment_args(&batch, indices, grad_out, status.raw(), output),
        )?;
        gpu.submit_and_wait(encoder)?;
        check_status(gpu, status.raw(), indices, v)?;
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
    /// mode. `status` is one u32 set to `STATUS_OK` (`u32::MAX`); the kernels
    /// lower it to the first out-of-range position.
    pub fn encode_backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        indices: &IndexTensor,
        grad_out: &Tensor,
        grad: &Tensor,
        status: &wgpu::Buffer,
    ) -> Result<()> {
        self.check_trainable()?;
        indices.check_gpu(&self.gpu, "indices")?;
        grad.check_gpu(&self.gpu, "grad")?;
        self.check_grad_out(indices.len(), grad_out)?;
        if grad.shape() != [self.num_embeddings, self.dim] {
            return Err(Error::ShapeMismatch {
                what: "Embedding::encode_backward grad ([num_embeddings, dim])",
                expected: vec![self.num_embeddings, self.dim],
                found: grad.shape().to_vec(),
            });
        }
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
            return scatter_add_atomic::encode(
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
                    grad: grad.buffer(),
                },
            );
        }
        let batch = encode_sort(gpu, encoder, indices, self.num_embeddings, status)?;
        let output = SegmentOutput::Dense {
            grad: grad.buffer(),
        };
        segment_sum::encode(
            gpu,
            encoder,
            &self.segment_args(&batch, indices, grad_out, status, output),
        )
    }

    /// `weight -= lr * grad` for a dense or sparse gradient (as `torch.optim.SGD`
    /// without momentum). A sparse gradient's rows must be unique, as
    /// `backward` makes them.
    pub fn sgd_step(&mut self, grad: &Gradient, lr: f32) -> Result<()> {
        let mut encoder = self.gpu.encoder("Embedding::sgd_step");
        self.encode_sgd_step(&mut encoder, grad, lr)?;
        self.gpu.submit_and_wait(encoder)
    }

    /// Records [`sgd_step`](Self::sgd_step) into the caller's encoder.
    pub fn encode_sgd_step(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        grad: &Gradient,
        lr: f32,
    ) -> Result<()> {
        self.check_trainable()?;
        check_rate("lr", lr)?;
        let (v, dim) = (self.num_embeddings, self.dim);
        let sgd_grad = match grad {
            Gradient::Dense(t) => {
                t.check_gpu(&self.gpu, "gradient")?;
                if t.shape() != [v, dim] {
                    return Err(Error::ShapeMismatch {
                        what: "dense gradient ([num_embeddings, dim])",
                        expected: vec![v, dim],
                        found: t.shape().to_vec(),
                    });
                }
                SgdGrad::Dense(t.buffer())
            }
            Gradient::Sparse { rows, values } => {
                rows.check_gpu(&self.gpu, "gradient rows")?;
                values.check_gpu(&self.gpu, "gradient values")?;
                if values.shape() != [rows.len(), dim] {
                    return Err(Error::ShapeMismatch {
                        what: "sparse gradient values ([rows.len(), dim])",
                        expected: vec![rows.len(), dim],
                        found: values.shape().to_vec(),
                    });
                }
                SgdGrad::Sparse {
                    rows: rows.buffer(),
                    values: values.buffer(),
                    count: rows.len(),
                }
            }
        };
        // One dispatch per row-chunk of the table (one for a table in one binding).
        for chunk in self.weight.chunks() {
            sgd_update::encode(
                &self.gpu,
                encoder,
                &SgdArgs {
                    weight: chunk.buffer,
                    num_embeddings: v,
                    dim,
                    grad: match sgd_grad {
                        SgdGrad::Dense(b) => SgdGrad::Dense(b),
                        SgdGrad::Sparse {
                            rows,
                            values,
                            count,
                        } => SgdGrad::Sparse {
                            rows,
                            values,
                            count,
                        },
                    },
                    lr,
                    rows: Some(chunk.row_begin..chunk.row_begin + chunk.rows),
                },
            )?;
        }
        Ok(())
    }

    /// Backward and SGD in one pass: `weight[r] -= lr * grad[r]` for every row
    /// the batch references, without a dense gradient. Indices are checked
    /// first; on any error the weights are unchanged.
    pub fn backward_sgd(&mut self, indices: &[u32], grad_out: &Tensor, lr: f32) -> Result<()> {
        self.check_trainable()?;
        self.check_grad_out(indices.len(), grad_out)?;
        check_rate("lr", lr)?;
        check_indices(indices, self.num_embeddings)?;
        let idx = IndexTensor::from_slice(&self.gpu, indices)?;
        self.backward_sgd_gpu(&idx, grad_out, lr)
    }

    /// [`backward_sgd`](Self::backward_sgd) for indices on the GPU. An
    /// out-of-range index is returned as `IndexOutOfRange` and the weights are unchanged.
    pub fn backward_sgd_gpu(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        lr: f32,
    ) -> Result<()> {
        if self.options.gradient_mode == GradientMode::Atomic {
            // Two submits: the status is checked before the weights are touched.
            let grad = self.backward_dense_atomic(indices, grad_out)?;
            return self.sgd_step(&Gradient::Dense(grad), lr);
        }
        let gpu = self.gpu.clone();
        let status = gpu.storage_from("gradient status", &[STATUS_OK])?;
        let mut encoder = gpu.encoder("Embedding::backward_sgd");
        self.encode_backward_sgd(&mut encoder, indices, grad_out, lr, status.raw())?;
        gpu.submit_and_wait(encoder)?;
        check_status(&gpu, status.raw(), indices, self.num_embeddings)
    }

    fn backward_dense_atomic(&self, indices: &IndexTensor, grad_out: &Tensor) -> Result<Tensor> {
        let status = self.gpu.storage_from("gradient status", &[STATUS_OK])?;
        let grad = Tensor::zeros(&self.gpu, &[self.num_embeddings, self.dim])?;
        let mut encoder = self.gpu.encoder("Embedding::backward (atomic)");
        self.encode_backward(&mut encoder, indices, grad_out, &grad, status.raw())?;
        self.gpu.submit_and_wait(encoder)?;
        check_status(&self.gpu, status.raw(), indices, self.num_embeddings)?;
        Ok(grad)
    }

    /// Records the fused deterministic backward + SGD into the caller's
    /// encoder. The update kernel skips every write when `status` reports an
    /// out-of-range index, so a bad batch leaves the weights as they were.
    pub fn encode_backward_sgd(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        indices: &IndexTensor,
        grad_out: &Tensor,
        lr: f32,
        status: &wgpu::Buffer,
    ) -> Result<()> {
        self.check_trainable()?;
        indices.check_gpu(&self.gpu, "indices")?;
        self.check_grad_out(indices.len(), grad_out)?;
        check_rate("lr", lr)?;
        let batch = encode_sort(&self.gpu, encoder, indices, self.num_embeddings, status)?;
        // The sort runs once; the update runs once per row-chunk of the table.
        for chunk in self.weight.chunks() {
            let output = SegmentOutput::Sgd {
                weight: chunk.buffer,
                lr,
            };
            let mut args = self.segment_args(&batch, indices, grad_out, status, output);
            args.rows = Some(chunk.row_begin..chunk.row_begin + chunk.rows);
            segment_sum::encode(&self.gpu, encoder, &args)?;
        }
        Ok(())
    }

    /// A zeroed row-wise Adagrad state: one f32 per row.
    pub fn adagrad_state(&self) -> Result<Tensor> {
        Tensor::zeros(&self.gpu, &[self.num_embeddings])
    }

    /// Backward and row-wise Adagrad (FBGEMM's EXACT_ROWWISE_ADAGRAD) in one
    /// pass, without a dense gradient: for each referenced row,
    /// `state[r] += mean(g_r²)` and `w_r -= lr · g_r / (sqrt(state[r]) + eps)`.
    /// `state` holds one f32 per row ([`adagrad_state`](Self::adagrad_state)).
    /// Always the deterministic path. On any error weights and state are unchanged.
    pub fn backward_adagrad(
        &mut self,
        indices: &[u32],
        grad_out: &Tensor,
        state: &mut Tensor,
        lr: f32,
        eps: f32,
    ) -> Result<()> {
        self.check_trainable()?;
        self.check_grad_out(indices.len(), grad_out)?;
        self.check_state(state)?;
        check_rate("lr", lr)?;
        check_rate("eps", eps)?;
        check_indices(indices, self.num_embeddings)?;
        let idx = IndexTensor::from_slice(&self.gpu, indices)?;
        self.backward_adagrad_gpu(&idx, grad_out, state, lr, eps)
    }

    /// [`backward_adagrad`](Self::backward_adagrad) for indices on the GPU.
    pub fn backward_adagrad_gpu(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        state: &mut Tensor,
        lr: f32,
        eps: f32,
    ) -> Result<()> {
        let gpu = self.gpu.clone();
        let status = gpu.storage_from("gradient status", &[STATUS_OK])?;
        let mut encoder = gpu.encoder("Embedding::backward_adagrad");
        self.encode_backward_adagrad(
            &mut encoder,
            indices,
            grad_out,
            state,
            lr,
            eps,
            status.raw(),
        )?;
        gpu.submit_and_wait(encoder)?;
        check_status(&gpu, status.raw(), indices, self.num_embeddings)
    }

    fn check_state(&self, state: &Tensor) -> Result<()> {
        state.check_gpu(&self.gpu, "adagrad state")?;
        if state.numel() != self.num_embeddings {
            return Err(Error::LengthMismatch {
                what: "row-wise Adagrad state (one f32 per row)",
                expected: self.num_embeddings,
                found: state.numel(),
            });
        }
        Ok(())
    }

    /// Records the fused backward + row-wise Adagrad into the caller's encoder
    /// (gated on `status` like [`encode_backward_sgd`](Self::encode_backward_sgd)).
    #[allow(clippy::too_many_arguments)]
    pub fn encode_backward_adagrad(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        indices: &IndexTensor,
        grad_out: &Tensor,
        state: &Tensor,
        lr: f32,
        eps: f32,
        status: &wgpu::Buffer,
    ) -> Result<()> {
        self.check_trainable()?;
        indices.check_gpu(&self.gpu, "indices")?;
        self.check_grad_out(indices.len(), grad_out)?;
        self.check_state(state)?;
        check_rate("lr", lr)?;
        check_rate("eps", eps)?;
        let batch = encode_sort(&self.gpu, encoder, indices, self.num_embeddings, status)?;
        for chunk in self.weight.chunks() {
            let output = SegmentOutput::Adagrad {
                weight: chunk.buffer,
                state: state.buffer(),
                lr,
                eps,
            };
            let mut args = self.segment_args(&batch, indices, grad_out, status, output);
            args.rows = Some(chunk.row_begin..chunk.row_begin + chunk.rows);
            segment_sum::encode(&self.gpu, encoder, &args)?;
        }
        Ok(())
    }
}
