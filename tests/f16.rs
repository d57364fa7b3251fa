//! f16 tables on every adapter: half the memory in the Gpu's accounting, the
//! gather bit for bit against its f16 twin, and the table API in f16.
//! f16 is decoded with core WGSL's unpack2x16float, so adapters without
//! SHADER_F16 (llvmpipe GL here) run these too.

mod common;

use common::{assert_bits_eq, each_gpu};
use half::f16;
use wgpu_embed::kernels::embedding_gather::STATUS_OK;
use wgpu_embed::{
    cpu, BagMode, DType, Embedding, EmbeddingBag, EmbeddingBagOptions, EmbeddingOptions,
};

fn f16_options() -> EmbeddingOptions {
    EmbeddingOptions {
        dtype: DType::F16,
        ..Default::default()
    }
}

#[test]
fn an_f16_table_takes_half_the_memory() {
    each_gpu(|gpu| {
        let (rows, dim) = (1000, 64);
        let base = gpu.memory_live();
        let f32_table = Embedding::new(gpu, rows, dim).unwrap();
        let f32_bytes = gpu.memory_live() - base;
        drop(f32_table);
        assert_eq!(gpu.memory_live(), base);
        let f16_table = Embedding::with_options(gpu, rows, dim, f16_options()).unwrap();
        let f16_bytes = gpu.memory_live() - base;
        assert_eq!(f32_bytes, (rows * dim * 4) as u64);
        assert_eq!(f16_bytes, (rows * dim * 2) as u64);
        assert_eq!(f16_table.weight().bytes(), f16_bytes);
    });
}

#[test]
fn f16_gather_matches_its_twin_and_init_rounds_the_f32_init_once() {
    each_gpu(|gpu| {
        for dim in [1, 3, 4, 5, 128, 130] {
            let rows = 97;
            let opts = EmbeddingOptions {
                seed: Some(5),
                padding_idx: Some(2),
                ..f16_options()
            };
            let emb = Embedding::with_options(gpu, rows, dim, opts.clone()).unwrap();
            // The f16 table is the f32 table of the same seed, rounded once.
            let f32_emb = Embedding::with_options(
                gpu,
                rows,
                dim,
                EmbeddingOptions {
                    dtype: DType::F32,
                    ..opts
                },
            )
            .unwrap();
            assert_eq!(emb.weight().dtype(), DType::F16);
            let halves = emb.weight().to_f16_vec().unwrap();
            let rounded: Vec<f16> = f32_emb
                .weight()
                .to_vec()
                .unwrap()
                .iter()
                .map(|&x| f16::from_f32(x))
                .collect();
            assert_eq!(halves, rounded, "dim={dim}: init");
            let idx: Vec<u32> = (0..500u32).map(|i| (i * 31) % rows as u32).collect();
            let mut want = vec![0.0; idx.len() * dim];
            let mut status = STATUS_OK;
            cpu::embedding_gather(rows, dim, &idx, &mut status, &halves, &mut want);
            let got = emb.forward(&idx).unwrap().to_vec().unwrap();
            assert_bits_eq(&format!("f16 gather dim={dim}"), &got, &want);
        }
    });
}

#[test]
fn f16_table_set_weight_and_fills() {
    each_gpu(|gpu| {
        let mut emb = Embedding::with_options(gpu, 3, 3, f16_options()).unwrap();
        // 1/3 is not an f16: set_weight rounds to nearest.
        let w = [1.0, 1.0 / 3.0, -2.5, 65504.0, 0.0, -0.0, 1e-3, 7.0, 8.0];
        emb.set_weight(&w).unwrap();
        let back = emb.weight().to_vec().unwrap();
        let want: Vec<f32> = w.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
        assert_bits_eq("set_weight", &back, &want);
        emb.uniform_(-1.0, 1.0, 9).unwrap();
        let mut u = vec![0.0; 9];
        cpu::uniform_fill(9, 0, -1.0, 1.0, &mut u);
        let want: Vec<f32> = u.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
        assert_bits_eq("uniform_", &emb.weight().to_vec().unwrap(), &want);
        let before = emb.weight().to_vec().unwrap();
        assert!(emb.normal_(0.0, -1.0, 1).is_err());
        assert!(emb.set_weight(&[1.0]).is_err());
        assert_bits_eq("after errors", &emb.weight().to_vec().unwrap(), &before);
    });
}

#[test]
fn an_f16_table_in_row_blocks_gives_the_bits_of_one_in_one_block() {
    // `chunk_bytes` forces small f16 tables into blocks of a few rows. dim 7
    // and 3 give blocks of an odd number of halves (each block is padded on
    // its own); dim 12 takes the vec4 paths.
    each_gpu(|gpu| {
        for (rows, dim, block_rows) in [(40, 12, 7), (23, 7, 5), (23, 3, 6)] {
            let what = format!("{rows}x{dim} in blocks of {block_rows} rows");
            let opts = EmbeddingOptions {
                seed: Some(11),
                padding_idx: Some(block_rows),
                ..f16_options()
            };
            let blocked_opts = EmbeddingOptions {
                chunk_bytes: Some((block_rows * dim * 2).next_multiple_of(8) as u64),
                ..opts.clone()
            };
            let one = Embedding::with_options(gpu, rows, dim, opts.clone()).unwrap();
            let mut blocked =
                Embedding::with_options(gpu, rows, dim, blocked_opts.clone()).unwrap();
            assert_eq!(one.weight().num_blocks(), 1, "{what}");
            assert!(
                blocked.weight().num_blocks() > 2,
                "{what}: {:?}",
                blocked.weight()
            );
            assert_eq!(blocked.weight().bytes(), (rows * dim * 2) as u64, "{what}");
            // Init, the padding row included, is blocked without changing a bit.
            let want = one.weight().to_f16_vec().unwrap();
            assert_eq!(blocked.weight().to_f16_vec().unwrap(), want, "{what}: init");

            // Every row, both sides of every block boundary, and the rows read back by range.
            let idx: Vec<u32> = (0..rows as u32).rev().chain(0..rows as u32).collect();
            let got = blocked.forward(&idx).unwrap().to_vec().unwrap();
            assert_bits_eq(&what, &got, &one.forward(&idx).unwrap().to_vec().unwrap());
            let middle = blocked.weight().rows_to_vec(block_rows - 1, 3).unwrap();
            assert_bits_eq(
                &what,
                &middle,
                &one.weight().rows_to_vec(block_rows - 1, 3).unwrap(),
            );

            // A bad GPU-resident index is found in every block's dispatch.
            let bad = wgpu_embed::IndexTensor::from_slice(gpu, &[0, rows as u32, 1]).unwrap();
            assert!(
                matches!(
                    blocked.forward_gpu(&bad),
                    Err(wgpu_embed::Error::IndexOutOfRange { position: 1, .. })
                ),
                "{what}"
            );

            // Bags read a blocked table through an f32 scratch gather.
            let csr = [0u32, 3, 3, 9, idx.len() as u32];
            let psw: Vec<f32> = (0..idx.len())
                .map(|i| 0.25 * (i % 5) as f32 - 0.5)
                .collect();
            for mode in [BagMode::Sum, BagMode::Mean, BagMode::Max] {
                let bag_options = EmbeddingBagOptions {
                    mode,
                    include_last_offset: true,
                };
                let psw = (mode == BagMode::Sum).then_some(psw.as_slice());
                let bag = |opts: &EmbeddingOptions| {
                    let w = one.weight().to_vec().unwrap();
                    let e =
                        Embedding::from_pretrained_with_options(gpu, &w, rows, dim, opts.clone())
                            .unwrap();
                    EmbeddingBag::from_embedding(e, bag_options)
                };
                let (a, b) = (bag(&opts), bag(&blocked_opts));
                assert!(b.weight().num_blocks() > 2, "{what}");
                let want = a.forward(&idx, &csr, psw).unwrap().to_vec().unwrap();
                let got = b.forward(&idx, &csr, psw).unwrap().to_vec().unwrap();
                assert_bits_eq(&format!("{what} {mode:?} bags"), &got, &want);
                if mode == BagMode::Sum {
                    let g: Vec<f32> = (0..4 * dim).map(|i| (i % 9) as f32 - 4.0).collect();
                    let g = wgpu_embed::Tensor::from_slice(gpu, &g, &[4, dim]).unwrap();
                    let want = a.per_sample_weights_grad(&idx, &csr, &g).unwrap();
                    let got = b.per_sample_weights_grad(&idx, &csr, &g).unwrap();
                    assert_bits_eq(&what, &got.to_vec().unwrap(), &want.to_vec().unwrap());
                }
            }

            // Refills and set_weight write every block.
            blocked.uniform_(-2.0, 2.0, 3).unwrap();
            let mut u = vec![0.0; rows * dim];
            cpu::uniform_fill(3, 0, -2.0, 2.0, &mut u);
            let want: Vec<f16> = u.iter().map(|&x| f16::from_f32(x)).collect();
            assert_eq!(
                blocked.weight().to_f16_vec().unwrap(),
                want,
                "{what}: uniform_"
            );
            let w: Vec<f32> = (0..rows * dim).map(|i| i as f32 / 7.0).collect();
            blocked.set_weight(&w).unwrap();
            let want: Vec<f16> = w.iter().map(|&x| f16::from_f32(x)).collect();
            assert_eq!(
                blocked.weight().to_f16_vec().unwrap(),
                want,
                "{what}: set_weight"
            );

            // A saved blocked table loads back into blocks with the same bits.
            let path = std::env::temp_dir().join(format!(
                "wgpu_embed_f16_blocks_{}_{rows}x{dim}.safetensors",
                std::process::id()
            ));
            blocked.save_safetensors(&path, "w").unwrap();
            let back =
                Embedding::from_safetensors_with_options(gpu, &path, "w", blocked_opts.clone())
                    .unwrap();
            std::fs::remove_file(&path).unwrap();
            assert!(back.weight().num_blocks() > 2, "{what}");
            assert_eq!(back.weight().to_f16_vec().unwrap(), want, "{what}: file");
        }
    });
}

#[test]
fn f16_subnormals_survive_the_gather_and_the_update() {
    // The smallest and the largest-magnitude negative f16 subnormals, the
    // smallest normal and 1, gathered exactly (as `.half().float()`); then
    // 2^-14 stepped down by 2^-15 lands on the subnormal 2^-15 (0x0200),
    // as the twin rounds it, not on 0.
    let bits = [0x0001u16, 0x83FF, 0x0400, 0x3C00];
    let values: Vec<f32> = bits.iter().map(|&b| f16::from_bits(b).to_f32()).collect();
    each_gpu(|gpu| {
        let mut emb =
            Embedding::from_pretrained_with_options(gpu, &values, 2, 2, f16_options()).unwrap();
        let got = emb.forward(&[0, 1]).unwrap().to_vec().unwrap();
        assert_bits_eq("f16 subnormals gathered", &got, &values);
        let g =
            wgpu_embed::Tensor::from_slice(gpu, &[0.0, 0.0, 2f32.powi(-15), 0.0], &[2, 2]).unwrap();
        emb.backward_sgd(&[0, 1], &g, 1.0).unwrap();
        let stepped: Vec<u16> = emb
            .weight()
            .to_f16_vec()
            .unwrap()
            .iter()
            .map(|h| h.to_bits())
            .collect();
        let twin = cpu::Round16::Nearest
            .round(values[2] - 2f32.powi(-15), 2)
            .to_bits();
        assert_eq!(twin, 0x0200);
        assert_eq!(
            stepped,
            [0x0001, 0x83FF, twin, 0x3C00],
            "{}",
            gpu.describe()
        );
    });
}
