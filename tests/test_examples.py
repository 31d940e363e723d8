"""The examples run as a user runs them (issue 16: the documented Python API outside ROS
and outside the project's simulator)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_closed_loop_bicycle_example_reaches_its_goal():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "closed_loop_bicycle.py"),
                           "--seconds", "30"], capture_output=True, text=True, timeout=110,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert "goal reached: True" in last and "collision: False" in last, last
