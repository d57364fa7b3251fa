#!/usr/bin/env bash
# Instructions per fill at each commit, counted by cachegrind: unlike a
# lavapipe timing (which drifts by a third from minute to minute on a shared
# machine), the count is the same from run to run, so it shows a change of
# a few percent in the fill's shader.
#
#   scripts/fill-instructions.sh REV...
#
# For each commit: the instructions of one whole-tensor fill of 2^20 floats
# through the public `uniform_init::encode`, on lavapipe with one worker
# thread, for N(0, 1), U(0, 1) and N(0.5, 2): (4 fills - 1 fill) / 3, after a
# first run that leaves the compiled shaders in Mesa's disk cache. Then an
# FNV-1a hash of each table (from a run without valgrind): equal hashes show
# the same bits. Needs valgrind. A commit takes a few minutes.
#
# Worktrees go to target/fill-instructions/, binaries to target/release/examples.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: scripts/fill-instructions.sh REV..." >&2; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cd "$(dirname "$0")/.."
repo="$PWD"
work="$repo/target/fill-instructions"
mkdir -p "$work"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
probe='use wgpu_embed::kernels::uniform_init::{self, Distribution, FillArgs};
use wgpu_embed::{Gpu, Tensor};
fn main() {
    let fills: usize = std::env::var("FILLS").unwrap().parse().unwrap();
    let dist = match std::env::var("DIST").unwrap().as_str() {
        "U(0,1)" => Distribution::Uniform { lo: 0.0, hi: 1.0 },
        "N(0.5,2)" => Distribution::Normal { mean: 0.5, std: 2.0 },
        _ => Distribution::Normal { mean: 0.0, std: 1.0 },
    };
    let gpu = Gpu::new().unwrap();
    let n = (1usize << 13) * 128;
    let t = Tensor::zeros(&gpu, &[1 << 13, 128]).unwrap();
    for _ in 0..fills {
        let mut enc = gpu.encoder("fill-instructions");
        let args = FillArgs { out: t.buffer(), begin: 0, end: n, counter_base: 0, seed: 7,
            distribution: dist, workgroup_size: None };
        uniform_init::encode(&gpu, &mut enc, &args).unwrap();
        gpu.submit_and_wait(enc).unwrap();
    }
    let mut h: u64 = 0xcbf29ce484222325;
    for x in t.to_vec().unwrap() {
        h = (h ^ x.to_bits() as u64).wrapping_mul(0x100000001b3);
    }
    println!("{h:016x}");
}'
printf '%-12s %-9s %14s  %s\n' commit fill instructions hash
for rev in "$@"; do
    rm -rf "$work/tree"
    git worktree add --force --detach "$work/tree" "$rev" >/dev/null
    mkdir -p "$work/tree/examples"
    printf '%s\n' "$probe" > "$work/tree/examples/fill_instructions.rs"
    (cd "$work/tree" && CARGO_TARGET_DIR="$repo/target" cargo build --release --quiet --example fill_instructions)
    bin="$work/$(git rev-parse --short "$rev").bin"
    cp "$repo/target/release/examples/fill_instructions" "$bin"
    git worktree remove --force "$work/tree"
    for dist in "N(0,1)" "U(0,1)" "N(0.5,2)"; do
        refs() {
            FILLS=$1 DIST=$dist LP_NUM_THREADS=1 valgrind --tool=cachegrind --cache-sim=no \
                --smc-check=all --cachegrind-out-file=/dev/null "$bin" 2>&1 |
                awk '/I *refs/ { gsub(",", "", $NF); print $NF }'
        }
        refs 1 >/dev/null
        one=$(refs 1)
        four=$(refs 4)
        hash=$(FILLS=1 DIST=$dist "$bin")
        printf '%-12s %-9s %14d  %s\n' "$rev" "$dist" $(((four - one) / 3)) "$hash"
    done
done
