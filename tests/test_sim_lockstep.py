"""Lockstep (synchronous) simulator over DDS, against a fake "stack" in the test process
that answers every /odom with a /control/command and every ground-truth frame with a
/planning/trajectory and a command (the answers of control with command_on_odom and
planning with trigger: objects):

- start_on first_command: before the first command the world is held (the initial state
  is re-published, /clock stays at 0, diagnostics say started False);
- answered, the world advances; unanswered, /clock stays at the last step until the
  lockstep timeout, which is logged, counted and reported in /diagnostics (ERROR);
- reproducible: two runs with a feedback law that depends on the odometry give the same
  ego trajectory (the answer to step k is applied at step k+1, whatever the latency).
"""
import math
import time

import pytest

from ros_helpers import spin_until, start_node, stop, wait_for_subscribers

rclpy = pytest.importorskip("rclpy")

TIMEOUT_S = 0.6      # s (wall) of the simulator's lockstep wait in these tests


def _stamp(h) -> float:
    return h.stamp.sec + h.stamp.nanosec * 1e-9


class FakeStack:
    """Answers the lockstep simulator: a command per /odom, a trajectory and a command per
    /ground_truth/objects (the frame without cameras). The command is a feedback law of
    the odometry (speed towards 4 m/s, steering towards y = 1 m), so a command applied one
    step late changes the driven path."""

    def __init__(self, node):
        from autonomy_interfaces.msg import ControlCommand, ObjectArray, Trajectory
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry
        from rosgraph_msgs.msg import Clock

        from autonomy_stack.ros.qos import OUTPUTS, STATE
        self.Cmd, self.Traj = ControlCommand, Trajectory
        self.node = node
        self.answering = False
        self.odom, self.clock, self.diags, self.frames = [], [], [], 0
        self.cmd_pub = node.create_publisher(ControlCommand, "/control/command", STATE)
        self.traj_pub = node.create_publisher(Trajectory, "/planning/trajectory", OUTPUTS)
        node.create_subscription(Odometry, "/odom", self.on_odom, STATE)
        node.create_subscription(ObjectArray, "/ground_truth/objects", self.on_frame, OUTPUTS)
        node.create_subscription(Clock, "/clock", lambda m: self.clock.append(
            m.clock.sec + m.clock.nanosec * 1e-9), 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.on_diag, 10)
        self.last = None

    def on_diag(self, m):
        for st in m.status:
            if st.name == "simulator":
                self.diags.append((st.level, st.message, {v.key: v.value for v in st.values}))

    def command(self, stamp: float):
        x, y, v = self.last
        m = self.Cmd(acceleration=float(max(-3.0, min(2.0, 1.5 * (4.0 - v)))),
                     steering_angle=float(max(-0.3, min(0.3, 0.08 * (1.0 - y)))),
                     target_speed=4.0, gear=1)
        m.header.stamp.sec, m.header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
        if m.header.stamp.nanosec >= 1_000_000_000:
            m.header.stamp.sec, m.header.stamp.nanosec = m.header.stamp.sec + 1, 0
        return m

    def on_odom(self, m):
        t = _stamp(m.header)
        self.last = (m.pose.pose.position.x, m.pose.pose.position.y, m.twist.twist.linear.x)
        self.odom.append((round(t, 3),) + self.last)
        if self.answering:
            self.cmd_pub.publish(self.command(t))

    def on_frame(self, m):
        self.frames += 1
        if self.answering and self.last is not None:
            tr = self.Traj()
            tr.header = m.header
            self.traj_pub.publish(tr)
            self.cmd_pub.publish(self.command(_stamp(m.header)))

    def first_command(self):
        self.answering = True
        self.cmd_pub.publish(self.command(self.clock[-1] if self.clock else 0.0))


def test_gate_orders_frame_answers_and_counts_timeouts():
    """Pure LockstepGate: a command stamped before the step or received before the frame's
    trajectory does not open it; the first answer of a kind gets the start-up timeout."""
    from autonomy_simulator.lockstep import LockstepConfig, LockstepGate
    g = LockstepGate(LockstepConfig(timeout_s=0.5, startup_timeout_s=3.0))
    g.stepped(0.02, frame=False, wall=0.0)
    g.on_command(0.0, wall=0.01)                     # answers the previous step
    assert not g.ready()
    assert g.timed_out(2.9) is None                  # first command: start-up budget
    g.on_command(0.02, wall=2.95)
    assert g.ready()
    g.finish(2.95)
    g.stepped(0.1, frame=True, wall=3.0)
    g.on_command(0.1, wall=3.01)                     # the odometry's answer, before the plan
    assert not g.ready()
    g.on_trajectory(0.08, wall=3.02)                 # an older plan
    assert not g.ready() and "trajectory" in g.waiting_for()
    g.on_trajectory(0.1, wall=3.05)
    assert not g.ready() and "after the trajectory" in g.waiting_for()
    g.on_command(0.1, wall=3.055, trajectory_stamp=0.08)   # follows the older plan: late
    assert not g.ready()
    g.on_command(0.1, wall=3.06, trajectory_stamp=0.1)
    assert g.ready()
    g.finish(3.06)
    g.stepped(0.12, frame=False, wall=4.0)
    assert g.timed_out(4.4) is None
    what = g.timed_out(4.6)
    assert what and "/control/command stamped >= 0.120" in what and "0.50 s" in what
    assert g.timeouts == {"command": 1, "trajectory": 0} and g.ready() and g.waits == 3
    assert abs(g.wait_max_s - 2.95) < 1e-9
    # an open wait asks for its input again every resend_s: the frame, then the state
    g = LockstepGate(LockstepConfig(timeout_s=5.0, startup_timeout_s=5.0, resend_s=0.5))
    g.stepped(0.1, frame=True, wall=0.0)
    assert g.resend_due(0.4) is None and g.resend_due(0.6) == "frame"
    assert g.resend_due(0.9) is None and g.resend_due(1.2) == "frame"
    g.on_trajectory(0.1, wall=1.3)
    assert g.resend_due(1.5) is None and g.resend_due(1.8) == "state"
    g.on_command(0.1, wall=1.9)
    assert g.ready() and g.resend_due(5.0) is None and g.resends == 3


def _start_sim(timeout_s: float = TIMEOUT_S):
    return start_node("simulator_node", name="simulator", params_files=["simulator.yaml"],
                      params={"publish_images": False, "scenario": "narrow_street_oncoming",
                              "scenario_params": "ego_speed=0.0", "lockstep": True,
                              "start_on": "first_command", "lockstep_timeout_s": timeout_s,
                              "lockstep_startup_timeout_s": timeout_s, "lockstep_resend_s": 0.2,
                              "hold_publish_period_s": 0.1, "error_throttle_s": 0.0})


def _drive(node, stack, sim_seconds: float, wall: float = 30.0):
    """Start the world with the first command and answer until `sim_seconds` of sim time."""
    assert wait_for_subscribers(node, stack.cmd_pub, 10.0), "simulator does not subscribe commands"
    assert wait_for_subscribers(node, stack.traj_pub, 10.0), "lockstep sim does not subscribe plans"
    assert spin_until(node, lambda: stack.last is not None, 10.0), "no initial /odom"
    stack.first_command()
    assert spin_until(node, lambda: stack.clock and stack.clock[-1] >= sim_seconds, wall), \
        f"sim did not reach {sim_seconds} s answered (clock {stack.clock[-1:]})"


@pytest.mark.timeout(60)
def test_lockstep_holds_until_first_command_waits_for_answers_and_reports_timeouts():
    proc = _start_sim()
    rclpy.init()
    node = rclpy.create_node("lockstep_fake_stack")
    stack = FakeStack(node)
    try:
        # held: the initial state repeats (late joiners get it), time does not pass
        assert spin_until(node, lambda: len(stack.clock) >= 5 and stack.diags, 20.0), \
            "no repeated initial state before the start"
        assert max(stack.clock) == 0.0, f"world moved before the first command: {stack.clock}"
        assert stack.diags[-1][2]["started"] == "False"
        assert stack.frames >= 1, "no ground-truth frame before the start"

        _drive(node, stack, 1.0)
        assert spin_until(node, lambda: any(float(d[2]["sim_time"]) >= 1.0 for d in stack.diags),
                          10.0)
        answered = [d for d in stack.diags if d[2]["started"] == "True"]
        assert answered and all(d[2]["lockstep_timeouts"] == "0" for d in answered), answered[-1]
        assert stack.odom[-1][3] > 0.5, "the answered commands did not move the ego"

        # nobody answers: the clock stays at the last step until the timeout
        stack.answering = False
        spin_until(node, lambda: False, 0.05)     # drain answers already in flight
        t_stop, n_stop = stack.clock[-1], len(stack.clock)
        t_wall = time.monotonic()

        def timeout_reported():
            return any(d[0] == b"\x02" and int(d[2]["lockstep_timeouts"]) >= 1 for d in stack.diags)
        assert spin_until(node, timeout_reported, 10.0), "missing answer not reported as ERROR"
        waited = time.monotonic() - t_wall
        clocks_meanwhile = stack.clock[n_stop:]
        assert waited >= TIMEOUT_S * 0.8, f"timeout reported after only {waited:.2f} s"
        assert all(c <= t_stop + 0.021 for c in clocks_meanwhile), \
            f"world advanced without an answer: {t_stop} -> {clocks_meanwhile[-3:]}"
        d = [d for d in stack.diags if d[0] == b"\x02"][-1]
        assert "lockstep timeouts" in d[1], d
        # the unanswered step's odometry went out again (same stamp) before the timeout
        again = [o for o in stack.odom if abs(o[0] - round(t_stop, 3)) < 1e-6]
        assert len(again) >= 2, f"/odom at {t_stop} not re-published while unanswered"
        assert int(d[2]["lockstep_resends"]) >= 1, d
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        out = stop(proc)
    assert "world starts at sim t 0.000 s: first /control/command" in out, out[-2000:]
    assert "lockstep: waited for a /control/command stamped >=" in out, out[-2000:]
    assert "Traceback" not in out, out[-3000:]


def _run_once(sim_seconds: float):
    proc = _start_sim(timeout_s=5.0)
    rclpy.init()
    node = rclpy.create_node("lockstep_fake_stack")
    stack = FakeStack(node)
    try:
        _drive(node, stack, sim_seconds)
        spin_until(node, lambda: any(float(d[2]["sim_time"]) >= sim_seconds for d in stack.diags), 5.0)
        timeouts = [d[2]["lockstep_timeouts"] for d in stack.diags if d[2]["started"] == "True"]
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop(proc)
    return {t: (x, y, v) for t, x, y, v in stack.odom if 0.0 < t <= sim_seconds}, timeouts


@pytest.mark.timeout(90)
def test_lockstep_run_reproduces():
    sim_seconds = 3.0
    a, ta = _run_once(sim_seconds)
    b, tb = _run_once(sim_seconds)
    common = sorted(set(a) & set(b))
    assert len(common) >= 0.95 * sim_seconds / 0.02, f"only {len(common)} common steps"
    dev = max(math.hypot(a[t][0] - b[t][0], a[t][1] - b[t][1]) for t in common)
    dv = max(abs(a[t][2] - b[t][2]) for t in common)
    print(f"lockstep reproduction: {len(common)} steps, max position difference {dev:.2e} m, "
          f"speed {dv:.2e} m/s; driven {a[common[-1]][0] - a[common[0]][0]:.2f} m")
    assert a[common[-1]][2] > 2.0, "the feedback law did not drive the ego"
    assert dev < 1e-3 and dv < 1e-3, f"runs differ by {dev:.3e} m / {dv:.3e} m/s"
    assert set(ta) <= {"0"} and set(tb) <= {"0"}, f"timeouts in a fully answered run: {ta} {tb}"


@pytest.mark.timeout(60)
def test_real_time_start_signal_holds_the_world_until_the_signal():
    from std_msgs.msg import Empty
    proc = start_node("simulator_node", name="simulator", params_files=["simulator.yaml"],
                      params={"publish_images": False, "start_on": "start_signal",
                              "hold_publish_period_s": 0.1})
    rclpy.init()
    node = rclpy.create_node("start_signal_probe")
    stack = FakeStack(node)          # not answering: the real-time sim needs no answers
    pub = node.create_publisher(Empty, "/simulator/start", 10)
    try:
        assert spin_until(node, lambda: len(stack.clock) >= 5, 20.0), "no initial state"
        n_held = len(stack.clock)
        assert max(stack.clock) == 0.0, f"world moved before the start signal: {stack.clock}"
        assert wait_for_subscribers(node, pub, 10.0)
        pub.publish(Empty())
        assert spin_until(node, lambda: stack.clock[-1] >= 0.5, 10.0), "world did not start"
        assert all(b >= a for a, b in zip(stack.clock[n_held:], stack.clock[n_held + 1:]))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        out = stop(proc)
    assert "world starts at sim t 0.000 s: start signal on /simulator/start" in out, out[-2000:]


@pytest.mark.timeout(60)
def test_first_plan_start_waits_for_a_command_after_a_trajectory():
    """start_on first_plan (the lockstep graphs): a command alone does not start the world,
    nor one after a safe-stop plan; the first command after a real /planning/trajectory does."""
    proc = start_node("simulator_node", name="simulator", params_files=["simulator.yaml"],
                      params={"publish_images": False, "lockstep": True, "start_on": "first_plan",
                              "hold_publish_period_s": 0.1})
    rclpy.init()
    node = rclpy.create_node("first_plan_probe")
    stack = FakeStack(node)
    try:
        assert wait_for_subscribers(node, stack.cmd_pub, 10.0)
        assert wait_for_subscribers(node, stack.traj_pub, 10.0)
        assert spin_until(node, lambda: stack.last is not None and stack.diags, 20.0)
        stack.cmd_pub.publish(stack.command(0.0))
        n = len(stack.diags)
        assert spin_until(node, lambda: len(stack.diags) >= n + 3, 10.0)
        assert max(stack.clock) == 0.0 and stack.diags[-1][2]["started"] == "False", \
            "a command without a plan started the world"
        stop_plan = stack.Traj()
        stop_plan.maneuver = "safe_stop"        # planning still lacks an input: not ready
        stack.traj_pub.publish(stop_plan)
        spin_until(node, lambda: False, 0.1)
        stack.cmd_pub.publish(stack.command(0.0))
        n = len(stack.diags)
        assert spin_until(node, lambda: len(stack.diags) >= n + 3, 10.0)
        assert max(stack.clock) == 0.0 and stack.diags[-1][2]["started"] == "False", \
            "a safe-stop plan started the world"
        tr = stack.Traj()
        tr.maneuver = "keep/proceed"
        stack.traj_pub.publish(tr)
        spin_until(node, lambda: False, 0.1)
        stack.first_command()                   # answers from now on
        assert spin_until(node, lambda: stack.clock[-1] >= 0.5, 10.0), "world did not start"
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        out = stop(proc)
    assert "after the first /planning/trajectory (stamp 0.000 s)" in out, out[-2000:]


@pytest.mark.timeout(60)
def test_episode_restart_keeps_the_clock_running_and_counts_the_episode():
    """restart_episodes (the soak): an ego braked to a standstill for episode_stall_s ends
    the episode; the scenario starts again (ego back near its start, next seed), the
    published time runs on and /diagnostics count the episode."""
    proc = start_node("simulator_node", name="simulator", params_files=["simulator.yaml"],
                      params={"publish_images": False, "lockstep": True,
                              "start_on": "first_command", "restart_episodes": True,
                              "episode_stall_s": 0.5, "hold_publish_period_s": 0.1})
    rclpy.init()
    node = rclpy.create_node("episode_probe")
    stack = FakeStack(node)
    stack.command = lambda stamp, _c=stack.command: _brake(_c(stamp))
    try:
        assert wait_for_subscribers(node, stack.cmd_pub, 10.0)
        assert wait_for_subscribers(node, stack.traj_pub, 10.0)
        assert spin_until(node, lambda: stack.last is not None, 10.0)
        x0 = stack.odom[-1][1]
        stack.first_command()

        def restarted():
            return any(d[2].get("episode") == "1" for d in stack.diags)
        assert spin_until(node, restarted, 30.0), "no episode restart after the standstill"
        assert all(b >= a for a, b in zip(stack.clock, stack.clock[1:])), "clock went back"
        xs = [o[1] for o in stack.odom]
        assert max(xs) > x0 + 1.0, "the braking ego did not roll on before stopping"
        assert spin_until(node, lambda: abs(stack.odom[-1][1] - x0) < 1.0, 5.0), \
            f"ego not back near its start {x0:.1f} after the restart ({stack.odom[-1][1]:.1f})"
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        out = stop(proc)
    assert "episode 0 ended" in out and "episode 1: seed 1" in out, out[-2000:]


def _brake(cmd):
    cmd.acceleration, cmd.target_speed = -4.0, 0.0
    return cmd
