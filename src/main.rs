use wgpu_embed::{cpu, Embedding, Gpu, GpuOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for gpu in Gpu::all(&GpuOptions::default())? {
        let gpu = gpu?;
        println!("adapter: {}", gpu.describe());
        let mut emb = Embedding::new(&gpu, 1000, 64)?;
        emb.uniform_(-1.3, 0.7, 42)?;
        let idx: Vec<u32> = (0..5000).map(|i| (i * 7919) % 1000).collect();
        let out = emb.forward(&idx)?.to_vec()?;
        let w = emb.weight().to_vec()?;
        let mut want = vec![0.0; idx.len() * 64];
        let mut status = u32::MAX;
        cpu::embedding_gather(1000, 64, &idx, &mut status, &w, &mut want);
        println!("gather matches CPU twin: {}", out == want);
        let mut u = vec![0.0; w.len()];
        cpu::uniform_fill(42, 0, -1.3, 0.7, &mut u);
        println!("uniform matches: {}", u == w);
        emb.normal_(0.1, 1.7, 7)?;
        let w = emb.weight().to_vec()?;
        let mut n = vec![0.0; w.len()];
        cpu::normal_fill(7, 0, 0.1, 1.7, &mut n);
        let diff = n.iter().zip(&w).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        println!("normal mismatches: {diff} of {}; first {:?} vs {:?}", w.len(), &w[..4], &n[..4]);
        let mean: f64 = w.iter().map(|&x| x as f64).sum::<f64>() / w.len() as f64;
        let var: f64 = w.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / w.len() as f64;
        println!("mean {mean:.4} var {var:.4}");
    }
    Ok(())
}
