#!/usr/bin/env bash
# Issue #15's figures, ours and PyTorch's, in one call (BENCHMARKS.md).
#
#   scripts/gpu-bench.sh [issue|small|tiny] [out-dir]
#
# On the lent GPU machine, the prepared command carries `.gl` (the Vulkan
# loader's .debs, see shared PLATFORM notes) and target/release/wgpu-embed;
# this unpacks the loader, points Vulkan at NVIDIA's driver, lists the
# adapters, runs `wgpu-embed figures` on Vulkan and scripts/torch_figures.py,
# and writes ours.json, torch.json and table.md into out-dir. Anywhere else
# it runs on the machine's own Vulkan adapter (lavapipe: use `small`).
set -uo pipefail
size="${1:-issue}"
out="${2:-target/figures}"
cd "$(dirname "$0")/.."
mkdir -p "$out"
if ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
nvidia=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$nvidia" ]; then
    export VK_DRIVER_FILES="$nvidia"
fi
bin="${WGPU_EMBED_BIN:-target/release/wgpu-embed}"
status=0
"$bin" adapters | tee "$out/adapters.txt"
"$bin" figures --size "$size" --backend vulkan --out "$out/ours.json" || status=1
if python3 -c "import torch" 2>/dev/null; then
    python3 scripts/torch_figures.py --size "$size" --out "$out/torch.json" || status=1
else
    echo "no PyTorch here: the table has our side only" >&2
fi
if [ -f "$out/ours.json" ]; then
    python3 scripts/figures_table.py "$out/ours.json" "$out/torch.json" | tee "$out/table.md"
fi
exit "$status"
