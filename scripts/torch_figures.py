#!/usr/bin/env python3
"""PyTorch's side of `wgpu-embed figures` (BENCHMARKS.md, issue #15): the
same figure names and sizes, median times from CUDA events (wall time around
synchronize on cpu), each beside the same in-run reference as ours.

    python3 scripts/torch_figures.py --size issue --out target/figures/torch.json

scripts/figures_table.py puts this file beside ours.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

SIZES = {
    "issue": dict(vocab=1 << 20, n=1 << 22, dims=[128, 256], bags=1 << 18, bag_len=32,
                  bag_dim=128, matmul=4096, fill=1 << 28),
    "small": dict(vocab=1 << 16, n=1 << 16, dims=[128, 256], bags=1 << 12, bag_len=32,
                  bag_dim=128, matmul=512, fill=1 << 22),
    "tiny": dict(vocab=1 << 10, n=1 << 10, dims=[16], bags=64, bag_len=8, bag_dim=16,
                 matmul=64, fill=1 << 12),
}


def median_ms(fn, reps, device):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def zipf_ids(n, vocab, s, device, gen):
    cdf = torch.cumsum(torch.arange(1, vocab + 1, dtype=torch.float64, device=device).pow(-s), 0)
    u = torch.rand(n, dtype=torch.float64, device=device, generator=gen) * cdf[-1]
    return torch.searchsorted(cdf, u).clamp_(max=vocab - 1)


def copy_ms(nbytes, reps, device):
    src = torch.zeros(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    return median_ms(lambda: dst.copy_(src), reps, device)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=SIZES, default="issue")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--out", default="target/figures/torch.json")
    a = p.parse_args()
    s, dev, reps = SIZES[a.size], a.device, a.reps
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gen = torch.Generator(device=dev).manual_seed(1)
    figures = []
    for dim in s["dims"]:
        w = torch.randn(s["vocab"], dim, device=dev)
        out_bytes = s["n"] * dim * 4
        copy = copy_ms(out_bytes, reps, dev)
        grad_out = torch.full((s["n"], dim), 1e-3, device=dev)
        for dist in ["uniform", "zipf1.1"]:
            if dist == "uniform":
                idx = torch.randint(0, s["vocab"], (s["n"],), device=dev, generator=gen)
            else:
                idx = zipf_ids(s["n"], s["vocab"], 1.1, dev, gen)
            fwd = median_ms(lambda: F.embedding(idx, w), reps, dev)
            bwd = median_ms(lambda: torch.ops.aten.embedding_dense_backward(
                grad_out, idx, s["vocab"], -1, False), reps, dev)
            params = {"vocab": s["vocab"], "n": s["n"], "dim": dim, "indices": dist}
            figures.append(dict(name=f"gather forward dim {dim} {dist}", params=params, ms=fwd,
                                reference=f"copy_ of the output's {out_bytes} bytes", reference_ms=copy))
            figures.append(dict(name=f"deterministic backward dim {dim} {dist}", params=params, ms=bwd,
                                reference="F.embedding of the same batch", reference_ms=fwd))
        del w, grad_out
    bags, length, dim = s["bags"], s["bag_len"], s["bag_dim"]
    w = torch.randn(s["vocab"], dim, device=dev)
    idx = torch.randint(0, s["vocab"], (bags * length,), device=dev, generator=gen)
    offsets = torch.arange(0, bags * length, length, device=dev)
    bag = median_ms(lambda: F.embedding_bag(idx, w, offsets, mode="sum"), reps, dev)
    figures.append(dict(name=f"embedding_bag sum dim {dim}",
                        params={"vocab": s["vocab"], "bags": bags, "ids_per_bag": length, "dim": dim},
                        ms=bag, reference=None, reference_ms=None))
    del w
    side = s["matmul"]
    x = torch.full((side, side), 0.5, device=dev)
    y = torch.full((side, side), 0.25, device=dev)
    mm = median_ms(lambda: torch.matmul(x, y), reps, dev)
    figures.append(dict(name=f"matmul fp32 {side}^3",
                        params={"m": side, "n": side, "k": side, "gflop": 2 * side ** 3 / 1e9, "tf32": False},
                        ms=mm, reference=None, reference_ms=None))
    del x, y
    t = torch.empty(s["fill"], device=dev)
    fill = median_ms(lambda: t.normal_(), reps, dev)
    figures.append(dict(name="normal fill", params={"floats": s["fill"]}, ms=fill,
                        reference=f"copy_ of the same {s['fill'] * 4} bytes",
                        reference_ms=copy_ms(s["fill"] * 4, reps, dev)))
    name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    result = dict(schema="wgpu-embed/figures/v1", side="torch", adapter=f"{name} (torch {torch.__version__})",
                  driver=torch.version.cuda or "", clock="cuda events" if dev == "cuda" else "wall",
                  reps=reps, figures=figures)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
