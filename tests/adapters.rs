//! Names every adapter the GPU tests run on (a plain binary: its output is
//! always shown), and fails when there is none.

use wgpu_embed::{Gpu, GpuOptions};

fn main() {
    let all = match Gpu::all(&GpuOptions::default()) {
        Ok(all) => all,
        Err(e) => {
            eprintln!("GPU tests need an adapter: {e}");
            std::process::exit(1);
        }
    };
    let mut opened = 0;
    for gpu in all {
        match gpu {
            Ok(gpu) => {
                opened += 1;
                println!(
                    "adapter: {} — f32 atomics: {}, timestamps: {}, f16: {}, max binding: {} MiB",
                    gpu.describe(),
                    gpu.has_float_atomics(),
                    gpu.has_timestamps(),
                    gpu.features().contains(wgpu::Features::SHADER_F16),
                    gpu.max_binding_bytes() >> 20
                );
            }
            Err(e) => {
                eprintln!("an adapter failed to open: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{opened} passed, 0 failed");
}
