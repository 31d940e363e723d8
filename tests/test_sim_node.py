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
