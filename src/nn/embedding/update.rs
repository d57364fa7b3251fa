//! The updates of [`Embedding`]: SGD with a dense or sparse gradient, and
//! the fused backward + SGD and backward + row-wise Adagrad that never build
//! a dense gradient. On a table in several row-blocks every update runs once
//! per block; the sort and the tile partials of a fused update run once.
//!
//! Each public call checks its inputs once (`check_*`), then records
//! unchecked work (`record_*`); the `encode_*` forms do the same into the
//! caller's encoder.

use super::sort::{record_sort, PerRow};
use super::IndexCheck;
use crate::error::{Error, Result};
use crate::kernels::segment_sum::{self, SegmentOutput};
use crate::kernels::sgd_update::{self, SgdArgs, SgdGrad};
use crate::nn::{check_indices, check_rate};
use crate::nn::{Embedding, Gradient};
use crate::recorder::{self, Recorder};
use crate::status::Status;
use crate::tensor::{IndexTensor, Tensor};

/// The optimizer of a fused backward + update, and its parameters.
#[derive(Clone, Copy)]
pub(super) enum Fused<'a> {
    Sgd {
        lr: f32,
    },
    Adagrad {
        state: &'a Tensor,
        lr: f32,
        eps: f32,
    },
    /// `SparseAdam`'s step: the state's moments, this step's constants.
    Adam {
        state: &'a crate::nn::adam::AdamState,
        adam: crate::cpu::AdamArgs,
    },
}

impl Embedding {
    /// `weight -= lr * grad` for a dense or sparse gradient (as `torch.optim.SGD`
    /// without momentum). A sparse gradient's rows must be unique, as
    /// `backward` makes them.
    pub fn sgd_step(&mut self, grad: &Gradient, lr: f32) -> Result<()> {
        let _scope = self.gpu.scope();
        let grads = self.check_sgd_step(grad, lr)?;
        let mut encoder = self.gpu.encoder("Embedding::sgd_step");
        recorder::record(&self.gpu, &mut encoder, |rec| {
            self.record_sgd_step(rec, grads, lr)
        })?;
        self.gpu.submit_and_wait(encoder)?;
        self.count_update();
        Ok(())
    }

    /// Records [`sgd_step`](Self::sgd_step) into the caller's encoder.
    pub fn encode_sgd_step(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        grad: &Gradient,
        lr: f32,
    ) -> Result<()> {
        recorder::record(&self.gpu, encoder, |rec| {
            let grads = self.check_sgd_step(grad, lr)?;
            self.record_sgd_step(rec, grads, lr)?;
            self.count_update();
            Ok(())
        })
    }

    /// Checks an SGD step and returns the gradient each row-block of the
    /// table reads.
    fn check_sgd_step<'a>(&self, grad: &'a Gradient, lr: f32) -> Result<Vec<SgdGrad<'a>>> {
        self.check_trainable()?;
        check_rate("lr", lr)?;
        let dim = self.dim;
        let blocks = self.weight.blocks();
        // The gradient each row-block of the table reads: the block of a
        // dense gradient that holds its rows (the same blocks when the
        // gradient was made like the table), or the sparse rows.
        let grads: Vec<SgdGrad> = match grad {
            Gradient::Dense(_) => {
                let grad_blocks =
                    self.dense_blocks(grad, "dense gradient ([num_embeddings, dim])")?;
                blocks
                    .iter()
                    .map(|b| {
                        let holder = grad_blocks.iter().find(|g| {
                            g.rows.start <= b.rows.start && b.rows.end <= g.rows.end
                        });
                        holder.cloned().map(SgdGrad::Dense).ok_or_else(|| Error::ShapeMismatch {
                            what: "dense gradient row-blocks (one must hold each table block's rows)",
                            expected: blocks.iter().map(|b| b.rows.start).collect(),
                            found: grad_blocks.iter().map(|g| g.rows.start).collect(),
                        })
                    })
                    .collect::<Result<_>>()?
            }
            Gradient::Sparse { rows, values } => {
                rows.check_gpu(&self.gpu, "gradient rows")?;
                values.check_gpu(&self.gpu, "gradient values")?;
                if values.dtype() != self.dtype() {
                    return Err(Error::InvalidArgument {
                        name: "grad",
                        reason: format!(
                            "sparse gradient values are stored like their table ({:?}); these are {:?}",
                            self.dtype(),
                            values.dtype()
                        ),
                    });
                }
                if values.shape() != [rows.len(), dim] {
                    return Err(Error::ShapeMismatch {
                        what: "sparse gradient values ([rows.len(), dim])",
                        expected: vec![rows.len(), dim],
                        found: values.shape().to_vec(),
                    });
                }
                // Rows backward made for a table this size are known good;
                // others are read back and checked.
                if rows.sorted_below().is_none_or(|b| b > self.num_embeddings) {
                    crate::nn::gradient::check_sparse_rows(&rows.to_vec()?, self.num_embeddings)?;
                }
                let sparse = SgdGrad::Sparse {
                    rows: rows.buffer(),
                    values: values.buffer()?,
                    count: rows.len(),
                };
                vec![sparse; blocks.len()]
            }
        };
        Ok(grads)
    }

    fn record_sgd_step(&self, rec: &mut Recorder, grads: Vec<SgdGrad>, lr: f32) -> Result<()> {
        let half = self.update_rounding();
        for (weight, grad) in self.weight.blocks().into_iter().zip(grads) {
            sgd_update::record(
                rec,
                &SgdArgs {
                    weight,
                    num_embeddings: self.num_embeddings,
                    dim: self.dim,
                    grad,
                    lr,
                    half,
                },
            )?;
        }
        Ok(())
    }

    /// Backward and SGD in one pass: `weight[r] -= lr * grad[r]` for every row
    /// the batch references, without a dense gradient. Indices are checked
    /// first; on any error the weights are unchanged.
    pub fn backward_sgd(&mut self, indices: &[u32], grad_out: &Tensor, lr: f32) -> Result<()> {
        crate::readback::block(
            "backward_sgd",
            self.fused_host(indices, grad_out, Fused::Sgd { lr }),
        )
    }

    /// [`backward_sgd`](Self::backward_sgd) for indices on the GPU. An
    /// out-of-range index is returned as `IndexOutOfRange` and the weights are unchanged.
    pub fn backward_sgd_gpu(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        lr: f32,
    ) -> Result<()> {
        crate::readback::block(
            "backward_sgd_gpu",
            self.backward_sgd_gpu_async(indices, grad_out, lr),
        )
    }

    /// [`backward_sgd_gpu`](Self::backward_sgd_gpu) without blocking: the
    /// index check's status word is awaited (a web page's way).
    pub async fn backward_sgd_gpu_async(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        lr: f32,
    ) -> Result<()> {
        self.fused_gpu(indices, grad_out, Fused::Sgd { lr }).await
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
        recorder::record(&self.gpu, encoder, |rec| {
            self.record_fused_checked(rec, indices, grad_out, Fused::Sgd { lr }, status)
        })
    }

    /// A zeroed row-wise Adagrad state: one f32 per row.
    pub fn adagrad_state(&self) -> Result<Tensor> {
        Tensor::zeros(&self.gpu, &[self.num_embeddings])
    }

    /// Backward and row-wise Adagrad (FBGEMM's EXACT_ROWWISE_ADAGRAD) in one
    /// pass, without a dense gradient: for each referenced row,
    /// `state[r] += mean(g_r²)` and `w_r -= lr · g_r / (sqrt(state[r]) + eps)`.
    /// `state` holds one f32 per row ([`adagrad_state`](Self::adagrad_state));
    /// `eps` is above 0 (FBGEMM's default is 1e-8). Always the deterministic
    /// path. On any error weights and state are unchanged.
    pub fn backward_adagrad(
        &mut self,
        indices: &[u32],
        grad_out: &Tensor,
        state: &mut Tensor,
        lr: f32,
        eps: f32,
    ) -> Result<()> {
        crate::readback::block(
            "backward_adagrad",
            self.fused_host(indices, grad_out, Fused::Adagrad { state, lr, eps }),
        )
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
        crate::readback::block(
            "backward_adagrad_gpu",
            self.backward_adagrad_gpu_async(indices, grad_out, state, lr, eps),
        )
    }

    /// [`backward_adagrad_gpu`](Self::backward_adagrad_gpu) without blocking.
    pub async fn backward_adagrad_gpu_async(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        state: &mut Tensor,
        lr: f32,
        eps: f32,
    ) -> Result<()> {
        self.fused_gpu(indices, grad_out, Fused::Adagrad { state, lr, eps })
            .await
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
        recorder::record(&self.gpu, encoder, |rec| {
            let fused = Fused::Adagrad { state, lr, eps };
            self.record_fused_checked(rec, indices, grad_out, fused, status)
        })
    }

    /// [`backward_sgd`](Self::backward_sgd) of indices the caller checked
    /// with [`check_fused`](Self::check_fused)'s checks and on the host
    /// (`EmbeddingBag` after expanding its bags): no status readback.
    pub(in crate::nn) fn backward_sgd_checked(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        lr: f32,
    ) -> Result<()> {
        crate::readback::block(
            "backward_sgd",
            self.fused_with(indices, grad_out, Fused::Sgd { lr }, IndexCheck::Host),
        )
    }

    /// A fused update from host indices: every check (the indices too)
    /// before the upload, then no status readback.
    pub(super) async fn fused_host(
        &mut self,
        indices: &[u32],
        grad_out: &Tensor,
        fused: Fused<'_>,
    ) -> Result<()> {
        self.check_fused(indices.len(), grad_out, fused)?;
        check_indices(indices, self.num_embeddings)?;
        let idx = IndexTensor::from_slice(&self.gpu, indices)?;
        self.fused_with(&idx, grad_out, fused, IndexCheck::Host)
            .await
    }

    pub(super) async fn fused_gpu(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        fused: Fused<'_>,
    ) -> Result<()> {
        indices.check_gpu(&self.gpu, "indices")?;
        self.check_fused(indices.len(), grad_out, fused)?;
        self.fused_with(indices, grad_out, fused, IndexCheck::Gpu)
            .await
    }

    pub(super) fn record_fused_checked(
        &self,
        rec: &mut Recorder,
        indices: &IndexTensor,
        grad_out: &Tensor,
        fused: Fused,
        status: &Status,
    ) -> Result<()> {
        status.check_gpu(&self.gpu, "status")?;
        indices.check_gpu(&self.gpu, "indices")?;
        self.check_fused(indices.len(), grad_out, fused)?;
        self.record_fused(rec, indices, grad_out, fused, status.buffer())?;
        self.count_update();
        Ok(())
    }

    fn check_fused(&self, n: usize, grad_out: &Tensor, fused: Fused) -> Result<()> {
        self.check_backward(n, grad_out)?;
        match fused {
            Fused::Sgd { lr } => check_rate("lr", lr),
            Fused::Adagrad { state, lr, eps } => {
                self.check_state(state)?;
                check_rate("lr", lr)?;
                // FBGEMM's row-wise Adagrad takes eps > 0 (1e-8 by default).
                crate::nn::check_above_zero("row-wise Adagrad", "eps", eps)
            }
            // Checked by `check_adam` when the step's constants were made.
            Fused::Adam { .. } => Ok(()),
        }
    }

    /// The checked fused update, submitted. SGD in atomic mode is the atomic
    /// dense gradient then a step, in two submits: the status is checked
    /// before the weights are touched.
    async fn fused_with(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        fused: Fused<'_>,
        check: IndexCheck,
    ) -> Result<()> {
        // Scopes only around what records and submits, never across an
        // await (see `submit_for_check`).
        let status = Status::new(&self.gpu)?;
        let atomic = self.atomic_gradient();
        if let (Fused::Sgd { lr }, true) = (fused, atomic) {
            let grad = self
                .dense_backward(indices, grad_out, &status, check)
                .await?;
            let _scope = self.gpu.scope();
            let mut encoder = self.gpu.encoder("Embedding::sgd_step");
            let grads = grad.blocks().into_iter().map(SgdGrad::Dense).collect();
            recorder::record(&self.gpu, &mut encoder, |rec| {
                self.record_sgd_step(rec, grads, lr)
            })?;
            self.gpu.submit_and_wait(encoder)?;
        } else {
            let submitted = {
                let _scope = self.gpu.scope();
                let mut encoder = self.gpu.encoder("Embedding fused backward and update");
                recorder::record(&self.gpu, &mut encoder, |rec| {
                    self.record_fused(rec, indices, grad_out, fused, status.buffer())
                })?;
                self.submit_for_check(encoder, &status, check)?
            };
            self.check_submitted(submitted, &status, indices).await?;
        }
        self.count_update();
        Ok(())
    }

    /// The sort and partials once; the update once per row-block of the table.
    fn record_fused(
        &self,
        rec: &mut Recorder,
        indices: &IndexTensor,
        grad_out: &Tensor,
        fused: Fused,
        status: &wgpu::Buffer,
    ) -> Result<()> {
        let batch = record_sort(rec, indices, self.num_embeddings, status, PerRow::Nothing)?;
        let weights = self.weight.blocks().into_iter();
        let targets: Vec<SegmentOutput> = match fused {
            Fused::Sgd { lr } => weights
                .map(|weight| SegmentOutput::Sgd { weight, lr })
                .collect(),
            Fused::Adagrad { state, lr, eps } => weights
                .map(|weight| SegmentOutput::Adagrad {
                    weight,
                    state: state.buffer(),
                    lr,
                    eps,
                })
                .collect(),
            // The moments are in the table's row-blocks (`check_adam`).
            Fused::Adam { state, adam } => weights
                .zip(state.exp_avg.blocks())
                .zip(state.exp_avg_sq.blocks())
                .map(|((weight, exp_avg), exp_avg_sq)| SegmentOutput::Adam {
                    weight,
                    exp_avg,
                    exp_avg_sq,
                    adam,
                })
                .collect(),
        };
        let args = self.segment_args(&batch, indices, grad_out, status, self.update_rounding());
        segment_sum::record(rec, &args, &targets)
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
}
