#![allow(dead_code)] // each target uses some of these
//! What every target shares: one Gpu per process (lavapipe on CI; opening
//! one per input would cost more than the input), and the bits of a table.

use std::sync::OnceLock;

use wgpu_embed::{Embedding, Gpu};

pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::new().expect(
            "no GPU adapter: install lavapipe with `apt-get install -y mesa-vulkan-drivers`",
        )
    })
}

/// The table's bits, to compare before and after a call that failed.
pub fn bits(emb: &Embedding) -> Vec<u32> {
    let w = emb.weight().to_vec().expect("reading a table back");
    w.iter().map(|x| x.to_bits()).collect()
}

/// A file holding `data`, private to this process.
pub fn file(name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("wgpu-embed-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("writing the fuzz input to a temp file");
    path
}
