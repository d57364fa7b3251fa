//! uniform_init: the Philox stream and its floats equal the CPU twin bit for
//! bit on every adapter, whatever the dispatch shape or piecing.

mod common;

use common::{assert_bits_eq, each_gpu, gpus};
use proptest::prelude::*;
use wgpu_embed::kernels::uniform_init::{self, Distribution, FillArgs};
use wgpu_embed::{cpu, Gpu, Tensor};

fn gpu_fill(gpu: &Gpu, len: usize, seed: u64, d: Distribution, wg: Option<u32>) -> Vec<f32> {
    let t = Tensor::zeros(gpu, &[len]).unwrap();
    let mut enc = gpu.encoder("test");
    uniform_init::encode(
        gpu,
        &mut enc,
        &FillArgs {
            out: t.buffer(),
            begin: 0,
            end: len,
            counter_base: 0,
            seed,
            distribution: d,
            workgroup_size: wg,
        },
    )
    .unwrap();
    gpu.submit_and_wait(enc).unwrap();
    t.to_vec().unwrap()
}

fn cpu_fill(len: usize, seed: u64, d: Distribution) -> Vec<f32> {
    let mut out = vec![0.0; len];
    match d {
        Distribution::Uniform { lo, hi } => cpu::uniform_fill(seed, 0, lo, hi, &mut out),
        Distribution::Normal { mean, std } => cpu::normal_fill(seed, 0, mean, std, &mut out),
        Distribution::Bits => unreachable!("bits are compared as u32"),
    }
    out
}

#[test]
fn philox_known_answers() {
    // Random123's kat_vectors for philox4x32_10.
    assert_eq!(
        cpu::philox4x32_10([0; 4], [0; 2]),
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    );
    assert_eq!(
        cpu::philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    );
    assert_eq!(
        cpu::philox4x32_10(
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0]
        ),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
}

#[test]
fn raw_stream_matches_twin_on_every_adapter() {
    for (seed, base) in [
        (0u64, 0u64),
        (42, 0),
        (u64::MAX, 3),
        (7, (1u64 << 32) * 4 - 6),
    ] {
        let mut want = vec![0u32; 10_001];
        cpu::bits_fill(seed, base, &mut want);
        each_gpu(|gpu| {
            let got = uniform_init::bits(gpu, seed, base, want.len()).unwrap();
            assert_eq!(got, want, "seed {seed} base {base}");
        });
    }
}

/// The fingerprint a browser's WebGPU must match (issue #13): the same on
/// every adapter as in the twin, and pinned, so a change to the stream shows.
#[test]
fn the_digest_is_the_same_everywhere_and_pinned() {
    let want = wgpu_embed::cpu::uniform_init::digest();
    assert_eq!(
        format!("{want:016x}"),
        PINNED_DIGEST,
        "the twin's stream changed"
    );
    each_gpu(|gpu| {
        let got = wgpu_embed::kernels::uniform_init::digest(gpu).unwrap();
        assert_eq!(format!("{got:016x}"), PINNED_DIGEST, "{}", gpu.describe());
    });
    // FNV-1a's published test vectors ("" and "a").
    use wgpu_embed::cpu::uniform_init::fnv1a;
    assert_eq!(fnv1a(*b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(*b"a"), 0xaf63_dc4c_8601_ec8c);
}

/// The page's path (web/): `Gpu::new_async` and the async digest, natively.
#[test]
fn the_async_open_and_digest_give_the_same_fingerprint() {
    let _serial = common::serial();
    let gpu = pollster::block_on(wgpu_embed::Gpu::new_async()).unwrap();
    let d = pollster::block_on(wgpu_embed::kernels::uniform_init::digest_async(&gpu)).unwrap();
    assert_eq!(format!("{d:016x}"), PINNED_DIGEST, "{}", gpu.describe());
}

/// `wgpu-embed adapters --digest` on lavapipe, llvmpipe-GL and SwiftShader.
const PINNED_DIGEST: &str = "037a0bf3b8387ae0";

/// The rounding of a + b · x at the ends of f32: results that flush below
/// 2^-126, that overflow to infinity, a = -0 (not the identity), and std 0.
#[test]
fn extreme_scales_round_like_the_twin() {
    let cases = [
        Distribution::Normal {
            mean: 0.0,
            std: 1e-38,
        },
        Distribution::Normal {
            mean: 1e-38,
            std: 2e-38,
        },
        Distribution::Normal {
            mean: 0.0,
            std: 1e38,
        },
        Distribution::Normal {
            mean: -0.0,
            std: 1.0,
        },
        Distribution::Normal {
            mean: 5.0,
            std: 0.0,
        },
        Distribution::Uniform {
            lo: -1.5e-38,
            hi: 1.5e-38,
        },
        Distribution::Uniform {
            lo: 0.0,
            hi: 3.4e38,
        },
        Distribution::Uniform { lo: -0.0, hi: 1.0 },
    ];
    for (i, d) in cases.into_iter().enumerate() {
        let want = cpu_fill(20_011, 77 + i as u64, d);
        each_gpu(|gpu| {
            assert_bits_eq(
                &format!("{d:?}"),
                &gpu_fill(gpu, want.len(), 77 + i as u64, d, None),
                &want,
            )
        });
    }
}

#[test]
fn floats_match_twin_bit_for_bit() {
    let cases = [
        Distribution::Uniform { lo: -1.0, hi: 1.0 },
        Distribution::Uniform { lo: -0.3, hi: 0.77 },
        Distribution::Uniform {
            lo: -0.044194173,
            hi: 0.044194173,
        },
        Distribution::Normal {
            mean: 0.0,
            std: 1.0,
        },
        Distribution::Normal {
            mean: 0.1,
            std: 1.7,
        },
        Distribution::Normal {
            mean: -3.0,
            std: 0.02,
        },
    ];
    for (i, d) in cases.into_iter().enumerate() {
        let want = cpu_fill(100_003, 1000 + i as u64, d);
        each_gpu(|gpu| {
            assert_bits_eq(
                &format!("{d:?}"),
                &gpu_fill(gpu, want.len(), 1000 + i as u64, d, None),
                &want,
            )
        });
    }
}

#[test]
fn same_seed_same_table_on_every_adapter_and_seeds_differ() {
    let d = Distribution::Normal {
        mean: 0.0,
        std: 1.0,
    };
    let a: Vec<Vec<f32>> = gpus()
        .iter()
        .map(|g| gpu_fill(g, 4096, 5, d, None))
        .collect();
    for other in &a[1..] {
        assert_bits_eq("adapter vs adapter", other, &a[0]);
    }
    let b = gpu_fill(&gpus()[0], 4096, 6, d, None);
    let same = a[0]
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.to_bits() == y.to_bits())
        .count();
    assert!(same < 10, "seeds 5 and 6 share {same} of 4096 values");
}

#[test]
fn workgroup_size_does_not_change_values() {
    let d = Distribution::Normal {
        mean: 0.5,
        std: 2.0,
    };
    each_gpu(|gpu| {
        let a = gpu_fill(gpu, 5000, 9, d, Some(64));
        let b = gpu_fill(gpu, 5000, 9, d, Some(256));
        let c = gpu_fill(gpu, 5000, 9, d, Some(1));
        assert_bits_eq("wg 64 vs 256", &a, &b);
        assert_bits_eq("wg 1 vs 256", &c, &b);
    });
}

#[test]
fn pieces_equal_one_call() {
    let d = Distribution::Uniform { lo: -2.0, hi: 3.0 };
    each_gpu(|gpu| {
        let whole = gpu_fill(gpu, 1001, 11, d, None);
        let t = Tensor::zeros(gpu, &[1001]).unwrap();
        for (b, e) in [(0, 3), (3, 4), (4, 517), (517, 1000), (1000, 1001)] {
            uniform_init::fill_range(&t, b, e, 11, d).unwrap();
        }
        assert_bits_eq("pieces", &t.to_vec().unwrap(), &whole);
    });
}

#[test]
fn moments_of_a_million_samples() {
    let n = 1 << 20;
    let gpu = &gpus()[0];
    let moments = |v: &[f32]| {
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64;
        (m, var)
    };
    // Standard errors at n = 2^20: mean 1e-3, variance 1.4e-3 (normal); 5 σ bounds.
    let (m, v) = moments(&gpu_fill(
        gpu,
        n,
        1,
        Distribution::Normal {
            mean: 0.0,
            std: 1.0,
        },
        None,
    ));
    assert!(
        m.abs() < 5e-3 && (v - 1.0).abs() < 7e-3,
        "N(0,1): mean {m}, var {v}"
    );
    let z = gpu_fill(
        gpu,
        n,
        2,
        Distribution::Normal {
            mean: 0.0,
            std: 1.0,
        },
        None,
    );
    let tail = z.iter().filter(|x| x.abs() > 3.0).count() as f64 / n as f64;
    assert!((tail - 0.0027).abs() < 0.0005, "P(|z| > 3) = {tail}");
    let u = gpu_fill(gpu, n, 3, Distribution::Uniform { lo: -1.0, hi: 1.0 }, None);
    let (m, v) = moments(&u);
    assert!(
        m.abs() < 3e-3 && (v - 1.0 / 3.0).abs() < 3e-3,
        "U(-1,1): mean {m}, var {v}"
    );
    assert!(u.iter().all(|&x| (-1.0..=1.0).contains(&x)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn soft_fma_is_a_correctly_rounded_fma(
        a in -1e6f32..1e6, b in -1e3f32..1e3, x in -40f32..40.0,
    ) {
        let want = b.mul_add(x, a);
        prop_assume!(want == 0.0 || want.is_normal());
        prop_assert_eq!(cpu::soft_fma(b, x, a).to_bits(), want.to_bits());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn random_offsets_and_seeds(seed in any::<u64>(), base in 0u64..(1 << 40), len in 1usize..3000) {
        let mut want = vec![0.0; len];
        cpu::normal_fill(seed, base, 0.0, 1.0, &mut want);
        each_gpu(|gpu| {
            let t = Tensor::zeros(gpu, &[len]).unwrap();
            let mut enc = gpu.encoder("test");
            uniform_init::encode(gpu, &mut enc, &FillArgs {
                out: t.buffer(), begin: 0, end: len, counter_base: base, seed,
                distribution: Distribution::Normal { mean: 0.0, std: 1.0 }, workgroup_size: None,
            }).unwrap();
            gpu.submit_and_wait(enc).unwrap();
            assert_bits_eq("offset fill", &t.to_vec().unwrap(), &want);
        });
    }
}

/// The twin states the kernel host's precondition (the fill fits the 64-bit
/// element counter) instead of wrapping past it and filling nothing.
#[test]
#[should_panic(expected = "64-bit element counter")]
fn the_twin_refuses_a_fill_past_the_counter() {
    let mut out = [0.0f32; 8];
    cpu::uniform_fill(1, u64::MAX - 3, 0.0, 1.0, &mut out);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    /// A fill of positions begin .. end with any counter base writes exactly
    /// those positions, with the twin's values. The kernel runs the whole
    /// 16-element runs through unguarded vec4 stores when their positions
    /// are 16-byte aligned (a counter base that is a multiple of 4) and everything else
    /// through guarded ones, so this covers both, and the seams between them.
    #[test]
    fn range_fills_write_exactly_their_range(
        seed in any::<u64>(),
        // Half the bases multiples of 4, so the aligned path runs every time.
        base in prop_oneof![(0u64..(1 << 32)).prop_map(|b| 4 * b), 0u64..(1 << 34)],
        begin in 0usize..70,
        len in 0usize..200,
        normal in any::<bool>(),
    ) {
        let (size, end) = (begin + len + 37, begin + len);
        let mut want = vec![-7.0f32; size];
        let at = base + begin as u64;
        let d = if normal {
            cpu::normal_fill(seed, at, 0.5, 2.0, &mut want[begin..end]);
            Distribution::Normal { mean: 0.5, std: 2.0 }
        } else {
            cpu::uniform_fill(seed, at, 0.0, 1.0, &mut want[begin..end]);
            Distribution::Uniform { lo: 0.0, hi: 1.0 }
        };
        each_gpu(|gpu| {
            let t = Tensor::from_slice(gpu, &vec![-7.0f32; size], &[size]).unwrap();
            let mut enc = gpu.encoder("test");
            uniform_init::encode(gpu, &mut enc, &FillArgs {
                out: t.buffer(), begin, end, counter_base: base, seed,
                distribution: d, workgroup_size: None,
            }).unwrap();
            gpu.submit_and_wait(enc).unwrap();
            assert_bits_eq("range fill", &t.to_vec().unwrap(), &want);
        });
    }
}
