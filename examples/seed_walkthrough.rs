//! The document this project grew from, run step by step on the GPU: an
//! embedding is a Linear layer applied to a one-hot vector, without the
//! one-hot vector.
//!
//! cargo run --release --example seed_walkthrough

use wgpu_embed::kernels::one_hot::one_hot;
use wgpu_embed::nn::{Linear, LinearOptions};
use wgpu_embed::{Embedding, Gpu, Table, Tensor};

fn show(name: &str, t: &Tensor) -> Result<Vec<f32>, wgpu_embed::Error> {
    print_rows(name, t.shape(), t.to_vec()?)
}

fn show_weight(name: &str, w: &Table) -> Result<Vec<f32>, wgpu_embed::Error> {
    print_rows(name, w.shape(), w.to_vec()?)
}

fn print_rows(name: &str, shape: &[usize], v: Vec<f32>) -> Result<Vec<f32>, wgpu_embed::Error> {
    let cols = *shape.last().unwrap_or(&1);
    println!("{name} {shape:?}:");
    for row in v.chunks(cols.max(1)) {
        println!("  {:?}", row);
    }
    Ok(v)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gpu = Gpu::new()?;
    println!("adapter: {}\n", gpu.describe());

    // vocab = {"I": 0, "you": 1}
    let vocab = [("I", 0u32), ("you", 1u32)];
    println!("vocab: {vocab:?}\n");

    // 2.1 The fully connected way: one-hot rows of eye(2) through Linear(2, 2).
    let eye = one_hot(&gpu, &[0, 1], 2)?;
    show("one-hot vectors, torch.eye(2)", &eye)?;
    let fc = Linear::new(&gpu, 2, 2, true)?;
    show("fc(vocab_vec) with bias", &fc.forward(&eye)?)?;

    // The same without a bias is exactly an embedding lookup.
    let fc = Linear::with_options(
        &gpu,
        2,
        2,
        LinearOptions {
            bias: false,
            seed: Some(1),
        },
    )?;
    let w = fc.weight().to_vec()?; // [out = 2, in = 2]
    let dense = show("fc(vocab_vec), no bias", &fc.forward(&eye)?)?;

    // 2.2 The embedding way: no one-hot vector, just read a row. Its table is
    // the Linear weight transposed: row i = column i of W.
    let table = vec![w[0], w[2], w[1], w[3]];
    let emb = Embedding::from_pretrained(&gpu, &table, 2, 2, false)?;
    let me = show("embedding(me = [0])", &emb.forward(&[0])?)?;
    let you = show("embedding(you = [1])", &emb.forward(&[1])?)?;
    let both = show("embedding(meyou = [0, 1])", &emb.forward(&[0, 1])?)?;
    assert_eq!([me, you].concat(), both);
    let same = both
        .iter()
        .zip(&dense)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    println!("Linear on one-hot == Embedding lookup, bit for bit: {same}\n");
    assert!(same, "the two paths must agree");

    // Initialising it yourself. 1. Assign values (nn.Parameter(torch.rand(2, 2))).
    let mut embedding = Embedding::new(&gpu, 2, 2)?;
    show_weight(
        "embedding.weight (default N(0, 1) init)",
        embedding.weight(),
    )?;
    embedding.set_weight(&[0.25, 0.5, 0.75, 1.0])?;
    show_weight("after embedding.weight = myemb", embedding.weight())?;
    // 2. weight.data.uniform_(-1, 1): the same numbers on every device for seed 42.
    embedding.uniform_(-1.0, 1.0, 42)?;
    show_weight("after uniform_(-1, 1)", embedding.weight())?;
    // 3. nn.Embedding.from_pretrained(a)
    let pretrained = Embedding::from_pretrained(&gpu, &[1.0, 2.0, 2.0, 2.0], 2, 2, true)?;
    show_weight(
        "from_pretrained([[1, 2], [2, 2]]).weight",
        pretrained.weight(),
    )?;
    show("its lookup of [1, 0]", &pretrained.forward(&[1, 0])?)?;
    Ok(())
}
