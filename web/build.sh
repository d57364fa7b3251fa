#!/usr/bin/env bash
# Builds the page's wasm module into web/pkg (wasm-bindgen, no bundler).
# Serve web/ (python3 -m http.server -d web) and open index.html.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir pkg \
    "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/wgpu_embed_web.wasm"
