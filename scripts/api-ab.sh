#!/usr/bin/env bash
# Public-call timings at two commits, in one run (issue #16's figures).
#
#   scripts/api-ab.sh fill|linear|train|sparse BASE [HEAD] [ROUNDS]
#
# A lavapipe timing is a CPU timing, and this machine's vary by a third from
# minute to minute, so the two builds run alternately, ROUNDS times each
# (default 5), and the medians are compared.
#
# fill: a whole-tensor fill of 2^16 x 128 floats through the public
# `uniform_init::encode` (wall time of encode + submit + wait, best of 9;
# the API both commits share; also the process's CPU time per fill over the
# last 8, lavapipe's threads included, rows cpu:*), for N(0, 1) (what
# `Embedding::new` does),
# U(0, 1) and N(0.5, 2), with an FNV-1a hash of each table: equal hashes at
# both commits show the bits did not change.
#
# linear: at 1024^3, the plain product A·B into a kept C (the matmul
# bench's row) and `Linear::forward` (fresh y, x·Wᵀ), timed alternately 20
# times in one process; the ratio is the median of the pairs' ratios.
#
# train: the public calls whose kernels take exact_arith's ×, ÷ and √
# (fused SGD, Adagrad and Adam steps, a scale_grad_by_freq backward, mean
# and weighted bags, and a plain sum bag beside them), 2^16 ids of a
# 2^14 x 128 table; wall time, best of 8, and a hash of the result.
#
# sparse: `Embedding::backward` with `sparse: true` and the SGD step on
# its gradient, at 256 ids (where the host's waits weigh most) and 2^16
# ids, of a 2^14 x 64 table; wall time, best of 8, and a hash of the table.
#
# Worktrees and binaries go to target/api-ab/.
set -euo pipefail
what="${1:?usage: scripts/api-ab.sh fill|linear|train|sparse BASE [HEAD] [ROUNDS]}"
base="${2:?usage: scripts/api-ab.sh fill|linear|train|sparse BASE [HEAD] [ROUNDS]}"
head="${3:-HEAD}"
rounds="${4:-5}"
cd "$(dirname "$0")/.."
repo="$PWD"
work="$repo/target/api-ab"
mkdir -p "$work"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
fill='use std::time::Instant;
use wgpu_embed::kernels::uniform_init::{self, Distribution, FillArgs};
use wgpu_embed::{Gpu, Tensor};
fn main() {
    let gpu = Gpu::new().unwrap();
    let n = (1usize << 16) * 128;
    let t = Tensor::zeros(&gpu, &[1 << 16, 128]).unwrap();
    for (name, d) in [
        ("N(0,1)", Distribution::Normal { mean: 0.0, std: 1.0 }),
        ("U(0,1)", Distribution::Uniform { lo: 0.0, hi: 1.0 }),
        ("N(0.5,2)", Distribution::Normal { mean: 0.5, std: 2.0 }),
    ] {
        let mut best = f64::MAX;
        let mut cpu0 = 0.0;
        for i in 0..9 {
            if i == 1 {
                cpu0 = cpu_ms(); // after the first fill, which builds the pipeline
            }
            let s = Instant::now();
            let mut enc = gpu.encoder("fill-ab");
            let args = FillArgs { out: t.buffer(), begin: 0, end: n, counter_base: 0, seed: 7,
                distribution: d, workgroup_size: None };
            uniform_init::encode(&gpu, &mut enc, &args).unwrap();
            gpu.submit_and_wait(enc).unwrap();
            best = best.min(s.elapsed().as_secs_f64());
        }
        let cpu = (cpu_ms() - cpu0) / 8.0;
        let mut h: u64 = 0xcbf29ce484222325;
        for x in t.to_vec().unwrap() {
            h = (h ^ x.to_bits() as u64).wrapping_mul(0x100000001b3);
        }
        println!("{name} {:.1} ms {h:016x}", best * 1e3);
        println!("cpu:{name} {cpu:.1} ms -");
    }
}
// CPU time of the whole process (lavapipe threads included), in ms: it
// varies less than wall time on a shared machine.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(" ").collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) * 10.0
}'
linear='use std::time::Instant;
use wgpu_embed::kernels::matmul::{self, MatmulArgs, MatmulOptions};
use wgpu_embed::{Gpu, Linear, Tensor};
fn main() {
    let gpu = Gpu::new().unwrap();
    let (m, k, n) = (1024, 1024, 1024);
    let lin = Linear::new(&gpu, k, n, false).unwrap();
    let x = Tensor::from_slice(&gpu, &vec![0.5; m * k], &[m, k]).unwrap();
    let b = Tensor::from_slice(&gpu, &vec![0.25; k * n], &[k, n]).unwrap();
    let c = Tensor::zeros(&gpu, &[m, n]).unwrap();
    let args = MatmulArgs { m, n, k, a: x.buffer(), b: b.buffer(), bias: None, c: c.buffer(),
        options: MatmulOptions::default(), tiles: None, fuse_extras: None };
    let (mut mm, mut lf, mut r) = (vec![], vec![], vec![]);
    for i in 0..22 {
        let s = Instant::now();
        let mut enc = gpu.encoder("matmul");
        matmul::encode(&gpu, &mut enc, &args).unwrap();
        gpu.submit_and_wait(enc).unwrap();
        let t1 = s.elapsed().as_secs_f64() * 1e3;
        let s = Instant::now();
        drop(lin.forward(&x).unwrap());
        let t2 = s.elapsed().as_secs_f64() * 1e3;
        if i >= 2 {
            mm.push(t1);
            lf.push(t2);
            r.push(t1 / t2);
        }
    }
    let med = |mut v: Vec<f64>| { v.sort_by(f64::total_cmp); v[v.len() / 2] };
    println!("matmul_A·B {:.1} ms -", med(mm));
    println!("Linear::forward {:.1} ms -", med(lf));
    println!("ratio {:.3} x -", med(r));
}'
train='use std::time::Instant;
use wgpu_embed::{AdamOptions, BagMode, Embedding, EmbeddingBag, EmbeddingOptions, Gpu, Tensor};
// The public calls whose kernels round through exact_arith: each timed
// (wall time, best of 7, after one warm-up call) and the table (or output)
// hashed after all eight calls, so equal hashes show the same bits.
fn main() {
    let gpu = Gpu::new().unwrap();
    let (vocab, dim, n) = (1usize << 14, 128usize, 1usize << 16);
    let ids: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(2_654_435_761) % vocab as u32).collect();
    let g: Vec<f32> = (0..n * dim).map(|i| ((i * 7919) % 2001) as f32 * 1e-3 - 1.0).collect();
    let grad = Tensor::from_slice(&gpu, &g, &[n, dim]).unwrap();
    let time = |f: &mut dyn FnMut()| {
        let mut best = f64::MAX;
        for _ in 0..8 {
            let s = Instant::now();
            f();
            best = best.min(s.elapsed().as_secs_f64());
        }
        best * 1e3
    };
    let fnv = |v: Vec<f32>| v.iter().fold(0xcbf29ce484222325u64, |h, x| (h ^ x.to_bits() as u64).wrapping_mul(0x100000001b3));
    let mut emb = Embedding::new(&gpu, vocab, dim).unwrap();
    let w = emb.weight().to_vec().unwrap();
    let t = time(&mut || emb.backward_sgd(&ids, &grad, 1e-2).unwrap()); println!("backward_sgd {t:.1} ms {:016x}", fnv(emb.weight().to_vec().unwrap()));
    let mut emb = Embedding::from_pretrained(&gpu, &w, vocab, dim, false).unwrap();
    let mut state = emb.adagrad_state().unwrap();
    let t = time(&mut || emb.backward_adagrad(&ids, &grad, &mut state, 1e-2, 1e-8).unwrap()); println!("backward_adagrad {t:.1} ms {:016x}", fnv(emb.weight().to_vec().unwrap()));
    let mut emb = Embedding::from_pretrained(&gpu, &w, vocab, dim, false).unwrap();
    let mut adam = emb.adam_state().unwrap();
    let opts = AdamOptions::default();
    let t = time(&mut || emb.backward_adam(&ids, &grad, &mut adam, &opts).unwrap()); println!("backward_adam {t:.1} ms {:016x}", fnv(emb.weight().to_vec().unwrap()));
    let options = EmbeddingOptions { scale_grad_by_freq: true, ..EmbeddingOptions::default() };
    let emb = Embedding::from_pretrained_with_options(&gpu, &w, vocab, dim, options).unwrap();
    let mut last = Vec::new();
    let t = time(&mut || last = emb.backward(&ids, &grad).unwrap().to_dense_vec(vocab, dim).unwrap()); println!("backward_freq {t:.1} ms {:016x}", fnv(last.clone()));
    let bags = n / 16;
    let offsets: Vec<u32> = (0..bags as u32).map(|b| b * 16).collect();
    let psw: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 0.125 - 0.5).collect();
    let mean = EmbeddingBag::from_pretrained(&gpu, &w, vocab, dim, true, BagMode::Mean).unwrap();
    let mut out = Vec::new();
    let t = time(&mut || out = mean.forward(&ids, &offsets, None).unwrap().to_vec().unwrap()); println!("bag_mean {t:.1} ms {:016x}", fnv(out.clone()));
    let sum = EmbeddingBag::from_pretrained(&gpu, &w, vocab, dim, true, BagMode::Sum).unwrap();
    let t = time(&mut || out = sum.forward(&ids, &offsets, Some(&psw)).unwrap().to_vec().unwrap()); println!("bag_weighted {t:.1} ms {:016x}", fnv(out.clone()));
    let t = time(&mut || out = sum.forward(&ids, &offsets, None).unwrap().to_vec().unwrap()); println!("bag_sum {t:.1} ms {:016x}", fnv(out.clone()));
}'
sparse='use std::time::Instant;
use wgpu_embed::{Embedding, EmbeddingOptions, Gpu, Tensor};
fn main() {
    let gpu = Gpu::new().unwrap();
    let (vocab, dim) = (1usize << 14, 64usize);
    let fnv = |v: Vec<f32>| v.iter().fold(0xcbf29ce484222325u64, |h, x| (h ^ x.to_bits() as u64).wrapping_mul(0x100000001b3));
    for n in [256usize, 1 << 16] {
        let ids: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(2_654_435_761) % vocab as u32).collect();
        let g: Vec<f32> = (0..n * dim).map(|i| ((i * 7919) % 2001) as f32 * 1e-3 - 1.0).collect();
        let grad = Tensor::from_slice(&gpu, &g, &[n, dim]).unwrap();
        let options = EmbeddingOptions { sparse: true, ..EmbeddingOptions::default() };
        let mut emb = Embedding::with_options(&gpu, vocab, dim, options).unwrap();
        let mut best = f64::MAX;
        for _ in 0..9 {
            let s = Instant::now();
            let g = emb.backward(&ids, &grad).unwrap();
            emb.sgd_step(&g, 1e-2).unwrap();
            best = best.min(s.elapsed().as_secs_f64());
        }
        println!("sparse_step_{n} {:.2} ms {:016x}", best * 1e3, fnv(emb.weight().to_vec().unwrap()));
    }
}'
case "$what" in
    fill) probe="$fill" ;;
    linear) probe="$linear" ;;
    train) probe="$train" ;;
    sparse) probe="$sparse" ;;
    *) echo "unknown probe '$what': fill, linear, train or sparse" >&2; exit 2 ;;
esac
for side in base head; do
    rev=$([ "$side" = base ] && echo "$base" || echo "$head")
    rm -rf "$work/$side"
    git worktree add --force --detach "$work/$side" "$rev" >/dev/null
    mkdir -p "$work/$side/examples"
    printf '%s\n' "$probe" > "$work/$side/examples/api_ab.rs"
    (cd "$work/$side" && CARGO_TARGET_DIR="$repo/target" cargo build --release --quiet --example api_ab)
    cp "$repo/target/release/examples/api_ab" "$work/$side.bin"
    git worktree remove --force "$work/$side"
done
: > "$work/runs.txt"
for _ in $(seq "$rounds"); do
    for side in base head; do
        "$work/$side.bin" | sed "s/^/$side /" | tee -a "$work/runs.txt"
    done
done
python3 - "$work/runs.txt" "$base" "$head" <<'PY'
import sys, statistics
runs, base, head = sys.argv[1], sys.argv[2], sys.argv[3]
t, h = {}, {}
for line in open(runs):
    side, name, ms, _, digest = line.split()
    t.setdefault((side, name), []).append(float(ms))
    h.setdefault((side, name), set()).add(digest)
print(f"\n{'median':<16} {base:>12} {head:>12}  base/head  same bits")
for name in dict.fromkeys(n for _, n in t):
    b, x = statistics.median(t["base", name]), statistics.median(t["head", name])
    same = h["base", name] == h["head", name] and len(h["base", name]) == 1
    bits = {"-": ""}.get(next(iter(h["head", name])), "yes" if same else "NO")
    print(f"{name:<16} {b:12.3f} {x:12.3f}  {b / x:8.2f}x  {bits}")
PY
