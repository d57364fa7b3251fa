//! Random sequences of public calls on one Embedding (odd shapes, f16 or
//! f32, small row-blocks, padding, max_norm, scale_grad_by_freq, sparse
//! gradients; random indices, lengths, NaNs, rates and Adam settings): every
//! call returns a value or a typed error, never panics; a failed call leaves
//! the table's bits as they were, and the Adam state (step and moments) the
//! sequence carries; a lookup without max_norm equals the CPU twin's gather
//! of the table.
#![no_main]

#[path = "common.rs"]
mod common;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wgpu_embed::{
    cpu, AdamOptions, AdamState, DType, Embedding, EmbeddingOptions, Error, IndexTensor, Tensor,
};

#[derive(Arbitrary, Debug)]
struct Table {
    rows: u8,
    dim: u8,
    f16: bool,
    block_rows: Option<u8>,
    padding: Option<u8>,
    max_norm: Option<f32>,
    scale_grad_by_freq: bool,
    sparse: bool,
    seed: u64,
}

/// Adam's settings: mostly in PyTorch's valid ranges (so steps run), or
/// `raw`, any f64 (NaN and negatives included: typed errors).
#[derive(Arbitrary, Debug)]
struct Adam {
    lr: u8,
    betas: (u8, u8),
    eps: u8,
    weight_decay: u8,
    raw: Option<(f64, (f64, f64), f64, f64)>,
}

impl Adam {
    fn options(&self) -> AdamOptions {
        if let Some((lr, betas, eps, weight_decay)) = self.raw {
            return AdamOptions {
                lr,
                betas,
                eps,
                weight_decay,
            };
        }
        AdamOptions {
            lr: self.lr as f64 / 64.0,
            betas: (self.betas.0 as f64 / 256.0, self.betas.1 as f64 / 256.0),
            eps: 10f64.powi(-(self.eps as i32 % 13)),
            weight_decay: self.weight_decay as f64 / 128.0,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Call {
    Forward(Vec<u16>),
    ForwardGpu(Vec<u16>),
    Backward(Vec<u16>, u8),
    BackwardSgd(Vec<u16>, u8, f32),
    BackwardSgdGpu(Vec<u16>, f32),
    BackwardAdagrad(Vec<u16>, f32, f32),
    BackwardAdam(Vec<u16>, u8, Adam),
    AdamStep(Vec<u16>, Adam),
    SgdStep(Vec<u16>, f32),
    SetWeight(Vec<f32>),
    Uniform(f32, f32, u64),
    Normal(f32, f32, u64),
}

fn ids(v: &[u16], rows: usize) -> Vec<u32> {
    // Mostly in range, some past it.
    v.iter().map(|&i| i as u32 % (rows as u32 + 3)).collect()
}

fuzz_target!(|input: (Table, Vec<Call>)| {
    let (t, calls) = input;
    let gpu = common::gpu();
    let (rows, dim) = (t.rows as usize % 20 + 1, t.dim as usize % 12 + 1);
    let elem = if t.f16 { 2 } else { 4 };
    let options = EmbeddingOptions {
        seed: Some(t.seed),
        padding_idx: t.padding.map(|p| p as usize),
        max_norm: t.max_norm,
        scale_grad_by_freq: t.scale_grad_by_freq,
        sparse: t.sparse,
        dtype: if t.f16 { DType::F16 } else { DType::F32 },
        chunk_bytes: t
            .block_rows
            .map(|r| ((r as usize % 8 + 1) * dim * elem) as u64),
        ..Default::default()
    };
    let Ok(mut emb) = Embedding::with_options(gpu, rows, dim, options) else {
        return;
    };
    let grad =
        |n: usize, fill: f32| Tensor::from_slice(gpu, &vec![fill; n * dim], &[n, dim]).unwrap();
    // One Adam state for the whole sequence, as a training loop keeps it
    // (f32 tables only: an f16 table's is a typed error).
    let mut adam = match (emb.adam_state(), t.f16) {
        (Ok(state), false) => Some(state),
        (Err(Error::InvalidArgument { name: "dtype", .. }), true) => None,
        (r, _) => panic!("adam_state of an f16={} table: {:?}", t.f16, r.err()),
    };
    // The state's bits as the last successful Adam call left them: only
    // those calls change it, so it is read back after them and after a
    // failure, not around every call.
    let mut adam_known = adam.as_ref().map(adam_bits);
    for call in calls.into_iter().take(8) {
        let before = common::bits(&emb);
        let adam_call = matches!(call, Call::BackwardAdam(..) | Call::AdamStep(..));
        let result = match &call {
            Call::Forward(v) => {
                let idx = ids(v, rows);
                let r = emb.forward(&idx);
                if let (Ok(out), None) = (&r, emb.options().max_norm) {
                    let table: Vec<f32> = before.iter().map(|&b| f32::from_bits(b)).collect();
                    let mut want = vec![0.0; idx.len() * dim];
                    let mut status = u32::MAX;
                    cpu::embedding_gather(rows, dim, &idx, &mut status, &table, &mut want);
                    assert_eq!(status, u32::MAX, "forward accepted a bad id: {call:?}");
                    let got: Vec<u32> = out.to_vec().unwrap().iter().map(|x| x.to_bits()).collect();
                    let want: Vec<u32> = want.iter().map(|x| x.to_bits()).collect();
                    assert_eq!(got, want, "forward != twin for {call:?}");
                }
                r.map(drop)
            }
            Call::ForwardGpu(v) => {
                let idx = IndexTensor::from_slice(gpu, &ids(v, rows)).unwrap();
                emb.forward_gpu(&idx).map(drop)
            }
            Call::Backward(v, n) => emb
                .backward(&ids(v, rows), &grad(*n as usize % 5, 0.5))
                .map(drop),
            Call::BackwardSgd(v, n, lr) => {
                emb.backward_sgd(&ids(v, rows), &grad(*n as usize % 5, 0.25), *lr)
            }
            Call::BackwardSgdGpu(v, lr) => {
                let idx = ids(v, rows);
                let t = IndexTensor::from_slice(gpu, &idx).unwrap();
                emb.backward_sgd_gpu(&t, &grad(idx.len(), -1.0), *lr)
            }
            Call::BackwardAdagrad(v, lr, eps) => {
                let idx = ids(v, rows);
                let mut state = emb.adagrad_state().unwrap();
                emb.backward_adagrad(&idx, &grad(idx.len(), 1.5), &mut state, *lr, *eps)
            }
            Call::BackwardAdam(v, n, o) => {
                let Some(adam) = adam.as_mut() else { continue };
                let idx = ids(v, rows);
                let n = if *n % 4 == 0 {
                    *n as usize % 5
                } else {
                    idx.len()
                };
                emb.backward_adam(&idx, &grad(n, -0.75), adam, &o.options())
            }
            Call::AdamStep(v, o) => {
                let Some(adam) = adam.as_mut() else { continue };
                let idx = ids(v, rows);
                match emb.backward(&idx, &grad(idx.len(), 0.5)) {
                    Ok(g) => emb.adam_step(&g, adam, &o.options()),
                    Err(e) => Err(e),
                }
            }
            Call::SgdStep(v, lr) => {
                let idx = ids(v, rows);
                match emb.backward(&idx, &grad(idx.len(), 2.0)) {
                    Ok(g) => emb.sgd_step(&g, *lr),
                    Err(e) => Err(e),
                }
            }
            Call::SetWeight(w) => emb.set_weight(w),
            Call::Uniform(lo, hi, seed) => emb.uniform_(*lo, *hi, *seed),
            Call::Normal(mean, std, seed) => emb.normal_(*mean, *std, *seed),
        };
        if let (Some(state), Some(known)) = (adam.as_ref(), adam_known.as_mut()) {
            match (&result, adam_call) {
                (Ok(()), true) => {
                    assert_eq!(
                        state.step(),
                        known.0 + 1,
                        "{call:?} succeeded: one more step"
                    );
                    *known = adam_bits(state);
                }
                (Ok(()), false) => {}
                (Err(_), _) => assert_eq!(
                    &adam_bits(state),
                    known,
                    "{call:?} failed and changed the Adam state"
                ),
            }
        }
        if result.is_err() {
            assert_eq!(
                common::bits(&emb),
                before,
                "{call:?} failed and changed the table"
            );
        }
    }
});

/// The Adam state's step count and the bits of both moments.
fn adam_bits(state: &AdamState) -> (u64, Vec<u32>, Vec<u32>) {
    let bits = |t: &wgpu_embed::Table| -> Vec<u32> {
        let v = t.to_vec().expect("reading a moment back");
        v.iter().map(|x| x.to_bits()).collect()
    };
    (
        state.step(),
        bits(state.exp_avg()),
        bits(state.exp_avg_sq()),
    )
}
