//! The lookup of an [`Embedding`]: rows gathered by index, after the
//! `max_norm` renormalisation when the options ask for it.

use super::Embedding;
use crate::error::{Error, Result};
use crate::kernels::embedding_gather::{self, GatherArgs};
use crate::kernels::embedding_renorm::{self, RenormArgs};
use crate::kernels::row_histogram::{self, HistogramArgs};
use crate::memory::GpuBuffer;
use crate::nn::check_indices;
use crate::recorder::{self, Recorder};
use crate::status::Status;
use crate::tensor::{IndexTensor, Tensor};

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
        // The index check alone: the renormalisation claims its rows itself.
        self.record_check(rec, indices, status, None)?;
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
            },
        )
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
