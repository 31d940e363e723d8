"""Helpers for tests that talk to nodes over DDS: start node processes with the same
arguments the runner uses, spin until a condition holds (always with a time limit)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent


def node_command(executable: str, name: Optional[str] = None, params_files: Sequence[str] = (),
                 params: Optional[Dict[str, object]] = None,
                 remaps: Optional[Dict[str, str]] = None) -> List[str]:
    """argv for a node executable (console script in the venv)."""
    exe = Path(sys.executable).parent / executable
    cmd = [str(exe), "--ros-args"]
    if name:
        cmd += ["-r", f"__node:={name}"]
    for f in params_files:
        p = Path(f)
        cmd += ["--params-file", str(p if p.is_absolute() else ROOT / "config" / p)]
    for k, v in (params or {}).items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        cmd += ["-p", f"{k}:={v}"]
    for a, b in (remaps or {}).items():
        cmd += ["-r", f"{a}:={b}"]
    return cmd


def start_node(executable: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(node_command(executable, **kw), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    """SIGINT, then SIGKILL after `timeout`; returns the process output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    out = proc.stdout.read() if proc.stdout else ""
    return out


def spin_until(node, predicate: Callable[[], bool], timeout: float, executor=None) -> bool:
    import rclpy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if executor is not None:
            executor.spin_once(timeout_sec=0.05)
        else:
            rclpy.spin_once(node, timeout_sec=0.05)
    return predicate()


def wait_for_subscribers(node, publisher, timeout: float = 10.0, count: int = 1) -> bool:
    return spin_until(node, lambda: publisher.get_subscription_count() >= count, timeout)


def wait_for_publishers(node, subscription_topic: str, timeout: float = 10.0) -> bool:
    return spin_until(node, lambda: node.count_publishers(subscription_topic) > 0, timeout)
