//! Past lavapipe's real 128 MiB storage binding: a 300 MB table's dense,
//! atomic and max_norm paths and its bags, and outputs, index lists and
//! gradients larger than one binding. Lean: the twins run on sampled rows,
//! and each big buffer is read back at most once. These run on every Vulkan
//! adapter with bindings of at most 128 MiB (lavapipe's real limit;
//! SwiftShader, which binds 1 GiB, capped to it); llvmpipe-GL runs the same
//! code paths at a capped binding size in tests/windows.rs and tests/chunked.rs.

mod common;

use common::{assert_bits_eq, assert_close, boundary_rows, each_vulkan_gpu_binding_128_mib, Rng};
use wgpu_embed::cpu::embedding_bag_backward::{psw_grad, BagBatch};
use wgpu_embed::cpu::{self, BackwardOptions};
use wgpu_embed::{
    BagMode, Embedding, EmbeddingBag, EmbeddingBagOptions, EmbeddingOptions, Error, Gpu, Gradient,
    GradientMode, IndexTensor, Tensor,
};

const ROWS: usize = 300_000;
const DIM: usize = 256;

/// Runs `f` on every Vulkan adapter, bindings at most 128 MiB (and fails
/// when there is none).
fn on_vulkan(f: impl Fn(&Gpu)) {
    each_vulkan_gpu_binding_128_mib(f);
}

/// A 300 MB table (N(0, 1) from `seed`, row-chunked), the rows either side
/// of every chunk boundary plus a few others, and those rows' initial values
/// from the twin (checked against the table).
fn big_table(
    gpu: &Gpu,
    options: EmbeddingOptions,
    rng: &mut Rng,
) -> (Embedding, Vec<usize>, Vec<Vec<f32>>) {
    let emb = Embedding::with_options(gpu, ROWS, DIM, options.clone()).unwrap();
    let starts = emb.weight().row_starts();
    assert!(starts.len() >= 4, "expected at least 3 chunks: {starts:?}");
    let mut sample: Vec<usize> = boundary_rows(starts).iter().map(|&r| r as usize).collect();
    sample.extend((0..6).map(|_| rng.below(ROWS)));
    sample.sort_unstable();
    sample.dedup();
    let rows: Vec<Vec<f32>> = sample
        .iter()
        .map(|&r| {
            let mut want = vec![0.0f32; DIM];
            cpu::normal_fill(
                emb.options().seed.unwrap(),
                (r * DIM) as u64,
                0.0,
                1.0,
                &mut want,
            );
            assert_bits_eq(
                &format!("init row {r}"),
                &emb.weight().rows_to_vec(r, 1).unwrap(),
                &want,
            );
            want
        })
        .collect();
    (emb, sample, rows)
}

/// Each sampled row twice, shuffled: global ids and ids into the sample.
fn sampled_batch(sample: &[usize], rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
    let mut local: Vec<u32> = (0..sample.len() as u32)
        .chain(0..sample.len() as u32)
        .collect();
    for i in (1..local.len()).rev() {
        local.swap(i, rng.below(i + 1));
    }
    let global = local.iter().map(|&k| sample[k as usize] as u32).collect();
    (global, local)
}

#[test]
fn a_300_mb_table_has_a_chunked_dense_gradient_atomics_and_max_norm() {
    on_vulkan(|gpu| {
        let mut rng = Rng(0x301);
        let options = EmbeddingOptions {
            seed: Some(0x301),
            // Rows of 256 N(0, 1) values have norms near 16.
            max_norm: Some(12.0),
            ..EmbeddingOptions::default()
        };
        let (mut emb, sample, before) = big_table(gpu, options, &mut rng);
        let (idx, local) = sampled_batch(&sample, &mut rng);
        let grad_out: Vec<f32> = (0..idx.len() * DIM).map(|_| rng.grad()).collect();
        let g = Tensor::from_slice(gpu, &grad_out, &[idx.len(), DIM]).unwrap();
        // The twin on the sampled rows alone: the gradient of a row depends
        // only on the positions that reference it.
        let k = sample.len();
        let want =
            cpu::embedding_backward_dense(k, DIM, &local, &grad_out, &BackwardOptions::default());
        let untouched = (0..ROWS)
            .find(|r| sample.binary_search(r).is_err())
            .unwrap();

        // Dense, deterministic: a gradient of 300 MB in the table's chunks.
        let grad = emb.backward(&idx, &g).unwrap();
        assert!(
            matches!(&grad, Gradient::Dense(t) if t.num_blocks() > 1),
            "{grad:?}"
        );
        for (j, &r) in sample.iter().enumerate() {
            let got = grad.rows_to_vec(r, 1).unwrap();
            assert_bits_eq(
                &format!("dense gradient row {r}"),
                &got,
                &want[j * DIM..(j + 1) * DIM],
            );
        }
        assert!(grad
            .rows_to_vec(untouched, 1)
            .unwrap()
            .iter()
            .all(|&x| x == 0.0));

        // Atomic: the same sums (exact here: multiples of 1/64, two terms a row).
        // An adapter without float atomics (SwiftShader) says so instead.
        emb.set_gradient_mode(GradientMode::Atomic);
        match emb.backward(&idx, &g) {
            Ok(atomic) => {
                assert!(gpu.has_float_atomics());
                for (j, &r) in sample.iter().enumerate() {
                    let got = atomic.rows_to_vec(r, 1).unwrap();
                    assert_close(
                        &format!("atomic gradient row {r}"),
                        &got,
                        &want[j * DIM..(j + 1) * DIM],
                        1e-6,
                    );
                }
            }
            Err(e) => assert!(
                !gpu.has_float_atomics() && matches!(e, Error::MissingFeature { .. }),
                "{e}"
            ),
        }
        emb.set_gradient_mode(GradientMode::Deterministic);

        // sgd_step with the chunked gradient.
        emb.sgd_step(&grad, 0.5).unwrap();
        drop(grad);
        let mut updated = Vec::new();
        for (j, &r) in sample.iter().enumerate() {
            let mut w = before[j].clone();
            cpu::sgd_dense(0.5, &want[j * DIM..(j + 1) * DIM], &mut w);
            assert_bits_eq(
                &format!("updated row {r}"),
                &emb.weight().rows_to_vec(r, 1).unwrap(),
                &w,
            );
            updated.extend(w);
        }

        // max_norm: the forward renormalises every referenced row in its chunk.
        let out = emb.forward(&idx).unwrap().to_vec().unwrap();
        let mut renormed = updated.clone();
        let every_row: Vec<u32> = (0..k as u32).collect();
        cpu::embedding_renorm(k, DIM, 12.0, 2.0, u32::MAX, &every_row, &mut renormed);
        for (j, &r) in sample.iter().enumerate() {
            let row = emb.weight().rows_to_vec(r, 1).unwrap();
            // sqrt may differ by an ulp between adapters (tests/gradient.rs).
            assert_close(
                &format!("renormalised row {r}"),
                &row,
                &renormed[j * DIM..(j + 1) * DIM],
                1e-6,
            );
            for p in (0..idx.len()).filter(|&p| idx[p] as usize == r) {
                assert_bits_eq(
                    &format!("output {p} (row {r})"),
                    &out[p * DIM..(p + 1) * DIM],
                    &row,
                );
            }
        }
        let mut want = vec![0.0f32; DIM];
        cpu::normal_fill(0x301, (untouched * DIM) as u64, 0.0, 1.0, &mut want);
        assert_bits_eq(
            "untouched row",
            &emb.weight().rows_to_vec(untouched, 1).unwrap(),
            &want,
        );
    });
}

#[test]
fn a_300_mb_table_pools_bags_forward_and_backward() {
    on_vulkan(|gpu| {
        let mut rng = Rng(0xBA65);
        let options = EmbeddingOptions {
            seed: Some(0xBA65),
            ..EmbeddingOptions::default()
        };
        let (emb, sample, before) = big_table(gpu, options, &mut rng);
        let k = sample.len();
        let mini: Vec<f32> = before.concat();
        let (idx, local) = sampled_batch(&sample, &mut rng);
        let n = idx.len();
        let mut cuts: Vec<u32> = (0..7).map(|_| rng.below(n + 1) as u32).collect();
        cuts.sort_unstable();
        let csr: Vec<u32> = [0].into_iter().chain(cuts).chain([n as u32]).collect();
        let bags = csr.len() - 1;
        let psw = rng.floats(n);
        let grad_out = rng.floats(bags * DIM);
        let g = Tensor::from_slice(gpu, &grad_out, &[bags, DIM]).unwrap();
        let mut emb = Some(emb);
        for mode in [BagMode::Sum, BagMode::Max] {
            let what = format!("{mode:?}");
            let weights = (mode == BagMode::Sum).then_some(psw.as_slice());
            let mut bag = EmbeddingBag::from_embedding(
                emb.take().unwrap(),
                EmbeddingBagOptions {
                    mode,
                    include_last_offset: true,
                },
            );
            // The twins on the sampled rows, renumbered 0 .. k.
            let (mut want, mut pos, mut status) =
                (vec![0.0; bags * DIM], vec![0; bags * DIM], u32::MAX);
            cpu::embedding_bag(
                mode,
                k,
                DIM,
                None,
                &local,
                &csr,
                weights,
                &mut status,
                &mut pos,
                &mini,
                &mut want,
            );
            let saved = bag.forward_with_positions(&idx, &csr, weights).unwrap();
            assert_bits_eq(&what, &saved.output.to_vec().unwrap(), &want);
            if mode == BagMode::Max {
                assert_eq!(
                    saved.max_positions_to_vec().unwrap(),
                    pos,
                    "{what}: winners"
                );
            }
            let batch = BagBatch {
                mode,
                num_embeddings: k,
                dim: DIM,
                indices: &local,
                offsets: &csr,
                per_sample_weights: weights,
                max_positions: &pos,
                grad_out: &grad_out,
            };
            let o = BackwardOptions::default();
            let dense = cpu::embedding_bag_backward_dense(&batch, &o);
            let grad = match mode {
                BagMode::Max => bag.backward_with_positions(&idx, &csr, &saved, &g),
                _ => bag.backward(&idx, &csr, weights, &g),
            }
            .unwrap();
            assert!(
                matches!(&grad, Gradient::Dense(t) if t.num_blocks() > 1),
                "{what}: {grad:?}"
            );
            for (j, &r) in sample.iter().enumerate() {
                let got = grad.rows_to_vec(r, 1).unwrap();
                assert_bits_eq(
                    &format!("{what} gradient row {r}"),
                    &got,
                    &dense[j * DIM..(j + 1) * DIM],
                );
            }
            drop(grad);
            if mode == BagMode::Sum {
                let mut want = vec![0.0; n];
                psw_grad(k, DIM, None, &local, &csr, &grad_out, &mini, &mut want);
                let got = bag.per_sample_weights_grad(&idx, &csr, &g).unwrap();
                assert_bits_eq("psw grad", &got.to_vec().unwrap(), &want);
            } else {
                bag.backward_sgd(&idx, &csr, None, &g, 0.5).unwrap();
                let mut w = mini.clone();
                cpu::embedding_bag_backward_sgd(&batch, &o, &mut w, 0.5);
                for (j, &r) in sample.iter().enumerate() {
                    let got = bag.weight().rows_to_vec(r, 1).unwrap();
                    assert_bits_eq(
                        &format!("{what} sgd row {r}"),
                        &got,
                        &w[j * DIM..(j + 1) * DIM],
                    );
                }
            }
            emb = Some(bag.into_embedding());
        }
    });
}

#[test]
fn outputs_index_lists_and_gradients_past_a_real_binding() {
    on_vulkan(|gpu| {
        let binding = gpu.max_binding_bytes() as usize;
        let mut rng = Rng(0x0B16);

        // An output past one binding: 140 000 rows of 1 KiB.
        let (rows, dim, n) = (1000, 256, 140_000);
        assert!(n * dim * 4 > binding);
        let w = common::table(rows, dim);
        let emb = Embedding::from_pretrained(gpu, &w, rows, dim, false).unwrap();
        let idx: Vec<u32> = (0..n).map(|_| rng.below(rows) as u32).collect();
        let out = emb.forward(&idx).unwrap().to_vec().unwrap();
        if let Some(p) = (0..n).find(|&p| {
            let r = idx[p] as usize;
            out[p * dim..(p + 1) * dim] != w[r * dim..(r + 1) * dim]
        }) {
            panic!("output row {p} (id {}) differs", idx[p]);
        }
        drop(out);

        // An index list past one binding (34 million ids; the output too).
        let (rows, n) = (1000, 34_000_000);
        assert!(n * 4 > binding);
        let w = common::table(rows, 1);
        let emb = Embedding::from_pretrained(gpu, &w, rows, 1, false).unwrap();
        let idx: Vec<u32> = (0..n).map(|i| ((i * 7919) % rows) as u32).collect();
        let on_gpu = IndexTensor::from_slice(gpu, &idx).unwrap();
        let out = emb.forward_gpu(&on_gpu).unwrap().to_vec().unwrap();
        if let Some(p) = (0..n).find(|&p| out[p].to_bits() != w[idx[p] as usize].to_bits()) {
            panic!("position {p}: got {} want {}", out[p], w[idx[p] as usize]);
        }
        drop(out);
        // A bad id in the last window is found where it is.
        let bad = n - 5;
        gpu.queue().write_buffer(
            on_gpu.buffer(),
            bad as u64 * 4,
            bytemuck::bytes_of(&u32::MAX),
        );
        match emb.forward_gpu(&on_gpu) {
            Err(Error::IndexOutOfRange { position, .. }) => assert_eq!(position, bad),
            other => panic!("expected IndexOutOfRange, got {:?}", other.map(drop)),
        }
        drop(on_gpu);

        // A grad_out past one binding: the sorted backward reads it in windows.
        let (rows, dim, n) = (50_000, 256, 140_000);
        assert!(n * dim * 4 > binding);
        let idx = rng.ids(n, rows, 7);
        let grad_out = rng.floats(n * dim);
        let g = Tensor::from_slice(gpu, &grad_out, &[n, dim]).unwrap();
        let emb =
            Embedding::from_pretrained(gpu, &vec![0.0; rows * dim], rows, dim, false).unwrap();
        let want =
            cpu::embedding_backward_dense(rows, dim, &idx, &grad_out, &BackwardOptions::default());
        let got = emb
            .backward(&idx, &g)
            .unwrap()
            .to_dense_vec(rows, dim)
            .unwrap();
        assert_bits_eq("dense gradient of a grad_out past one binding", &got, &want);
    });
}
