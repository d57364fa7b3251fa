//! The updates of [`Embedding`]: SGD with a dense or sparse gradient, and
//! the fused backward + SGD and backward + row-wise Adagrad that never build
//! a dense gradient. On a table stored in row-chunks every update runs once
//! per chunk; the sort and the tile partials of a fused update run once.

use super::sort::encode_sort;
use super::IndexCheck;
use crate::error::{Error, Result};
use crate::kernels::segment_sum::{self, SegmentOutput, SegmentTarget};
use crate::kernels::sgd_update::{self, SgdArgs, SgdGrad};
use crate::nn::check_indices;
use crate::nn::{Embedding, Gradient, GradientMode};
use crate::status::Status;
use crate::tensor::{IndexTensor, Tensor};

impl Embedding {
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
        let chunks = self.weight.chunks();
        // The gradient for each row-chunk of the table (one for a table in one binding).
        let per_chunk: Vec<SgdGrad> = match grad {
            Gradient::Dense(_) | Gradient::DenseChunked(_) => {
                let blocks = self.dense_blocks(grad, "dense gradient ([num_embeddings, dim])")?;
                if let Gradient::Dense(t) = grad {
                    vec![SgdGrad::Dense(t.buffer()); chunks.len()]
                } else {
                    let same = blocks.len() == chunks.len()
                        && blocks
                            .iter()
                            .zip(&chunks)
                            .all(|((rows, _), c)| *rows == (c.row_begin..c.row_begin + c.rows));
                    if !same {
                        return Err(Error::ShapeMismatch {
                            what: "chunked dense gradient row_starts (must match the table's)",
                            expected: chunks.iter().map(|c| c.row_begin).collect(),
                            found: blocks.iter().map(|(r, _)| r.start).collect(),
                        });
                    }
                    blocks
                        .into_iter()
                        .map(|(_, b)| SgdGrad::DenseChunk(b))
                        .collect()
                }
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
                let sparse = SgdGrad::Sparse {
                    rows: rows.buffer(),
                    values: values.buffer(),
                    count: rows.len(),
                };
                vec![sparse; chunks.len()]
            }
        };
        for (chunk, grad) in chunks.iter().zip(per_chunk) {
            sgd_update::encode(
                &self.gpu,
                encoder,
                &SgdArgs {
                    weight: chunk.buffer,
                    num_embeddings: v,
                    dim,
                    grad,
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
        self.backward_sgd_with(&idx, grad_out, lr, IndexCheck::Host)
    }

    /// [`backward_sgd`](Self::backward_sgd) for indices on the GPU. An
    /// out-of-range index is returned as `IndexOutOfRange` and the weights are unchanged.
    pub fn backward_sgd_gpu(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        lr: f32,
    ) -> Result<()> {
        self.backward_sgd_with(indices, grad_out, lr, IndexCheck::Gpu)
    }

    fn backward_sgd_with(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        lr: f32,
        check: IndexCheck,
    ) -> Result<()> {
        if self.options.gradient_mode == GradientMode::Atomic {
            // Two submits: the status is checked before the weights are touched.
            let grad = self.backward_dense_atomic(indices, grad_out, check)?;
            return self.sgd_step(&grad, lr);
        }
        let status = Status::new(&self.gpu)?;
        let mut encoder = self.gpu.encoder("Embedding::backward_sgd");
        self.encode_backward_sgd(&mut encoder, indices, grad_out, lr, &status)?;
        self.submit_checked(encoder, &status, indices, check)
    }

    fn backward_dense_atomic(
        &self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        check: IndexCheck,
    ) -> Result<Gradient> {
        let status = Status::new(&self.gpu)?;
        let grad = self.dense_gradient_zeros()?;
        let mut encoder = self.gpu.encoder("Embedding::backward (atomic)");
        self.encode_backward_into(&mut encoder, indices, grad_out, &grad, &status)?;
        self.submit_checked(encoder, &status, indices, check)?;
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
        status: &Status,
    ) -> Result<()> {
        status.check_gpu(&self.gpu, "status")?;
        let status = status.buffer();
        self.check_trainable()?;
        indices.check_gpu(&self.gpu, "indices")?;
        self.check_grad_out(indices.len(), grad_out)?;
        check_rate("lr", lr)?;
        let batch = encode_sort(&self.gpu, encoder, indices, self.num_embeddings, status)?;
        // The sort and partials run once; the update once per row-chunk of the table.
        let targets: Vec<SegmentTarget> = self
            .weight
            .chunks()
            .iter()
            .map(|chunk| SegmentTarget {
                output: SegmentOutput::Sgd {
                    weight: chunk.buffer,
                    lr,
                },
                rows: Some(chunk.row_begin..chunk.row_begin + chunk.rows),
            })
            .collect();
        segment_sum::encode(
            &self.gpu,
            encoder,
            &self.segment_args(&batch, indices, grad_out, status),
            &targets,
        )
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
        self.backward_adagrad_with(&idx, grad_out, state, (lr, eps), IndexCheck::Host)
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
        self.backward_adagrad_with(indices, grad_out, state, (lr, eps), IndexCheck::Gpu)
    }

    fn backward_adagrad_with(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        state: &mut Tensor,
        (lr, eps): (f32, f32),
        check: IndexCheck,
    ) -> Result<()> {
        let status = Status::new(&self.gpu)?;
        let mut encoder = self.gpu.encoder("Embedding::backward_adagrad");
        self.encode_backward_adagrad(&mut encoder, indices, grad_out, state, lr, eps, &status)?;
        self.submit_checked(encoder, &status, indices, check)
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
        status: &Status,
    ) -> Result<()> {
        status.check_gpu(&self.gpu, "status")?;
        let status = status.buffer();
        self.check_trainable()?;
        indices.check_gpu(&self.gpu, "indices")?;
        self.check_grad_out(indices.len(), grad_out)?;
        self.check_state(state)?;
        check_rate("lr", lr)?;
        check_rate("eps", eps)?;
        let batch = encode_sort(&self.gpu, encoder, indices, self.num_embeddings, status)?;
        let targets: Vec<SegmentTarget> = self
            .weight
            .chunks()
            .iter()
            .map(|chunk| SegmentTarget {
                output: SegmentOutput::Adagrad {
                    weight: chunk.buffer,
                    state: state.buffer(),
                    lr,
                    eps,
                },
                rows: Some(chunk.row_begin..chunk.row_begin + chunk.rows),
            })
            .collect();
        segment_sum::encode(
            &self.gpu,
            encoder,
            &self.segment_args(&batch, indices, grad_out, status),
            &targets,
        )
    }
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
