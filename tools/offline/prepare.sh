#!/usr/bin/env bash
# Prepare the offline kit: everything a machine without network access needs,
# besides its own PyTorch, to install this package and run the GPU check
# (docs/gpu.md). Run it on a networked machine with pip:
#
#     tools/offline/prepare.sh DIR [--python 3.12]
#
# DIR receives wheels/ (pure-Python wheels and wheels for the target Python),
# sdist/ (mmcv and xtcocotools, built on the target machine), KIT (the target
# Python) and SHA256SUMS. What goes in, and why, is tools/offline/kit.txt;
# versions come from requirements/constraints.txt. The kit must stay under
# 64 MiB (what the GPU machines of this workplace accept with a working tree).
# tools/offline/install_and_check.sh DIR installs it there and runs the check.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
KIT_LIST=$REPO/tools/offline/kit.txt
CONSTRAINTS=$REPO/requirements/constraints.txt
LIMIT_MIB=64

usage() { echo "usage: $0 DIR [--python X.Y]" >&2; exit 2; }
[ $# -ge 1 ] || usage
DIR=$1; shift
TARGET_PY=3.12
while [ $# -gt 0 ]; do
  case $1 in
    --python) [ $# -ge 2 ] || usage; TARGET_PY=$2; shift 2 ;;
    *) usage ;;
  esac
done
case $TARGET_PY in
  3.[0-9]|3.[0-9][0-9]) ;;
  *) echo "prepare.sh: --python must look like 3.12, got '$TARGET_PY'" >&2; exit 2 ;;
esac
HOST_PY=${PYTHON:-python3}
log() { printf '\033[1m[prepare]\033[0m %s\n' "$*"; }

# the names of one section of kit.txt, comments stripped
section() {
  awk -v want="[$1]" '
    /^\[/ { on = ($1 == want); next }
    on { sub(/#.*/, ""); if (NF) print $1 }' "$KIT_LIST"
}

mapfile -t PURE < <(section pure)
mapfile -t BINARY < <(section binary)
mapfile -t SOURCE < <(section source)

# Build into a fresh folder and move it into place at the end, so that a
# failed run never leaves a half-made kit behind.
mkdir -p "$(dirname "$DIR")"
WORK=$(mktemp -d "${DIR%/}.partial.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/wheels" "$WORK/sdist"
PIP=("$HOST_PY" -m pip --disable-pip-version-check)
# the tags of a CPython X.Y wheel for x86_64 Linux
ABI=cp${TARGET_PY/./}
PLATFORMS=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 \
         manylinux2014 manylinux1; do
  PLATFORMS+=(--platform "${p}_x86_64")
done

log "pure-Python wheels"
"${PIP[@]}" download -q --no-deps --only-binary=:all: -c "$CONSTRAINTS" \
  --python-version "$TARGET_PY" --implementation py --abi none \
  --platform any -d "$WORK/wheels" "${PURE[@]}"

log "wheels for CPython $TARGET_PY, x86_64 Linux"
"${PIP[@]}" download -q --no-deps --only-binary=:all: -c "$CONSTRAINTS" \
  --python-version "$TARGET_PY" --implementation cp --abi "$ABI" \
  "${PLATFORMS[@]}" -d "$WORK/wheels" "${BINARY[@]}"

# pip prepares a source package's metadata even to download it: mmcv's
# setup.py needs pkg_resources and xtcocotools' needs numpy, so it runs in a
# throwaway environment that has them (no torch: mmcv's metadata needs none).
log "source packages"
"$HOST_PY" -m venv "$WORK/build-env"
BUILD_PIP=("$WORK/build-env/bin/python" -m pip --disable-pip-version-check)
"${BUILD_PIP[@]}" install -q -c "$CONSTRAINTS" setuptools numpy Cython
"${BUILD_PIP[@]}" download -q --no-deps --no-binary=:all: \
  --no-build-isolation -c "$CONSTRAINTS" -d "$WORK/sdist" "${SOURCE[@]}"
rm -rf "$WORK/build-env"

echo "python=$TARGET_PY" > "$WORK/KIT"
(cd "$WORK" && find wheels sdist -type f | sort | xargs sha256sum > SHA256SUMS)

size=$(du -sb "$WORK" | cut -f1)
if [ "$size" -gt $((LIMIT_MIB * 1024 * 1024)) ]; then
  echo "prepare.sh: the kit is $((size / 1024 / 1024)) MiB, over" \
    "$LIMIT_MIB MiB" >&2
  exit 1
fi
rm -rf "$DIR"
mv "$WORK" "$DIR"
trap - EXIT
log "$DIR: $(awk 'END {print NR}' "$DIR/SHA256SUMS") files," \
  "$(du -sh "$DIR" | cut -f1) (CPython $TARGET_PY)"
(cd "$DIR" && du -b wheels/* sdist/* | awk '{printf "  %8.1f KiB  %s\n", $1 / 1024, $2}')
