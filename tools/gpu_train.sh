#!/usr/bin/env bash
# GPU training in one command (issue 14): data in parallel, training, held-out evaluation,
# checkpoint + metrics + timing + log into OUT_DIR. See autonomy_tools/gpu_train.py
# (`--help` lists every option) and models/README.md ("GPU training").
#
#   tools/gpu_train.sh OUT_DIR [--minutes 9] [--workers 16] [--device cuda|cpu] [...]
#
# On the lent GPU machine (Python 3.12 + torch 2.11, no package index) it first sets up
# what tools/gpu_wheels.sh collected here and the run carried (carry: .whl, .gl):
#  - moderngl/glcontext missing -> installs .whl/*.whl into /tmp/site (PYTHONPATH);
#  - no EGL/GL loader in the linker cache on an NVIDIA machine (root) -> unpacks .gl/*.deb
#    into / and runs ldconfig; the NVIDIA EGL vendor file is named if it exists there.
# On a machine that has all of it (this repository's .venv) nothing is installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY="$(command -v python3)"; fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

if ! "$PY" -c "import moderngl, glcontext" >/dev/null 2>&1; then
  if ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
    echo "gpu_train.sh: installing the carried wheels (.whl) into /tmp/site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "$ROOT"/.whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
  else
    echo "gpu_train.sh: moderngl is missing and no .whl/ was carried (run tools/gpu_wheels.sh first)" >&2
    exit 2
  fi
fi

nvidia=0
if command -v nvidia-smi >/dev/null 2>&1 || [ -d /usr/local/nvidia ]; then nvidia=1; fi
if [ "$nvidia" = 1 ]; then
  if ! { ldconfig -p | grep -q 'libEGL.so.1' && ldconfig -p | grep -q 'libGL.so.1'; }; then
    if ls "$ROOT"/.gl/*.deb >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "gpu_train.sh: unpacking the carried GL/EGL loaders (.gl/*.deb)"
      for f in "$ROOT"/.gl/*.deb; do dpkg -x "$f" /; done
      ldconfig
    else
      echo "gpu_train.sh: warning: no EGL/GL loader found and no .gl/*.deb carried (tools/gpu_wheels.sh)" >&2
    fi
  fi
  vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -f "$vendor" ]; then
    export __EGL_VENDOR_LIBRARY_FILENAMES="$vendor"
  fi
fi

exec "$PY" -m autonomy_tools.gpu_train "$@"
