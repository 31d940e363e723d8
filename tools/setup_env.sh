#!/usr/bin/env bash
# Installs what is missing for the pip-only ROS 2 path and skips what is there.
# Each step leaves a stamp (keyed by a hash of its inputs) only when it succeeded, so a
# partial install that failed recovers on the next run. A failure names the step.
#
#   tools/setup_env.sh          # idempotent; prints one line per step
#
# Result: .venv/ (Python + ROS 2 Kilted wheels + torch 2.13.0 CPU), build/ros_ws/install
# (autonomy_interfaces, and tf2_msgs where ROS does not provide it) and the env file
# .venv/autonomy_env.sh that nodes, tests and benchmarks source.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AUTONOMY_VENV:-$ROOT/.venv}"
WS="$ROOT/build/ros_ws"
STAMPS="$VENV/.stamps"
LOGDIR="$ROOT/build/setup_logs"
PYTHON_BOOT="${PYTHON:-python3}"
mkdir -p "$LOGDIR"

fail() { echo "setup: step '$1' FAILED -- see $2" >&2; tail -n 20 "$2" >&2; exit 1; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

# 1. virtual environment
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sys" >/dev/null 2>&1; then
  echo "setup: [venv] creating $VENV"
  rm -rf "$VENV"
  "$PYTHON_BOOT" -m venv "$VENV" >"$LOGDIR/venv.log" 2>&1 || fail venv "$LOGDIR/venv.log"
  "$VENV/bin/python" -m pip install -q --upgrade pip >>"$LOGDIR/venv.log" 2>&1 || true
else
  echo "setup: [venv] ok"
fi
PY="$VENV/bin/python"

# 2. Python packages (ROS 2 Kilted wheels, torch pinned, numerics, bags, rendering)
H=$(hash_of "$ROOT/tools/requirements.txt" "$ROOT/tools/constraints.txt")
if stamp_ok pip "$H" && "$PY" -c "import rclpy, torch, cv2, scipy, rosbags, moderngl, osqp, rerun" >/dev/null 2>&1; then
  echo "setup: [pip] ok"
else
  echo "setup: [pip] installing Python packages (ROS 2 wheels, torch==2.13.0, ...)"
  "$PY" -m pip install -r "$ROOT/tools/requirements.txt" -c "$ROOT/tools/constraints.txt" \
    >"$LOGDIR/pip.log" 2>&1 || fail pip "$LOGDIR/pip.log"
  stamp_set pip "$H"
fi

# 3. system libraries for headless OpenGL (Mesa EGL) used by the simulator's renderer
if "$PY" -c "import moderngl; moderngl.create_standalone_context(backend='egl').release()" >/dev/null 2>&1; then
  echo "setup: [egl] ok"
else
  echo "setup: [egl] installing Mesa EGL (apt-get)"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y libegl1 libgl1-mesa-dri libegl-mesa0) \
      >"$LOGDIR/apt.log" 2>&1 || fail egl "$LOGDIR/apt.log"
  else
    (sudo -n apt-get update && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y libegl1 libgl1-mesa-dri libegl-mesa0) \
      >"$LOGDIR/apt.log" 2>&1 || fail "egl (needs root: apt-get install libegl1 libgl1-mesa-dri libegl-mesa0)" "$LOGDIR/apt.log"
  fi
fi

# 3b. Debian's chromium for the live view's browser test (tests/test_live_view.py skips without it)
if [ -x /usr/bin/chromium ]; then
  echo "setup: [chromium] ok"
else
  echo "setup: [chromium] installing Debian's chromium (apt-get) for the browser test"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium) \
      >"$LOGDIR/apt_chromium.log" 2>&1 || echo "setup: [chromium] not installed (see $LOGDIR/apt_chromium.log): the browser test will skip"
  else
    (sudo -n apt-get update && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y chromium) \
      >"$LOGDIR/apt_chromium.log" 2>&1 || echo "setup: [chromium] not installed (needs root: apt-get install chromium): the browser test will skip"
  fi
fi

# 4. the wheels' CMake files hard-code the wheel builder's Python include dirs
if stamp_ok cmake_fix "$H"; then
  echo "setup: [cmake-fix] ok"
else
  echo "setup: [cmake-fix] rewriting Python include dirs in the wheels' CMake files"
  "$PY" "$ROOT/tools/fix_cmake_paths.py" "$VENV" >"$LOGDIR/cmake_fix.log" 2>&1 || fail cmake-fix "$LOGDIR/cmake_fix.log"
  stamp_set cmake_fix "$H"
fi

# 5. colcon build of the interfaces (+ tf2_msgs from its public definition, pip path only)
HI=$(find "$ROOT/interfaces" -type f | sort | xargs cat | sha256sum | cut -c1-16)
if stamp_ok colcon "$HI-$H" && [ -f "$WS/install/setup.bash" ]; then
  echo "setup: [interfaces] ok"
else
  echo "setup: [interfaces] colcon build autonomy_interfaces tf2_msgs (~1 min)"
  rm -rf "$WS"; mkdir -p "$WS"
  (
    source "$VENV/bin/activate"
    export AMENT_PREFIX_PATH="$VENV"
    export CMAKE_PREFIX_PATH="$VENV"
    cd "$WS" && colcon --log-base "$WS/log" build \
      --build-base "$WS/build" --install-base "$WS/install" \
      --paths "$ROOT/interfaces/autonomy_interfaces" "$ROOT/interfaces/pip_fallback/tf2_msgs" \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$PY" \
      --event-handlers console_direct-
  ) >"$LOGDIR/colcon.log" 2>&1 || fail interfaces "$LOGDIR/colcon.log"
  stamp_set colcon "$HI-$H"
fi

# 6. the stack itself, editable, so console_scripts (autonomy-stack, nodes) are on PATH
HS=$(hash_of "$ROOT/setup.py" "$ROOT/setup.cfg")
if stamp_ok package "$HS" && "$VENV/bin/autonomy-stack" --help >/dev/null 2>&1; then
  echo "setup: [package] ok"
else
  echo "setup: [package] pip install -e . (console scripts)"
  "$PY" -m pip install --no-deps --no-build-isolation -e "$ROOT" >"$LOGDIR/package.log" 2>&1 || fail package "$LOGDIR/package.log"
  stamp_set package "$HS"
fi

# 6b. ament index: `pip install -e` (PEP 660) installs no data_files, so launch_ros would
# not find the package. Register it in the venv prefix (on AMENT_PREFIX_PATH) the way
# colcon does: the package marker, share/autonomy_stack/{package.xml,launch,config,rviz,
# models} as links into this tree, and lib/autonomy_stack/<node> linking the console
# scripts (setup.py NODES). Links only: idempotent, ~0.1 s, always run.
"$PY" - "$ROOT" "$VENV" >"$LOGDIR/ament_index.log" 2>&1 <<'PYEOF' || fail ament-index "$LOGDIR/ament_index.log"
import ast, os, sys
from pathlib import Path
root, prefix = Path(sys.argv[1]), Path(sys.argv[2])
pkg = "autonomy_stack"
nodes = next(ast.literal_eval(n.value) for n in ast.parse((root / "setup.py").read_text()).body
             if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "NODES")
def link(target, path):
    if path.is_symlink() and os.readlink(path) == str(target):
        return
    if path.is_symlink() or path.is_file():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
marker = prefix / "share/ament_index/resource_index/packages" / pkg
marker.parent.mkdir(parents=True, exist_ok=True)
marker.touch()
for item in ("package.xml", "launch", "config", "rviz", "models"):
    if (root / item).exists():
        link(root / item, prefix / "share" / pkg / item)
missing = []
for exe in nodes:
    script = prefix / "bin" / exe
    if script.exists():
        link(script, prefix / "lib" / pkg / exe)
    else:
        missing.append(exe)
print(f"registered {pkg}: {len(nodes) - len(missing)} executables in {prefix / 'lib' / pkg}"
      + (f"; console scripts missing (reinstall the package): {missing}" if missing else ""))
PYEOF
echo "setup: [ament-index] $(tail -n 1 "$LOGDIR/ament_index.log")"

# 7. env file that nodes, tests and benchmarks source
ENVF="$VENV/autonomy_env.sh"
cat >"$ENVF.tmp" <<ENVEOF
# Generated by tools/setup_env.sh -- source it before running nodes by hand.
source "$VENV/bin/activate"
export AMENT_PREFIX_PATH="$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
source "$WS/install/setup.bash"
# the source tree first: every top-level package (also ones added after the editable install)
export PYTHONPATH="$ROOT\${PYTHONPATH:+:\$PYTHONPATH}"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE=\${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export FASTDDS_DEFAULT_PROFILES_FILE="$ROOT/config/fastdds_profile.xml"
export AUTONOMY_STACK_ROOT="$ROOT"
ENVEOF
mv "$ENVF.tmp" "$ENVF"
echo "setup: [env] $ENVF"
