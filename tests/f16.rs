//! f16 tables on every adapter: half the memory in the Gpu's accounting, the
//! gather bit for bit against its f16 twin, and the table API in f16.
//! f16 is decoded with core WGSL's unpack2x16float, so adapters without
//! SHADER_F16 (llvmpipe GL here) run these too.

mod common;

use common::{assert_bits_eq, each_gpu};
use half::f16;
use wgpu_embed::kernels::embedding_gather::STATUS_OK;
use wgpu_embed::{cpu, DType, Embedding, EmbeddingOptions};

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
                seed: 5,
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
            let halves = emb.weight().as_f16().unwrap().to_f16_vec().unwrap();
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
            cpu::embedding_gather_f16(rows, dim, &idx, &mut status, &halves, &mut want);
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
