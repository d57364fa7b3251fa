//! `Embedding`: a trainable lookup table, as `torch.nn.Embedding`.
//!
//! The type and its options are here; its methods are split by what they do:
//!
//! - `init.rs`: construction (`new`, `with_options`, `from_pretrained*`),
//!   refills (`uniform_`, `normal_`, `set_weight`, `encode_init`), the
//!   padding row, and the checks on shapes and options;
//! - `forward.rs`: the lookup (`forward`, `forward_gpu`, `encode_forward`);
//! - `backward.rs`: the gradient of a lookup (`backward*`, `encode_backward*`);
//! - `sort.rs`: the sort stage of the deterministic gradient, shared by
//!   `backward.rs` and the fused updates;
//! - `update.rs`: SGD and row-wise Adagrad, alone or fused with the backward.
//! - `adam.rs`: the fused backward + `SparseAdam` step, and dense Adam.
//!
//! Loading from and saving to files is in `nn/files.rs`; the gradient's
//! types, [`Gradient`](crate::nn::Gradient) and [`GradientMode`], in `nn/gradient.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::cpu::Round16;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::GradientMode;
use crate::status::Status;
use crate::tensor::{DType, IndexTensor, Table};

mod adam;
mod backward;
mod forward;
mod init;
mod sort;
mod update;

/// Who checked a call's indices against the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IndexCheck {
    /// The host, before the call (indices from a slice): the status word
    /// cannot be set, so it is not read back.
    Host,
    /// Nobody yet (an `IndexTensor`): the kernels set the status word, and
    /// its copy rides in the call's submit.
    Gpu,
}

impl Embedding {
    /// Submits `encoder`, with the status word's copy when the GPU checks
    /// the indices: the synchronous half of a checked call, made inside the
    /// caller's cache scope. [`check_submitted`](Self::check_submitted)
    /// awaits it outside any scope: a scope is a per-thread count, and one
    /// held across an await would cover other tasks' buffers on this
    /// thread while this call waits (their clears deferred, their raw
    /// buffers not marked as theirs).
    pub(super) fn submit_for_check(
        &self,
        encoder: wgpu::CommandEncoder,
        status: &Status,
        check: IndexCheck,
    ) -> Result<Submitted> {
        Ok(match check {
            IndexCheck::Host => Submitted::Host(self.gpu.submit(encoder)?),
            IndexCheck::Gpu => {
                let (staging, index) = status.submit_with_copy(encoder)?;
                Submitted::Gpu(staging, index)
            }
        })
    }

    /// Waits for a [`submit_for_check`](Self::submit_for_check) submission
    /// and, when the GPU checked the indices, reads the status word back
    /// and turns a bad index into `IndexOutOfRange`. Async: the blocking
    /// calls run it through `readback::block`, a page awaits it.
    pub(super) async fn check_submitted(
        &self,
        submitted: Submitted,
        status: &Status,
        indices: &IndexTensor,
    ) -> Result<()> {
        match submitted {
            Submitted::Host(index) => self.gpu.settle(index).await,
            Submitted::Gpu(staging, index) => {
                status
                    .check_async(staging, index, indices, self.num_embeddings)
                    .await
            }
        }
    }
}

/// A checked call's submission, waiting to be checked.
pub(super) enum Submitted {
    /// The host checked the indices: only the work's completion.
    Host(wgpu::SubmissionIndex),
    /// The status word's staging copy, in this submission.
    Gpu(crate::memory::GpuBuffer, wgpu::SubmissionIndex),
}

/// The first seed a `Gpu` draws for a layer built without one (the first
/// `Embedding::new`, say); the next draws step from it (see
/// [`EmbeddingOptions::seed`]), so two runs give the same tables.
pub const DEFAULT_SEED: u64 = 0x5EED_0000_0000_0001;

/// Options of `torch.nn.Embedding`, plus the initialisation seed.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingOptions {
    /// Seed of the N(0, 1) initial weights. `None` (default): drawn from
    /// the `Gpu`, as PyTorch draws from its global generator: the k-th layer
    /// built without a seed on a `Gpu` gets [`DEFAULT_SEED`] + k ·
    /// 0x9E37_79B9_7F4A_7C15 (wrapping), so two tables differ and a program
    /// that builds them in the same order gets the same bits on every
    /// adapter. The table's [`options`](Embedding::options) then hold the
    /// seed drawn (a pretrained table draws none).
    pub seed: Option<u64>,
    /// This row starts at zero (and, once gradients exist, never receives one).
    pub padding_idx: Option<usize>,
    /// `forward` renormalises, in place, each referenced row whose
    /// `norm_type`-norm exceeds this (a repeated row once), as PyTorch does.
    /// The table's first such lookup allocates one u32 per row, kept with
    /// the table (counted in [`Gpu::memory_live`]), where each lookup
    /// marks the rows it has taken: a lookup then costs the batch, with no
    /// per-row work.
    pub max_norm: Option<f32>,
    /// The p of the p-norm used with `max_norm`: positive, finite or
    /// `f32::INFINITY` (the largest magnitude), as `torch.norm`'s `p`.
    pub norm_type: f32,
    /// Divide each row's gradient by how often the row occurs in the batch.
    pub scale_grad_by_freq: bool,
    /// `backward` returns `Gradient::Sparse` (unique rows ascending, one summed row each).
    pub sparse: bool,
    /// No gradient, no updates: those calls return `Error::Frozen`.
    pub freeze: bool,
    /// Storage of the table: f32, or f16 for half the memory and lookup
    /// traffic (math and outputs stay f32; see [`Table`]).
    pub dtype: DType,
    /// Sorted and deterministic (default), or float atomics where the adapter has them.
    pub gradient_mode: GradientMode,
    /// How the updates of an f16 table round their f32 results (f32 tables
    /// ignore it): to nearest (default), or stochastically.
    pub f16_rounding: F16Rounding,
    /// Largest row-block of the table, in bytes; `None` (default): the
    /// adapter's `max_storage_buffer_binding_size`. A table past it is stored
    /// in several blocks (see [`Table`]). Smaller values exercise blocking on small tables.
    pub chunk_bytes: Option<u64>,
}

impl Default for EmbeddingOptions {
    fn default() -> Self {
        EmbeddingOptions {
            seed: None,
            padding_idx: None,
            max_norm: None,
            norm_type: 2.0,
            scale_grad_by_freq: false,
            sparse: false,
            freeze: false,
            dtype: DType::F32,
            gradient_mode: GradientMode::Deterministic,
            f16_rounding: F16Rounding::Nearest,
            chunk_bytes: None,
        }
    }
}

/// How an update of an f16 table rounds each element's new value, computed
/// in f32, to f16 (once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum F16Rounding {
    /// To nearest, ties to even.
    #[default]
    Nearest,
    /// Stochastic rounding (as FBGEMM offers for f16 tables): up with
    /// probability (x − down) / (up − down), so small updates survive on
    /// average instead of rounding away. The random bits come from Philox
    /// keyed by (`seed`, the table's update count, the element), so a run is
    /// bit-reproducible on every adapter (`cpu::Round16` is the twin). A
    /// finite result past the largest f16 saturates at ±65504, as FBGEMM's
    /// (which converts toward zero) does, where rounding to nearest gives ±inf.
    Stochastic {
        /// The Philox key's seed: the same seed, update count and element give the same rounding.
        seed: u64,
    },
}

/// A `[num_embeddings, dim]` table on the GPU; `forward` gathers rows.
pub struct Embedding {
    gpu: Gpu,
    weight: Table,
    num_embeddings: usize,
    dim: usize,
    options: EmbeddingOptions,
    /// Updates recorded on this table: the `step` of an f16 table's
    /// stochastic rounding (see [`Embedding::update_count`]).
    updates: AtomicU64,
    /// `max_norm`'s row claims, kept across lookups so they are cleared
    /// once, not per lookup (`forward.rs`, `renorm_epoch`); `None` until
    /// the first lookup that renormalises.
    renorm: Mutex<Option<forward::RenormState>>,
    /// This table among every table the process made: what a max bag's
    /// saved winners name (buffers are recycled, this is not).
    pub(in crate::nn) id: u64,
}

impl Embedding {
    /// Rows in the table.
    pub fn num_embeddings(&self) -> usize {
        self.num_embeddings
    }
    /// Floats per row.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The options it was built with.
    pub fn options(&self) -> &EmbeddingOptions {
        &self.options
    }
    /// The `Gpu` it lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    /// Chooses how `backward` and `backward_sgd` sum rows (see [`GradientMode`]).
    pub fn set_gradient_mode(&mut self, mode: GradientMode) {
        self.options.gradient_mode = mode;
    }

    /// The weight `[num_embeddings, dim]` in its storage type and row-blocks
    /// (read it with `to_vec`; [`Table::as_tensor`] gives the f32
    /// [`Tensor`](crate::Tensor) of a table in one block).
    pub fn weight(&self) -> &Table {
        &self.weight
    }
    /// Storage type of the table.
    pub fn dtype(&self) -> DType {
        self.weight.dtype()
    }

    /// How many updates (SGD steps, fused updates) have been recorded on
    /// this table: an f16 table's stochastic rounding keys its random bits
    /// on it, so a run resumed from a checkpoint restores it
    /// ([`set_update_count`](Self::set_update_count)) to continue bit for bit.
    pub fn update_count(&self) -> u64 {
        self.updates.load(Ordering::Relaxed)
    }
    /// Sets the update count (see [`update_count`](Self::update_count)).
    pub fn set_update_count(&mut self, count: u64) {
        self.updates.store(count, Ordering::Relaxed);
    }

    /// How the next update rounds: `None` for an f32 table; the rounding
    /// an f16 table's options ask for, at this update's step.
    pub(super) fn update_rounding(&self) -> Option<Round16> {
        (self.weight.dtype() == DType::F16).then(|| match self.options.f16_rounding {
            F16Rounding::Nearest => Round16::Nearest,
            F16Rounding::Stochastic { seed } => Round16::Stochastic {
                seed,
                step: self.update_count(),
            },
        })
    }
    /// Counts an update: after its submit, or when an `encode_*` form has
    /// recorded it (the caller submits).
    pub(super) fn count_update(&self) {
        self.updates.fetch_add(1, Ordering::Relaxed);
    }
    /// How a gradient of this table is rounded: f16 to nearest for an f16
    /// table, `None` (f32) otherwise.
    pub(super) fn gradient_rounding(&self) -> Option<Round16> {
        (self.weight.dtype() == DType::F16).then_some(Round16::Nearest)
    }
}
