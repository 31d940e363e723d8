"""Control node: /planning/trajectory + /odom -> /control/command at `rate_hz`, plus
/diagnostics (lateral / heading / speed error, watchdog faults). Thin: the work is in
`autonomy_control.controller.TrackingController`. Works with use_sim_time (the timer and
every age check run on the node clock).

/supervisor/status (DiagnosticStatus from supervisor_node): ERROR -> the controlled stop,
held until the status is OK again (the supervisor was reset). A missing or stale status is
not a stop unless `require_supervisor` is set. Lockstep triggers: `command_on_odom` /
`command_on_trajectory` also publish a command right after every accepted /odom /
/planning/trajectory (the timer runs in every case)."""
from __future__ import annotations

from rclpy.clock import JumpThreshold
from rclpy.duration import Duration
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry

from autonomy_control.controller import ControllerConfig, TrackingController
from autonomy_control.lateral import MPCConfig, PurePursuitConfig, StanleyConfig
from autonomy_control.longitudinal import LongitudinalConfig, StopConfig
from autonomy_vehicle.vehicle_model import VehicleParams
from autonomy_control.watchdog import ERROR, OK, WARN, WatchdogConfig
from autonomy_stack.ros.node_runtime import run_node
from autonomy_stack.params import ParamSpec, declare_parameters
from autonomy_interfaces.msg import ControlCommand, ControlCommand as CommandMsg, Trajectory
from autonomy_stack.ros.qos import OUTPUTS, STATE
from autonomy_stack.ros.ros_conversions import msg_to_trajectory, odometry_to_ego, sec_to_stamp

# defaults are the core's config dataclasses' (written once, there)
_C = ControllerConfig()
_V = VehicleParams()
_M = MPCConfig()
_PP = PurePursuitConfig()
_ST = StanleyConfig()
_L = LongitudinalConfig()
_W = WatchdogConfig()
_S = StopConfig()

PARAMS = [
    ParamSpec("rate_hz", _C.rate_hz, "command publish rate", min=1.0, max=500.0),
    ParamSpec("diagnostics_rate_hz", 5.0, "diagnostics publish rate (and on every level change)",
              min=0.1, max=100.0),
    ParamSpec("lateral_controller", _C.lateral, "lateral controller",
              choices=("mpc", "pure_pursuit", "stanley")),
    # vehicle (must match the plant; defaults = autonomy_vehicle.vehicle_model.VehicleParams)
    ParamSpec("wheelbase", _V.wheelbase, "m", min=0.5, max=10.0),
    ParamSpec("max_steer", _V.max_steer, "rad at the wheels", min=0.05, max=1.2),
    ParamSpec("max_steer_rate", _V.max_steer_rate, "rad/s", min=0.05, max=10.0),
    ParamSpec("steer_time_constant", _V.steer_time_constant, "s, actuator lag", min=0.0, max=2.0),
    ParamSpec("steer_delay", _V.steer_delay, "s, actuator dead time (compensated)",
              min=0.0, max=1.0),
    ParamSpec("extra_latency", _C.extra_latency, "s, further command latency to compensate",
              min=0.0, max=1.0),
    ParamSpec("max_accel", _L.max_accel, "m/s^2, tracking command bound", min=0.1, max=10.0),
    ParamSpec("max_decel", _L.max_decel, "m/s^2 (positive), tracking command bound",
              min=0.1, max=12.0),
    ParamSpec("max_jerk", _L.max_jerk, "m/s^3, rate limit of the tracking command",
              min=0.1, max=200.0),
    # lateral MPC
    ParamSpec("mpc_horizon", _M.horizon, "prediction steps", min=5, max=100),
    ParamSpec("mpc_dt", _M.dt, "s per prediction step", min=0.01, max=0.5),
    ParamSpec("mpc_q_lateral", _M.q_lateral, "weight on lateral error", min=0.0, max=1e6),
    ParamSpec("mpc_q_heading", _M.q_heading, "weight on heading error", min=0.0, max=1e6),
    ParamSpec("mpc_q_terminal", _M.q_terminal, "terminal weight multiplier", min=0.0, max=1e3),
    ParamSpec("mpc_r_steer", _M.r_steer, "weight on steering minus feed-forward", min=0.0,
              max=1e6),
    ParamSpec("mpc_r_steer_rate", _M.r_steer_rate, "weight on steering command changes",
              min=0.0, max=1e6),
    ParamSpec("pure_pursuit_lookahead_time", _PP.lookahead_time, "s", min=0.0, max=5.0),
    ParamSpec("pure_pursuit_lookahead_min", _PP.lookahead_min, "m", min=0.5, max=50.0),
    ParamSpec("stanley_gain", _ST.gain, "1/s", min=0.01, max=20.0),
    # longitudinal PID
    ParamSpec("speed_kp", _L.kp, "(m/s^2)/(m/s)", min=0.0, max=20.0),
    ParamSpec("speed_ki", _L.ki, "(m/s^2)/m", min=0.0, max=20.0),
    ParamSpec("speed_kd", _L.kd, "(m/s^2)/(m/s^2)", min=0.0, max=5.0),
    # watchdog / comfortable stop
    ParamSpec("max_trajectory_age", _W.max_trajectory_age, "s", min=0.01, max=10.0),
    ParamSpec("max_odom_age", _W.max_odom_age, "s", min=0.01, max=10.0),
    ParamSpec("max_curvature", _W.max_curvature, "1/m", min=0.01, max=10.0),
    ParamSpec("max_speed", _W.max_speed, "m/s", min=0.1, max=100.0),
    ParamSpec("max_deviation", _W.max_deviation, "m from the path", min=0.1, max=100.0),
    ParamSpec("behind_tolerance", _W.behind_tolerance, "m past the trajectory's end",
              min=0.0, max=100.0),
    ParamSpec("recovery_time", _W.recovery_time, "s of good inputs before resuming",
              min=0.0, max=10.0),
    ParamSpec("stop_decel", _S.decel, "m/s^2, comfortable stop bound", min=0.1, max=10.0),
    ParamSpec("stop_jerk", _S.jerk, "m/s^3, comfortable stop bound", min=0.1, max=50.0),
    ParamSpec("trajectory_frames", list(_W.frames), "accepted trajectory frame_ids"),
    ParamSpec("resume_after_valid", _W.resume_after_valid, "valid trajectories in a row "
              "before tracking resumes after a rejected one", min=1, max=1000),
    # lockstep triggers (the simulator waits for a command after each odometry message)
    ParamSpec("command_on_odom", False, "also publish a command after every accepted /odom"),
    ParamSpec("command_on_trajectory", False,
              "also publish a command after every accepted /planning/trajectory"),
    # supervisor (autonomy_control.supervisor, supervisor_node)
    ParamSpec("require_supervisor", False, "stop while /supervisor/status is missing or "
              "older than supervisor_timeout (else the supervisor is optional)"),
    ParamSpec("supervisor_timeout", 1.0, "s: a /supervisor/status older than this is stale",
              min=0.05, max=60.0),
]

_LEVELS = {OK: b"\x00", WARN: b"\x01", ERROR: b"\x02"}


def config_from_params(p: dict) -> ControllerConfig:
    vp = VehicleParams(wheelbase=p["wheelbase"], max_steer=p["max_steer"],
                       max_steer_rate=p["max_steer_rate"],
                       steer_time_constant=p["steer_time_constant"],
                       steer_delay=p["steer_delay"])
    return ControllerConfig(
        lateral=p["lateral_controller"], rate_hz=p["rate_hz"], vehicle=vp,
        mpc=MPCConfig(horizon=p["mpc_horizon"], dt=p["mpc_dt"], q_lateral=p["mpc_q_lateral"],
                      q_heading=p["mpc_q_heading"], q_terminal=p["mpc_q_terminal"],
                      r_steer=p["mpc_r_steer"], r_steer_rate=p["mpc_r_steer_rate"]),
        pure_pursuit=PurePursuitConfig(lookahead_time=p["pure_pursuit_lookahead_time"],
                                       lookahead_min=p["pure_pursuit_lookahead_min"]),
        stanley=StanleyConfig(gain=p["stanley_gain"]),
        longitudinal=LongitudinalConfig(kp=p["speed_kp"], ki=p["speed_ki"], kd=p["speed_kd"],
                                        max_accel=p["max_accel"], max_decel=p["max_decel"],
                                        max_jerk=p["max_jerk"]),
        stop=StopConfig(decel=p["stop_decel"], jerk=p["stop_jerk"]),
        watchdog=WatchdogConfig(
            max_trajectory_age=p["max_trajectory_age"], max_odom_age=p["max_odom_age"],
            max_curvature=p["max_curvature"], max_speed=p["max_speed"],
            max_deviation=p["max_deviation"], behind_tolerance=p["behind_tolerance"],
            recovery_time=p["recovery_time"], frames=tuple(p["trajectory_frames"]),
            resume_after_valid=p["resume_after_valid"]),
        extra_latency=p["extra_latency"])


class ControlNode(Node):
    def __init__(self):
        super().__init__("control_node")

        self.p = declare_parameters(self, PARAMS)
        self.ctl = TrackingController(config_from_params(self.p))
        self.cmd_pub = self.create_publisher(ControlCommand, "/control/command", STATE)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Trajectory, "/planning/trajectory", self.on_trajectory, OUTPUTS)
        self.create_subscription(Odometry, "/odom", self.on_odom, STATE)
        self.create_subscription(DiagnosticStatus, "/supervisor/status", self.on_supervisor,
                                 STATE)
        self.supervisor_seen = None          # node time of the last /supervisor/status
        self.supervisor_missing = False      # the stop is ours: require_supervisor, stale
        self.timer = self.create_timer(1.0 / self.p["rate_hz"], self.on_timer)
        # a backwards /clock jump re-arms the timer on the new clock (commands never pause);
        # the controller itself detects the jump in its step and resets its timing state
        self._jump_handle = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-1),
                          on_clock_change=False), post_callback=self.on_time_jump)
        self.jumps_logged = 0
        self.last_odom_command = None     # node-clock time of the last odometry-paced command
        self.diag_period = 1.0 / self.p["diagnostics_rate_hz"]
        self.last_diag = -1e18
        self.last_level = None
        self.steps = 0
        self._last_key, self._last_msg = None, None   # the last command and its inputs
        self.get_logger().info(
            f"control_node: {self.p['lateral_controller']} at {self.p['rate_hz']:.0f} Hz")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_trajectory(self, msg) -> None:
        try:
            traj = msg_to_trajectory(msg)
        except Exception as exc:  # malformed message: drop, count, report
            self.ctl.counters["trajectories_rejected"] += 1
            self.ctl.traj_fault = f"trajectory could not be converted: {exc}"
            reason = self.ctl.traj_fault
        else:
            reason = self.ctl.set_trajectory(traj, self.now())
        if reason:
            self.get_logger().error(f"/planning/trajectory rejected: {reason}",
                                    throttle_duration_sec=1.0)
        if self.p["command_on_trajectory"]:
            # answer a rejected trajectory too (with the held stop): a lockstep simulator
            # waits for a command after every plan
            self.publish_command()

    def on_odom(self, msg) -> None:
        reason = self.ctl.set_odometry(odometry_to_ego(msg), self.now())
        if reason:
            self.get_logger().error(f"/odom rejected: {reason}", throttle_duration_sec=1.0)
        elif self.p["command_on_odom"]:
            self.publish_command()
            self.last_odom_command = self.now()

    def on_supervisor(self, msg) -> None:
        """ERROR -> hold the supervisor stop (logged once per new reason); OK -> the
        supervisor was reset: clear it."""
        self.supervisor_seen = self.now()
        self.supervisor_missing = False
        if msg.level == DiagnosticStatus.ERROR:
            values = {kv.key: kv.value for kv in msg.values}
            try:
                decel = float(values.get("stop_decel_mps2", "nan"))
            except ValueError:
                decel = float("nan")
            reason = msg.message or "supervisor ERROR (no message)"
            if reason != self.ctl.supervisor_stop:
                self.get_logger().error(f"control: supervisor stop: {reason}")
            self.ctl.set_supervisor_stop(reason, decel if decel == decel and decel > 0 else None)
        elif self.ctl.supervisor_stop is not None:
            self.get_logger().info("control: supervisor OK again: stop cleared")
            self.ctl.clear_supervisor_stop()

    def check_supervisor_alive(self, now: float) -> None:
        """require_supervisor: a missing or stale /supervisor/status is a stop."""
        if not self.p["require_supervisor"]:
            return
        age = None if self.supervisor_seen is None else now - self.supervisor_seen
        if age is None or age > self.p["supervisor_timeout"] or age < -1.0:
            if not self.supervisor_missing:
                what = "no /supervisor/status received" if age is None else \
                    f"/supervisor/status is stale ({age:.2f} s old)"
                self.get_logger().error(f"control: {what}; require_supervisor: stopping")
                self.ctl.set_supervisor_stop(what)
                self.supervisor_missing = True

    def on_time_jump(self, jump) -> None:
        self.timer.reset()

    def on_timer(self) -> None:
        # with command_on_odom the odometry paces the commands; the timer is the fallback
        # when odometry stops (it still commands the stop). Two sources at one stamp would
        # make a lockstep run depend on which message the simulator sees first.
        if self.p["command_on_odom"] and self.last_odom_command is not None:
            age = self.now() - self.last_odom_command
            if 0.0 <= age < 2.0 / self.p["rate_hz"]:
                return
        self.publish_command()

    def publish_command(self) -> None:
        now = self.now()
        self.check_supervisor_alive(now)
        c = self.ctl
        key = (now, c.answered_stamp, c.traj_fault, c.ego.stamp if c.ego is not None else None,
               c.odom_fault, c.supervisor_stop)
        if key == self._last_key and self._last_msg is not None:
            # the same instant with the same inputs (a lockstep simulator holding or
            # re-sending its state): the same command again; another controller step would
            # advance its filters and warm starts by as many steps as wall time allowed
            self.cmd_pub.publish(self._last_msg)
            return
        cmd, st = self.ctl.step(now)
        if st.counters["time_jumps_back"] != self.jumps_logged:
            self.jumps_logged = st.counters["time_jumps_back"]
            a, b = self.ctl.last_time_jump
            self.get_logger().warning(
                f"control: clock jumped back {a - b:.3f} s ({a:.3f} -> {b:.3f}): timing state "
                "reset; stopping until trajectory and odometry on the new clock arrive")
        m = CommandMsg()
        m.header.stamp = sec_to_stamp(now)
        m.header.frame_id = "base_link"
        m.steering_angle = float(cmd.steering_angle)
        m.steering_rate = float(cmd.steering_rate)
        m.acceleration = float(cmd.acceleration)
        m.target_speed = float(cmd.target_speed)
        m.gear = int(cmd.gear)
        m.emergency = bool(cmd.emergency)
        m.trajectory_stamp = sec_to_stamp(cmd.trajectory_stamp)
        self.cmd_pub.publish(m)
        self._last_key, self._last_msg = key, m
        self.steps += 1
        if st.level == ERROR and self.last_level != ERROR:
            self.get_logger().error(f"control: {st.message}")
        elif st.level != ERROR and self.last_level == ERROR:
            self.get_logger().info(f"control: recovered ({st.message})")
        if st.level != self.last_level or now - self.last_diag >= self.diag_period \
                or now < self.last_diag:
            self.publish_diagnostics(st, now)

    def publish_diagnostics(self, st, now: float) -> None:
        self.last_diag, self.last_level = now, st.level
        arr = DiagnosticArray()
        arr.header.stamp = sec_to_stamp(now)
        s = DiagnosticStatus(name="control_node: tracking", hardware_id="autonomy_control",
                             message=st.message[:500])
        s.level = _LEVELS[st.level]
        kv = [("mode", st.mode), ("lateral_controller", st.lateral_controller),
              ("lateral_error_m", f"{st.lateral_error:.4f}"),
              ("heading_error_rad", f"{st.heading_error:.4f}"),
              ("speed_error_mps", f"{st.speed_error:.4f}"),
              ("reference_speed_mps", f"{st.reference_speed:.3f}"),
              ("speed_mps", f"{st.speed:.3f}"),
              ("step_ms", f"{st.step_ms:.3f}"),
              ("step_cpu_ms", f"{st.step_cpu_ms:.3f}"),
              ("faults", "; ".join(st.faults)),
              ("lateral_fallbacks", str(st.lateral_fallbacks))]
        kv += [(k, str(v)) for k, v in st.counters.items()]
        s.values = [KeyValue(key=k, value=v) for k, v in kv]
        arr.status = [s]
        self.diag_pub.publish(arr)


def main(args=None):
    return run_node(ControlNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
