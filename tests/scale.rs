//! Scale: tables past one storage binding (row-chunks), batches past one
//! dispatch's reach, several threads on one `Gpu`, and device loss.

mod common;

use common::{assert_bits_eq, each_gpu, table, Rng};
use wgpu_embed::cpu::{self, BackwardOptions};
use wgpu_embed::{Embedding, EmbeddingOptions, Error, Gpu, GpuOptions, IndexTensor, Tensor};

/// SplitMix64: test data from a seed, identical everywhere.
/// Rows either side of every chunk boundary, the first and last row, and a few others.
fn sampled_rows(starts: &[usize], rows: usize, rng: &mut Rng) -> Vec<usize> {
    let mut out = vec![0, 1, rows - 2, rows - 1];
    for &b in &starts[1..starts.len() - 1] {
        out.extend([b - 1, b, b + 1]);
    }
    out.extend((0..8).map(|_| rng.below(rows)));
    out.sort_unstable();
    out.dedup();
    out
}

/// A table small enough for the CPU twin of everything, forced into chunks of
/// 7 rows (dim 12: the vec4 path) and 5 rows (dim 7: the scalar path).
#[test]
fn a_small_chunked_table_matches_the_twin_everywhere() {
    each_gpu(|gpu| {
        for (rows, dim, chunk_rows) in [(40usize, 12usize, 7usize), (23, 7, 5)] {
            let options = EmbeddingOptions {
                chunk_bytes: Some((chunk_rows * dim * 4) as u64),
                padding_idx: Some(chunk_rows),
                ..EmbeddingOptions::default()
            };
            // Default init (normal, padding row zeroed) across chunks.
            let mut emb = Embedding::with_options(gpu, rows, dim, options.clone()).unwrap();
            assert_eq!(emb.weight().num_blocks(), rows.div_ceil(chunk_rows));
            assert!(matches!(
                emb.weight().buffer(),
                Err(Error::ChunkedTable { .. })
            ));
            let mut want = vec![0.0f32; rows * dim];
            cpu::normal_fill(emb.options().seed.unwrap(), 0, 0.0, 1.0, &mut want);
            want[chunk_rows * dim..(chunk_rows + 1) * dim].fill(0.0);
            assert_bits_eq("normal init", &emb.weight().to_vec().unwrap(), &want);
            emb.uniform_(-2.0, 3.0, 99).unwrap();
            cpu::uniform_fill(99, 0, -2.0, 3.0, &mut want);
            assert_bits_eq("uniform_", &emb.weight().to_vec().unwrap(), &want);

            // set_weight, gather.
            let w = table(rows, dim);
            emb.set_weight(&w).unwrap();
            assert_bits_eq("set_weight", &emb.weight().to_vec().unwrap(), &w);
            assert_bits_eq(
                "rows_to_vec across a boundary",
                &emb.weight()
                    .rows_to_vec(chunk_rows - 2, chunk_rows + 3)
                    .unwrap(),
                &w[(chunk_rows - 2) * dim..(2 * chunk_rows + 1) * dim],
            );
            let mut rng = Rng(rows as u64);
            let idx: Vec<u32> = (0..300).map(|_| rng.below(rows) as u32).collect();
            let got = emb.forward(&idx).unwrap().to_vec().unwrap();
            let mut status = u32::MAX;
            let mut want_out = vec![0.0f32; idx.len() * dim];
            cpu::embedding_gather(rows, dim, &idx, &mut status, &w, &mut want_out);
            assert_bits_eq("gather", &got, &want_out);

            // Fused backward + SGD, then backward + sgd_step (dense and sparse).
            let grad_out: Vec<f32> = (0..idx.len() * dim).map(|_| rng.grad()).collect();
            let g = Tensor::from_slice(gpu, &grad_out, &[idx.len(), dim]).unwrap();
            let twin = BackwardOptions {
                padding_idx: options.padding_idx,
                ..BackwardOptions::default()
            };
            let mut want_w = w.clone();
            cpu::embedding_backward_sgd(rows, dim, &idx, &grad_out, &twin, &mut want_w, 0.5);
            emb.backward_sgd(&idx, &g, 0.5).unwrap();
            assert_bits_eq("backward_sgd", &emb.weight().to_vec().unwrap(), &want_w);

            let dense = cpu::embedding_backward_dense(rows, dim, &idx, &grad_out, &twin);
            let grad = emb.backward(&idx, &g).unwrap();
            assert_bits_eq(
                "dense gradient",
                &grad.to_dense_vec(rows, dim).unwrap(),
                &dense,
            );
            emb.sgd_step(&grad, 0.5).unwrap();
            cpu::sgd_dense(0.5, &dense, &mut want_w);
            assert_bits_eq("dense sgd_step", &emb.weight().to_vec().unwrap(), &want_w);

            let mut sparse_emb = Embedding::with_options(
                gpu,
                rows,
                dim,
                EmbeddingOptions {
                    sparse: true,
                    ..options.clone()
                },
            )
            .unwrap();
            sparse_emb.set_weight(&w).unwrap();
            let sparse = sparse_emb.backward(&idx, &g).unwrap();
            sparse_emb.sgd_step(&sparse, 0.5).unwrap();
            let mut want_sparse = w.clone();
            cpu::sgd_dense(0.5, &dense, &mut want_sparse);
            assert_bits_eq(
                "sparse sgd_step",
                &sparse_emb.weight().to_vec().unwrap(),
                &want_sparse,
            );
        }
    });
}

/// A 300 MB table (more than two 128 MiB bindings on lavapipe): RNG init,
/// gather and the fused gradient update against the CPU twin on sampled rows,
/// including the rows either side of every chunk boundary. Only the sampled
/// rows are read back; the twin fills only those rows.
#[test]
fn a_300_mb_table_spans_chunks_and_matches_the_twin() {
    let (rows, dim) = (300_000usize, 256usize);
    let bytes = (rows * dim * 4) as u64;
    // llvmpipe-GL runs the same code on the small chunked tables above;
    // the 300 MB run is for bindings it crosses: lavapipe's real 128 MiB,
    // and any Vulkan adapter capped to it.
    common::each_vulkan_gpu_binding_128_mib(|gpu| {
        assert!(bytes > 2 * gpu.max_binding_bytes());
        let seed = 0x300;
        let options = EmbeddingOptions {
            seed: Some(seed),
            ..EmbeddingOptions::default()
        };
        let mut emb = Embedding::with_options(gpu, rows, dim, options).unwrap();
        let starts = emb.weight().row_starts().to_vec();
        assert!(starts.len() >= 4, "expected at least 3 blocks: {starts:?}");
        for b in emb.weight().blocks() {
            assert!(b.span.size <= gpu.max_binding_bytes());
        }
        let mut rng = Rng(7);
        let sample = sampled_rows(&starts, rows, &mut rng);

        // RNG: each sampled row against the twin filled at that row's counter.
        let mut before = Vec::new();
        for &r in &sample {
            let got = emb.weight().rows_to_vec(r, 1).unwrap();
            let mut want = vec![0.0f32; dim];
            cpu::normal_fill(seed, (r * dim) as u64, 0.0, 1.0, &mut want);
            assert_bits_eq(&format!("normal init row {r}"), &got, &want);
            before.push(got);
        }

        // Gather: every sampled row, twice, in shuffled order.
        let mut idx: Vec<u32> = sample.iter().chain(&sample).map(|&r| r as u32).collect();
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.below(i + 1));
        }
        let out = emb.forward(&idx).unwrap().to_vec().unwrap();
        for (p, &r) in idx.iter().enumerate() {
            let k = sample.binary_search(&(r as usize)).unwrap();
            assert_bits_eq(
                &format!("gather position {p} (row {r})"),
                &out[p * dim..(p + 1) * dim],
                &before[k],
            );
        }

        // Gradient: the fused deterministic backward + SGD, one update per chunk.
        let grad_out: Vec<f32> = (0..idx.len() * dim).map(|_| rng.grad()).collect();
        let g = Tensor::from_slice(gpu, &grad_out, &[idx.len(), dim]).unwrap();
        let (grad_rows, grad_values) =
            cpu::embedding_backward_sparse(rows, dim, &idx, &grad_out, &BackwardOptions::default());
        emb.backward_sgd(&idx, &g, 0.5).unwrap();
        for (k, &r) in sample.iter().enumerate() {
            let j = grad_rows.binary_search(&(r as u32)).unwrap();
            let want: Vec<f32> = before[k]
                .iter()
                .zip(&grad_values[j * dim..(j + 1) * dim])
                .map(|(w, g)| w - 0.5 * g)
                .collect();
            let got = emb.weight().rows_to_vec(r, 1).unwrap();
            assert_bits_eq(&format!("updated row {r}"), &got, &want);
        }
        // A row no index touched is unchanged.
        let untouched = (0..rows)
            .find(|r| sample.binary_search(r).is_err())
            .unwrap();
        let mut want = vec![0.0f32; dim];
        cpu::normal_fill(seed, (untouched * dim) as u64, 0.0, 1.0, &mut want);
        assert_bits_eq(
            "untouched row",
            &emb.weight().rows_to_vec(untouched, 1).unwrap(),
            &want,
        );
    });
}

/// 65 535 × 256 + 1000 indices: past one dispatch dimension of 256-wide workgroups.
#[test]
fn a_batch_past_one_dispatch_dimension() {
    let n = 65_535 * 256 + 1000;
    let (rows, dim) = (1000usize, 1usize);
    let w = table(rows, dim);
    let idx: Vec<u32> = (0..n).map(|i| ((i * 7919) % rows) as u32).collect();
    each_gpu(|gpu| {
        let emb = Embedding::from_pretrained(gpu, &w, rows, dim, false).unwrap();
        let out = emb.forward(&idx).unwrap().to_vec().unwrap();
        assert_eq!(out.len(), n);
        if let Some(p) = (0..n).find(|&p| out[p].to_bits() != w[idx[p] as usize].to_bits()) {
            panic!("position {p}: got {} want {}", out[p], w[idx[p] as usize]);
        }
    });
}

/// `out` holds the rows of `w` that `idx` names, bit for bit.
fn assert_rows(what: &str, idx: &[u32], out: &[f32], w: &[f32], dim: usize) {
    for (p, &r) in idx.iter().enumerate() {
        let r = r as usize;
        assert_bits_eq(
            &format!("{what} position {p}"),
            &out[p * dim..(p + 1) * dim],
            &w[r * dim..(r + 1) * dim],
        );
    }
}

/// 4 threads × 100 forward calls on one shared `Gpu` and one shared table.
#[test]
fn four_threads_share_one_gpu() {
    let (rows, dim) = (500usize, 16usize);
    let w = table(rows, dim);
    each_gpu(|gpu| {
        let emb = Embedding::from_pretrained(gpu, &w, rows, dim, false).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (emb, w) = (&emb, &w);
                s.spawn(move || {
                    let mut rng = Rng(t);
                    for call in 0..100 {
                        let idx: Vec<u32> = (0..64).map(|_| rng.below(rows) as u32).collect();
                        let out = emb.forward(&idx).unwrap().to_vec().unwrap();
                        assert_rows(&format!("thread {t} call {call}"), &idx, &out, w, dim);
                    }
                });
            }
        });
    });
}

/// After `device.destroy()` every call returns `DeviceLost` (or, for a call
/// that only validates arguments, its own error), and none hangs.
#[test]
fn after_device_loss_every_call_is_an_error() {
    let _turn = common::gpus(); // opened first so the fresh devices below are extra
    each_gpu(|shared| {
        let name = shared.adapter_info().name.clone();
        let options = GpuOptions {
            backends: Some(shared.adapter_info().backend.into()),
            adapter_name: Some(name),
            ..GpuOptions::default()
        };
        let gpu = Gpu::with_options(&options).unwrap();
        let mut emb = Embedding::new(&gpu, 100, 8).unwrap();
        let g = Tensor::zeros(&gpu, &[3, 8]).unwrap();
        gpu.device().destroy();
        let lost = |what: &str, r: Result<(), Error>| match r {
            Err(Error::DeviceLost { .. }) => {}
            other => panic!("{what}: expected DeviceLost, got {other:?}"),
        };
        lost("check_alive", gpu.check_alive());
        lost("forward", emb.forward(&[1, 2, 3]).map(drop));
        lost("backward_sgd", emb.backward_sgd(&[1, 2, 3], &g, 0.1));
        lost("to_vec", emb.weight().to_vec().map(drop));
        lost("uniform_", emb.uniform_(0.0, 1.0, 1));
        lost("Embedding::new", Embedding::new(&gpu, 10, 4).map(drop));
        lost("Tensor::zeros", Tensor::zeros(&gpu, &[4]).map(drop));
        lost(
            "IndexTensor::from_slice",
            IndexTensor::from_slice(&gpu, &[1]).map(drop),
        );
    });
}

/// One round of most kinds of call a user makes: lookup, a Linear layer, a
/// bag, a fused training step, a seeded init, a buffer the caller touched
/// (dropped straight to wgpu), the cache emptied, a timed launch. Returns
/// every result, so rounds can be compared bit for bit.
fn mixed_round(gpu: &Gpu, w: &[f32], rows: usize, dim: usize, round: u32) -> Vec<Vec<f32>> {
    use wgpu_embed::kernels::fma_peak::{self, FmaPeakShape};
    use wgpu_embed::{BagMode, EmbeddingBag, Linear};
    let ids: Vec<u32> = (0..16).map(|i| (i * 7 + 3) % rows as u32).collect();
    let lookup = Embedding::from_pretrained(gpu, w, rows, dim, true).unwrap();
    let rows_out = lookup.forward(&ids).unwrap().to_vec().unwrap();
    assert_rows(&format!("round {round}"), &ids, &rows_out, w, dim);
    // Seeded: a default layer would draw a new seed each round.
    let options = wgpu_embed::LinearOptions {
        bias: true,
        seed: Some(5),
    };
    let linear = Linear::with_options(gpu, dim, 4, options).unwrap();
    let x = Tensor::from_slice(gpu, &rows_out, &[ids.len(), dim]).unwrap();
    let y = linear.forward(&x).unwrap().to_vec().unwrap();
    let bag = EmbeddingBag::from_pretrained(gpu, w, rows, dim, true, BagMode::Mean).unwrap();
    let pooled = bag
        .forward(&ids, &[0, 5, 11], None)
        .unwrap()
        .to_vec()
        .unwrap();
    let mut trained = Embedding::from_pretrained(gpu, w, rows, dim, false).unwrap();
    let grad = Tensor::from_slice(gpu, &vec![0.25f32; ids.len() * dim], &[ids.len(), dim]).unwrap();
    trained.backward_sgd(&ids, &grad, 0.5).unwrap();
    let stepped = trained.weight().to_vec().unwrap();
    let mut seeded = Embedding::new(gpu, rows, dim).unwrap();
    seeded.uniform_(-1.0, 1.0, 42).unwrap();
    let init = seeded.weight().to_vec().unwrap();
    let touched = Tensor::from_slice(gpu, &[1.0f32; 64], &[64]).unwrap();
    let _ = touched.buffer();
    drop(touched);
    gpu.empty_cache();
    let shape = FmaPeakShape {
        workgroups: 1,
        iterations: 16,
    };
    let out = fma_peak::output(gpu, shape).unwrap();
    gpu.time(|encoder| fma_peak::encode(gpu, encoder, out.raw(), shape))
        .unwrap();
    vec![rows_out, y, pooled, stepped, init]
}

/// wgpu's GL backend guards its one GL context with a lock it waits on for
/// 6 s and then panics ("Could not lock adapter context"), and Mesa's
/// llvmpipe runs a dispatch inside the submit, holding that lock. One
/// thread's long call (10 s of FMAs on GL, sized from a timed launch)
/// must not make another thread's calls on the same `Gpu` panic: they wait
/// their turn and return the same bits as before. Every adapter runs it; GL
/// is the one that broke.
#[test]
fn a_long_call_does_not_break_other_threads() {
    use wgpu_embed::kernels::fma_peak::{self, FmaPeakShape};
    let (rows, dim) = (64usize, 8usize);
    let w = table(rows, dim);
    let mut saw_gl = false;
    each_gpu(|gpu| {
        let saw_gl_here = |gpu: &Gpu| gpu.adapter_info().backend == wgpu::Backend::Gl;
        saw_gl |= saw_gl_here(gpu);
        let launch = |shape: FmaPeakShape| {
            let out = fma_peak::output(gpu, shape).unwrap();
            let mut encoder = gpu.encoder("long call");
            fma_peak::encode(gpu, &mut encoder, out.raw(), shape).unwrap();
            let start = std::time::Instant::now();
            gpu.submit_and_wait(encoder).unwrap();
            start.elapsed().as_secs_f64()
        };
        let probe = FmaPeakShape {
            workgroups: 32,
            iterations: 32_768,
        };
        // Compiles the pipeline.
        launch(probe);
        // The fastest of three: a busy machine then makes the long call longer, not shorter.
        let seconds = (0..3)
            .map(|_| launch(probe))
            .fold(f64::MAX, f64::min)
            .max(1e-4);
        // Well past the 6 s on GL; a short overlap elsewhere.
        let gl = saw_gl_here(gpu);
        let target = if gl { 10.0 } else { 2.0 };
        let mut long = FmaPeakShape {
            workgroups: (target / seconds * 32.0).clamp(32.0, 65_535.0) as u32,
            ..probe
        };
        // Alone first: the pipelines built, and the bits to expect.
        let expected = mixed_round(gpu, &w, rows, dim, 0);
        let overlap = |long: FmaPeakShape| {
            let done = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|s| {
                // Returns its longest round: on GL, the one that waited
                // through the long call.
                let other = s.spawn(|| {
                    let (mut round, mut longest) = (0u32, 0f64);
                    while !done.load(std::sync::atomic::Ordering::SeqCst) || round == 0 {
                        round += 1;
                        let start = std::time::Instant::now();
                        let got = mixed_round(gpu, &w, rows, dim, round);
                        longest = longest.max(start.elapsed().as_secs_f64());
                        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                            assert_bits_eq(&format!("round {round} result {i}"), g, e);
                        }
                    }
                    longest
                });
                let took = launch(long);
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                let longest = other.join().unwrap();
                eprintln!(
                    "{}: the long call took {took:.1} s, the other thread's longest round {longest:.1} s",
                    gpu.describe()
                );
                (took, longest)
            })
        };
        // On GL the other thread must have waited past wgpu's 6 s (where it
        // used to panic), or this proves nothing: lengthen the long call
        // until it does.
        let (mut took, mut longest) = overlap(long);
        for _ in 0..2 {
            if !gl || longest > 6.5 {
                break;
            }
            long.workgroups = (long.workgroups as f64 * 9.0 / took).min(65_535.0) as u32;
            (took, longest) = overlap(long);
        }
        assert!(
            !gl || longest > 6.5,
            "the other thread's longest round took {longest:.1} s, not past 6 s"
        );
    });
    assert!(
        saw_gl,
        "no GL adapter: Mesa's GL driver comes with `apt-get install -y libegl-mesa0 libgl1-mesa-dri`"
    );
}

/// A held `Gpu::gl_turn` keeps the library's calls on other threads waiting
/// on GL, until it drops; on the other backends it holds nothing. The
/// holder's own library calls run, the async forms included (they would
/// deadlock if their helper thread waited for the turn).
#[test]
fn a_held_gl_turn_holds_other_threads_calls() {
    use std::time::Duration;
    each_gpu(|gpu| {
        let gl = gpu.adapter_info().backend == wgpu::Backend::Gl;
        // On a thread of its own, so that a deadlock fails the test instead of hanging it.
        let (done, finished) = std::sync::mpsc::channel();
        let holder = gpu.clone();
        std::thread::spawn(move || {
            let _turn = holder.gl_turn();
            let own = Tensor::from_slice(&holder, &[3.0f32], &[1]).unwrap();
            let read = pollster::block_on(own.to_vec_async()).unwrap();
            let digest = wgpu_embed::kernels::uniform_init::digest(&holder).unwrap();
            done.send((read, digest)).unwrap();
        });
        let (read, digest) = finished
            .recv_timeout(Duration::from_secs(120))
            .expect("library calls inside a turn did not finish (deadlock?)");
        assert_eq!(read, [3.0]);
        assert_eq!(digest, cpu::uniform_init::digest());

        let (tx, rx) = std::sync::mpsc::channel();
        let turn = gpu.gl_turn();
        std::thread::scope(|s| {
            s.spawn(move || {
                let t = Tensor::from_slice(gpu, &[1.0f32, 2.0], &[2]).unwrap();
                tx.send(t.to_vec().unwrap()).unwrap();
            });
            let early = rx.recv_timeout(Duration::from_millis(if gl { 500 } else { 60_000 }));
            if gl {
                assert!(early.is_err(), "a call ran during another thread's turn");
            } else {
                assert_eq!(early.unwrap(), [1.0, 2.0]);
            }
            drop(turn);
            if gl {
                let late = rx.recv_timeout(Duration::from_secs(60));
                assert_eq!(late.unwrap(), [1.0, 2.0]);
            }
        });
    });
}
