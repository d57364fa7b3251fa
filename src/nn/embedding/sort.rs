//! The sort stage of the deterministic gradient, shared by the backward
//! (`backward.rs`) and the fused updates (`update.rs`): `row_histogram`
//! checks the indices (and, for a dense gradient, counts them for
//! `exclusive_scan`'s row offsets), `radix_sort` groups a batch's positions
//! by row, and a sparse gradient's slots are a scan of the sorted keys' run
//! starts ([`record_sort`]); [`Embedding::segment_args`] hands the sorted
//! batch to `segment_sum`, which each caller points at its own output.

use crate::error::Result;
use crate::kernels::exclusive_scan::{self, ScanArgs, ScanMode};
use crate::kernels::radix_sort::{self, SortArgs};
use crate::kernels::row_histogram::{self, HistogramArgs};
use crate::kernels::segment_sum::SegmentArgs;
use crate::memory::GpuBuffer;
use crate::nn::Embedding;
use crate::recorder::Recorder;
use crate::tensor::{IndexTensor, Tensor};

/// What a caller needs per table row beside the sorted batch. Each is a
/// pass over the table's rows (a histogram, a scan), so the fused updates,
/// which find each row's run in the sorted keys, take neither: a step costs
/// the batch, not the vocabulary.
pub(super) enum PerRow<'a> {
    /// The row offsets: a dense gradient writes every row.
    Offsets,
    /// Each referenced row's slot (the padding row excluded) into `out`, one
    /// u32 per sorted entry (the slot of the run it starts) and the total
    /// last (`n + 1` u32s): a sparse gradient's, from the sorted keys.
    Ranks {
        out: &'a wgpu::Buffer,
        padding_idx: Option<usize>,
    },
    /// Only the index check.
    Nothing,
}

/// What the sort stage leaves for the segment stage.
pub(super) struct SortedBatch {
    offsets: Option<GpuBuffer>,
    keys: GpuBuffer,
    positions: GpuBuffer,
}

pub(super) fn record_sort(
    rec: &mut Recorder,
    indices: &IndexTensor,
    num_embeddings: usize,
    status: &wgpu::Buffer,
    per_row: PerRow,
) -> Result<SortedBatch> {
    let gpu = rec.gpu();
    let n = indices.len();
    // Only the offsets need the counts: the ranks and the fused updates
    // read the sorted keys.
    let (counts, offsets) = match per_row {
        PerRow::Offsets => (
            Some(gpu.storage("gradient row counts", num_embeddings as u64 * 4)?),
            Some(gpu.storage("gradient row offsets", (num_embeddings as u64 + 1) * 4)?),
        ),
        _ => (None, None),
    };
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
            counts: counts.as_ref().map(|c| c.raw()),
        },
    )?;
    if let (Some(counts), Some(offsets)) = (&counts, &offsets) {
        exclusive_scan::record(
            rec,
            &ScanArgs {
                input: counts.raw(),
                len: num_embeddings,
                out: offsets.raw(),
                exclude: None,
                mode: ScanMode::Sum,
            },
        )?;
    }
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
    if let PerRow::Ranks { out, padding_idx } = per_row {
        exclusive_scan::record(
            rec,
            &ScanArgs {
                input: keys.raw(),
                len: n,
                out,
                exclude: padding_idx,
                mode: ScanMode::RunStarts,
            },
        )?;
    }
    Ok(SortedBatch {
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
            offsets: batch.offsets.as_ref().map(|o| o.raw()),
            sorted_keys: batch.keys.raw(),
            sorted_positions: batch.positions.raw(),
            grad_out: grad_out.buffer(),
            chunk: None,
            half,
        }
    }
}
