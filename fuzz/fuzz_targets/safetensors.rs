//! Any bytes as a safetensors file: a table or a typed error, never a panic.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use wgpu_embed::Embedding;

fuzz_target!(|data: &[u8]| {
    let path = common::file("tables.safetensors", data);
    for name in ["weight", "w", ""] {
        if let Ok(emb) = Embedding::from_safetensors(common::gpu(), &path, name, true) {
            let w = emb.weight().to_vec().unwrap();
            assert_eq!(w.len(), emb.num_embeddings() * emb.dim());
        }
    }
});
