//! The backward side of [`EmbeddingBag`]: the table gradient in every mode,
//! the per-sample-weight gradient, and a fused SGD step.
//!
//! Design: the table gradient of a bag forward is the embedding gradient of
//! the same `indices` with a per-position gradient `expanded[p, :]`, the
//! share of its bag's `grad_out` row that position `p` receives (see
//! `shaders/embedding_bag_backward.wgsl`). So the backward records
//! `bag_padding` (mean) → `bag_expand`, then hands `expanded` to the
//! embedding's deterministic path (`row_histogram` → `radix_sort` →
//! `segment_sum`, see `nn/embedding/backward.rs`): each row's positions are
//! added in ascending position order, long segments in fixed tiles, the same
//! bits on every adapter and in `cpu::embedding_bag_backward`. Dense or sparse output,
//! `scale_grad_by_freq`, the padding row, fused SGD and tables in row-blocks
//! come with it unchanged. The price is one `[indices.len(), dim]` f32
//! buffer, the size of a plain lookup's `grad_out`.
//!
//! Max mode routes `grad_out[b, c]` to row `indices[p]`, column `c`, for the
//! position `p` that won that output element in the forward (ties went to
//! the lowest position); an empty bag or one of only padding routes nothing.
//!
//! Tables in several row-blocks: the expansion never reads the table, and the
//! embedding's backward handles blocks (a dense gradient in the same blocks, one update
//! per block); max mode's forward rerun and the per-sample-weight gradient
//! read the blocks themselves. A per-position gradient past one binding is
//! written and read in windows; `grad_out`, the offsets and max mode's
//! winners (`[num_bags, dim]`) must each fit one binding.

use super::forward::csr_2d;
use super::{BagOutput, EmbeddingBag};
use crate::cpu::embedding_bag::BagMode;
use crate::error::{Error, Result};
use crate::kernels::embedding_bag_backward::{self, BagLayout, ExpandArgs};
use crate::memory::GpuBuffer;
use crate::nn::check_indices;
use crate::nn::Gradient;
use crate::tensor::{IndexTensor, Tensor};

/// One batch on the GPU with its per-position gradient.
struct Expanded {
    indices: IndexTensor,
    grad: Tensor,
}

impl EmbeddingBag {
    /// The gradient of `forward(indices, offsets, per_sample_weights)` with
    /// respect to the table, given `grad_out` (`[num_bags, dim]`):
    /// `Gradient::Sparse` when the table's options say `sparse`, else
    /// `Gradient::Dense`, as [`crate::Embedding::backward`].
    ///
    /// - sum: position `p` of bag `b` adds `grad_out[b] * per_sample_weights[p]`
    ///   (or `grad_out[b]`) to row `indices[p]`;
    /// - mean: `grad_out[b] / count_b`, `count_b` the bag's non-padding entries;
    /// - max: `grad_out[b, c]` goes to the row that won `(b, c)` in the
    ///   forward, ties broken by the lowest position. This call reruns the
    ///   forward to find the winners; [`backward_with_positions`](Self::backward_with_positions)
    ///   reuses the ones a forward already returned.
    ///
    /// Padding entries and empty bags contribute nothing; the padding row's
    /// gradient is zero. Errors, all before any weight or state changes
    /// (most before any GPU work; a missing float-atomics feature for
    /// `GradientMode::Atomic`, or a sparse gradient past a limit, is found
    /// after the per-position gradient was built): a frozen or int8 table,
    /// max mode with `scale_grad_by_freq` (which PyTorch refuses too),
    /// `grad_out` of the wrong shape ([`Error::ShapeMismatch`]), and
    /// everything [`forward`](Self::forward) rejects.
    pub fn backward(
        &self,
        indices: &[u32],
        offsets: &[u32],
        per_sample_weights: Option<&[f32]>,
        grad_out: &Tensor,
    ) -> Result<Gradient> {
        self.check_trainable()?;
        let csr = self.csr_offsets(offsets, indices.len())?;
        let e = self.expand(indices, &csr, per_sample_weights, None, grad_out)?;
        self.table.backward_with_blocking(&e.indices, &e.grad)
    }

    /// [`backward`](Self::backward) for fixed-length bags (`forward_2d`), with
    /// its errors and [`forward_2d`](Self::forward_2d)'s.
    pub fn backward_2d(
        &self,
        indices: &[u32],
        shape: [usize; 2],
        per_sample_weights: Option<&[f32]>,
        grad_out: &Tensor,
    ) -> Result<Gradient> {
        self.check_trainable()?;
        let csr = csr_2d(self.table.gpu(), self.table.dim(), indices.len(), shape)?;
        let e = self.expand(indices, &csr, per_sample_weights, None, grad_out)?;
        self.table.backward_with_blocking(&e.indices, &e.grad)
    }

    /// Max mode's [`backward`](Self::backward) with the winners `saved` by
    /// [`forward_with_positions`](Self::forward_with_positions) on the same
    /// batch (other modes ignore `saved`). `saved` from another mode, of
    /// another shape or (in max mode) of another batch is an error; so is
    /// one from a forward with per-sample weights, which this form cannot
    /// apply (use `backward` with them).
    pub fn backward_with_positions(
        &self,
        indices: &[u32],
        offsets: &[u32],
        saved: &BagOutput,
        grad_out: &Tensor,
    ) -> Result<Gradient> {
        self.check_trainable()?;
        let csr = self.csr_offsets(offsets, indices.len())?;
        let positions = self.saved_positions(saved, indices, &csr)?;
        let e = self.expand(indices, &csr, None, positions, grad_out)?;
        self.table.backward_with_blocking(&e.indices, &e.grad)
    }

    /// The gradient of `per_sample_weights` (sum mode), one f32 per index:
    /// `dot(grad_out[bag(p)], weight[indices[p]])`, columns added in
    /// ascending order, each product rounded on its own; 0 for padding
    /// entries. f32 and f16 tables, in one row-block or several (one
    /// dispatch per block, each filling the positions whose row it holds).
    pub fn per_sample_weights_grad(
        &self,
        indices: &[u32],
        offsets: &[u32],
        grad_out: &Tensor,
    ) -> Result<Tensor> {
        let _scope = crate::memory::Scope::enter();
        if self.options.mode != BagMode::Sum {
            return Err(Error::InvalidArgument {
                name: "per_sample_weights",
                reason: format!(
                    "only mode Sum takes per-sample weights (as in PyTorch); mode is {:?}",
                    self.options.mode
                ),
            });
        }
        let csr = self.csr_offsets(offsets, indices.len())?;
        let emb = &self.table;
        let gpu = emb.gpu();
        self.check_bag_grad(csr.len() - 1, grad_out)?;
        check_indices(indices, emb.num_embeddings())?;
        let out = Tensor::zeros(gpu, &[indices.len()])?;
        if indices.is_empty() {
            return Ok(out);
        }
        let idx = IndexTensor::from_slice(gpu, indices)?;
        let offsets = gpu.storage_from("embedding_bag_backward offsets", &csr)?;
        let mut encoder = gpu.encoder("EmbeddingBag::per_sample_weights_grad");
        let layout = self.layout(&idx, &offsets, csr.len() - 1, grad_out);
        embedding_bag_backward::encode_psw_grad(
            gpu,
            &mut encoder,
            &layout,
            &emb.weight().blocks(),
            emb.dtype(),
            out.buffer(),
        )?;
        gpu.submit_and_wait(encoder)?;
        Ok(out)
    }

    /// Backward and SGD (`weight[r] -= lr * grad[r]`) in one call, through the
    /// embedding's fused update (no dense gradient; tables in row-blocks too).
    /// Every input is checked first (as [`backward`](Self::backward), max
    /// mode with `scale_grad_by_freq` included); on any error the weights
    /// are unchanged.
    pub fn backward_sgd(
        &mut self,
        indices: &[u32],
        offsets: &[u32],
        per_sample_weights: Option<&[f32]>,
        grad_out: &Tensor,
        lr: f32,
    ) -> Result<()> {
        self.check_trainable()?;
        crate::nn::check_rate("lr", lr)?;
        let csr = self.csr_offsets(offsets, indices.len())?;
        let e = self.expand(indices, &csr, per_sample_weights, None, grad_out)?;
        self.table.backward_sgd_checked(&e.indices, &e.grad, lr)
    }

    /// The table's checks, then PyTorch's refusal of a frequency-scaled
    /// gradient in max mode (`F.embedding_bag`). Only the backward reads the
    /// option, so such a bag still pools. (PyTorch also refuses a sparse max
    /// gradient; here it is the dense one's rows, checked against the twin.)
    fn check_trainable(&self) -> Result<()> {
        self.table.check_trainable()?;
        if self.options.mode == BagMode::Max && self.table.options().scale_grad_by_freq {
            return Err(Error::InvalidArgument {
                name: "scale_grad_by_freq",
                reason: "max mode does not support scaling the gradient by the frequency \
                         (as torch.nn.functional.embedding_bag)"
                    .into(),
            });
        }
        Ok(())
    }

    fn check_bag_grad(&self, num_bags: usize, grad_out: &Tensor) -> Result<()> {
        let dim = self.table.dim();
        grad_out.check_gpu(self.table.gpu(), "grad_out")?;
        if grad_out.shape() != [num_bags, dim] {
            return Err(Error::ShapeMismatch {
                what: "EmbeddingBag grad_out ([num_bags, dim])",
                expected: vec![num_bags, dim],
                found: grad_out.shape().to_vec(),
            });
        }
        Ok(())
    }

    fn saved_positions<'a>(
        &self,
        saved: &'a BagOutput,
        indices: &[u32],
        csr: &[u32],
    ) -> Result<Option<&'a GpuBuffer>> {
        let num_bags = csr.len() - 1;
        // Its winners are bound beside this table's buffers: they must live on its device.
        saved
            .output
            .check_gpu(self.table.gpu(), "saved forward output")?;
        if saved.weighted {
            // The gradient would silently be the unweighted sum's.
            return Err(Error::InvalidArgument {
                name: "saved",
                reason: "this output's forward scaled rows by per-sample weights; pass \
                         them to backward(indices, offsets, Some(weights), grad_out)"
                    .into(),
            });
        }
        if self.options.mode != BagMode::Max {
            return Ok(None);
        }
        let Some(positions) = &saved.max_positions else {
            return Err(Error::InvalidArgument {
                name: "saved",
                reason: "max mode needs the winning positions of a max-mode forward \
                         (forward_with_positions); this output has none"
                    .into(),
            });
        };
        let shape = [num_bags, self.table.dim()];
        if saved.output.shape() != shape {
            return Err(Error::ShapeMismatch {
                what: "EmbeddingBag saved forward output ([num_bags, dim])",
                expected: shape.to_vec(),
                found: saved.output.shape().to_vec(),
            });
        }
        if saved.batch != Some(super::forward::batch_fingerprint(&self.table, indices, csr)) {
            return Err(Error::InvalidArgument {
                name: "saved",
                reason: "these winners are another batch's or another bag's: pass the \
                         indices and offsets of the forward that returned them, to the \
                         bag that ran it"
                    .into(),
            });
        }
        Ok(Some(positions))
    }

    fn layout<'a>(
        &self,
        idx: &'a IndexTensor,
        offsets: &'a GpuBuffer,
        num_bags: usize,
        grad_out: &'a Tensor,
    ) -> BagLayout<'a> {
        let emb = &self.table;
        BagLayout {
            num_embeddings: emb.num_embeddings(),
            dim: emb.dim(),
            indices: idx.buffer(),
            n: idx.len(),
            offsets: offsets.raw(),
            num_bags,
            padding_idx: emb.options().padding_idx,
            grad_out: grad_out.buffer(),
        }
    }

    /// Validates the batch, then records and runs `bag_padding` + `bag_expand`.
    /// Max mode without `positions` reruns the forward for them.
    fn expand(
        &self,
        indices: &[u32],
        csr: &[u32],
        per_sample_weights: Option<&[f32]>,
        positions: Option<&GpuBuffer>,
        grad_out: &Tensor,
    ) -> Result<Expanded> {
        let _scope = crate::memory::Scope::enter();
        let emb = &self.table;
        let gpu = emb.gpu();
        let num_bags = csr.len() - 1;
        self.check_bag_grad(num_bags, grad_out)?;
        self.check_weights(indices.len(), per_sample_weights)?;
        check_indices(indices, emb.num_embeddings())?;
        let dim = emb.dim();
        let bytes = (indices.len() as u64)
            .saturating_mul(dim as u64)
            .saturating_mul(4);
        // Past one binding it is written in windows (and the sorted backward
        // reads it in windows); past one buffer it cannot be held.
        gpu.check_size("EmbeddingBag per-position gradient", bytes, false)?;
        let rerun = match (self.options.mode, positions) {
            (BagMode::Max, None) => Some(self.run(indices, csr, None, false)?),
            _ => None,
        };
        let positions = positions.or(rerun.as_ref().and_then(|r| r.max_positions.as_ref()));
        let idx = IndexTensor::from_slice(gpu, indices)?;
        let grad = Tensor::zeros(gpu, &[indices.len(), dim])?;
        if !indices.is_empty() {
            let offsets = gpu.storage_from("embedding_bag_backward offsets", csr)?;
            let weights = per_sample_weights
                .map(|w| gpu.storage_from("per_sample_weights", w))
                .transpose()?;
            let mut encoder = gpu.encoder("EmbeddingBag::backward expand");
            embedding_bag_backward::encode_expand(
                gpu,
                &mut encoder,
                &self.layout(&idx, &offsets, num_bags, grad_out),
                &ExpandArgs {
                    mode: self.options.mode,
                    per_sample_weights: weights.as_ref().map(|w| w.raw()),
                    max_positions: positions.map(|p| p.raw()),
                    expanded: grad.buffer(),
                },
            )?;
            gpu.submit_and_wait(encoder)?;
        }
        Ok(Expanded { indices: idx, grad })
    }
}
