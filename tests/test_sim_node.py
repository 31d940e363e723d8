"""Simulator node over DDS: /odom and /clock arrive, a ControlCommand moves the ego, a NaN
command is rejected with a log line and counted in /diagnostics."""
import math
import time

import pytest

from ros_helpers import spin_until, start_node, stop, wait_for_publishers, wait_for_subscribers


@pytest.mark.timeout(60)
def test_simulator_node_closed_loop_and_bad_command():
    import rclpy
    from autonomy_interfaces.msg import ControlCommand
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from rosgraph_msgs.msg import Clock

    from autonomy_stack.ros.qos import STATE

    proc = start_node("simulator_node", name="simulator", params_files=["simulator.yaml"],
                      params={"publish_images": False, "scenario": "narrow_street_oncoming",
                              "scenario_params": "ego_speed=0.0", "error_throttle_s": 0.0})
    rclpy.init()
    node = rclpy.create_node("sim_probe")
    odom, clock, diags = [], [], []
    try:
        node.create_subscription(Odometry, "/odom", odom.append, STATE)
        node.create_subscription(Clock, "/clock", clock.append, 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        pub = node.create_publisher(ControlCommand, "/control/command", STATE)
        assert spin_until(node, lambda: len(odom) > 5 and len(clock) > 5, 20.0), \
            "no /odom or /clock from the simulator"
        assert clock[-1].clock.sec * 1e9 + clock[-1].clock.nanosec > 0
        x0 = odom[-1].pose.pose.position.x
        assert abs(odom[-1].twist.twist.linear.x) < 1e-6, "ego should start at rest"
        assert wait_for_subscribers(node, pub, 10.0)
        cmd = ControlCommand(steering_angle=0.0, acceleration=2.0, target_speed=5.0, gear=1)

        def send(c, n=5):
            for _ in range(n):
                pub.publish(c)
                spin_until(node, lambda: False, 0.05)

        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and odom[-1].twist.twist.linear.x < 1.0:
            send(cmd, 2)
        assert odom[-1].twist.twist.linear.x > 1.0, "commanded acceleration did not move the ego"
        assert odom[-1].pose.pose.position.x > x0 + 0.2
        bad = ControlCommand(steering_angle=float("nan"), acceleration=1.0, gear=1)
        send(bad, 3)

        def rejected():
            for d in diags:
                for st in d.status:
                    if st.name == "simulator":
                        kv = {v.key: v.value for v in st.values}
                        if int(kv.get("commands_rejected", 0)) >= 1:
                            return True
            return False
        assert spin_until(node, rejected, 10.0), "NaN command not counted in /diagnostics"
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        out = stop(proc)
    assert "rejected /control/command" in out, out[-2000:]
    assert "Traceback" not in out, out[-3000:]


@pytest.mark.timeout(60)
def test_simulator_node_runs_a_scenario_file(tmp_path):
    """A scenario file (as the failure -> scenario step writes it) runs in the simulator
    node: the ego starts where the file says and a scripted agent drives its recorded path;
    a broken file is refused at start-up naming the parameter."""
    import rclpy
    import yaml
    from nav_msgs.msg import Odometry

    from autonomy_interfaces.msg import ObjectArray
    from autonomy_stack.ros.qos import OUTPUTS, STATE
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump({
        "format": "autonomy_scenario_file/1",
        "world": {"scenario": "narrow_street_oncoming", "seed": 0, "params": {}},
        "ego": {"start": [12.0, -1.75, 0.0, 0.0]}, "duration_s": 20.0,
        "agents": [{"id": 900, "class": "CAR", "length": 4.5, "width": 1.8, "height": 1.5,
                    "static": False,
                    "trajectory": [[0.0, 60.0, 1.75, 3.14159, 5.0], [10.0, 10.0, 1.75, 3.14159, 5.0]]}]}))
    proc = start_node("simulator_node", name="simulator", params_files=["simulator.yaml"],
                      params={"publish_images": False, "scenario_file": str(path)})
    rclpy.init()
    node = rclpy.create_node("sim_file_probe")
    odom, objs = [], []
    try:
        node.create_subscription(Odometry, "/odom", odom.append, STATE)
        node.create_subscription(ObjectArray, "/ground_truth/objects", objs.append, OUTPUTS)

        def scripted_moved():
            xs = [o.pose.position.x for m in objs for o in m.objects if o.id == 900]
            return len(xs) > 5 and xs[0] - xs[-1] > 1.0
        assert spin_until(node, lambda: odom and scripted_moved(), 20.0), \
            f"{len(odom)} odom, {len(objs)} object messages"
        assert odom[0].pose.pose.position.x == pytest.approx(12.0, abs=0.5)
        assert odom[0].pose.pose.position.y == pytest.approx(-1.75, abs=0.1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        out = stop(proc)
    assert "scenario file" in out and "Traceback" not in out, out[-2000:]
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: something_else\n")
    proc = start_node("simulator_node", name="simulator", params_files=["simulator.yaml"],
                      params={"publish_images": False, "scenario_file": str(bad)})
    proc.wait(timeout=30)
    out = proc.stdout.read()
    assert "scenario_file" in out and proc.returncode != 0, out[-2000:]
