"""Standalone runner: starts the nodes of one graph mode as separate OS processes with the
same `--ros-args` that `ros2 launch` passes (launch is not installable from PyPI).

Prints which nodes are up, forwards Ctrl-C/SIGTERM to every child, stops them all (SIGINT,
then SIGTERM, then SIGKILL after grace periods) and exits non-zero when a node dies
unexpectedly. No rclpy import: "up" means the process is alive and, when rclpy is
importable, that the node name appeared in the ROS graph.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from autonomy_stack.graph import NodeSpec, nodes_for_mode

EXIT_NODE_DIED = 3
EXIT_DOMAIN_BUSY = 6
# topics that many nodes publish by design: another publisher there is no conflict
SHARED_TOPICS = ("/diagnostics", "/rosout", "/parameter_events", "/tf", "/tf_static")


def find_executable(name: str) -> str:
    """Console script of this package: next to the interpreter (venv), in the ament
    lib/<package> directory, or on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        cand = Path(prefix) / "lib" / "autonomy_stack" / name
        if cand.exists():
            return str(cand)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"executable '{name}' not found (is the package installed?)")


@dataclass
class Child:
    spec: NodeSpec
    proc: subprocess.Popen
    log_path: Optional[Path]


class Runner:
    def __init__(self, mode: str, overrides: Optional[Dict[str, Dict[str, object]]] = None,
                 log_dir: Optional[Path] = None, out=sys.stdout):
        self.mode = mode
        self.specs = nodes_for_mode(mode, overrides=overrides)
        self.log_dir = Path(log_dir) if log_dir else None
        self.children: List[Child] = []
        self.out = out
        self._stopping = False

    def command(self, spec: NodeSpec) -> List[str]:
        return [find_executable(spec.executable)] + spec.ros_args()

    def start(self) -> "Runner":
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.specs:
            cmd = self.command(spec)
            if self.log_dir:
                log_path = self.log_dir / f"{spec.key}.log"
                stdout = open(log_path, "w")
            else:
                log_path, stdout = None, None
            # own process group: a Ctrl-C in the terminal reaches the runner, which then
            # stops children in order instead of all of them racing.
            proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.STDOUT if stdout else None,
                                    start_new_session=True)
            self.children.append(Child(spec, proc, log_path))
            self._print(f"[runner] started {spec.fully_qualified_name} "
                        f"({spec.executable}, pid {proc.pid})")
        return self

    def domain_conflicts(self, wait_s: float = 2.0) -> List[str]:
        """What already runs on this ROS domain that this mode's graph would collide with:
        nodes with the same names, or other publishers of the topics the mode publishes (a
        second simulator or planner would drive the same car). Discovery is watched for
        `wait_s` s. [] without rclpy (nothing can be checked)."""
        try:
            # lazy: rclpy only on this path: the module imports without ROS
            import rclpy
        except ImportError:
            return []
        ctx = rclpy.context.Context()
        rclpy.init(context=ctx, args=[])
        node = rclpy.create_node("_autonomy_runner_probe", context=ctx,
                                 enable_rosout=False, start_parameter_services=False)
        names = {s.fully_qualified_name for s in self.specs}
        topics = sorted({t for s in self.specs for t in s.publishes if t not in SHARED_TOPICS})
        found: Dict[str, str] = {}
        try:
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                for n, ns in node.get_node_names_and_namespaces():
                    fq = f"{ns.rstrip('/')}/{n}"
                    if fq in names:
                        found[fq] = f"node {fq} is already running"
                for t in topics:
                    for info in node.get_publishers_info_by_topic(t):
                        if info.node_name != node.get_name():
                            who = f"{info.node_namespace.rstrip('/')}/{info.node_name}"
                            found.setdefault(f"{t}:{who}", f"{who} already publishes {t}")
                time.sleep(0.1)
        finally:
            node.destroy_node()
            rclpy.shutdown(context=ctx)
        return sorted(found.values())

    def refuse_if_domain_busy(self, wait_s: float = 2.0) -> Optional[int]:
        """EXIT_DOMAIN_BUSY (after saying why) when `domain_conflicts` finds anything,
        else None: joining a foreign graph would mix two cars' messages silently."""
        conflicts = self.domain_conflicts(wait_s)
        if not conflicts:
            return None
        domain = os.environ.get("ROS_DOMAIN_ID", "0")
        self._print(f"[runner] ERROR: another graph runs on ROS_DOMAIN_ID={domain}; mode "
                    f"'{self.mode}' would join it: " + "; ".join(conflicts[:8])
                    + (f" (+{len(conflicts) - 8} more)" if len(conflicts) > 8 else "")
                    + ". Stop it, or start this one with another ROS_DOMAIN_ID.")
        return EXIT_DOMAIN_BUSY

    def wait_until_up(self, timeout: float = 30.0) -> List[str]:
        """Wait until every node name is visible in the ROS graph (needs rclpy); returns the
        names that are up. Raises RuntimeError if a child exits meanwhile."""
        wanted = {c.spec.fully_qualified_name for c in self.children}
        try:
            # lazy: rclpy only on this path: the module imports without ROS
            import rclpy
        except ImportError:
            time.sleep(1.0)
            self._check_alive()
            return sorted(wanted)
        ctx = rclpy.context.Context()
        rclpy.init(context=ctx, args=[])
        node = rclpy.create_node("_autonomy_runner_probe", context=ctx,
                                 enable_rosout=False, start_parameter_services=False)
        up: set = set()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self._check_alive()
                names = {f"{ns.rstrip('/')}/{n}" for n, ns in node.get_node_names_and_namespaces()}
                up = wanted & names
                if up == wanted:
                    break
                time.sleep(0.1)
        finally:
            node.destroy_node()
            rclpy.shutdown(context=ctx)
        for name in sorted(up):
            self._print(f"[runner] up: {name}")
        for name in sorted(wanted - up):
            self._print(f"[runner] NOT up after {timeout:.0f}s: {name}")
        return sorted(up)

    def _check_alive(self):
        for c in self.children:
            code = c.proc.poll()
            if code is not None:
                raise RuntimeError(f"node {c.spec.fully_qualified_name} exited with code {code}"
                                   + (f" (log: {c.log_path})" if c.log_path else ""))

    def monitor(self, poll: float = 0.2) -> int:
        """Block until a child dies (-> EXIT_NODE_DIED) or stop() was requested (-> 0)."""
        while not self._stopping:
            for c in self.children:
                code = c.proc.poll()
                if code is not None and not self._stopping:
                    self._print(f"[runner] node {c.spec.fully_qualified_name} died unexpectedly "
                                f"(exit code {code}); stopping the graph")
                    self.stop()
                    return EXIT_NODE_DIED
            time.sleep(poll)
        return 0

    def stop(self, grace: float = 5.0) -> None:
        self._stopping = True
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
            alive = [c for c in self.children if c.proc.poll() is None]
            if not alive:
                break
            for c in alive:
                try:
                    os.killpg(c.proc.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            for c in alive:
                try:
                    c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for c in self.children:
            if c.proc.poll() is not None:
                self._print(f"[runner] stopped {c.spec.fully_qualified_name} "
                            f"(exit code {c.proc.returncode})")

    def _print(self, msg: str) -> None:
        print(msg, file=self.out, flush=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def run_foreground(mode: str, overrides=None, log_dir=None, up_timeout: float = 30.0,
                   duration: Optional[float] = None) -> int:
    """`autonomy-stack up`: start, report, block until Ctrl-C/SIGTERM or a node death."""
    runner = Runner(mode, overrides=overrides, log_dir=log_dir)
    stop_event = threading.Event()

    def _request_stop(signum, _frame):
        print(f"[runner] received {signal.Signals(signum).name}; stopping {len(runner.children)} node(s)",
              flush=True)
        runner._stopping = True
        stop_event.set()

    busy = runner.refuse_if_domain_busy()
    if busy is not None:
        return busy
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    runner.start()
    try:
        runner.wait_until_up(timeout=up_timeout)
    except RuntimeError as exc:
        print(f"[runner] {exc}", flush=True)
        runner.stop()
        return EXIT_NODE_DIED
    print(f"[runner] mode '{mode}': {len(runner.children)} node(s) up; Ctrl-C to stop", flush=True)
    if duration is not None:
        timer = threading.Timer(duration, lambda: (setattr(runner, "_stopping", True), stop_event.set()))
        timer.daemon = True
        timer.start()
    code = runner.monitor()
    runner.stop()
    return code
