//! Gather over a ~300 MB table stored in row-blocks (past one storage binding
//! on lavapipe) next to the same gather over a table that fits one binding,
//! both in the same run, timed around submit-and-wait (wall time: on lavapipe
//! this is CPU time, not a GPU figure), with a buffer copy of the same bytes
//! as the reference.
//!
//! `cargo run --release --example chunked_gather`

use std::time::Instant;

use wgpu_embed::kernels::embedding_gather::{self, GatherArgs};
use wgpu_embed::{DType, Embedding, EmbeddingOptions, Gpu, IndexTensor, Result, Status, Tensor};

const DIM: usize = 256;
const BATCH: usize = 65_536;
const REPS: usize = 20;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `per_chunk`: one dispatch per row-chunk, each reading every index (the
/// alternative to `Embedding::encode_forward`'s up-to-four chunks bound per dispatch).
fn time_gather(
    gpu: &Gpu,
    rows: usize,
    chunk_bytes: Option<u64>,
    per_chunk: bool,
) -> Result<(usize, f64)> {
    let options = EmbeddingOptions {
        chunk_bytes,
        ..EmbeddingOptions::default()
    };
    let emb = Embedding::with_options(gpu, rows, DIM, options)?;
    let chunks = emb.weight().num_blocks();
    // A fixed pseudo-random batch spread over the whole table.
    let idx: Vec<u32> = (0..BATCH)
        .map(|i| ((i as u64 * 2_654_435_761) % rows as u64) as u32)
        .collect();
    let idx = IndexTensor::from_slice(gpu, &idx)?;
    let out = Tensor::zeros(gpu, &[BATCH, DIM])?;
    let status = Status::new(gpu)?;
    let mut times = Vec::new();
    for rep in 0..REPS + 2 {
        let mut enc = gpu.encoder("chunked_gather");
        if per_chunk {
            for block in emb.weight().blocks() {
                embedding_gather::encode(
                    gpu,
                    &mut enc,
                    &GatherArgs {
                        table: &[block],
                        dtype: DType::F32,
                        num_embeddings: rows,
                        dim: DIM,
                        indices: idx.buffer(),
                        n: BATCH,
                        status: status.buffer(),
                        out: out.buffer(),
                        threads_per_row: None,
                        workgroup_size: None,
                        const_dim: false,
                    },
                )?;
            }
        } else {
            emb.encode_forward(&mut enc, &idx, &out, &status)?;
        }
        let t = Instant::now();
        gpu.submit_and_wait(enc)?;
        if rep >= 2 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    Ok((chunks, median(times)))
}

fn time_copy(gpu: &Gpu, bytes: u64) -> Result<f64> {
    let a = Tensor::zeros(gpu, &[bytes as usize / 4])?;
    let b = Tensor::zeros(gpu, &[bytes as usize / 4])?;
    let mut times = Vec::new();
    for rep in 0..REPS + 2 {
        let mut enc = gpu.encoder("copy");
        enc.copy_buffer_to_buffer(a.buffer(), 0, b.buffer(), 0, bytes);
        let t = Instant::now();
        gpu.submit_and_wait(enc)?;
        if rep >= 2 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(median(times))
}

fn main() -> Result<()> {
    let gpu = Gpu::new()?;
    println!(
        "adapter: {}; max binding {} bytes; clock: wall time around submit-and-wait",
        gpu.describe(),
        gpu.max_binding_bytes()
    );
    // Bytes a gather moves: each output row read from the table and written.
    let moved = (BATCH * DIM * 4 * 2) as f64;
    let copy = time_copy(&gpu, (BATCH * DIM * 4) as u64)?;
    println!(
        "copy of the output's bytes: {:8.3} ms  {:6.2} GB/s (read + write)",
        copy * 1e3,
        moved / copy / 1e9
    );
    let one_binding_rows = (gpu.max_binding_bytes() as usize / (DIM * 4)) * 3 / 4;
    // The same one-binding table forced into 3 chunks separates the cost of
    // chunking (3 dispatches, each reading every index) from table size.
    let third = (one_binding_rows * DIM * 4).div_ceil(3) as u64;
    for (label, rows, chunk_bytes, per_chunk) in [
        ("fits one binding", one_binding_rows, None, false),
        (
            "same, 3 chunks, 1 dispatch",
            one_binding_rows,
            Some(third),
            false,
        ),
        (
            "same, 3 chunks, 3 dispatches",
            one_binding_rows,
            Some(third),
            true,
        ),
        ("~300 MB, 1 dispatch", 300_000, None, false),
        ("~300 MB, 3 dispatches", 300_000, None, true),
    ] {
        let (chunks, t) = time_gather(&gpu, rows, chunk_bytes, per_chunk)?;
        println!(
            "{label:30} {:6.1} MB table, {chunks} chunk(s): {:8.3} ms  {:6.2} GB/s  {:6.3} ns/byte",
            (rows * DIM * 4) as f64 / 1e6,
            t * 1e3,
            moved / t / 1e9,
            t / moved * 1e9
        );
    }
    Ok(())
}
