//! The sort stage of the deterministic gradient, shared by the backward
//! (`backward.rs`) and the fused updates (`update.rs`): `row_histogram` →
//! `exclusive_scan` → `radix_sort` group a batch's positions by row
//! ([`record_sort`]), and [`Embedding::segment_args`] hands the sorted batch
//! to `segment_sum`, which each caller points at its own output.

use crate::error::Result;
use crate::kernels::exclusive_scan::{self, ScanArgs};
use crate::kernels::radix_sort::{self, SortArgs};
use crate::kernels::row_histogram::{self, HistogramArgs};
use crate::kernels::segment_sum::SegmentArgs;
use crate::memory::GpuBuffer;
use crate::nn::Embedding;
use crate::recorder::Recorder;
use crate::tensor::{IndexTensor, Tensor};

/// What the sort stage leaves for the segment stage.
pub(super) struct SortedBatch {
    pub(super) counts: GpuBuffer,
    offsets: GpuBuffer,
    keys: GpuBuffer,
    positions: GpuBuffer,
}

pub(super) fn record_sort(
    rec: &mut Recorder,
    indices: &IndexTensor,
    num_embeddings: usize,
    status: &wgpu::Buffer,
) -> Result<SortedBatch> {
    let gpu = rec.gpu();
    let n = indices.len();
    let counts = gpu.storage("gradient row counts", num_embeddings as u64 * 4)?;
    let offsets = gpu.storage("gradient row offsets", (num_embeddings as u64 + 1) * 4)?;
    // A permutation of all n: the sort writes every element.
    let keys = gpu.storage_uninit("gradient sorted rows", n as u64 * 4)?;
    let positions = gpu.storage_uninit("gradient sorted positions", n as u64 * 4)?;
    row_histogram::record(
        rec,
        &HistogramArgs {
            indices: indices.buffer(),
            n,
            num_embeddings,
            status,
            counts: counts.raw(),
        },
    )?;
    exclusive_scan::record(
        rec,
        &ScanArgs {
            input: counts.raw(),
            len: num_embeddings,
            out: offsets.raw(),
            exclude: None,
            flags: false,
        },
    )?;
    radix_sort::record(
        rec,
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

impl Embedding {
    pub(super) fn segment_args<'a>(
        &'a self,
        batch: &'a SortedBatch,
        indices: &IndexTensor,
        grad_out: &'a Tensor,
        status: &'a wgpu::Buffer,
        half: Option<crate::cpu::Round16>,
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
            chunk: None,
            half,
        }
    }
}
