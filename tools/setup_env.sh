#!/usr/bin/env bash
# Installs the verified stack (README "Environment") into .venv/.
# Idempotent: every step checks first, so a second run on a ready machine
# takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
C=requirements/constraints.txt
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
has() { "$VENV/bin/python" - "$@" <<'PYEOF'
import sys
from importlib import metadata
name, want = sys.argv[1], sys.argv[2]
try:
    sys.exit(0 if metadata.version(name) == want else 1)
except metadata.PackageNotFoundError:
    sys.exit(1)
PYEOF
}

has setuptools 80.10.2 || "${PIP[@]}" install -q -c "$C" setuptools wheel

# torch: '===' asks for the standard build; the '+cpu' file on this workplace's disk would win a
# plain '==' and breaks PyPI's torchvision ('operator torchvision::nms does not exist').
if ! has torch 2.13.0 || ! has torchvision 0.28.0; then
  log "installing torch 2.13.0 (standard build) and torchvision 0.28.0"
  "${PIP[@]}" install -q -c "$C" 'torch===2.13.0' torchvision
fi

log "installing runtime requirements"
"${PIP[@]}" install -q -c "$C" -r requirements/runtime.txt -r requirements/deploy.txt Cython ninja psutil

# `make lint`: MMPose's linters at the pinned versions (settings in setup.cfg)
if ! has flake8 7.5.0 || ! has isort 9.0.2 || ! has yapf 0.43.0; then
  log "installing flake8, isort and yapf"
  "${PIP[@]}" install -q -c "$C" flake8 isort yapf
fi

# mmengine's and mmcv's metadata ask for opencv-python (the GUI build); we use the headless one.
has mmengine 0.10.7 || "${PIP[@]}" install -q -c "$C" --no-deps mmengine==0.10.7

# mmcv 2.1.0 has no wheel on PyPI: build it with its compiled ops (CPU ops on a machine without a
# GPU) unless PIP_FIND_LINKS offers one. pip caches the built wheel for the next set-up.
if ! has mmcv 2.1.0 || ! "$VENV/bin/python" -c 'import mmcv.ops' 2>/dev/null; then
  log "installing mmcv 2.1.0 with ops (a source build takes about 11 minutes on 2 cores)"
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" install -c "$C" --no-deps --no-build-isolation mmcv==2.1.0
fi

# Two OpenCV builds share the cv2 folder; if the GUI one slipped in, remove it and restore headless.
if "$VENV/bin/python" -m pip show -q opencv-python >/dev/null 2>&1; then
  log "replacing opencv-python with opencv-python-headless"
  "${PIP[@]}" uninstall -q -y opencv-python
  "${PIP[@]}" install -q -c "$C" --force-reinstall --no-deps opencv-python-headless
fi

# xtcocotools' PyPI wheel is built against numpy 1.x; build it against the installed numpy 2.
if ! has xtcocotools 1.14.3 || ! "$VENV/bin/python" -c 'import xtcocotools.coco' 2>/dev/null; then
  log "building xtcocotools against numpy $("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)')"
  "${PIP[@]}" install -q -c "$C" --force-reinstall --no-deps --no-binary xtcocotools --no-build-isolation xtcocotools
fi

# Their metadata asks for chumpy (does not build), opencv-python (GUI) and opendatalab (old
# setuptools); the real runtime needs are in requirements/runtime.txt.
for pkg in mmpose:1.3.2 mmdet:3.3.0 openmim:0.3.9; do
  name=${pkg%%:*}; ver=${pkg##*:}
  has "$name" "$ver" || "${PIP[@]}" install -q -c "$C" --no-deps "$name==$ver"
done

# This package, editable, so that the working tree is what runs.
REPO=$(pwd)
# A regular install, as users get it: configs and tools are copied under gtpt_mmpose/.mim, which
# is where `mim train gtpt_mmpose` looks (`make test` and `make demo` refresh it; ~1 s).
log "installing gtpt_mmpose"
"${PIP[@]}" install -q --no-deps --no-build-isolation .

log "checking the stack"
if ! (cd / && "$REPO/$VENV/bin/python" - <<'PYEOF'
import importlib, sys, warnings
warnings.filterwarnings('ignore')
failed = []
for mod in ('torch', 'torchvision.ops', 'mmcv.ops', 'mmengine', 'mmpose.models', 'mmdet',
            'xtcocotools.coco', 'onnxruntime', 'openvino', 'mim', 'gtpt_mmpose'):
    try:
        importlib.import_module(mod)
    except Exception as exc:  # report every failure, not just the first
        failed.append(f'  import {mod}: {type(exc).__name__}: {exc}')
if failed:
    print('[setup] the environment is NOT usable:\n' + '\n'.join(failed), file=sys.stderr)
    sys.exit(1)
import torch, mmcv, mmpose, mmdet, mmengine
print(f'[setup] ok: torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, '
      f'mmpose {mmpose.__version__}, mmdet {mmdet.__version__}')
PYEOF
); then
  exit 1
fi
