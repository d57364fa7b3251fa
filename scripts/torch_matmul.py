"""torch.matmul in fp32 with TF32 off: the reference beside `cargo bench --bench matmul`.

Square products on one device, timed with CUDA events (or the wall clock on
the CPU) after warm-up; prints the median time and GFLOP/s (2·n³ per product).

    python3 scripts/torch_matmul.py --device cuda --sizes 1024,4096
"""

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", default="256,512,1024,4096")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    # Plain fp32 FMAs, as our kernel does: no TF32 tensor cores.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    for n in (int(s) for s in args.sizes.split(",")):
        x = torch.randn(n, n, device=device)
        y = torch.randn(n, n, device=device)
        for _ in range(3):
            torch.matmul(x, y)
        times = []
        for _ in range(args.reps):
            if device.type == "cuda":
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                torch.matmul(x, y)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t = time.perf_counter()
                torch.matmul(x, y)
                times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(
            f"torch.matmul {n}^3 fp32 (TF32 off) on {name}: median {med * 1e3:.3f} ms, "
            f"best {min(times) * 1e3:.3f} ms = {2 * n**3 / min(times) / 1e9:.0f} GFLOP/s"
        )


if __name__ == "__main__":
    main()
