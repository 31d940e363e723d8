"""Simulator node (closed loop): runs a scenario of `autonomy_simulator.scenarios`, applies
/control/command to the ego and publishes sensors, odometry, /clock and ground truth.

  in:  /control/command (autonomy_interfaces/ControlCommand)
  out: /clock (sim time; the node itself steps on a steady wall clock, so use_sim_time
       from the mode does not stall it), /odom, /imu/kinematics, /tf (odom->base_link),
       /tf_static (base_link->camera_<cam>, this vehicle's own mounting error),
       /cameras/<cam>/image_raw + camera_info (camera_rate), /ground_truth/ego,
       /ground_truth/objects (odom), /ground_truth/road (odom), /ground_truth/bev/<layer>
       (base_link), /planning/goal (the scenario's goal), /planning/route (nav_msgs/Path:
       the scenario's route, as a navigation map gives it), /diagnostics.

Control: a command older than `command_timeout` (or none yet) -> the autopilot drives if
`autopilot` is true, else the ego brakes to a stop. Bad input (non-finite command) is
dropped, counted, logged (throttled) and reported in /diagnostics.

Stepping: real time (`lockstep` false): one step per dt / real_time_factor of wall time.
Lockstep (`lockstep` true, like CARLA's synchronous mode): the world steps as fast as the
stack answers, no wall-clock pacing: after each step it waits for a /control/command
stamped >= the step's time, after a step with a frame (cameras, or the ground-truth
objects without cameras) first for a /planning/trajectory stamped >= the frame time and
then for a command after it (`autonomy_simulator.lockstep.LockstepGate`). A wait past
`lockstep_timeout_s` (wall) is logged naming what was awaited, counted, reported in
/diagnostics (ERROR at the timeout, WARN with the count after) and the sim steps on with
the latest command. Every `lockstep_resend_s` of an open wait the awaited input is
published again with the same stamp (the frame while the plan is awaited, else /odom and
the state), counted as lockstep_resends: a dropped frame or an unanswered trajectory (control
rejects it) costs that, not the timeout.

Episodes (`restart_episodes`, for soaks): when the ego has stood still for
`episode_stall_s` or the episode ran `episode_timeout_s` of sim time, the scenario is built
again with the next seed; the published time runs on (an offset), the diagnostics count
the episode.

Start (`start_on`): "immediately", "first_command" (the first /control/command),
"first_plan" (the first command after the first /planning/trajectory that is not a safe
stop: with perception in the loop control commands long before the network has answered a
frame, and planning safe-stops until it has every input) or "start_signal"
(std_msgs/Empty on /simulator/start). Until then the initial state
(/clock, /odom, /tf, goal, road, one camera frame / ground truth, diagnostics) is
re-published every `hold_publish_period_s` of wall time without advancing time, so
late joiners get it.
"""
from __future__ import annotations

import array
import time

import numpy as np
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TransformStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, Imu
from std_msgs.msg import Empty
from tf2_msgs.msg import TFMessage

from autonomy_simulator import labels as lab
from autonomy_simulator import scenario_file, scenarios
from autonomy_stack.ros import ros_conversions as rc
from autonomy_stack import vector_space as vs
from autonomy_stack.ros.node_runtime import StartupError, run_node
from autonomy_stack.params import ParamSpec, declare_parameters, spec_from_field
from autonomy_interfaces.msg import ControlCommand, ObjectArray, RoadStructure, Trajectory
from autonomy_simulator.lockstep import LockstepConfig, LockstepGate
from autonomy_simulator.record import VehicleCameras
from autonomy_simulator.simulation import command_is_finite
from autonomy_stack.ros.qos import LATCHED, OUTPUTS, SENSOR_IMAGES, STATE

PARAMS = [
    ParamSpec("scenario", "narrow_street_oncoming", "scenario of the catalogue",
              choices=sorted(scenarios.CATALOGUE)),
    ParamSpec("seed", 0, "scenario seed", min=0, max=2 ** 31 - 1),
    ParamSpec("scenario_params", "", "comma-separated key=value scenario parameters"),
    ParamSpec("scenario_file", "", "a scenario file (autonomy_simulator.scenario_file, e.g. "
              "a failure recreated by `python -m autonomy_autolabel.failure`); replaces "
              "scenario / seed / scenario_params"),
    ParamSpec("dt", 0.02, "s per simulation step (odometry/IMU rate = 1/dt)", min=0.001, max=0.05),
    ParamSpec("real_time_factor", 1.0, "sim seconds per wall second", min=0.01, max=100.0),
    ParamSpec("autopilot", False, "drive the scenario route when no fresh command arrives"),
    ParamSpec("command_timeout", 0.5, "s (sim) after which a command is stale", min=0.02, max=10.0),
    ParamSpec("publish_images", True, "render and publish the cameras"),
    ParamSpec("camera_rate", 10.0, "Hz (sim time)", min=0.1, max=60.0),
    ParamSpec("image_width", 640, "px (native 1280)", min=32, max=4096),
    ParamSpec("image_height", 480, "px (native 960)", min=24, max=4096),
    ParamSpec("cameras", "", "comma-separated camera subset (empty: all 8)"),
    ParamSpec("mounting_seed", -1, "vehicle mounting-error seed (-1: the scenario seed)",
              min=-1, max=2 ** 31 - 1),
    ParamSpec("ground_truth_rate", 10.0, "Hz (sim time) of objects and BEV", min=0.1, max=50.0),
    ParamSpec("bev_extent", 100.0, "m (square, ego-centred)", min=10.0, max=400.0),
    ParamSpec("bev_cell", 0.5, "m", min=0.05, max=5.0),
    ParamSpec("max_duration", 0.0, "s of sim time, then the sim holds (0: unlimited)", min=0.0, max=1e6),
    ParamSpec("error_throttle_s", 2.0, "s between identical error logs", min=0.0, max=60.0),
    ParamSpec("lockstep", False, "step as fast as the stack answers each step / frame "
                                 "(synchronous mode) instead of in real time"),
    spec_from_field(LockstepConfig, "timeout_s", name="lockstep_timeout_s"),
    spec_from_field(LockstepConfig, "startup_timeout_s", name="lockstep_startup_timeout_s"),
    spec_from_field(LockstepConfig, "resend_s", name="lockstep_resend_s"),
    ParamSpec("start_on", "immediately", "when the world starts moving: immediately, at the "
              "first /control/command, at the first command after a /planning/trajectory "
              "(first_plan: the whole stack answered the held frame) or at /simulator/start",
              choices=("immediately", "first_command", "first_plan", "start_signal")),
    ParamSpec("restart_episodes", False, "restart the scenario with the next seed when an "
              "episode ends (ego stopped for episode_stall_s, or episode_timeout_s); the clock "
              "runs on across episodes"),
    ParamSpec("episode_stall_s", 10.0, "s (sim) the ego stands still (goal, supervisor stop, "
              "stuck) before the episode ends", min=0.5, max=3600.0),
    ParamSpec("episode_timeout_s", 120.0, "s (sim) of one episode at most", min=1.0, max=1e6),
    ParamSpec("hold_publish_period_s", 0.5, "s (wall) between re-publications of the initial "
                                            "state before the start", min=0.05, max=10.0),
]
LOCKSTEP_POLL_S = 0.01     # s (wall): timeout checks and the start between answers


class SimulatorNode(Node):
    def __init__(self):
        super().__init__("simulator")
        p = self.p = declare_parameters(self, PARAMS)
        self.episode, self.t_offset, self.still_since = 0, 0.0, None
        self._make_scenario(p["seed"])
        self.bev = lab.BevSpec(p["bev_extent"], p["bev_extent"], p["bev_cell"],
                               -p["bev_extent"] / 2, -p["bev_extent"] / 2)
        self.cams = None
        if p["publish_images"]:
            try:
                self.cams = VehicleCameras(p["image_width"], p["image_height"],
                                           [c for c in p["cameras"].split(",") if c.strip()] or None,
                                           p["seed"] if p["mounting_seed"] < 0 else p["mounting_seed"])
            except ValueError as exc:
                raise StartupError(f"parameter 'cameras': {exc}") from None
        self.msg_types = dict(Odometry=Odometry, Imu=Imu, TFMessage=TFMessage, Clock=ClockMsg,
                              OccupancyGrid=OccupancyGrid, PoseStamped=PoseStamped,
                              DiagnosticArray=DiagnosticArray, Image=Image, CameraInfo=CameraInfo)
        self._make_publishers()
        self.gate = None
        if p["lockstep"]:
            self.gate = LockstepGate(LockstepConfig(timeout_s=p["lockstep_timeout_s"],
                                                    startup_timeout_s=p["lockstep_startup_timeout_s"],
                                                    resend_s=p["lockstep_resend_s"]))
        if p["lockstep"] or p["start_on"] == "first_plan":
            # created before the command subscription: when a trajectory and the command
            # answering it are both waiting, the executor serves subscriptions in creation
            # order, so the trajectory is seen first (the command counts as its answer)
            self.create_subscription(Trajectory, "/planning/trajectory", self._on_trajectory, OUTPUTS)
        self.create_subscription(ControlCommand, "/control/command", self._on_command, STATE)
        if p["start_on"] == "start_signal":
            self.create_subscription(Empty, "/simulator/start",
                                     lambda _m: self._start("start signal on /simulator/start"), 10)
        self.started = False
        self.plan_seen = None              # stamp of the first /planning/trajectory (first_plan)
        self.last_hold_publish = -1e9
        self.timeout_pending = False       # a lockstep timeout not yet in /diagnostics
        self.cmd = None
        self.cmd_time = -1e9
        self.rejected = 0
        self.received = 0
        self._last_err = {}
        self.step_every = {
            "gt": max(1, int(round(1.0 / (p["ground_truth_rate"] * self.sim.dt)))),
            "cam": max(1, int(round(1.0 / (p["camera_rate"] * self.sim.dt)))),
            "slow": max(1, int(round(1.0 / self.sim.dt))),
        }
        self.render_s = 0.0
        self.last_visibility = None        # per-object pixel counts of the latest camera frame
        self._publish_goal_and_road()
        period = LOCKSTEP_POLL_S if self.gate else self.sim.dt / p["real_time_factor"]
        self.timer = self.create_timer(period, self._tick,
                                       clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            (f"scenario file {p['scenario_file']}: " if p["scenario_file"] else
             f"scenario '{p['scenario']}' seed {p['seed']}: ") + f"{len(self.sim.agents)} agents, "
            f"dt {self.sim.dt} s, cameras {list(self.pub_img) or 'off'}, "
            f"{'lockstep' if self.gate else 'real time'}, start on {p['start_on']}")
        if p["start_on"] == "immediately":
            self._start("start_on immediately")

    def _make_scenario(self, seed: int):
        p = self.p
        if p["scenario_file"]:
            try:
                self.sc = scenario_file.load(p["scenario_file"])
            except scenario_file.ScenarioFileError as exc:
                raise StartupError(f"parameter 'scenario_file': {exc}") from None
        else:
            try:
                sp = scenarios.parse_params([s for s in p["scenario_params"].split(",") if s.strip()])
                self.sc = scenarios.make(p["scenario"], seed=seed, **sp)
            except (TypeError, ValueError) as exc:
                raise StartupError(f"parameter 'scenario_params': {exc}") from None
        self.sim = self.sc.sim
        self.sim_autopilot = self.sim.autopilot
        self.sim.autopilot = None
        self.sim.dt = p["dt"]

    def now(self) -> float:
        """Published time: the episode's sim time plus the offset of the earlier episodes."""
        return self.sim.t + self.t_offset

    def _episode_over(self) -> str:
        sim, p = self.sim, self.p
        if not p["restart_episodes"]:
            return ""
        if abs(sim.ego.speed) > 0.05:
            self.still_since = None
        elif self.still_since is None:
            self.still_since = sim.t
        if self.still_since is not None and sim.t - self.still_since >= p["episode_stall_s"]:
            return f"the ego stood still for {p['episode_stall_s']:g} s"
        if sim.t >= p["episode_timeout_s"]:
            return f"episode time {p['episode_timeout_s']:g} s spent"
        return ""

    def _restart(self, why: str):
        self.t_offset += self.sim.t + self.sim.dt
        self.episode += 1
        seed = self.p["seed"] + self.episode
        self.get_logger().info(f"episode {self.episode - 1} ended at sim t {self.now():.2f} s "
                               f"({why}); episode {self.episode}: seed {seed}")
        self._make_scenario(seed)
        self.still_since, self.cmd, self.cmd_time = None, None, -1e9
        self._publish_goal_and_road()

    def _make_publishers(self):
        self.pub_clock = self.create_publisher(ClockMsg, "/clock", 10)
        self.pub_odom = self.create_publisher(Odometry, "/odom", STATE)
        self.pub_imu = self.create_publisher(Imu, "/imu/kinematics", STATE)
        self.pub_tf = self.create_publisher(TFMessage, "/tf", STATE)
        self.pub_tf_static = self.create_publisher(TFMessage, "/tf_static", LATCHED)
        self.pub_gt_ego = self.create_publisher(Odometry, "/ground_truth/ego", STATE)
        self.pub_gt_obj = self.create_publisher(ObjectArray, "/ground_truth/objects", OUTPUTS)
        self.pub_gt_road = self.create_publisher(RoadStructure, "/ground_truth/road", LATCHED)
        self.pub_bev = {k: self.create_publisher(OccupancyGrid, f"/ground_truth/bev/{k}", OUTPUTS)
                        for k in lab.LAYERS}
        self.pub_goal = self.create_publisher(PoseStamped, "/planning/goal", LATCHED)
        self.pub_route = self.create_publisher(Path, "/planning/route", LATCHED)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.pub_img, self.pub_info = {}, {}
        if self.cams is not None:
            for name in self.cams.actual:
                self.pub_img[name] = self.create_publisher(Image, f"/cameras/{name}/image_raw", SENSOR_IMAGES)
                self.pub_info[name] = self.create_publisher(CameraInfo, f"/cameras/{name}/camera_info", SENSOR_IMAGES)
            self._publish_tf_static()

    # ------------------------------------------------------------------ input
    def _error(self, key: str, text: str):
        now = time.monotonic()
        if now - self._last_err.get(key, -1e9) >= self.p["error_throttle_s"]:
            self._last_err[key] = now
            self.get_logger().error(text)

    def _on_command(self, msg):
        c = vs.ControlCommand(stamp=rc.stamp_to_sec(msg.header.stamp), steering_angle=msg.steering_angle,
                              steering_rate=msg.steering_rate, acceleration=msg.acceleration,
                              target_speed=msg.target_speed, gear=int(msg.gear), emergency=bool(msg.emergency),
                              trajectory_stamp=rc.stamp_to_sec(msg.trajectory_stamp))
        if not command_is_finite(c) or c.gear not in (-1, 0, 1):
            self.rejected += 1
            self._error("command", f"rejected /control/command: non-finite value or bad gear "
                                   f"(steering {c.steering_angle}, acceleration {c.acceleration}, "
                                   f"gear {c.gear}); {self.rejected} rejected so far")
            return
        self.received += 1
        self.cmd = c
        self.cmd_time = self.sim.t
        if not self.started and self.p["start_on"] == "first_command":
            self._start(f"first /control/command (stamp {c.stamp:.3f} s)")
        elif not self.started and self.p["start_on"] == "first_plan" and self.plan_seen is not None:
            self._start(f"first /control/command (stamp {c.stamp:.3f} s) after the first "
                        f"/planning/trajectory (stamp {self.plan_seen:.3f} s)")
        if self.gate is not None and self.started:
            self.gate.on_command(c.stamp, time.monotonic(), c.trajectory_stamp)
            self._lockstep_advance()

    def _on_trajectory(self, msg):
        stamp = rc.stamp_to_sec(msg.header.stamp)
        # a safe stop (planning still lacks an input) is not the stack being ready: starting
        # on it made the start, and so the whole run, depend on when the inputs arrived
        if self.plan_seen is None and msg.maneuver != "safe_stop":
            self.plan_seen = stamp
        if self.gate is not None and self.started:
            self.gate.on_trajectory(stamp, time.monotonic())
            self._lockstep_advance()

    def _start(self, why: str):
        if self.started:
            return
        self.started = True
        self.get_logger().info(f"world starts at sim t {self.now():.3f} s: {why}")

    # ------------------------------------------------------------------ loop
    def _tick(self):
        if not self.started:
            self._hold()
            return
        if self.gate is None:
            self._step()
            return
        now = time.monotonic()
        resend = self.gate.resend_due(now)
        if resend is not None:
            # the state too while a frame is awaited: nodes that age odometry on the wall
            # clock keep a fresh one while the world waits
            self._publish_state()
        if resend == "frame":
            self._publish_frame()
        what = self.gate.timed_out(now)
        if what is not None:
            self.timeout_pending = True
            self._error("lockstep", f"lockstep: waited for {what}; stepping on with the latest "
                                    f"command ({self.gate.total_timeouts} timeouts so far)")
            self._publish_diagnostics()
        self._lockstep_advance()

    def _hold(self):
        """Before the start: re-publish the initial state (no time passes)."""
        now = time.monotonic()
        if now - self.last_hold_publish < self.p["hold_publish_period_s"]:
            return
        self.last_hold_publish = now
        self._publish_state()
        self._publish_frame()
        self._publish_goal_and_road()
        self._publish_diagnostics()

    def _publish_frame(self):
        """The current frame again (same stamp): cameras if any, and the ground truth."""
        if self.cams is not None:
            self.last_visibility = self._publish_cameras()
        self._publish_ground_truth(self.last_visibility)

    def _lockstep_advance(self):
        """One step if the stack answered the last one (the gate is open)."""
        if not self.gate.ready() or self._at_max_duration():
            return
        now = time.monotonic()
        self.gate.finish(now)
        frame = self._step()
        self.gate.stepped(self.now(), frame, time.monotonic())

    def _at_max_duration(self) -> bool:
        return self.p["max_duration"] > 0 and self.now() >= self.p["max_duration"] - 1e-9

    def _step(self) -> bool:
        """One simulation step and its outputs; True if a frame (camera images, or the
        ground-truth objects without cameras) went out."""
        if self._at_max_duration():
            return False
        why = self._episode_over()
        if why:
            self._restart(why)
        sim, p = self.sim, self.p
        fresh = self.cmd is not None and sim.t - self.cmd_time <= p["command_timeout"]
        if fresh:
            sim.step(self.cmd)
        elif self.sim_autopilot is not None and p["autopilot"]:
            sim.step(self.sim_autopilot.command(sim.t, sim.dt, sim))
        else:
            sim.step(vs.ControlCommand(stamp=sim.t, steering_angle=sim.ego.steering_angle,
                                       steering_rate=0.0, acceleration=-3.0, target_speed=0.0,
                                       gear=1 if sim.ego.speed >= 0 else -1))
        self._publish_state()
        n = sim.steps
        frame = False
        if self.cams is not None and n % self.step_every["cam"] == 0:
            self.last_visibility = self._publish_cameras()
            frame = True
        if n % self.step_every["gt"] == 0:
            self._publish_ground_truth(self.last_visibility)
            frame = frame or self.cams is None
        if n % self.step_every["slow"] == 0:
            self._publish_goal_and_road()
            self._publish_diagnostics()
        return frame

    def _stamp(self):
        return rc.sec_to_stamp(self.now())

    def _publish_state(self):
        T = self.msg_types
        sim = self.sim
        stamp = self._stamp()
        self.pub_clock.publish(T["Clock"](clock=stamp))
        e = sim.ego
        odom = rc.ego_to_odometry(e)
        odom.header.stamp = stamp
        self.pub_odom.publish(odom)
        self.pub_gt_ego.publish(odom)
        k = sim.kinematics()
        imu = T["Imu"]()
        imu.header.stamp, imu.header.frame_id = stamp, "base_link"
        imu.orientation = rc.yaw_to_quaternion(k.yaw)
        imu.angular_velocity.z = float(k.yaw_rate)
        imu.linear_acceleration.x = float(k.accel)
        imu.linear_acceleration.y = float(k.lat_accel)
        imu.linear_acceleration.z = 9.81
        self.pub_imu.publish(imu)
        tf = TransformStamped()
        tf.header.stamp, tf.header.frame_id, tf.child_frame_id = stamp, "odom", "base_link"
        tf.transform.translation.x, tf.transform.translation.y = float(e.x), float(e.y)
        tf.transform.rotation = rc.yaw_to_quaternion(e.yaw)
        self.pub_tf.publish(T["TFMessage"](transforms=[tf]))

    def _publish_tf_static(self):
        out = []
        for name, cal in self.cams.actual.items():
            Tm = np.asarray(cal.T_base_camera, float)
            t = TransformStamped()
            t.header.stamp = self._stamp()
            t.header.frame_id, t.child_frame_id = "base_link", f"camera_{name}"
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = \
                (float(v) for v in Tm[:3, 3])
            t.transform.rotation = rc.rotation_to_quaternion(Tm[:3, :3])
            out.append(t)
        self.pub_tf_static.publish(self.msg_types["TFMessage"](transforms=out))

    def _publish_cameras(self):
        t0 = time.perf_counter()
        frame = self.cams.render(self.sim.snapshot(), outputs=("rgb",))
        self.render_s = time.perf_counter() - t0
        stamp = self._stamp()
        for name, cf in frame.cameras.items():
            cal = self.cams.actual[name]
            img = rc.numpy_to_image(cf.rgb, "rgb8", stamp=stamp, frame_id=f"camera_{name}")
            info = self.msg_types["CameraInfo"]()
            info.header.stamp, info.header.frame_id = stamp, f"camera_{name}"
            info.width, info.height = int(cal.width), int(cal.height)
            info.distortion_model = cal.distortion_model
            info.d = [float(v) for v in cal.D]
            info.k = [float(v) for v in np.asarray(cal.K).ravel()]
            info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
            P = np.zeros((3, 4))
            P[:, :3] = cal.K
            info.p = [float(v) for v in P.ravel()]
            self.pub_info[name].publish(info)
            self.pub_img[name].publish(img)
        return frame.visible_pixels

    def _publish_ground_truth(self, vis):
        sim = self.sim
        objs = lab.object_labels(sim.objects(), vis)
        v = vs.VectorSpace(stamp=self.now(), frame_id="odom", objects=objs)
        msg_objs, _ = rc.vector_space_to_msgs(v)
        self.pub_gt_obj.publish(msg_objs)
        rasters = lab.bev_rasters(sim.ground_truth("base_link"), self.bev)
        stamp = self._stamp()
        for layer, r in rasters.items():
            g = self.msg_types["OccupancyGrid"]()
            g.header.stamp, g.header.frame_id = stamp, "base_link"
            g.info.map_load_time = stamp
            g.info.resolution = float(self.bev.cell)
            g.info.width, g.info.height = int(r.shape[1]), int(r.shape[0])
            g.info.origin.position.x, g.info.origin.position.y = self.bev.origin_x, self.bev.origin_y
            g.info.origin.orientation.w = 1.0
            a = array.array("b")
            a.frombytes((r.astype(np.int8) * np.int8(100)).tobytes())
            g.data = a
            self.pub_bev[layer].publish(g)

    def _publish_goal_and_road(self):
        sim = self.sim
        _, road = rc.vector_space_to_msgs(sim.world.vector_space(self.now()))
        self.pub_gt_road.publish(road)
        if sim.goal is not None:
            g = self.msg_types["PoseStamped"]()
            g.header.stamp, g.header.frame_id = self._stamp(), "odom"
            g.pose.position.x, g.pose.position.y = float(sim.goal[0]), float(sim.goal[1])
            g.pose.orientation = rc.yaw_to_quaternion(float(sim.goal[2]))
            self.pub_goal.publish(g)
        if self.sc.route_path is not None and len(self.sc.route_path) >= 2:
            self.pub_route.publish(rc.points_to_path(self.sc.route_path, self.now(), "odom"))

    def _publish_diagnostics(self):
        level, msg = DiagnosticStatus.WARN if self.rejected else DiagnosticStatus.OK, ""
        kv = {"sim_time": f"{self.now():.3f}", "episode": str(self.episode),
              "commands_received": str(self.received),
              "commands_rejected": str(self.rejected), "render_s": f"{self.render_s:.3f}",
              "started": str(self.started), "stepping": "lockstep" if self.gate else "real time"}
        if not self.started:
            msg = f"; holding the world until the start ({self.p['start_on']})"
        if self.gate is not None:
            g = self.gate
            kv.update(lockstep_timeouts=str(g.total_timeouts),
                      lockstep_timeouts_command=str(g.timeouts["command"]),
                      lockstep_timeouts_trajectory=str(g.timeouts["trajectory"]),
                      lockstep_steps=str(g.waits), lockstep_resends=str(g.resends),
                      lockstep_wait_mean_ms=f"{1e3 * g.wait_sum_s / max(g.waits, 1):.2f}",
                      lockstep_wait_max_ms=f"{1e3 * g.wait_max_s:.1f}",
                      lockstep_waiting_for=g.waiting_for())
            if g.total_timeouts:
                level = max(level, DiagnosticStatus.WARN)
                msg += f"; {g.total_timeouts} lockstep timeouts (stack did not answer)"
            if self.timeout_pending:
                level = DiagnosticStatus.ERROR
                self.timeout_pending = False
        st = DiagnosticStatus(name="simulator", hardware_id="sim", level=level,
                              message=f"sim t {self.now():.2f} s{msg}")
        st.values = [KeyValue(key=k, value=v) for k, v in kv.items()]
        arr = self.msg_types["DiagnosticArray"]()
        arr.header.stamp = self._stamp()
        arr.status = [st]
        self.pub_diag.publish(arr)

    def close(self):
        if self.cams is not None:
            self.cams.release()


def main(args=None):
    return run_node(SimulatorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
