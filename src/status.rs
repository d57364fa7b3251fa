//! [`Status`]: the word through which a kernel reports a bad GPU-resident
//! index, and its readback.
//!
//! Indices that live on the GPU ([`IndexTensor`]) cannot be checked on the
//! host before a call. The kernels that read them check every index against
//! the table and, on a bad one, skip its work and lower the status word to
//! its position (atomically: the smallest bad position wins), so the word
//! reads "first bad position, or none" (`STATUS_OK`, `shaders/prelude.wgsl`).
//! The low-level `kernels::embedding_bag::encode` also lowers it to the
//! first position of a bag longer than the `max_bag_len` it was promised,
//! the first it left unpooled.
//! The word's copy is recorded into the call's own encoder after the
//! kernels, so reading it back costs a map, not a second submit. Calls whose
//! indices were checked on the host never read it back.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::memory::GpuBuffer;
use crate::tensor::IndexTensor;

/// The status word's value when every index was in range (`STATUS_OK` in the shaders).
pub const STATUS_OK: u32 = u32::MAX;

/// A status word on the GPU, set to [`STATUS_OK`]. Pass it to the `encode_*` calls that take indices on
/// the GPU; after their submit, [`Status::read`] says whether one was bad.
pub struct Status {
    gpu: Gpu,
    word: GpuBuffer,
}

impl Status {
    /// A fresh word: no bad index seen.
    pub fn new(gpu: &Gpu) -> Result<Status> {
        let word = gpu.storage_from("status word", &[STATUS_OK])?;
        Ok(Status {
            gpu: gpu.clone(),
            word,
        })
    }

    /// The word itself (one u32), for the low-level `kernels::*::encode` calls.
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.word.raw()
    }

    pub(crate) fn check_gpu(&self, gpu: &Gpu, what: &'static str) -> Result<()> {
        if !self.gpu.same(gpu) {
            return Err(Error::DifferentGpu { what });
        }
        Ok(())
    }

    /// The first bad position the kernels recorded, or `None`: an index
    /// past the table, or (`kernels::embedding_bag` only) the first position
    /// of a bag past the `max_bag_len` it was given. Waits for the GPU: call
    /// it after the submit of the work that used this status.
    pub fn read(&self) -> Result<Option<usize>> {
        crate::readback::block("status word", self.read_async())
    }

    /// [`read`](Self::read) without blocking (a web page's way).
    pub async fn read_async(&self) -> Result<Option<usize>> {
        let word =
            crate::readback::read_async(&self.gpu, self.word.raw(), 0, 4, "status word").await?;
        Ok(bad_position(&word))
    }

    /// Records the word's copy into `encoder` (after the kernels), submits
    /// it and waits for that submission, then turns a recorded position into `IndexOutOfRange`
    /// naming the position and the index found there.
    pub(crate) fn submit_and_check(
        &self,
        encoder: wgpu::CommandEncoder,
        indices: &IndexTensor,
        num_embeddings: usize,
    ) -> Result<()> {
        let (staging, index) = self.submit_with_copy(encoder)?;
        crate::readback::block(
            "status word",
            self.check_async(staging, index, indices, num_embeddings),
        )
    }

    /// Records the word's copy after the kernels and submits `encoder`
    /// (inside the caller's scope: what it recorded is submitted before
    /// any buffer it dropped can be reused).
    pub(crate) fn submit_with_copy(
        &self,
        mut encoder: wgpu::CommandEncoder,
    ) -> Result<(GpuBuffer, wgpu::SubmissionIndex)> {
        // Made here, not in `new`: calls whose indices the host checked never read the word.
        let staging = crate::readback::staging_buffer(&self.gpu, 4)?;
        encoder.copy_buffer_to_buffer(self.word.raw(), 0, staging.raw(), 0, 4);
        let index = self.gpu.submit(encoder)?;
        Ok((staging, index))
    }

    /// The async form of [`submit_and_check`](Self::submit_and_check)'s
    /// second half: reads the word that [`submit_with_copy`](Self::submit_with_copy)
    /// copied, without blocking (a web page's way).
    pub(crate) async fn check_async(
        &self,
        staging: GpuBuffer,
        index: wgpu::SubmissionIndex,
        indices: &IndexTensor,
        num_embeddings: usize,
    ) -> Result<()> {
        let word =
            crate::readback::map_after_async(&self.gpu, &staging, 4, "status word", index).await?;
        match bad_position(&word) {
            None => Ok(()),
            Some(position) => {
                let at = indices.to_vec_range_async(position, 1).await?;
                Err(Error::IndexOutOfRange {
                    position,
                    index: at.first().copied().unwrap_or(u32::MAX) as u64,
                    num_embeddings,
                })
            }
        }
    }
}

/// The first bad position a status word read back holds, if any.
fn bad_position(word: &[u32]) -> Option<usize> {
    let word = word.first().copied().unwrap_or(STATUS_OK);
    (word != STATUS_OK).then_some(word as usize)
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Status({})", self.gpu.describe())
    }
}
