#!/usr/bin/env python3
"""BENCHMARKS.md's table from `wgpu-embed figures` (ours) and, when given and
present, scripts/torch_figures.py (PyTorch's): each figure's time, its ratio
to its in-run reference, the speed ratio against PyTorch, and the goal.

    python3 scripts/figures_table.py target/figures/ours.json [target/figures/torch.json]
"""

import json
import os
import sys


def goal(name, ours, torch):
    """(the figure that matters, its value, the goal, met?) for one row."""
    ms, ref = ours["ms"], ours.get("reference_ms")
    speed = torch["ms"] / ms if torch else None  # > 1: ours is faster
    if name.startswith("gather forward"):
        return [("copy / ours", ref / ms, ">= 0.8"), ("torch / ours", speed, ">= 1.0")]
    if name.startswith("deterministic backward"):
        return [("ours / our forward", ms / ref, "<= 3"), ("torch / ours", speed, ">= 1.0")]
    if name.startswith("embedding_bag"):
        return [("torch / ours", speed, ">= 1.0")]
    if name.startswith("matmul"):
        gflops = ours["params"]["gflop"] / (ms / 1e3)
        return [("GFLOP/s", gflops, ""), ("ours / cuBLAS speed", speed, ">= 0.6")]
    if name.startswith("dense Adam"):
        # exact_arith's checked path against its general functions alone.
        return [("general / checked", ref / ms, "")]
    if name == "normal fill":
        # The fill writes its bytes once, a copy reads and writes them.
        return [("fill / copy bandwidth", ref / (2 * ms), ">= 0.5")]
    return []


def met(value, target):
    if value is None or not target:
        return ""
    op, bound = target.split()
    return "yes" if (value >= float(bound) if op == ">=" else value <= float(bound)) else "no"


def same_size(ours, torch):
    """Whether two figures of one name measured the same sizes: the
    parameters both record agree (a figure's name does not say its size)."""
    a, b = ours.get("params", {}), torch.get("params", {})
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def main():
    ours = json.load(open(sys.argv[1]))
    torch = {}
    if len(sys.argv) > 2 and os.path.exists(sys.argv[2]):
        t = json.load(open(sys.argv[2]))
        torch = {f["name"]: f for f in t["figures"]}
        print(f"PyTorch: {t['adapter']} ({t['clock']})")
    print(f"ours: {ours['adapter']}, driver {ours['driver']} ({ours['clock']}, median of {ours['reps']})\n")
    print("| figure | ours ms | PyTorch ms | measure | value | goal | met |")
    print("|---|---|---|---|---|---|---|")
    for f in ours["figures"]:
        t = torch.get(f["name"])
        if t and not same_size(f, t):
            print(f"(PyTorch's {f['name']} ran at other sizes: {t.get('params')}; not compared)")
            t = None
        for measure, value, target in goal(f["name"], f, t):
            shown = "n/a" if value is None else f"{value:.3g}"
            tms = f"{t['ms']:.3f}" if t else "n/a"
            print(f"| {f['name']} | {f['ms']:.3f} | {tms} | {measure} | {shown} | {target} | {met(value, target)} |")


if __name__ == "__main__":
    main()
