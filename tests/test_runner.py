"""The standalone runner: starts the smoke graph as processes, every node appears in the ROS
graph, SIGTERM stops all children, a killed node makes the runner exit non-zero."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autonomy_stack.graph import nodes_for_mode

AUTONOMY_STACK = str(Path(sys.executable).parent / "autonomy-stack")


def start_runner(*extra):
    # unbuffered bytes: a buffered text reader can hold lines that select() no longer sees
    return subprocess.Popen([AUTONOMY_STACK, "up", "--mode", "smoke", "--up-timeout", "90", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
                            start_new_session=True)


def read_until(proc, needle: str, timeout: float) -> str:
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and needle.encode() not in out:
        if sel.select(timeout=0.2):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


def finish(proc, timeout: float = 30) -> str:
    rest, _ = proc.communicate(timeout=timeout)
    return rest.decode(errors="replace")


def kill_all(proc, pids):
    """Never leave nodes behind: the runner's children live in their own sessions."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def child_pids(out: str):
    return [int(line.rsplit("pid ", 1)[1].rstrip(")")) for line in out.splitlines()
            if line.startswith("[runner] started")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # zombies count as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.timeout(150)
def test_runner_brings_graph_up_and_sigterm_stops_all_children():
    specs = nodes_for_mode("smoke")
    assert len(specs) >= 2
    proc = start_runner()
    out = ""
    try:
        out = read_until(proc, "node(s) up", timeout=100)
        for spec in specs:
            assert f"[runner] up: {spec.fully_qualified_name}" in out, out
        pids = child_pids(out)
        assert len(pids) == len(specs)
        assert all(alive(p) for p in pids)
        proc.send_signal(signal.SIGTERM)
        rest = finish(proc)
        assert proc.returncode == 0, out + rest
        assert "received SIGTERM" in rest
        assert not any(alive(p) for p in pids)
    finally:
        kill_all(proc, child_pids(out))


@pytest.mark.timeout(150)
def test_killed_node_makes_runner_exit_nonzero_and_stop_the_rest():
    proc = start_runner()
    out = ""
    try:
        out = read_until(proc, "node(s) up", timeout=100)
        pids = child_pids(out)
        assert len(pids) >= 2
        os.kill(pids[0], signal.SIGKILL)
        rest = finish(proc)
        assert proc.returncode == 3, out + rest
        assert "died unexpectedly" in rest
        assert not any(alive(p) for p in pids[1:])
    finally:
        kill_all(proc, child_pids(out))


def test_runner_passes_the_same_ros_args_as_launch():
    from autonomy_tools.runner import Runner
    r = Runner("smoke")
    for spec in r.specs:
        cmd = r.command(spec)
        assert cmd[1:3] == ["--ros-args", "-r"] and cmd[3] == f"__node:={spec.name}"
        for f in spec.parameter_files:
            assert str(f) in cmd and Path(f).exists()


@pytest.mark.timeout(90)
def test_up_and_demo_refuse_to_join_a_graph_already_on_the_domain(tmp_path):
    """A node of the mode's name, or another publisher of a topic the mode publishes, already
    on the domain: `up` exits 6 naming it and starts nothing; the demo refuses the same way;
    with the foreign node gone the check finds nothing."""
    import rclpy
    from visualization_msgs.msg import MarkerArray

    from autonomy_tools.demo import main as demo_main
    from autonomy_tools.runner import EXIT_DOMAIN_BUSY, Runner
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx, args=[])
    foreign = rclpy.create_node("stack_monitor", context=ctx)
    other = rclpy.create_node("someone_elses_car", context=ctx)
    other.create_publisher(MarkerArray, "/vehicle/markers", 1)
    try:
        proc = subprocess.run([AUTONOMY_STACK, "up", "--mode", "smoke", "--up-timeout", "30"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == EXIT_DOMAIN_BUSY, proc.stdout + proc.stderr
        assert "node /stack_monitor is already running" in proc.stdout
        assert "/someone_elses_car already publishes /vehicle/markers" in proc.stdout
        assert "[runner] started" not in proc.stdout
        code = demo_main(["--mode", "smoke", "--out", str(tmp_path / "demo")])
        assert code == EXIT_DOMAIN_BUSY
        assert not (tmp_path / "demo" / "run").exists()     # nothing recorded
    finally:
        foreign.destroy_node()
        other.destroy_node()
        rclpy.shutdown(context=ctx)
    assert Runner("smoke").domain_conflicts(wait_s=1.0) == []
