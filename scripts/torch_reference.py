#!/usr/bin/env python3
"""The `wgpu-embed bench` sweep in PyTorch: F.embedding (+ backward) against
F.one_hot(...).float() @ W (+ backward), and the step of an
nn.Embedding(sparse=True) under optim.SGD (gather_sgd: no dense gradient),
at each vocabulary size. Writes the
same JSON schema (wgpu-embed/bench/v1), so the two runs compare with

    wgpu-embed compare target/wgpu-embed/results.json target/torch/results.json

Times are CUDA events on --device cuda, wall time around synchronize on cpu.
Peak memory is torch.cuda.max_memory_allocated on CUDA (none on cpu).
"""

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

SCHEMA = "wgpu-embed/bench/v1"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--vocab", default=None, help="comma-separated vocabulary sizes")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-backward", action="store_true")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default="target/torch")
    a = p.parse_args()
    gpu = a.device == "cuda"
    # The same adapter-dependent defaults as wgpu-embed.
    a.vocab = [int(v) for v in a.vocab.split(",")] if a.vocab else (
        [1_000, 10_000, 100_000, 1_000_000] if gpu else [1_000, 3_000, 10_000, 30_000, 100_000])
    # `is None`, not `or`: an explicit 0 must reach the check below.
    if a.batch is None:
        a.batch = 16384 if gpu else 2048
    if a.dim is None:
        a.dim = 128 if gpu else 64
    if a.reps is None:
        a.reps = 20 if gpu else 5
    for name in ("batch", "dim", "reps"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1")
    if any(v < 1 for v in a.vocab):
        p.error("--vocab sizes must be at least 1")
    return a


def timer(device):
    """Returns time_once(fn) -> seconds, using CUDA events on CUDA."""
    if device == "cuda":
        def once(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) * 1e-3
    else:
        def once(fn):
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t
    return once


def sample(once, fn, warmup, reps):
    for _ in range(warmup):
        once(fn)
    return [once(fn) for _ in range(reps)]


def summary(seconds):
    if not seconds:
        return None, None, None
    ms = [s * 1e3 for s in seconds]
    return statistics.median(ms), min(ms), max(ms)


def peak_reset(device):
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak(device):
    return torch.cuda.max_memory_allocated() if device == "cuda" else None


def row(vocab, path, fwd, bwd, peak_bytes, formula, note=""):
    fm, fmin, fmax = summary(fwd)
    bm, bmin, bmax = summary(bwd)
    return {
        "vocab": vocab, "path": path,
        "forward_ms_median": fm, "forward_ms_min": fmin, "forward_ms_max": fmax,
        "backward_ms_median": bm, "backward_ms_min": bmin, "backward_ms_max": bmax,
        "peak_bytes": peak_bytes, "formula_bytes": formula,
        "forward_fraction_of_ceiling": None, "backward_fraction_of_ceiling": None,
        "note": note,
    }


def main():
    a = parse_args()
    dev = torch.device(a.device)
    once = timer(a.device)
    gen = torch.Generator(device="cpu").manual_seed(a.seed)
    backward = not a.no_backward
    rows = []
    n, d = a.batch, a.dim
    for vocab in a.vocab:
        weight = torch.randn(vocab, d, generator=gen).to(dev).requires_grad_(backward)
        idx = torch.randint(0, vocab, (n,), generator=gen).to(dev)
        grad_out = torch.randn(n, d, generator=gen).to(dev) if backward else None
        table = vocab * d * 4
        extra = table + n * d * 4 if backward else 0
        gather_formula = table + n * 8 * 2 + n * d * 4 + extra  # int64 indices
        one_hot_formula = table + n * 8 * 2 + n * vocab * 4 + n * d * 4 + extra

        # gather: F.embedding, backward = the embedding's scatter-add into weight.grad
        peak_reset(a.device)
        out = None

        def gather_fwd():
            nonlocal out
            out = F.embedding(idx, weight)

        fwd = sample(once, gather_fwd, a.warmup, a.reps)
        bwd = []
        if backward:
            def gather_bwd():
                weight.grad = None
                out.backward(grad_out, retain_graph=True)
            bwd = sample(once, gather_bwd, a.warmup, a.reps)
        gather_fwd_times = fwd
        gather_out = out.detach()
        gather_grad = weight.grad.detach().clone() if backward else None
        rows.append(row(vocab, "gather", fwd, bwd, peak(a.device), gather_formula))

        # one-hot: F.one_hot(idx).float() @ weight, backward through autograd (hotᵀ · dY)
        weight.grad = None
        out = None
        peak_reset(a.device)
        try:
            def one_hot_fwd():
                nonlocal out
                out = F.one_hot(idx, vocab).float() @ weight

            fwd = sample(once, one_hot_fwd, a.warmup, a.reps)
            bwd = []
            if backward:
                def one_hot_bwd():
                    weight.grad = None
                    out.backward(grad_out, retain_graph=True)
                bwd = sample(once, one_hot_bwd, a.warmup, a.reps)
            note = "forward equal" if torch.equal(out.detach(), gather_out) else "forward differs from gather"
            if backward:
                err = (weight.grad - gather_grad).norm() / gather_grad.norm().clamp_min(1e-30)
                note += f"; grads within {err.item():.1e}"
            rows.append(row(vocab, "one_hot", fwd, bwd, peak(a.device), one_hot_formula, note))
        except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
            rows.append(row(vocab, "one_hot", [], [], None, one_hot_formula,
                            f"not run: {type(e).__name__}: {str(e).splitlines()[0][:160]}"))
        # gather_sgd: nn.Embedding(sparse=True) under optim.SGD, sharing the
        # table (it changes it, so last): the sparse gradient, no dense dW,
        # and the step. Its forward is the gather row's.
        step_formula = table + n * 8 * 2 + n * d * 4
        if backward:
            # The output, dY and the sparse gradient (values and int64 rows).
            step_formula += n * d * 4 + n * (d * 4 + 8)
            # Nothing table-sized from the earlier paths stays live.
            weight.grad = None
            out = gather_out = gather_grad = None
            emb = opt = step_out = None
            peak_reset(a.device)
            try:
                emb = torch.nn.Embedding.from_pretrained(weight.detach(), freeze=False, sparse=True)
                opt = torch.optim.SGD(emb.parameters(), lr=1e-3)
                step_out = emb(idx)

                def sgd_step():
                    opt.zero_grad(set_to_none=True)
                    step_out.backward(grad_out, retain_graph=True)
                    opt.step()

                bwd = sample(once, sgd_step, a.warmup, a.reps)
                rows.append(row(vocab, "gather_sgd", gather_fwd_times, bwd, peak(a.device),
                                step_formula, "forward: the gather row's; backward: sparse grad + SGD step"))
            except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
                rows.append(row(vocab, "gather_sgd", gather_fwd_times, [], None, step_formula,
                                "forward: the gather row's; backward not run: "
                                f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"))
            finally:
                # emb shares the table's storage: drop it, or it outlives `del weight`.
                emb = opt = step_out = None
        else:
            rows.append(row(vocab, "gather_sgd", gather_fwd_times, [], None, step_formula,
                            "forward: the gather row's; backward not asked for"))
        del out, weight, idx, grad_out
        if a.device == "cuda":
            torch.cuda.empty_cache()

    name = torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu"
    results = {
        "schema": SCHEMA, "producer": "pytorch " + torch.__version__,
        "adapter": name, "backend": "CUDA" if a.device == "cuda" else "CPU",
        "device_type": "DiscreteGpu" if a.device == "cuda" else "Cpu",
        "clock": "cuda events" if a.device == "cuda" else "wall time",
        "batch": n, "dim": d, "reps": a.reps, "roofline": None, "rows": rows,
    }
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    for r in rows:
        fmt = lambda v: "—" if v is None else f"{v:.3f}"
        print(f"{r['vocab']:>9} {r['path']:<8} fwd {fmt(r['forward_ms_median']):>10} ms  "
              f"bwd {fmt(r['backward_ms_median']):>10} ms  {r['note']}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
