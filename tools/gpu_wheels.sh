#!/usr/bin/env bash
# Collects, on a machine with the package index, what the lent GPU machine lacks for
# tools/gpu_train.sh, into two git-ignored folders of the repository root to carry there:
#   .whl/  Python 3.12 x86-64 wheels: moderngl + glcontext (the renderer's OpenGL binding).
#          The GPU image already has torch 2.11, numpy, opencv-python-headless, pyyaml,
#          scipy and tqdm (/work/.library/device/KINDS.md): nothing else is imported by the
#          data writer, the training or the evaluation.
#   .gl/   the GL/EGL loader packages (libglvnd: libegl1 libgl1 libglx0 libopengl0
#          libglvnd0), unpacked there only when its linker cache has no libEGL/libGL.
#   tools/gpu_wheels.sh [--no-gl]
# Then, with the device tool: run(command="bash tools/gpu_train.sh $OUT --minutes 9",
#                                 carry=[".whl", ".gl"], timeout_s=600)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHEELS="moderngl==5.13.0 glcontext==3.1.0"
GL_DEBS="libegl1 libgl1 libglx0 libopengl0 libglvnd0"
PIP="python3 -m pip"
[ -x "$ROOT/.venv/bin/python" ] && PIP="$ROOT/.venv/bin/python -m pip"

exclude="$(git rev-parse --git-path info/exclude 2>/dev/null || true)"
for d in .whl .gl; do
  if [ -n "$exclude" ] && ! git check-ignore -q "$d/x" 2>/dev/null; then
    mkdir -p "$(dirname "$exclude")"; echo "/$d/" >>"$exclude"
  fi
done

mkdir -p .whl
# shellcheck disable=SC2086
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d .whl $WHEELS
echo "wheels in .whl:"; ls -1 .whl

if [ "${1:-}" != "--no-gl" ]; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update >/dev/null
  # shellcheck disable=SC2086
  (cd .gl && apt-get $o download $GL_DEBS >/dev/null)
  echo "GL/EGL loaders in .gl:"; ls -1 .gl
fi
du -sh .whl .gl 2>/dev/null || true
