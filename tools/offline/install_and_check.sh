#!/usr/bin/env bash
# Install the offline kit (tools/offline/prepare.sh) next to the machine's own
# PyTorch, without network access, then run the GPU check (docs/gpu.md):
#
#     tools/offline/install_and_check.sh DIR [--target SITE] [-- CHECK_ARGS...]
#
# Everything goes into SITE (default /tmp/gtpt-offline-site-X.Y), a folder put
# first on PYTHONPATH: the machine's torch, torchvision, numpy and the rest
# stay as they are. mmcv 2.1.0 and xtcocotools are compiled there, against
# that torch and numpy; mmcv with its CPU ops only (CUDA hidden from the
# build), which is what MMPose needs to import and GTPT to run. Then this
# repository, with --no-deps. A second run reuses what is already installed.
#
#     PYTHON  the interpreter that has torch (default python3)
#     MAX_JOBS  compile jobs for mmcv (default: the number of cores)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)

usage() {
  echo "usage: $0 DIR [--target SITE] [-- CHECK_ARGS...]" >&2
  exit 2
}
[ $# -ge 1 ] || usage
DIR=$(cd "$1" 2>/dev/null && pwd) || {
  echo "install_and_check.sh: no kit folder '$1' (make one with" \
    "tools/offline/prepare.sh)" >&2
  exit 2
}
shift
SITE=
while [ $# -gt 0 ]; do
  case $1 in
    --target) [ $# -ge 2 ] || usage; SITE=$2; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
PY=${PYTHON:-python3}
log() { printf '\033[1m[offline]\033[0m %s\n' "$*"; }
die() { echo "install_and_check.sh: $*" >&2; exit 1; }

# the kit is whole and made for this Python
if [ ! -f "$DIR/KIT" ] || [ ! -f "$DIR/SHA256SUMS" ]; then
  die "$DIR is not a kit (no KIT or SHA256SUMS; see tools/offline/prepare.sh)"
fi
(cd "$DIR" && sha256sum --quiet -c SHA256SUMS) ||
  die "$DIR: files missing or damaged (SHA256SUMS)"
want=$(sed -n 's/^python=//p' "$DIR/KIT")
have=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') ||
  die "cannot run $PY"
[ "$want" = "$have" ] ||
  die "the kit is for Python $want, $PY is $have (prepare.sh --python $have)"
"$PY" -c 'import torch, torchvision' 2>/dev/null ||
  die "$PY has no working torch and torchvision: the kit brings neither"
SITE=${SITE:-/tmp/gtpt-offline-site-$have}
mkdir -p "$SITE"
SITE=$(cd "$SITE" && pwd)
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_NO_CACHE_DIR=1
PIP=("$PY" -m pip install -q --no-deps --no-compile --upgrade --target "$SITE")

log "$("$PY" -c 'import sys, torch; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}")')"
log "site folder $SITE (first on PYTHONPATH)"
# the kit files (wheels, sources) not installed in SITE at their version
missing() {
  "$PY" - "$SITE" "$@" <<'PYEOF'
import re, sys
from importlib import metadata
site, files = sys.argv[1], sys.argv[2:]
norm = lambda name: re.sub(r'[-_.]+', '-', name).lower()
have = {(norm(d.metadata['Name']), d.version)
        for d in metadata.distributions(path=[site])}
for path in files:
    base = re.sub(r'(\.whl|\.tar\.gz)$', '', path.rsplit('/', 1)[-1])
    name, version = base.split('-')[:2]
    if (norm(name), version) not in have:
        print(path)
PYEOF
}

mapfile -t todo < <(missing "$DIR"/wheels/*.whl)
if [ ${#todo[@]} -gt 0 ]; then
  log "installing ${#todo[@]} wheels"
  "${PIP[@]}" "${todo[@]}"
fi

# xtcocotools: seconds; Cython and numpy are the machine's
src=$(ls "$DIR"/sdist/xtcocotools-*.tar.gz)
if [ -n "$(missing "$src")" ] || ! "$PY" -c 'import xtcocotools.coco' 2>/dev/null; then
  log "building xtcocotools against numpy $("$PY" -c 'import numpy; print(numpy.__version__)')"
  "${PIP[@]}" --no-build-isolation "$src"
fi

# mmcv: its CPU ops against this torch. CUDA is hidden so that setup.py builds
# no CUDA kernels (minutes more, and not needed).
src=$(ls "$DIR"/sdist/mmcv-*.tar.gz)
if [ -n "$(missing "$src")" ] || ! "$PY" -c 'import mmcv.ops' 2>/dev/null; then
  jobs=${MAX_JOBS:-$(nproc)}
  log "building mmcv with CPU ops ($jobs jobs)"
  start=$(date +%s)
  CUDA_VISIBLE_DEVICES='' FORCE_CUDA=0 MMCV_WITH_OPS=1 MAX_JOBS=$jobs \
    "${PIP[@]}" --no-build-isolation "$src"
  log "mmcv built in $(( $(date +%s) - start )) s"
fi

log "installing gtpt_mmpose from $REPO"
"${PIP[@]}" --no-build-isolation "$REPO"

log "checking the stack"
(cd / && "$PY" - <<'PYEOF'
import importlib, sys, warnings
warnings.filterwarnings('ignore')
failed = []
for mod in ('torch', 'torchvision', 'mmcv.ops', 'mmengine', 'mmpose.models',
            'mmdet', 'xtcocotools.coco', 'pycocotools.coco', 'gtpt_mmpose'):
    try:
        importlib.import_module(mod)
    except Exception as exc:  # report every failure, not just the first
        failed.append(f'  import {mod}: {type(exc).__name__}: {exc}')
if failed:
    sys.exit('[offline] the environment is NOT usable:\n' + '\n'.join(failed))
import mmcv, mmdet, mmengine, mmpose, torch
print(f'[offline] ok: torch {torch.__version__}, mmcv {mmcv.__version__}, '
      f'mmengine {mmengine.__version__}, mmpose {mmpose.__version__}, '
      f'mmdet {mmdet.__version__}')
PYEOF
)

log "PYTHONPATH=$SITE for later runs"
cd "$REPO"
exec "$PY" tools/gpu_check/check.py "$@"
