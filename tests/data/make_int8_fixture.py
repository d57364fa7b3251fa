#!/usr/bin/env python3
"""Writes tests/data/int8.json: FBGEMM's fused 8-bit row-wise format as
PyTorch makes it (torch.ops.quantized.embedding_bag_byte_prepack) and its
lookups and sum bags (its mode 1 returns the sum too, so mean is left to
the twin) (embedding_byte, embedding_bag_byte_rowwise_offsets), the
reference tests/int8.rs holds our int8 tables to.

    python3 tests/data/make_int8_fixture.py   # needs torch (CPU is enough)
"""

import json
import os

import torch


def table(rows, dim, seed):
    # Rows of different ranges and offsets, values not on any grid.
    out = []
    for r in range(rows):
        span = 0.1 + (r * 7 + seed) % 13 * 0.37
        base = ((r * 5 + seed) % 11 - 5) * 0.21
        out.extend(base + span * (((i * 2654435761 + r * 40503 + seed) % 1009) / 1009.0 - 0.5)
                   for i in range(dim))
    # One constant row (range 0), as FBGEMM's epsilon handles.
    out[3 * dim:4 * dim] = [0.75] * dim
    return out


def case(rows, dim, seed):
    w = torch.tensor(table(rows, dim, seed), dtype=torch.float32).reshape(rows, dim)
    packed = torch.ops.quantized.embedding_bag_byte_prepack(w)
    n = 40
    indices = [(i * 11 + seed) % rows for i in range(n)]
    offsets = [0, 3, 3, 10, 17, 30]          # an empty bag too
    psw = [((i * 3) % 7 - 3) * 0.25 for i in range(n)]
    idx, off = torch.tensor(indices), torch.tensor(offsets)
    bag = torch.ops.quantized.embedding_bag_byte_rowwise_offsets
    return {
        "rows": rows,
        "dim": dim,
        "table": w.reshape(-1).tolist(),
        "packed": packed.reshape(-1).tolist(),
        "indices": indices,
        "offsets": offsets,
        "per_sample_weights": psw,
        # A lookup: bags of one index each.
        "lookup": bag(packed, idx, torch.arange(n), False, 0).reshape(-1).tolist(),
        "sum": bag(packed, idx, off, False, 0).reshape(-1).tolist(),
        "weighted_sum": bag(packed, idx, off, False, 0, False,
                            torch.tensor(psw, dtype=torch.float32)).reshape(-1).tolist(),
    }


def main():
    torch.set_num_threads(1)
    fixture = {"torch": torch.__version__, "cases": [case(29, 6, 1), case(17, 16, 2)]}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "int8.json")
    with open(path, "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print(f"wrote {path} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
