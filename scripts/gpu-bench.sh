#!/usr/bin/env bash
# Issue #15's figures, ours and PyTorch's, in one call (BENCHMARKS.md).
#
#   scripts/gpu-bench.sh [issue|small|tiny] [out-dir]
#   scripts/gpu-bench.sh pack-tests     # here, before: the test suite, packed
#   scripts/gpu-bench.sh prepare        # here, before: everything the GPU run carries
#
# prepare downloads the Vulkan loader and the GL dispatch libraries NVIDIA's
# Vulkan driver needs into .gl/ (the GPU machine has neither, nor internet),
# builds target/release/wgpu-embed, runs pack-tests, and prints what to
# carry and the one command to run there.
#
# pack-tests builds every test binary (`cargo test --release --no-run`),
# strips them and packs them into target/gpu-tests.tar.xz (one xz stream: the
# binaries share most of their code, so it stays small enough to carry). When
# that file is present, the run on the GPU machine also runs the whole suite
# there on Vulkan (WGPU_BACKEND=vulkan) into out-dir/tests.txt: every
# bit-exact test must pass on the GPU as on the CPU adapters.
#
# On the lent GPU machine, the prepared command carries `.gl` (the Vulkan
# loader's .debs, see shared PLATFORM notes) and target/release/wgpu-embed;
# this unpacks the loader, points Vulkan at NVIDIA's driver, lists the
# adapters, runs `wgpu-embed figures` on Vulkan and scripts/torch_figures.py,
# and writes ours.json, torch.json and table.md into out-dir. Anywhere else
# it runs on the machine's own Vulkan adapter (lavapipe: use `small`).
set -uo pipefail
if [ "${1:-}" = prepare ]; then
    set -e
    cd "$(dirname "$0")/.."
    debs=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    if [ "$(ls .gl/*.deb 2>/dev/null | wc -l)" -lt "${#debs[@]}" ]; then # .gl/ is in .gitignore
        lists="$(mktemp -d)"
        trap 'rm -rf "$lists"' EXIT
        mkdir -p "$lists/partial" "$lists/debs"
        o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
        apt-get "${o[@]}" update -qq
        # Into a scratch folder first: .gl/ gets all of them or none.
        (cd "$lists/debs" && apt-get "${o[@]}" download -qq "${debs[@]}")
        rm -rf .gl && mkdir .gl && mv "$lists"/debs/*.deb .gl/
    fi
    ls .gl
    cargo build --release
    scripts/gpu-bench.sh pack-tests
    du -ch .gl target/release/wgpu-embed target/gpu-tests.tar.xz | tail -n 1
    echo "carry: .gl target/release/wgpu-embed target/gpu-tests.tar.xz"
    echo "run there: scripts/gpu-bench.sh issue \$OUT/figures"
    exit 0
fi
if [ "${1:-}" = pack-tests ]; then
    set -e
    cd "$(dirname "$0")/.."
    dir=target/gpu-tests
    rm -rf "$dir" && mkdir -p "$dir"
    cargo test --release --no-run --message-format=json 2>/dev/null |
        python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])' |
        while read -r name exe; do cp "$exe" "$dir/$name"; done
    strip "$dir"/*
    pwd > "$dir/built-in.txt" # CARGO_MANIFEST_DIR, compiled into the tests
    tar -C target -cf - gpu-tests | xz -9e -T1 > target/gpu-tests.tar.xz
    ls -l target/gpu-tests.tar.xz
    exit 0
fi
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
"$bin" adapters | tee "$out/adapters.txt" || status=1
"$bin" figures --size "$size" --backend vulkan --out "$out/ours.json" || status=1
# A torch.json left by an earlier run must not pair with this run's figures.
rm -f "$out/torch.json"
if python3 -c "import torch" 2>/dev/null; then
    python3 scripts/torch_figures.py --size "$size" --out "$out/torch.json" || status=1
else
    echo "no PyTorch here: the table has our side only" >&2
fi
if [ -f "$out/ours.json" ]; then
    python3 scripts/figures_table.py "$out/ours.json" "$out/torch.json" | tee "$out/table.md" || status=1
fi
# The whole test suite on the GPU, when pack-tests packed it. The tests find
# their fixtures and sources through the path they were built in, so that
# path points here.
if [ -f target/gpu-tests.tar.xz ]; then
    tests="$(mktemp -d)"
    tar -C "$tests" -xJf target/gpu-tests.tar.xz
    built="$(cat "$tests/gpu-tests/built-in.txt")"
    rm "$tests/gpu-tests/built-in.txt"
    if [ -n "$built" ] && [ ! -e "$built" ]; then
        mkdir -p "$(dirname "$built")" && ln -s "$PWD" "$built"
    fi
    : > "$out/tests.txt"
    for t in "$tests"/gpu-tests/*; do
        echo "== $(basename "$t")" | tee -a "$out/tests.txt"
        WGPU_BACKEND=vulkan "$t" 2>&1 | tee -a "$out/tests.txt" | tail -n 3 || status=1
    done
    grep -E "^test result|passed, .* failed" "$out/tests.txt"
fi
exit "$status"
