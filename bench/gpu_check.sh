#!/usr/bin/env bash
# bench/gpu_check.sh [--dry-run] [ARGS]: the GPU path in one command (issue 19), < 9 min on
# one CUDA GPU: CUDA tests, perception path variants (p50/p95), profiler summary.
# Needs the CUDA torch wheel (tools/gpu_wheels.sh) on the GPU machine; --dry-run runs the
# CPU parts anywhere and prints the JSON schema. Last line: JSON (see bench/gpu_check.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=python3
if [ -f "$ROOT/.venv/autonomy_env.sh" ]; then
  # shellcheck disable=SC1091
  set +u; source "$ROOT/.venv/autonomy_env.sh"; set -u; PY=python
else    # the lent GPU machine: its own torch/numpy/opencv, this tree on the path
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
cd "$ROOT"
exec timeout 530 "$PY" bench/gpu_check.py "$@"
