//! Adam: its options ([`AdamOptions`], `torch.optim.Adam`'s) and its state
//! ([`AdamState`]: both moments, stored like the table they belong to, and
//! the step count). The steps themselves are `Embedding::backward_adam`
//! (fused, `torch.optim.SparseAdam`) and `Embedding::adam_step` (dense,
//! `torch.optim.Adam`).

use crate::cpu::AdamArgs;
use crate::error::{Error, Result};
use crate::tensor::Table;

/// `torch.optim.Adam`'s hyper-parameters, with its defaults. They are f64,
/// as PyTorch's are Python floats: `1 − β2` and the bias corrections are
/// computed in f64 and rounded to f32 once, so `betas: (0.9, 0.99)` means
/// what it means in PyTorch (as f32, 0.99 would make `1 − β2` a different
/// f32 than PyTorch's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamOptions {
    /// Learning rate (finite, ≥ 0; above 0 for `backward_adam`, as
    /// SparseAdam requires).
    pub lr: f64,
    /// (β1, β2), each in [0, 1).
    pub betas: (f64, f64),
    /// Added to the denominator after the square root (finite, ≥ 0; above 0
    /// for `backward_adam`, as SparseAdam requires):
    /// `sqrt(v̂) + eps` in `adam_step` (`torch.optim.Adam`); `sqrt(v) + eps`
    /// in `backward_adam`, whose bias correction is folded into the step
    /// size (`torch.optim.SparseAdam`).
    pub eps: f64,
    /// L2 penalty added to the gradient (`g + weight_decay · w`), as
    /// `torch.optim.Adam`; the fused sparse step applies it to the rows the
    /// batch references (`SparseAdam` has none; FBGEMM's row-wise L2 does this).
    pub weight_decay: f64,
}

impl Default for AdamOptions {
    fn default() -> Self {
        AdamOptions {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamOptions {
    /// PyTorch's checks, as typed errors (NaN included): lr, eps and
    /// weight_decay finite and ≥ 0, each beta in [0, 1).
    pub fn check(&self) -> Result<()> {
        let at_least_zero = |name: &'static str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::InvalidArgument {
                    name,
                    reason: format!("must be finite and at least 0, got {v}"),
                })
            }
        };
        at_least_zero("lr", self.lr)?;
        at_least_zero("eps", self.eps)?;
        at_least_zero("weight_decay", self.weight_decay)?;
        for (name, b) in [("betas.0", self.betas.0), ("betas.1", self.betas.1)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::InvalidArgument {
                    name,
                    reason: format!("must be in [0, 1), got {b}"),
                });
            }
        }
        Ok(())
    }

    /// `torch.optim.SparseAdam`'s checks, which [`backward_adam`]'s fused
    /// step makes: those of [`check`](Self::check), and lr and eps above 0
    /// (as f32s, normal ones: a GPU may flush a subnormal to 0; with eps 0,
    /// a row the batch references
    /// with a zero gradient and zero moments would divide 0 by 0 and its
    /// weights turn NaN).
    ///
    /// [`backward_adam`]: crate::Embedding::backward_adam
    pub fn check_sparse(&self) -> Result<()> {
        self.check()?;
        // As the f32s the kernel uses.
        let step = "SparseAdam (backward_adam)";
        crate::nn::check_above_zero(step, "lr", self.lr as f32)?;
        crate::nn::check_above_zero(step, "eps", self.eps as f32)
    }

    /// The constants of the step after `done` steps: SparseAdam's bias
    /// correction when `sparse`, Adam's otherwise.
    pub(crate) fn args(&self, done: u64, sparse: bool) -> AdamArgs {
        AdamArgs::for_step(
            done + 1,
            self.lr,
            self.betas,
            self.eps,
            self.weight_decay,
            sparse,
        )
    }
}

/// Adam's state for one table: `exp_avg` and `exp_avg_sq` (f32, the table's
/// shape and row-blocks, zero at first) and the number of steps taken.
/// Made by `Embedding::adam_state`.
pub struct AdamState {
    pub(crate) exp_avg: Table,
    pub(crate) exp_avg_sq: Table,
    pub(crate) step: u64,
}

impl AdamState {
    /// Steps taken (PyTorch's `state['step']`).
    pub fn step(&self) -> u64 {
        self.step
    }
    /// Sets the steps taken (the next step's bias correction uses `step + 1`):
    /// to resume from a checkpoint, or to take back the count of a step
    /// recorded into an encoder that was then dropped, or whose batch its
    /// `Status` reported bad (the weights and moments did not move; the
    /// count did, when the step was recorded).
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }
    /// The first moment.
    pub fn exp_avg(&self) -> &Table {
        &self.exp_avg
    }
    /// The second moment.
    pub fn exp_avg_sq(&self) -> &Table {
        &self.exp_avg_sq
    }
}

impl std::fmt::Debug for AdamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AdamState(step {}, moments {:?})",
            self.step,
            self.exp_avg.shape()
        )
    }
}
