//! `matmul` and `column_sum` against their CPU twins on every adapter.

mod common;

use common::{assert_bits_eq, data, each_gpu, relative_error};
use proptest::prelude::*;
use wgpu_embed::kernels::matmul::{self, MatmulArgs, MatmulOptions, RegisterTile, Tiles};
use wgpu_embed::kernels::{column_sum, fma_peak};
use wgpu_embed::{cpu, Error, Gpu, Tensor};

/// The bound every product must meet. f32 sums of K products of values in
/// [-1, 1) with random signs drift by about √K · 2⁻²⁴ relative to the exact
/// sum (4 · 10⁻⁶ at K = 4096), which the f64 twin computes; 1e-5 leaves
/// room for that and fails on any wrong element (an error of one term in
/// thousands is already above it for these sizes).
const TOLERANCE: f64 = 1e-5;

#[allow(clippy::too_many_arguments)]
fn check_product(
    gpu: &Gpu,
    m: usize,
    n: usize,
    k: usize,
    o: MatmulOptions,
    with_bias: bool,
    seed: u64,
) {
    let a = data(m * k, seed);
    let b = data(k * n, seed + 1);
    let bias = data(n, seed + 2);
    let c0 = data(m * n, seed + 3);
    let (ashape, bshape) = (
        if o.trans_a { [k, m] } else { [m, k] },
        if o.trans_b { [n, k] } else { [k, n] },
    );
    let ta = Tensor::from_slice(gpu, &a, &ashape).unwrap();
    let tb = Tensor::from_slice(gpu, &b, &bshape).unwrap();
    let tbias = Tensor::from_slice(gpu, &bias, &[n]).unwrap();
    let tc = Tensor::from_slice(gpu, &c0, &[m, n]).unwrap();
    matmul::matmul_into(&ta, &tb, with_bias.then_some(&tbias), &tc, o).unwrap();
    let got = tc.to_vec().unwrap();
    let mut want = c0.clone();
    cpu::matmul(
        m,
        n,
        k,
        o.trans_a,
        o.trans_b,
        o.accumulate,
        &a,
        &b,
        with_bias.then_some(&bias[..]),
        &mut want,
    );
    let err = relative_error(&got, &want);
    assert!(
        err <= TOLERANCE,
        "{} M={m} N={n} K={k} {o:?} bias={with_bias}: relative error {err:e} > {TOLERANCE:e}",
        gpu.describe()
    );
}

/// Sizes 1..=300 with 1, primes and tile-straddling values drawn often.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(1usize),
        2 => prop::sample::select(vec![2usize, 3, 7, 31, 127, 128, 129, 131, 251, 257, 293]),
        3 => 1usize..=300,
    ]
}

proptest! {
    // lavapipe is a CPU: 24 cases, each on every adapter, keep the run short.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn matmul_matches_f64_twin(
        m in size(), n in size(), k in size(),
        trans_a: bool, trans_b: bool, accumulate: bool, with_bias: bool,
        seed in 0u64..1000,
    ) {
        let o = MatmulOptions { trans_a, trans_b, accumulate };
        each_gpu(|gpu| check_product(gpu, m, n, k, o, with_bias, seed));
    }
}

#[test]
fn every_transpose_combination_with_bias_and_accumulate() {
    each_gpu(|gpu| {
        for (i, (trans_a, trans_b)) in [(false, false), (false, true), (true, false), (true, true)]
            .into_iter()
            .enumerate()
        {
            for accumulate in [false, true] {
                let o = MatmulOptions {
                    trans_a,
                    trans_b,
                    accumulate,
                };
                check_product(gpu, 67, 131, 29, o, accumulate, 10 + i as u64);
            }
        }
    });
}

#[test]
fn long_inner_dimension_k_4096() {
    each_gpu(|gpu| check_product(gpu, 33, 70, 4096, MatmulOptions::default(), true, 77));
}

#[test]
fn aligned_operands_every_transpose_combination() {
    // Rows of 64 floats are whole 256-byte texel rows: the texture path
    // (lavapipe) copies untransposed operands into its textures and packs
    // transposed ones with the kernel; both must give the same product.
    each_gpu(|gpu| {
        for (i, &(m, n, k)) in [(64, 128, 192), (33, 64, 64), (128, 64, 100)]
            .iter()
            .enumerate()
        {
            for bits in 0..16u32 {
                let o = MatmulOptions {
                    trans_a: bits & 1 != 0,
                    trans_b: bits & 2 != 0,
                    accumulate: bits & 4 != 0,
                };
                check_product(gpu, m, n, k, o, bits & 8 != 0, 300 + i as u64);
            }
        }
    });
}

/// `m × k` by `k × n` zeros recorded with the texture tiles asked for by
/// name (no fallback to the buffer tiles): what the limits allow them.
fn encode_with_texture_tiles(gpu: &Gpu, m: usize, n: usize, k: usize) -> wgpu_embed::Result<()> {
    let a = Tensor::zeros(gpu, &[m, k]).unwrap();
    let b = Tensor::zeros(gpu, &[k, n]).unwrap();
    let c = Tensor::zeros(gpu, &[m, n]).unwrap();
    matmul::encode(
        gpu,
        &mut gpu.encoder("texture tiles"),
        &MatmulArgs {
            m,
            n,
            k,
            a: a.buffer(),
            b: b.buffer(),
            bias: None,
            c: c.buffer(),
            options: MatmulOptions::default(),
            tiles: Some(Tiles {
                wg_x: 8,
                wg_y: 1,
                bk: 1,
                register: RegisterTile::Texture32x32,
            }),
            fuse_extras: None,
        },
    )
}

#[test]
fn operands_past_the_texture_limit_fall_back_or_fail_typed() {
    each_gpu(|gpu| {
        // K past 4 · max_texture_dimension_2d: A packs into more texels per
        // row than a texture holds.
        let k = 4 * gpu.limits().max_texture_dimension_2d as usize + 8;
        check_product(gpu, 2, 3, k, MatmulOptions::default(), true, 400);
        let r = encode_with_texture_tiles(gpu, 2, 3, k);
        assert!(
            matches!(r, Err(Error::TooMany { limit_name, .. }) if limit_name.contains("max_texture_dimension_2d")),
            "{r:?}"
        );
    });
}

#[test]
fn several_tile_shapes_give_the_same_product() {
    each_gpu(|gpu| {
        let (m, n, k) = (45, 77, 53);
        let a = data(m * k, 5);
        let b = data(k * n, 6);
        let mut want = vec![0.0; m * n];
        cpu::matmul(m, n, k, false, false, false, &a, &b, None, &mut want);
        let ta = Tensor::from_slice(gpu, &a, &[m, k]).unwrap();
        let tb = Tensor::from_slice(gpu, &b, &[k, n]).unwrap();
        // The 16 × 16 entry point runs where `tiles_for` picks it (CPU
        // rasterizers outside GL); Mesa's GLSL compiler spends minutes on it.
        let mut shapes = vec![
            // The texture path: what lavapipe gets, and a wider workgroup.
            Tiles {
                wg_x: 8,
                wg_y: 1,
                bk: 1,
                register: RegisterTile::Texture32x32,
            },
            Tiles {
                wg_x: 4,
                wg_y: 2,
                bk: 1,
                register: RegisterTile::Texture32x32,
            },
        ];
        if gpu.adapter_info().backend != wgpu::Backend::Gl {
            shapes.push(Tiles {
                wg_x: 8,
                wg_y: 8,
                bk: 16,
                register: RegisterTile::R16x16,
            });
            shapes.push(Tiles {
                wg_x: 2,
                wg_y: 4,
                bk: 3,
                register: RegisterTile::R16x16,
            });
        }
        for tiles in shapes.into_iter().chain([
            Tiles {
                wg_x: 16,
                wg_y: 16,
                bk: 16,
                register: RegisterTile::R8x8,
            },
            Tiles {
                wg_x: 8,
                wg_y: 8,
                bk: 32,
                register: RegisterTile::R8x8,
            },
            Tiles {
                wg_x: 4,
                wg_y: 8,
                bk: 5,
                register: RegisterTile::R8x8,
            },
            Tiles {
                wg_x: 1,
                wg_y: 1,
                bk: 1,
                register: RegisterTile::R8x8,
            },
        ]) {
            let c = Tensor::zeros(gpu, &[m, n]).unwrap();
            let mut encoder = gpu.encoder("tiles");
            matmul::encode(
                gpu,
                &mut encoder,
                &MatmulArgs {
                    m,
                    n,
                    k,
                    a: ta.buffer(),
                    b: tb.buffer(),
                    bias: None,
                    c: c.buffer(),
                    options: MatmulOptions::default(),
                    tiles: Some(tiles),
                    fuse_extras: None,
                },
            )
            .unwrap();
            gpu.submit_and_wait(encoder).unwrap();
            let err = relative_error(&c.to_vec().unwrap(), &want);
            assert!(err <= TOLERANCE, "{tiles:?}: relative error {err:e}");
        }
    });
}

#[test]
fn tiles_past_the_adapter_limits_are_errors() {
    each_gpu(|gpu| {
        let a = Tensor::zeros(gpu, &[4, 4]).unwrap();
        let c = Tensor::zeros(gpu, &[4, 4]).unwrap();
        for tiles in [
            Tiles {
                wg_x: 0,
                wg_y: 1,
                bk: 1,
                register: RegisterTile::R8x8,
            },
            Tiles {
                wg_x: 64,
                wg_y: 64,
                bk: 16,
                register: RegisterTile::R8x8,
            },
            Tiles {
                wg_x: 16,
                wg_y: 16,
                bk: 4096,
                register: RegisterTile::R8x8,
            },
            // (64 + 64) rows × 2^30 × 4 bytes is 2^39: wrapped to 0 in
            // u32 arithmetic, it passed the check that guards a shader built
            // without bounds checks.
            Tiles {
                wg_x: 8,
                wg_y: 8,
                bk: 1 << 30,
                register: RegisterTile::R8x8,
            },
        ] {
            let mut encoder = gpu.encoder("bad tiles");
            let r = matmul::encode(
                gpu,
                &mut encoder,
                &MatmulArgs {
                    m: 4,
                    n: 4,
                    k: 4,
                    a: a.buffer(),
                    b: a.buffer(),
                    bias: None,
                    c: c.buffer(),
                    options: MatmulOptions::default(),
                    tiles: Some(tiles),
                    fuse_extras: None,
                },
            );
            assert!(
                matches!(
                    r,
                    Err(Error::InvalidArgument {
                        name: "matmul tiles",
                        ..
                    })
                ),
                "{tiles:?}: {r:?}"
            );
        }
    });
}

#[test]
fn shape_mismatches_are_errors_naming_both_shapes() {
    each_gpu(|gpu| {
        let a = Tensor::zeros(gpu, &[3, 5]).unwrap();
        let b = Tensor::zeros(gpu, &[4, 2]).unwrap();
        match matmul::matmul(&a, &b, None, MatmulOptions::default()) {
            Err(Error::ShapeMismatch {
                expected, found, ..
            }) => {
                assert_eq!(expected, vec![3, 5]);
                assert_eq!(found, vec![4, 2]);
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
        // Transposing B makes the same tensors agree on K = 5? No: Bᵀ is [2, 4].
        assert!(matches!(
            matmul::matmul(
                &a,
                &b,
                None,
                MatmulOptions {
                    trans_b: true,
                    ..Default::default()
                }
            ),
            Err(Error::ShapeMismatch { .. })
        ));
        let b = Tensor::zeros(gpu, &[5, 2]).unwrap();
        let wrong_c = Tensor::zeros(gpu, &[2, 3]).unwrap();
        match matmul::matmul_into(&a, &b, None, &wrong_c, MatmulOptions::default()) {
            Err(Error::ShapeMismatch {
                expected, found, ..
            }) => {
                assert_eq!(expected, vec![3, 2]);
                assert_eq!(found, vec![2, 3]);
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
        let wrong_bias = Tensor::zeros(gpu, &[3]).unwrap();
        assert!(matches!(
            matmul::matmul(&a, &b, Some(&wrong_bias), MatmulOptions::default()),
            Err(Error::ShapeMismatch {
                what: "matmul bias",
                ..
            })
        ));
        let three_d = Tensor::zeros(gpu, &[1, 3, 5]).unwrap();
        assert!(matches!(
            matmul::matmul(&three_d, &b, None, MatmulOptions::default()),
            Err(Error::ShapeMismatch { .. })
        ));
        // Raw buffers smaller than the shapes say are refused before the unchecked shader runs.
        let c = Tensor::zeros(gpu, &[3, 2]).unwrap();
        let mut encoder = gpu.encoder("short");
        let r = matmul::encode(
            gpu,
            &mut encoder,
            &MatmulArgs {
                m: 3,
                n: 2,
                k: 6,
                a: a.buffer(),
                b: b.buffer(),
                bias: None,
                c: c.buffer(),
                options: MatmulOptions::default(),
                tiles: None,
                fuse_extras: None,
            },
        );
        assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
    });
}

#[test]
fn column_sum_matches_twin_bit_for_bit() {
    each_gpu(|gpu| {
        for &(rows, cols) in &[(1usize, 1usize), (7, 3), (300, 129), (4096, 5)] {
            let x = data(rows * cols, rows as u64);
            let t = Tensor::from_slice(gpu, &x, &[rows, cols]).unwrap();
            let got = column_sum::column_sum(&t).unwrap().to_vec().unwrap();
            let mut want = vec![0.0; cols];
            cpu::column_sum(rows, cols, false, &x, &mut want);
            assert_bits_eq(&format!("column_sum {rows}x{cols}"), &got, &want);
            // Accumulating adds onto what is there.
            let out = Tensor::from_slice(gpu, &want, &[cols]).unwrap();
            let mut encoder = gpu.encoder("column_sum acc");
            column_sum::encode(
                gpu,
                &mut encoder,
                rows,
                cols,
                true,
                t.buffer(),
                out.buffer(),
            )
            .unwrap();
            gpu.submit_and_wait(encoder).unwrap();
            let mut twice = want.clone();
            cpu::column_sum(rows, cols, true, &x, &mut twice);
            assert_bits_eq("column_sum accumulate", &out.to_vec().unwrap(), &twice);
        }
    });
}

#[test]
fn fma_peak_measures_a_finite_positive_rate() {
    each_gpu(|gpu| {
        let flops = fma_peak::measure(gpu, 1).unwrap();
        assert!(
            flops.is_finite() && flops > 1e6,
            "{}: {flops} FLOP/s",
            gpu.describe()
        );
    });
}

/// The bias and the old C added by the product itself (what GPUs run) and by
/// `matmul_epilogue` (what CPU adapters run) give the same bits, for every
/// transpose, on every adapter; both within the bound of the f64 twin. The
/// GPU tile shape (8 × 8 register tiles), small, so that the fused variant
/// compiles quickly on the CPU adapters.
#[test]
fn fused_and_epilogue_bias_and_accumulate_give_the_same_bits() {
    each_gpu(|gpu| {
        let (m, n, k) = (37, 29, 41);
        let tiles = Tiles {
            wg_x: 4,
            wg_y: 4,
            bk: 8,
            register: RegisterTile::R8x8,
        };
        for (i, (trans_a, trans_b)) in [(false, false), (true, true)].into_iter().enumerate() {
            let seed = 900 + i as u64;
            let (a, b, bias, c0) = (
                data(m * k, seed),
                data(k * n, seed + 1),
                data(n, seed + 2),
                data(m * n, seed + 3),
            );
            let ta = Tensor::from_slice(gpu, &a, &[m * k]).unwrap();
            let tb = Tensor::from_slice(gpu, &b, &[k * n]).unwrap();
            let tbias = Tensor::from_slice(gpu, &bias, &[n]).unwrap();
            let options = MatmulOptions {
                trans_a,
                trans_b,
                accumulate: true,
            };
            let run = |fuse: bool| {
                let c = Tensor::from_slice(gpu, &c0, &[m, n]).unwrap();
                let mut encoder = gpu.encoder("fused or epilogue");
                matmul::encode(
                    gpu,
                    &mut encoder,
                    &MatmulArgs {
                        m,
                        n,
                        k,
                        a: ta.buffer(),
                        b: tb.buffer(),
                        bias: Some(tbias.buffer()),
                        c: c.buffer(),
                        options,
                        tiles: Some(tiles),
                        fuse_extras: Some(fuse),
                    },
                )
                .unwrap();
                gpu.submit_and_wait(encoder).unwrap();
                c.to_vec().unwrap()
            };
            let (fused, epilogue) = (run(true), run(false));
            assert_bits_eq(
                &format!("{options:?}: fused vs epilogue"),
                &fused,
                &epilogue,
            );
            let mut want = c0.clone();
            cpu::matmul(
                m,
                n,
                k,
                trans_a,
                trans_b,
                true,
                &a,
                &b,
                Some(&bias),
                &mut want,
            );
            let err = relative_error(&fused, &want);
            assert!(err <= TOLERANCE, "{options:?}: relative error {err:e}");
        }
    });
}

/// An operand past one storage binding: once bound whole by the texture
/// path's packing kernel (a validation error outside every error scope);
/// now `TooLarge` before anything is recorded, on every path.
#[test]
fn an_operand_past_one_binding_is_too_large_not_a_gpu_error() {
    each_gpu(|gpu| {
        // 4100 columns: rows of 16 400 bytes, not a multiple of 256, so the
        // texture path packs A with a kernel rather than copying it.
        let (m, k, n) = (gpu.max_binding_bytes() as usize / (4100 * 4) + 1, 4100, 4);
        if (m * k * 4) as u64 > gpu.max_buffer_bytes() {
            // SwiftShader binds as much as one buffer holds (1 GiB): no
            // operand can be past a binding there, and the tensor is refused.
            assert!(matches!(
                Tensor::zeros(gpu, &[m, k]),
                Err(Error::TooLarge { .. })
            ));
            return;
        }
        let a = Tensor::zeros(gpu, &[m, k]).unwrap();
        assert!(a.bytes() > gpu.max_binding_bytes());
        let b = Tensor::zeros(gpu, &[k, n]).unwrap();
        let r = matmul::matmul(&a, &b, None, MatmulOptions::default());
        assert!(matches!(r, Err(Error::TooLarge { .. })), "{:?}", r.err());
    });
}

/// An A past one storage binding whose rows the texture path copies (8192
/// columns: 32 KiB rows, a multiple of 256 bytes) is never bound, with a
/// bias or without (A once stood in for the missing bias and was bound
/// whole, a GPU error). The workgroup-memory kernels bind A: `TooLarge`.
/// Adapters that bind more than lavapipe's 128 MiB are capped to it, so A
/// stays small (SwiftShader binds a whole buffer, 1 GiB, otherwise).
#[test]
fn an_operand_the_texture_path_copies_may_be_past_one_binding() {
    each_gpu(|shared| {
        const CAP: u64 = 128 << 20;
        let capped;
        let gpu = if shared.max_binding_bytes() > CAP {
            capped = common::reopen(shared, |o| o.max_binding_bytes = Some(CAP));
            &capped
        } else {
            shared
        };
        let (m, k, n) = (gpu.max_binding_bytes() as usize / (8192 * 4) + 1, 8192, 4);
        let a = Tensor::zeros(gpu, &[m, k]).unwrap();
        assert!(a.bytes() > gpu.max_binding_bytes());
        let b = Tensor::from_slice(gpu, &vec![1.0; k * n], &[k, n]).unwrap();
        let bias = Tensor::from_slice(gpu, &[1.0, 2.0, 3.0, 4.0], &[n]).unwrap();
        let texture = matmul::tiles_for(gpu).register == RegisterTile::Texture32x32;
        for with_bias in [false, true] {
            let r = matmul::matmul(&a, &b, with_bias.then_some(&bias), MatmulOptions::default());
            if !texture {
                assert!(matches!(r, Err(Error::TooLarge { .. })), "{:?}", r.err());
                continue;
            }
            let c = r.unwrap_or_else(|e| panic!("bias {with_bias}: {e}"));
            let row: &[f32] = if with_bias {
                &[1.0, 2.0, 3.0, 4.0]
            } else {
                &[0.0; 4]
            };
            let want: Vec<f32> = row.iter().copied().cycle().take(m * n).collect();
            assert_bits_eq(&format!("bias {with_bias}"), &c.to_vec().unwrap(), &want);
        }
    });
}

#[test]
fn rows_past_the_workgroup_limit_are_cut_into_dispatches() {
    // 4000 rows are more row-blocks than 16 workgroups along one dimension
    // at any tile height: the product runs as several dispatches over row
    // ranges (the texture path, which packs for one grid, takes the buffer
    // tiles). Where an adapter once refused "matmul grid", the product matches
    // the twin, and on Vulkan (the same tiles either way) the uncapped bits.
    let _serial = common::serial();
    let (m, n, k) = (4000, 16, 33);
    for shared in common::gpus() {
        let capped = common::reopen(shared, |o| o.max_workgroups_per_dimension = Some(16));
        for (i, (trans_a, trans_b)) in [(false, false), (true, true)].into_iter().enumerate() {
            let o = MatmulOptions {
                trans_a,
                trans_b,
                accumulate: i == 1,
            };
            check_product(&capped, m, n, k, o, true, 70 + i as u64);
        }
        // Texture tiles asked for by name cannot cut their grid: refused,
        // naming the workgroup limit (their packing grids count too: 500
        // rows are 16 row-blocks, but packing A takes 32 workgroups each).
        for m in [4000, 500] {
            let r = encode_with_texture_tiles(&capped, m, n, k);
            assert!(
                matches!(&r, Err(Error::TooMany { limit_name, .. }) if limit_name.contains("max_compute_workgroups_per_dimension")),
                "m {m}: {r:?}"
            );
        }
        if shared.adapter_info().backend == wgpu::Backend::Vulkan {
            let product = |gpu: &Gpu| {
                let a = Tensor::from_slice(gpu, &data(m * k, 80), &[m, k]).unwrap();
                let b = Tensor::from_slice(gpu, &data(k * n, 81), &[k, n]).unwrap();
                let bias = Tensor::from_slice(gpu, &data(n, 82), &[n]).unwrap();
                let c = Tensor::zeros(gpu, &[m, n]).unwrap();
                matmul::matmul_into(&a, &b, Some(&bias), &c, MatmulOptions::default()).unwrap();
                c.to_vec().unwrap()
            };
            common::assert_bits_eq("capped vs uncapped", &product(&capped), &product(shared));
        }
    }
}
