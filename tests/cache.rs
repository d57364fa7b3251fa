//! The caching allocator: dropped buffers are reused, counted
//! (`memory_cached`), capped and emptied; cached buffers that must read as
//! zeros do; and nothing the caller's open encoder still uses is reused.

mod common;

use common::*;
use wgpu_embed::{cpu, Embedding, Gpu, GpuOptions, IndexTensor, Linear, Status, Tensor};

/// Fresh `Gpu`s (one per adapter) with this cache cap, so the counts below
/// start from an empty cache.
fn fresh(cache_bytes: Option<u64>) -> Vec<Gpu> {
    let options = GpuOptions {
        cache_bytes,
        ..Default::default()
    };
    let gpus: Vec<Gpu> = Gpu::all(&options)
        .expect(
            "GPU tests need an adapter: `apt-get update && apt-get install -y mesa-vulkan-drivers`",
        )
        .into_iter()
        .map(|g| g.expect("an adapter failed to open"))
        .collect();
    assert!(
        !gpus.is_empty(),
        "no GPU adapter: install mesa-vulkan-drivers"
    );
    gpus.iter().for_each(panic_on_escaped_errors);
    gpus
}

#[test]
fn a_dropped_tensor_is_reused_counted_and_cleared_when_zeros_are_asked_for() {
    let _serial = serial();
    for gpu in fresh(None) {
        let name = gpu.describe();
        let (n, bytes) = (4096, 16384);
        let live = gpu.memory_live();
        let a = Tensor::from_slice(&gpu, &vec![7.5; n], &[n]).unwrap();
        let made = gpu.buffers_allocated();
        assert_eq!(gpu.memory_live(), live + bytes, "{name}");
        drop(a);
        assert_eq!(gpu.memory_live(), live, "{name}: dropped is not live");
        assert_eq!(gpu.memory_cached(), bytes, "{name}: but cached");
        gpu.reset_memory_peak();
        let b = Tensor::zeros(&gpu, &[n]).unwrap();
        assert_eq!(
            gpu.buffers_allocated(),
            made,
            "{name}: taken from the cache"
        );
        assert_eq!(gpu.memory_cached(), 0, "{name}");
        assert_eq!(gpu.memory_peak(), live + bytes, "{name}");
        let got = b.to_vec().unwrap();
        assert!(
            got.iter().all(|x| x.to_bits() == 0),
            "{name}: a cached buffer asked for as zeros reads as zeros"
        );
        // The same through from_slice: the new contents, not the old.
        drop(b);
        let c = Tensor::from_slice(&gpu, &vec![-1.25; n], &[n]).unwrap();
        assert!(c.to_vec().unwrap().iter().all(|&x| x == -1.25), "{name}");
        drop(c);
        assert!(gpu.memory_cached() >= bytes, "{name}");
        gpu.empty_cache();
        assert_eq!(gpu.memory_cached(), 0, "{name}: empty_cache returns it all");
        let before = gpu.buffers_allocated();
        let _d = Tensor::zeros(&gpu, &[n]).unwrap();
        assert_eq!(
            gpu.buffers_allocated(),
            before + 1,
            "{name}: a new one after empty_cache"
        );
    }
}

#[test]
fn the_cache_stays_under_its_cap_and_a_zero_cap_turns_it_off() {
    let _serial = serial();
    for gpu in fresh(Some(40_000)) {
        let name = gpu.describe();
        let three: Vec<Tensor> = (0..3)
            .map(|_| Tensor::zeros(&gpu, &[4096]).unwrap())
            .collect();
        drop(three);
        assert_eq!(
            gpu.memory_cached(),
            2 * 16384,
            "{name}: the oldest went back first"
        );
        let big = Tensor::zeros(&gpu, &[16384]).unwrap();
        drop(big);
        assert_eq!(
            gpu.memory_cached(),
            2 * 16384,
            "{name}: past the cap: not cached"
        );
    }
    for gpu in fresh(Some(0)) {
        let name = gpu.describe();
        drop(Tensor::zeros(&gpu, &[4096]).unwrap());
        assert_eq!(gpu.memory_cached(), 0, "{name}");
        let before = gpu.buffers_allocated();
        drop(Tensor::zeros(&gpu, &[4096]).unwrap());
        assert_eq!(
            gpu.buffers_allocated(),
            before + 1,
            "{name}: no reuse at cap 0"
        );
    }
}

#[test]
fn nothing_the_callers_open_encoder_uses_is_reused_before_its_submit() {
    let _serial = serial();
    for gpu in fresh(None) {
        let name = gpu.describe();
        let (rows, dim) = (16, 8);
        let t = table(rows, dim);
        let emb = Embedding::from_pretrained(&gpu, &t, rows, dim, true).unwrap();
        let (first, second) = ([3u32, 1, 4, 1], [5u32, 9, 2, 6, 5, 3]);
        let mut encoder = gpu.encoder("the caller's");
        // Two lookups into one open encoder: their parameters (n) differ, so
        // a uniform reused between them would give the first the second's.
        let status = Status::new(&gpu).unwrap();
        let out1 = Tensor::zeros(&gpu, &[first.len(), dim]).unwrap();
        let idx1 = IndexTensor::from_slice(&gpu, &first).unwrap();
        emb.encode_forward(&mut encoder, &idx1, &out1, &status)
            .unwrap();
        let out2 = Tensor::zeros(&gpu, &[second.len(), dim]).unwrap();
        let idx2 = IndexTensor::from_slice(&gpu, &second).unwrap();
        emb.encode_forward(&mut encoder, &idx2, &out2, &status)
            .unwrap();
        // A tensor dropped while the encoder is open, and a new one of its
        // size filled before the submit: it must not get the old buffer.
        let scratch = Tensor::zeros(&gpu, &[first.len(), dim]).unwrap();
        emb.encode_forward(&mut encoder, &idx1, &scratch, &status)
            .unwrap();
        let cached = gpu.memory_cached();
        drop(scratch);
        assert_eq!(
            gpu.memory_cached(),
            cached,
            "{name}: not cached while in use"
        );
        let pattern: Vec<f32> = (0..first.len() * dim).map(|i| -(i as f32)).collect();
        let other = Tensor::from_slice(&gpu, &pattern, &[first.len(), dim]).unwrap();
        gpu.queue().submit([encoder.finish()]);
        assert_eq!(status.read().unwrap(), None, "{name}");
        assert_bits_eq(
            &format!("{name}: untouched"),
            &other.to_vec().unwrap(),
            &pattern,
        );
        for (idx, out) in [(&first[..], &out1), (&second[..], &out2)] {
            let mut want = vec![0.0; idx.len() * dim];
            let mut st = u32::MAX;
            cpu::embedding_gather(rows, dim, idx, &mut st, &t, &mut want);
            assert_bits_eq(&format!("{name}: lookup"), &out.to_vec().unwrap(), &want);
        }
    }
}

#[test]
fn a_training_loop_allocates_nothing_after_its_first_step() {
    let _serial = serial();
    for gpu in fresh(None) {
        let name = gpu.describe();
        let (rows, dim, n) = (64, 16, 40);
        let mut emb = Embedding::new(&gpu, rows, dim).unwrap();
        let mut rng = Rng(7);
        let grad = Tensor::from_slice(&gpu, &rng.floats(n * dim), &[n, dim]).unwrap();
        let linear = Linear::new(&gpu, dim, 8, true).unwrap();
        let live = gpu.memory_live();
        let mut counts = Vec::new();
        for step in 0..4 {
            let ids = rng.ids(n, rows, 8);
            let before = emb.weight().to_vec().unwrap();
            let out = emb.forward(&ids).unwrap();
            let mut want = vec![0.0; n * dim];
            let mut st = u32::MAX;
            cpu::embedding_gather(rows, dim, &ids, &mut st, &before, &mut want);
            assert_bits_eq(
                &format!("{name}: step {step}"),
                &out.to_vec().unwrap(),
                &want,
            );
            let y = linear.forward(&out).unwrap();
            assert_eq!(y.shape(), [n, 8]);
            emb.backward_sgd(&ids, &grad, 0.5).unwrap();
            drop((out, y));
            assert_eq!(
                gpu.memory_live(),
                live,
                "{name}: step {step} left nothing live"
            );
            counts.push(gpu.buffers_allocated());
        }
        assert_eq!(
            counts[1..],
            [counts[0]; 3],
            "{name}: allocations after each step (the first step fills the cache)"
        );
    }
}

#[test]
fn a_tensor_kept_in_a_thread_local_goes_back_to_the_pool_at_thread_exit() {
    // A thread keeps a reused output in its own thread-local, registered
    // before the library's: at exit the library's state is destroyed first,
    // and the tensor's drop must not touch it (that aborted the process).
    use std::cell::RefCell;
    thread_local! {
        static KEPT: RefCell<Option<Tensor>> = const { RefCell::new(None) };
    }
    let _serial = serial();
    for gpu in fresh(None) {
        let name = gpu.describe();
        let live = gpu.memory_live();
        std::thread::scope(|s| {
            s.spawn(|| {
                KEPT.with(|_| {}); // registered first, destroyed last
                let t = Tensor::from_slice(&gpu, &[1.5; 1024], &[1024]).unwrap();
                assert_eq!(t.to_vec().unwrap(), vec![1.5; 1024]);
                KEPT.with(|k| *k.borrow_mut() = Some(t));
            })
            .join()
            .unwrap_or_else(|_| panic!("{name}: the thread panicked"));
        });
        assert_eq!(
            gpu.memory_live(),
            live,
            "{name}: the tensor was not released"
        );
        assert!(gpu.memory_cached() >= 4096, "{name}: not back in the pool");
    }
}
