//! Any bytes as a `.npy` file: a table or a typed error, never a panic.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use wgpu_embed::Embedding;

fuzz_target!(|data: &[u8]| {
    let path = common::file("table.npy", data);
    if let Ok(emb) = Embedding::from_npy(common::gpu(), &path, true) {
        // What loaded reads back whole, in its shape.
        let w = emb.weight().to_vec().unwrap();
        assert_eq!(w.len(), emb.num_embeddings() * emb.dim());
    }
});
