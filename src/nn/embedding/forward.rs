//! The lookup of an [`Embedding`]: rows gathered by index, after the
//! `max_norm` renormalisation when the options ask for it.

use super::Embedding;
use crate::error::{Error, Result};
use crate::kernels::embedding_gather::{self, GatherArgs};
use crate::kernels::embedding_renorm::{self, RenormArgs, RenormClaims};
use crate::kernels::row_histogram::{self, HistogramArgs};
use crate::memory::GpuBuffer;
use crate::nn::check_indices;
use crate::recorder::{self, Recorder};
use crate::status::Status;
use crate::tensor::{IndexTensor, Tensor};

/// An [`Embedding`]'s `max_norm` claims: one u32 per row, and the epoch
/// the next lookup claims with (see `shaders/embedding_renorm.wgsl`).
pub(super) struct RenormState {
    buffer: GpuBuffer,
    next: u32,
}

impl Embedding {
    /// Looks up `indices`: a `[indices.len(), dim]` tensor. Every index is
    /// checked first; the first one out of range is `Error::IndexOutOfRange`.
    /// With `max_norm` set, the referenced rows are renormalised in place first.
    pub fn forward(&self, indices: &[u32]) -> Result<Tensor> {
        let _scope = self.gpu.scope();
        check_indices(indices, self.num_embeddings)?;
        let idx = IndexTensor::from_slice(&self.gpu, indices)?;
        let out = self.alloc_output(indices.len())?;
        // Checked above: the kernel's status word cannot be set, so it is not read.
        let status = Status::new(&self.gpu)?;
        let mut encoder = self.gpu.encoder("Embedding::forward");
        self.encode_forward(&mut encoder, &idx, &out, &status)?;
        self.gpu.submit_and_wait(encoder)?;
        Ok(out)
    }

    /// Looks up indices already on the GPU. Out-of-range indices are found by
    /// the kernel (its status word) and returned as the same `IndexOutOfRange`.
    pub fn forward_gpu(&self, indices: &IndexTensor) -> Result<Tensor> {
        indices.check_gpu(&self.gpu, "indices")?;
        let out = self.alloc_output(indices.len())?;
        self.forward_into(indices, &out)?;
        Ok(out)
    }

    /// [`forward_gpu`](Self::forward_gpu) without blocking: a web page's
    /// way to look up GPU-resident indices. A bad index is the same
    /// `IndexOutOfRange`, naming the position and the value.
    pub async fn forward_gpu_async(&self, indices: &IndexTensor) -> Result<Tensor> {
        indices.check_gpu(&self.gpu, "indices")?;
        let out = self.alloc_output(indices.len())?;
        let status = Status::new(&self.gpu)?;
        // Recorded and submitted in one scope; only the readback is awaited.
        let (staging, index) = {
            let _scope = self.gpu.scope();
            let mut encoder = self.gpu.encoder("Embedding::forward_gpu_async");
            self.encode_forward(&mut encoder, indices, &out, &status)?;
            status.submit_with_copy(encoder)?
        };
        status
            .check_async(staging, index, indices, self.num_embeddings)
            .await?;
        Ok(out)
    }

    /// [`forward_gpu`](Self::forward_gpu) into an output the caller keeps
    /// (`[indices.len(), dim]`): a loop that looks up batches of one size
    /// allocates nothing after its first step.
    pub fn forward_into(&self, indices: &IndexTensor, out: &Tensor) -> Result<()> {
        let _scope = self.gpu.scope();
        let status = Status::new(&self.gpu)?;
        let mut encoder = self.gpu.encoder("Embedding::forward_into");
        self.encode_forward(&mut encoder, indices, out, &status)?;
        status.submit_and_check(encoder, indices, self.num_embeddings)
    }

    /// Records the lookup into the caller's encoder: `out` must be
    /// `[indices.len(), dim]`; `status` ([`Status::new`]) records the first
    /// out-of-range position for [`Status::read`] after the submit. With `max_norm`, the
    /// renormalisation (`row_check` then `embedding_renorm`, per id, skipped
    /// entirely when an index is out of range) is recorded before the gather.
    pub fn encode_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        indices: &IndexTensor,
        out: &Tensor,
        status: &Status,
    ) -> Result<()> {
        recorder::record(&self.gpu, encoder, |rec| {
            indices.check_gpu(&self.gpu, "indices")?;
            status.check_gpu(&self.gpu, "status")?;
            let status = status.buffer();
            out.check_gpu(&self.gpu, "output tensor")?;
            if out.shape() != [indices.len(), self.dim] {
                return Err(Error::ShapeMismatch {
                    what: "Embedding::encode_forward output",
                    expected: vec![indices.len(), self.dim],
                    found: out.shape().to_vec(),
                });
            }
            // The output and index list in windows of positions that fit one
            // binding; the table in its row-blocks, up to four bound per dispatch.
            let blocks = self.weight.blocks();
            let args = GatherArgs {
                table: &blocks,
                dtype: self.weight.dtype(),
                num_embeddings: self.num_embeddings,
                dim: self.dim,
                indices: indices.buffer(),
                n: indices.len(),
                status,
                out: out.buffer(),
                threads_per_row: None,
                workgroup_size: None,
                const_dim: false,
            };
            let windows = embedding_gather::windows(&self.gpu, &args)?;
            // Checked before the renormalisation's histogram and buffers are
            // made (the recorder keeps a failed call out of the encoder anyway).
            self.check_renorm()?;
            self.record_renorm(rec, indices, status)?;
            embedding_gather::record_windows(rec, &args, &windows)
        })
    }

    /// Records `row_histogram` of `indices` (how often each row occurs; it
    /// also lowers `status` at the first index out of range) into a new
    /// buffer of one u32 per row.
    pub(super) fn record_histogram(
        &self,
        rec: &mut Recorder,
        indices: &IndexTensor,
        status: &wgpu::Buffer,
    ) -> Result<GpuBuffer> {
        let counts = self
            .gpu
            .storage("row counts", self.num_embeddings as u64 * 4)?;
        self.record_check(rec, indices, status, Some(counts.raw()))?;
        Ok(counts)
    }

    /// Records `row_histogram` of `indices` into `counts`, or with `None`
    /// its check alone (`row_check`): either lowers `status` at the first
    /// index out of range.
    fn record_check(
        &self,
        rec: &mut Recorder,
        indices: &IndexTensor,
        status: &wgpu::Buffer,
        counts: Option<&wgpu::Buffer>,
    ) -> Result<()> {
        row_histogram::record(
            rec,
            &HistogramArgs {
                indices: indices.buffer(),
                n: indices.len(),
                num_embeddings: self.num_embeddings,
                status,
                counts,
            },
        )
    }

    /// What `max_norm` needs of the table, checked before anything is recorded.
    pub(in crate::nn) fn check_renorm(&self) -> Result<()> {
        match self.options.max_norm {
            Some(_) => embedding_renorm::check_dim(&self.gpu, self.dim),
            None => Ok(()),
        }
    }

    /// With `max_norm`: records the renormalisation, in place, of every row
    /// `indices` references whose norm exceeds it (`row_check`, then
    /// `embedding_renorm`, one invocation per id; nothing at all when an
    /// index is out of range). Without: records nothing. `EmbeddingBag` runs it before
    /// pooling, as PyTorch does.
    pub(in crate::nn) fn record_renorm(
        &self,
        rec: &mut Recorder,
        indices: &IndexTensor,
        status: &wgpu::Buffer,
    ) -> Result<()> {
        let Some(max_norm) = self.options.max_norm else {
            return Ok(());
        };
        if indices.is_empty() {
            return Ok(()); // no row to claim: no claims buffer either
        }
        // The index check alone: the renormalisation claims its rows itself.
        self.record_check(rec, indices, status, None)?;
        // A GL turn before the claims' lock, as every library call takes
        // them: making or dropping the buffer under the lock takes one, and
        // a caller holding a turn may be waiting for the lock. Held to the
        // end, for the drop of the handle below (the last one if another
        // thread's lookup has wrapped the epoch since).
        let _turn = self.gpu.gl_turn();
        let (claims, epoch) = self.renorm_epoch()?;
        embedding_renorm::record(
            rec,
            &RenormArgs {
                num_embeddings: self.num_embeddings,
                dim: self.dim,
                max_norm,
                norm_type: self.options.norm_type,
                status,
                indices: indices.buffer(),
                n: indices.len(),
                blocks: &self.weight.blocks(),
                claims: Some(RenormClaims {
                    buffer: &claims,
                    epoch,
                }),
            },
        )
    }

    /// The kept claims buffer and this lookup's epoch on it (the next
    /// count). The buffer is made, zeroed, at the first lookup and again
    /// when the count wraps past `u32::MAX` (an old epoch would match rows
    /// claimed 2^32 lookups ago); the old one is then never recycled, as
    /// encoders recorded with it may still be waiting to be submitted.
    /// The lock is held only while the epoch is taken, not while the
    /// caller records (a first lookup compiles the pipeline): other
    /// threads' lookups take the next epochs meanwhile, and the handle
    /// returned stays valid past a wrap (its buffer is never recycled).
    fn renorm_epoch(&self) -> Result<(wgpu::Buffer, u32)> {
        let mut slot = self.renorm.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|s| s.next == 0) {
            let bytes = embedding_renorm::claims_fit(&self.gpu, self.num_embeddings)?;
            // Zeroed before any thread's next submit: a lookup on another
            // thread may record this buffer as soon as the lock is free.
            let buffer = self
                .gpu
                .storage_zeroed_now("embedding_renorm claims", bytes)?;
            if let Some(old) = slot.replace(RenormState { buffer, next: 1 }) {
                old.buffer.never_reuse();
            }
        }
        let state = slot.as_mut().expect("made above");
        let epoch = state.next;
        state.next = state.next.wrapping_add(1);
        Ok((state.buffer.raw().clone(), epoch))
    }

    /// The `[n, dim]` output: up to `max_buffer_size`, gathered in windows
    /// when past one binding; refused before any allocation past that.
    fn alloc_output(&self, n: usize) -> Result<Tensor> {
        let bytes = (n as u64).saturating_mul(self.dim as u64).saturating_mul(4);
        self.gpu.check_size("embedding output", bytes, false)?;
        // The gather writes every element (a failed lookup drops the output).
        Tensor::uninit(&self.gpu, &[n, self.dim])
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::test_gpus;
    use crate::{Embedding, EmbeddingOptions};

    /// When the epoch count wraps, the lookup after epoch `u32::MAX` claims
    /// in a new zeroed buffer from epoch 1: the old buffer's rows hold 1
    /// (row 0, from the first lookup), `u32::MAX` (rows 1 and 2) and 0 (row
    /// 3, never claimed), so reusing it from epoch 1 (row 0), or claiming
    /// with 0 (row 3), would leave a row unscaled. The twin's bits after
    /// each lookup, and a new buffer.
    #[test]
    fn max_norm_claims_start_again_at_the_epoch_wrap() {
        let (vocab, dim) = (6, 3);
        let weights: Vec<f32> = (0..vocab * dim).map(|i| 2.0 + i as f32).collect();
        let options = EmbeddingOptions {
            max_norm: Some(1.0),
            ..EmbeddingOptions::default()
        };
        for gpu in test_gpus() {
            let name = gpu.describe();
            let mut emb = Embedding::from_pretrained_with_options(
                &gpu,
                &weights,
                vocab,
                dim,
                options.clone(),
            )
            .unwrap();
            let mut old = None;
            for (ids, next) in [
                (&[0u32][..], None),
                (&[1, 2], Some(u32::MAX)),
                (&[0, 1, 3, 1], None),
            ] {
                emb.set_weight(&weights).unwrap();
                if let Some(next) = next {
                    let mut slot = emb.renorm.lock().unwrap();
                    let state = slot.as_mut().expect("made by the first lookup");
                    state.next = next;
                    old = Some(state.buffer.raw().clone());
                }
                emb.forward(ids).unwrap();
                let mut want = weights.clone();
                crate::cpu::embedding_renorm(vocab, dim, 1.0, 2.0, u32::MAX, ids, &mut want);
                let got = emb.weight().to_vec().unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{name}: lookup of {ids:?}");
            }
            let slot = emb.renorm.lock().unwrap();
            assert_eq!(
                slot.as_ref().unwrap().next,
                2,
                "{name}: epoch 1 of a new buffer"
            );
            assert!(
                old.as_ref() != Some(slot.as_ref().unwrap().buffer.raw()),
                "{name}: the wrap made a new buffer"
            );
        }
    }
}
