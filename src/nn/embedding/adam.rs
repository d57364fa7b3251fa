//! Adam for an [`Embedding`]: the fused backward + `SparseAdam` step (only
//! the rows in the batch move, their moments too) and the dense
//! `torch.optim.Adam` step on a dense gradient (every element moves).

use super::update::Fused;
use crate::error::{Error, Result};
use crate::kernels::adam_step::{self, AdamStepArgs};
use crate::nn::adam::{AdamOptions, AdamState};
use crate::nn::{Embedding, Gradient};
use crate::recorder::{self, Recorder};
use crate::status::Status;
use crate::tensor::{IndexTensor, Tensor};

impl Embedding {
    /// A fresh Adam state for this table: zero moments stored like the
    /// table (the same row-blocks), step 0.
    pub fn adam_state(&self) -> Result<AdamState> {
        self.check_adam_dtype()?;
        Ok(AdamState {
            exp_avg: self.weight.zeros_like_f32()?,
            exp_avg_sq: self.weight.zeros_like_f32()?,
            step: 0,
        })
    }

    /// Backward and `torch.optim.SparseAdam`'s step in one pass, without a
    /// dense gradient: each row the batch references gets its summed
    /// gradient (deterministic order), then its moments and weights move;
    /// other rows and their moments stay. Bias correction uses the step
    /// count, which this advances. On any error (options, state, indices)
    /// weights, moments and step are unchanged.
    pub fn backward_adam(
        &mut self,
        indices: &[u32],
        grad_out: &Tensor,
        state: &mut AdamState,
        options: &AdamOptions,
    ) -> Result<()> {
        self.check_adam(state, options, true)?;
        let adam = options.args(state.step, true);
        crate::readback::block(
            "backward_adam",
            self.fused_host(indices, grad_out, Fused::Adam { state, adam }),
        )?;
        state.step += 1;
        Ok(())
    }

    /// [`backward_adam`](Self::backward_adam) for indices on the GPU: an
    /// out-of-range index is `IndexOutOfRange`, and nothing changes.
    pub fn backward_adam_gpu(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        state: &mut AdamState,
        options: &AdamOptions,
    ) -> Result<()> {
        crate::readback::block(
            "backward_adam_gpu",
            self.backward_adam_gpu_async(indices, grad_out, state, options),
        )
    }

    /// [`backward_adam_gpu`](Self::backward_adam_gpu) without blocking.
    pub async fn backward_adam_gpu_async(
        &mut self,
        indices: &IndexTensor,
        grad_out: &Tensor,
        state: &mut AdamState,
        options: &AdamOptions,
    ) -> Result<()> {
        self.check_adam(state, options, true)?;
        let adam = options.args(state.step, true);
        self.fused_gpu(indices, grad_out, Fused::Adam { state, adam })
            .await?;
        state.step += 1;
        Ok(())
    }

    /// Records [`backward_adam`](Self::backward_adam) into the caller's
    /// encoder. The update skips every write when `status` reports an
    /// out-of-range index, but the step count advances when this records:
    /// after a bad batch (see [`Status::read`]) the moments and weights are
    /// as they were and `state.step()` is one ahead, which
    /// [`AdamState::set_step`] takes back.
    pub fn encode_backward_adam(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        indices: &IndexTensor,
        grad_out: &Tensor,
        state: &mut AdamState,
        options: &AdamOptions,
        status: &Status,
    ) -> Result<()> {
        recorder::record(&self.gpu, encoder, |rec| {
            self.check_adam(state, options, true)?;
            let adam = options.args(state.step, true);
            self.record_fused_checked(rec, indices, grad_out, Fused::Adam { state, adam }, status)?;
            state.step += 1;
            Ok(())
        })
    }

    /// `torch.optim.Adam`'s step with a dense gradient (as `backward` makes
    /// it): every element's moments and weight move. A sparse gradient is
    /// an error, as in PyTorch (use [`backward_adam`](Self::backward_adam)).
    pub fn adam_step(
        &mut self,
        grad: &Gradient,
        state: &mut AdamState,
        options: &AdamOptions,
    ) -> Result<()> {
        let _scope = self.gpu.scope();
        let mut encoder = self.gpu.encoder("Embedding::adam_step");
        recorder::record(&self.gpu, &mut encoder, |rec| {
            self.record_adam_step(rec, grad, state, options)
        })?;
        self.gpu.submit_and_wait(encoder)?;
        state.step += 1;
        Ok(())
    }

    /// Records [`adam_step`](Self::adam_step) into the caller's encoder and
    /// advances the step count.
    pub fn encode_adam_step(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        grad: &Gradient,
        state: &mut AdamState,
        options: &AdamOptions,
    ) -> Result<()> {
        recorder::record(&self.gpu, encoder, |rec| {
            self.record_adam_step(rec, grad, state, options)?;
            state.step += 1;
            Ok(())
        })
    }

    /// The checked dense step, recorded; the step count is the caller's to advance.
    fn record_adam_step(
        &self,
        rec: &mut Recorder,
        grad: &Gradient,
        state: &AdamState,
        options: &AdamOptions,
    ) -> Result<()> {
        self.check_adam(state, options, false)?;
        if !matches!(grad, Gradient::Dense(_)) {
            return Err(Error::InvalidArgument {
                name: "grad",
                reason: "adam_step takes a dense gradient (torch.optim.Adam rejects sparse \
                         ones too); backward_adam is SparseAdam's fused step"
                    .into(),
            });
        }
        let blocks = self.weight.blocks();
        let grads = self.dense_blocks(grad, "dense gradient ([num_embeddings, dim])")?;
        if grads
            .iter()
            .map(|b| &b.rows)
            .ne(blocks.iter().map(|b| &b.rows))
        {
            return Err(Error::ShapeMismatch {
                what: "dense gradient row-blocks (the table's, as backward makes them)",
                expected: blocks.iter().map(|b| b.rows.start).collect(),
                found: grads.iter().map(|b| b.rows.start).collect(),
            });
        }
        let adam = options.args(state.step, false);
        let (m, v) = (state.exp_avg.blocks(), state.exp_avg_sq.blocks());
        for (((w, g), m), v) in blocks.iter().zip(&grads).zip(&m).zip(&v) {
            adam_step::record(
                rec,
                &AdamStepArgs {
                    len: w.rows.len() * self.dim,
                    grad: g.span.buffer,
                    weight: w.span.buffer,
                    exp_avg: m.span.buffer,
                    exp_avg_sq: v.span.buffer,
                    adam,
                },
            )?;
        }
        Ok(())
    }

    /// The options, and a state made for this table (its GPU, shape and row-blocks).
    /// Adam trains f32 tables: its f32 moments share the table's row-blocks,
    /// which for an f16 table are sized for halves.
    fn check_adam_dtype(&self) -> Result<()> {
        use crate::tensor::DType;
        let stored = match self.dtype() {
            DType::F32 => return Ok(()),
            DType::F16 => "f16",
            DType::Int8 => "int8 row-wise",
        };
        Err(Error::InvalidArgument {
            name: "dtype",
            reason: format!(
                "Adam needs an f32 table (f32 moments in the table's row-blocks); this one is {stored}"
            ),
        })
    }

    /// The table, the options (SparseAdam's when `sparse`: the fused
    /// step) and the state, before anything is recorded.
    fn check_adam(&self, state: &AdamState, options: &AdamOptions, sparse: bool) -> Result<()> {
        self.check_trainable()?;
        self.check_adam_dtype()?;
        if sparse {
            options.check_sparse()?;
        } else {
            options.check()?;
        }
        for (what, m) in [
            ("Adam exp_avg", &state.exp_avg),
            ("Adam exp_avg_sq", &state.exp_avg_sq),
        ] {
            if !m.gpu().same(&self.gpu) {
                return Err(Error::DifferentGpu { what });
            }
            let rows = |t: &crate::tensor::Table| -> Vec<usize> {
                t.blocks().iter().map(|b| b.rows.start).collect()
            };
            if m.shape() != [self.num_embeddings, self.dim] || rows(m) != rows(&self.weight) {
                return Err(Error::ShapeMismatch {
                    what: "Adam state (made by this table's adam_state)",
                    expected: vec![self.num_embeddings, self.dim],
                    found: m.shape().to_vec(),
                });
            }
        }
        Ok(())
    }
}
