#!/usr/bin/env python3
"""Writes tests/data/f16_sgd.json: PyTorch training a half-precision
nn.Embedding with SGD over a fixed sequence of batches: the weights before
and after every step, PyTorch's half gradient of each step, and the inputs.
tests/f16_training.rs holds our f16 training to it.

    python3 tests/data/make_f16_fixture.py   # needs torch (CPU is enough)

PyTorch is the tolerance reference here, not the bit reference: its CPU
half embedding gradient rounds to f16 after every addition, while ours
sums in f32 and rounds once (so ours is within half an ulp of the exact
sum and PyTorch's drifts on hot rows). The test therefore checks the two
halves of a step apart: our gradient against the exact sum and against
PyTorch's, and our update, fed PyTorch's gradient, against PyTorch's update.
(Sparse half SGD is left out: PyTorch applies an uncoalesced sparse
gradient one duplicate at a time, rounding after each.)
"""

import json
import os

import torch

V, D, STEPS, LR = 31, 7, 6, 0.5


def batches(gen):
    out = []
    for s in range(STEPS):
        n = 12 + 3 * s
        # A hot row (5), repeats, and rows in no order.
        idx = [5 if i % 4 == 0 else int(torch.randint(0, V, (1,), generator=gen)) for i in range(n)]
        # Upstream gradients an f16 holds exactly (PyTorch's is half; ours f32).
        go = (torch.randn(n, D, generator=gen) * 0.5).half().float().flatten().tolist()
        out.append({"indices": idx, "grad_out": go})
    return out


def run(init, steps):
    emb = torch.nn.Embedding(V, D, dtype=torch.float16)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(init, dtype=torch.float16).reshape(V, D))
    opt = torch.optim.SGD(emb.parameters(), lr=LR)
    before, after, grads = [], [], []
    for b in steps:
        before.append(emb.weight.detach().float().flatten().tolist())
        opt.zero_grad()
        idx = torch.tensor(b["indices"], dtype=torch.long)
        go = torch.tensor(b["grad_out"], dtype=torch.float16).reshape(len(b["indices"]), D)
        emb(idx).backward(go)
        grads.append(emb.weight.grad.float().flatten().tolist())
        opt.step()
        after.append(emb.weight.detach().float().flatten().tolist())
    return {"before": before, "after": after, "grad": grads}


def main():
    gen = torch.Generator().manual_seed(20261129)
    init = torch.randn(V, D, generator=gen).half().float().flatten().tolist()
    steps = batches(gen)
    doc = {
        "torch": torch.__version__,
        "num_embeddings": V,
        "dim": D,
        "lr": LR,
        "init": init,
        "steps": steps,
        "dense": run(init, steps),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "f16_sgd.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    print("wrote", path)


if __name__ == "__main__":
    main()
