#!/usr/bin/env python3
"""Writes tests/data/adam.json: PyTorch's SparseAdam and Adam over a fixed
sequence of batches, the expected values tests/adam.rs holds our
backward_adam and adam_step to (within 1e-6 relative).

    python3 tests/data/make_adam_fixture.py   # needs torch (CPU is enough)

Every input is in the file too (initial table, batches, upstream
gradients), so the test does not repeat this script's arithmetic.
"""

import json
import os

import torch

V, D, STEPS = 23, 6, 5


def values(n, seed):
    # Exact small binary fractions in [-1, 1): the same floats in any language.
    return [((i * 2654435761 + seed * 40503) % 257) / 128.0 - 1.0 for i in range(n)]


def batches():
    out = []
    for s in range(STEPS):
        n = 9 + s
        # Repeats and a hot row, ascending and not.
        idx = [((i * 7 + s * 3) % V) if i % 3 else 4 for i in range(n)]
        go = values(n * D, 100 + s)
        out.append({"indices": idx, "grad_out": go})
    return out


def run(sparse, options, init, steps):
    emb = torch.nn.Embedding(V, D, sparse=sparse)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(init, dtype=torch.float32).reshape(V, D))
    if sparse:
        opt = torch.optim.SparseAdam(emb.parameters(), lr=options["lr"], betas=tuple(options["betas"]),
                                     eps=options["eps"])
    else:
        opt = torch.optim.Adam(emb.parameters(), lr=options["lr"], betas=tuple(options["betas"]),
                               eps=options["eps"], weight_decay=options["weight_decay"], foreach=False)
    after = []
    for b in steps:
        opt.zero_grad()
        idx = torch.tensor(b["indices"], dtype=torch.long)
        go = torch.tensor(b["grad_out"], dtype=torch.float32).reshape(len(b["indices"]), D)
        (emb(idx) * go).sum().backward()
        opt.step()
        st = opt.state[emb.weight]
        after.append({
            "weight": emb.weight.detach().reshape(-1).tolist(),
            "exp_avg": st["exp_avg"].to_dense().reshape(-1).tolist(),
            "exp_avg_sq": st["exp_avg_sq"].to_dense().reshape(-1).tolist(),
        })
    return after


def main():
    torch.set_num_threads(1)
    init = values(V * D, 7)
    steps = batches()
    sparse_opts = {"lr": 0.01, "betas": [0.9, 0.99], "eps": 1e-6, "weight_decay": 0.0}
    dense_opts = {"lr": 0.02, "betas": [0.8, 0.95], "eps": 1e-7, "weight_decay": 0.01}
    fixture = {
        "torch": torch.__version__,
        "num_embeddings": V,
        "dim": D,
        "init": init,
        "batches": steps,
        "sparse_adam": {"options": sparse_opts, "after": run(True, sparse_opts, init, steps)},
        "adam": {"options": dense_opts, "after": run(False, dense_opts, init, steps)},
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "adam.json")
    with open(path, "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print(f"wrote {path} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
