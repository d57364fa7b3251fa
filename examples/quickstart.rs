//! The crate docs' example (`src/lib.rs`), as a program: look rows up, train them one step,
//! and see a bad index come back as an error.
//!
//! cargo run --release --example quickstart

use wgpu_embed::{Embedding, Error, Gpu, Tensor};

fn main() -> Result<(), Error> {
    let gpu = Gpu::new()?; // the best adapter; WGPU_BACKEND / WGPU_ADAPTER_NAME choose another
    println!("adapter: {}", gpu.describe());

    let mut emb = Embedding::new(&gpu, 10_000, 64)?; // N(0, 1), the seed drawn from the Gpu
    emb.uniform_(-1.0, 1.0, 42)?; // the same numbers on every device
    let ids = [0, 1, 9_999];
    let out = emb.forward(&ids)?; // a [3, 64] tensor on the GPU
    let rows: Vec<f32> = out.to_vec()?;
    println!("row 0 starts {:?}", &rows[..4]);

    // One SGD step on a loss whose gradient is all ones, deterministic on every adapter.
    let grad_out = Tensor::from_slice(&gpu, &vec![1.0; ids.len() * 64], &[ids.len(), 64])?;
    emb.backward_sgd(&ids, &grad_out, 0.1)?;
    let after = emb.forward(&[0])?.to_vec()?;
    println!("row 0 after one step {:?}", &after[..4]);

    match emb.forward(&[10_000]) {
        Err(e @ Error::IndexOutOfRange { .. }) => println!("bad index: {e}"),
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
