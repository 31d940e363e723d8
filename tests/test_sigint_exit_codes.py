"""Ctrl-C (SIGINT) ends every node of the `demo` mode, and the simulator feeding it, with
exit code 0 and no traceback -- while data is flowing. Each node is started as the runner
starts it (config/graph.yaml, its parameters); the test waits for each node's first
/diagnostics status (proof that it is up and spinning) before signalling it."""
import signal
import subprocess
import time

import pytest
from ros_helpers import spin_until

from autonomy_stack.graph import nodes_for_mode
from autonomy_tools.runner import find_executable

# diagnostic status name prefix -> the node that publishes it
STATUS_PREFIX = {"simulator": "simulator", "rectification": "rectification: ",
                 "perception": "perception: ", "planning": "planning: ",
                 "control": "control_node: ", "stack_monitor": "stack_monitor: "}


def _specs():
    demo = nodes_for_mode("demo")
    sim = [s for s in nodes_for_mode("sim_full", overrides={"simulator": {
        "image_width": 160, "image_height": 120}}) if s.key == "simulator"]
    return sim + demo


@pytest.mark.timeout(300)
def test_every_demo_node_and_the_simulator_exit_0_on_sigint(tmp_path):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    specs = _specs()
    assert sorted(s.key for s in specs) == sorted(STATUS_PREFIX)
    procs, logs = {}, {}
    for s in specs:
        logs[s.key] = tmp_path / f"{s.key}.log"
        procs[s.key] = subprocess.Popen([find_executable(s.executable)] + s.ros_args(),
                                        stdout=open(logs[s.key], "w"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
    seen = set()

    def on_diag(msg):
        for st in msg.status:
            seen.update(k for k, p in STATUS_PREFIX.items() if st.name.startswith(p))
    rclpy.init()
    node = rclpy.create_node("sigint_probe")
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 100)
    codes = {}
    try:
        def all_up():
            dead = {k: p.poll() for k, p in procs.items() if p.poll() is not None}
            assert not dead, (dead, {k: logs[k].read_text()[-2000:] for k in dead})
            return seen >= set(procs)
        assert spin_until(node, all_up, 180), f"no diagnostics yet from {set(procs) - seen}"
        # consumers first, the simulator (the data source) last: each is interrupted
        # while the others still send it data
        for key in ["rectification", "perception", "planning", "control", "stack_monitor",
                    "simulator"]:
            procs[key].send_signal(signal.SIGINT)
            t0 = time.monotonic()
            while procs[key].poll() is None and time.monotonic() - t0 < 20:
                rclpy.spin_once(node, timeout_sec=0.05)
            codes[key] = procs[key].poll()
    finally:
        node.destroy_node()
        rclpy.shutdown()
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(5)
    text = {k: logs[k].read_text() for k in procs}
    # a node that was up and spinning is not "shut down during start-up" (the message the
    # runtime printed when a message take raced with the signal's shutdown)
    bad = {k: (c, text[k][-3000:]) for k, c in codes.items()
           if c != 0 or "Traceback" in text[k] or "during start-up" in text[k]}
    assert not bad, bad
