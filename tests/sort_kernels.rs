//! The sort that the deterministic gradients start from, kernel by kernel,
//! against the CPU twins: `row_histogram` (and its check alone),
//! `exclusive_scan` (one dispatch, and the three-pass form past
//! `SINGLE_MAX`, with `exclude` and each mode) and `radix_sort` (1 to 8
//! passes). All of it is integer work, so every
//! output must match bit for bit on every adapter.

mod common;

use common::{each_gpu, Rng};
use proptest::prelude::*;
use wgpu_embed::kernels::embedding_gather::STATUS_OK;
use wgpu_embed::kernels::exclusive_scan::{self, ScanArgs, ScanMode, SINGLE_MAX};
use wgpu_embed::kernels::radix_sort::{self, SortArgs};
use wgpu_embed::kernels::row_histogram::{self, HistogramArgs};
use wgpu_embed::{cpu, Gpu, IndexTensor};

fn upload(gpu: &Gpu, v: &[u32]) -> IndexTensor {
    IndexTensor::from_slice(gpu, v).unwrap()
}

/// `exclusive_scan` of `input` on the GPU.
fn gpu_scan(gpu: &Gpu, input: &[u32], exclude: Option<usize>, mode: ScanMode) -> Vec<u32> {
    let (inp, out) = (upload(gpu, input), upload(gpu, &vec![7; input.len() + 1]));
    let mut enc = gpu.encoder("scan");
    let args = ScanArgs {
        input: inp.buffer(),
        len: input.len(),
        out: out.buffer(),
        exclude,
        mode,
    };
    exclusive_scan::encode(gpu, &mut enc, &args).unwrap();
    gpu.submit_and_wait(enc).unwrap();
    out.to_vec().unwrap()
}

fn twin_scan(input: &[u32], exclude: Option<usize>, mode: ScanMode) -> Vec<u32> {
    let mut out = vec![0; input.len() + 1];
    cpu::exclusive_scan(input, exclude, mode, &mut out);
    out
}

/// Scans of every size class: one element, one block, the single-dispatch
/// limit and just past it (three passes, a partial last block), with
/// `exclude` inside, at and past `len` (past u32 too, where the low 32
/// bits name a nonzero element: still nothing excluded),
/// and counts that wrap u32.
#[test]
fn exclusive_scan_matches_the_twin_at_its_size_boundaries() {
    let mut rng = Rng(11);
    each_gpu(|gpu| {
        for len in [
            1,
            4095,
            4096,
            4097,
            SINGLE_MAX,
            SINGLE_MAX + 1,
            3 * SINGLE_MAX + 5,
        ] {
            let input: Vec<u32> = (0..len)
                .map(|i| match i % 5 {
                    0 => 0,
                    // Large counts: the running sum wraps, as u32 arithmetic does.
                    1 => u32::MAX - rng.below(1000) as u32,
                    _ => rng.below(9) as u32,
                })
                .collect();
            for exclude in [
                None,
                Some(0),
                Some(len / 2),
                Some(len - 1),
                Some(len),
                Some((1 << 32) + 1),
            ] {
                // The excluded element is nonzero: excluding a zero changes nothing.
                let mut input = input.clone();
                if let Some(e) = exclude.filter(|&e| e < len) {
                    input[e] = 5;
                }
                for mode in [ScanMode::Sum, ScanMode::Nonzero] {
                    let got = gpu_scan(gpu, &input, exclude, mode);
                    let want = twin_scan(&input, exclude, mode);
                    assert!(
                        got == want,
                        "len {len}, exclude {exclude:?}, {mode:?}: first difference at {:?}",
                        got.iter().zip(&want).position(|(a, b)| a != b)
                    );
                }
            }
        }
    });
}

/// `RunStarts` over sorted keys (a sparse gradient's slots): runs of 1 to
/// 300 equal keys, some crossing the 4096-element blocks of the three-pass
/// form, the excluded value (the padding row) absent, first, in the middle
/// and last; the total is the number of runs, less the excluded one.
#[test]
fn run_start_scan_counts_the_runs_of_sorted_keys() {
    let mut rng = Rng(0x52_554e);
    each_gpu(|gpu| {
        for len in [1, 4097, SINGLE_MAX + 3, 3 * SINGLE_MAX + 5] {
            let mut keys = Vec::with_capacity(len);
            let mut key = rng.below(3) as u32;
            while keys.len() < len {
                let run = 1 + rng.below(300);
                keys.extend(std::iter::repeat_n(key, run.min(len - keys.len())));
                key += 1 + rng.below(4) as u32;
            }
            let runs = 1 + keys.windows(2).filter(|w| w[0] != w[1]).count();
            let (first, last) = (keys[0] as usize, keys[len - 1] as usize);
            for exclude in [
                None,
                Some(first),
                Some(keys[len / 2] as usize),
                Some(last),
                Some(last + 1),
            ] {
                let got = gpu_scan(gpu, &keys, exclude, ScanMode::RunStarts);
                let want = twin_scan(&keys, exclude, ScanMode::RunStarts);
                assert!(
                    got == want,
                    "len {len}, exclude {exclude:?}: first difference at {:?}",
                    got.iter().zip(&want).position(|(a, b)| a != b)
                );
                let excluded = exclude.is_some_and(|e| keys.contains(&(e as u32)));
                assert_eq!(
                    want[len] as usize,
                    runs - excluded as usize,
                    "len {len}: total"
                );
                // Each run's first entry holds its slot: consecutive from 0.
                let slots: Vec<u32> = (0..len)
                    .filter(|&i| i == 0 || keys[i - 1] != keys[i])
                    .filter(|&i| Some(keys[i] as usize) != exclude)
                    .map(|i| want[i])
                    .collect();
                assert!(
                    slots.iter().enumerate().all(|(k, &s)| s as usize == k),
                    "slots"
                );
            }
        }
    });
}

/// The sort's widest key bounds, 6 to 8 four-bit passes (tables past 2^20
/// rows, up to ids anywhere in u32), over several 1024-key blocks with
/// duplicates spread across them: keys and positions (stability) both.
#[test]
fn radix_sort_of_wide_keys_matches_the_twin() {
    let mut rng = Rng(0x7769_6465);
    let n = 3000;
    for bound in [1usize << 21, 1 << 28, 1 << 32] {
        // Some keys drawn twice, far apart, so stability is tested.
        let mut keys: Vec<u32> = (0..n).map(|_| (rng.next() % bound as u64) as u32).collect();
        for i in (0..n).step_by(7) {
            keys[(i * 13) % n] = keys[i];
        }
        let (mut want_keys, mut want_positions) = (vec![0; n], vec![0; n]);
        cpu::radix_sort(&keys, bound, &mut want_keys, &mut want_positions);
        each_gpu(|gpu| {
            let k = upload(gpu, &keys);
            let (ko, po) = (upload(gpu, &vec![0; n]), upload(gpu, &vec![0; n]));
            let mut enc = gpu.encoder("wide sort");
            let sort = SortArgs {
                keys: k.buffer(),
                n,
                key_bound: bound,
                keys_out: ko.buffer(),
                positions_out: po.buffer(),
            };
            radix_sort::encode(gpu, &mut enc, &sort).unwrap();
            gpu.submit_and_wait(enc).unwrap();
            assert!(ko.to_vec().unwrap() == want_keys, "bound {bound}: keys");
            assert!(
                po.to_vec().unwrap() == want_positions,
                "bound {bound}: positions"
            );
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The histogram, both scans and the sort of one batch, as the layers
    /// chain them, bit for bit; ids past the table are counted nowhere and
    /// reported at the first one's position.
    #[test]
    fn the_sort_pipeline_matches_the_twins(
        rows in prop_oneof![1usize..40, 15usize..18, 250usize..260, 65_530usize..65_540, Just(1 << 20)],
        n in 1usize..3000,
        bad in prop::option::of(0usize..3000),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed);
        let mut ids: Vec<u32> = (0..n).map(|_| rng.below(rows) as u32).collect();
        if let Some(p) = bad.filter(|&p| p < n) {
            ids[p] = rows as u32 + rng.below(5) as u32;
        }
        let mut status = STATUS_OK;
        let mut counts = vec![0; rows];
        cpu::row_histogram(rows, &ids, &mut status, &mut counts);
        let offsets = twin_scan(&counts, None, ScanMode::Sum);
        let exclude = Some(rng.below(rows));
        let ranks = twin_scan(&counts, exclude, ScanMode::Nonzero);
        // The sort takes ids within the bound (the layers sort only after
        // the status says so).
        let in_range: Vec<u32> = ids.iter().map(|&i| i % rows as u32).collect();
        let (mut keys, mut positions) = (vec![0; n], vec![0; n]);
        cpu::radix_sort(&in_range, rows, &mut keys, &mut positions);
        each_gpu(|gpu| {
            let (idx, sorted_in) = (upload(gpu, &ids), upload(gpu, &in_range));
            let st = upload(gpu, &[STATUS_OK]);
            let c = upload(gpu, &vec![9; rows]);
            let (k, p) = (upload(gpu, &vec![0; n]), upload(gpu, &vec![0; n]));
            let mut enc = gpu.encoder("sort pipeline");
            let hist = HistogramArgs {
                indices: idx.buffer(),
                n,
                num_embeddings: rows,
                status: st.buffer(),
                counts: Some(c.buffer()),
            };
            row_histogram::encode(gpu, &mut enc, &hist).unwrap();
            let sort = SortArgs {
                keys: sorted_in.buffer(),
                n,
                key_bound: rows,
                keys_out: k.buffer(),
                positions_out: p.buffer(),
            };
            radix_sort::encode(gpu, &mut enc, &sort).unwrap();
            gpu.submit_and_wait(enc).unwrap();
            assert_eq!(st.to_vec().unwrap(), [status], "status");
            let got_counts = c.to_vec().unwrap();
            assert!(got_counts == counts, "counts");
            assert!(gpu_scan(gpu, &got_counts, None, ScanMode::Sum) == offsets, "offsets");
            assert!(gpu_scan(gpu, &got_counts, exclude, ScanMode::Nonzero) == ranks, "ranks");
            assert!(k.to_vec().unwrap() == keys, "sorted keys");
            let runs = twin_scan(&keys, exclude, ScanMode::RunStarts);
            assert!(gpu_scan(gpu, &keys, exclude, ScanMode::RunStarts) == runs, "run slots");
            // The check alone (the fused updates' pass): the same status,
            // no counts bound.
            let st2 = upload(gpu, &[STATUS_OK]);
            let mut enc = gpu.encoder("row check");
            let check = HistogramArgs {
                status: st2.buffer(),
                counts: None,
                ..hist
            };
            row_histogram::encode(gpu, &mut enc, &check).unwrap();
            gpu.submit_and_wait(enc).unwrap();
            assert_eq!(st2.to_vec().unwrap(), [status], "status of the check alone");
            assert!(p.to_vec().unwrap() == positions, "sorted positions (stable)");
        });
    }
}
