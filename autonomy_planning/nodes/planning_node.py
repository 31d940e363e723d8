"""Planning node: /perception/objects + /perception/road + /odom + /planning/goal (+ the
navigation route /planning/route, nav_msgs/Path, optional) ->
/planning/trajectory (Trajectory), /planning/agent_futures (AgentFutureArray),
/planning/path (nav_msgs/Path), /planning/corridor (Corridor), /planning/markers
(MarkerArray: chosen maneuver, corridor, the others' futures coloured by probability)
and /diagnostics, replanning at `rate_hz` on the node clock (use_sim_time works), or with
`trigger: objects` once per received /perception/objects message (no timer cycles; the
lockstep simulator waits for the plan of each frame), stamped with the node clock's now.

Thin: the work is in `autonomy_planning.planner.Planner.plan(scene)`.

Inputs: objects and road structure must be in the odometry frame (`frame_id`, "odom");
lanes are derived from the painted lines and road edges (`scene.road_from_lines` -> `lanes_from_road_lines`;
an unmarked two-way street becomes two lanes). The ObjectArray message has no is_static
flag: cars never seen moving are flagged parked by `scene.StaticObjectTracker`. A missing,
stale (older than `max_input_age` / `max_odom_age`), malformed or wrong-frame input makes
the node publish a safe stop trajectory (straight ahead, jerk-limited `safe_stop_decel`)
and an ERROR diagnostic naming the input; the bad message is dropped and counted. Without
any odometry yet nothing can be planned: only the diagnostic is published. Without a goal
the ego follows its lane (`require_goal: true` makes a missing goal a stop instead).
The navigation route says which way to go where the perceived lanes end or branch
(turns, junctions: `PlanningScene.nav_route`); without it the ego goes straight on there.

Parameters: the ones that configure the planning core are declared from the core's
dataclass fields (`CORE_PARAMS`: default, type, range and description are written once,
in `PlannerConfig` / `SearchConfig` / `OptimizerConfig` / `FuturesConfig` / `PlanningScene`
/ `Goal` with `autonomy_stack.params.param`); the node's own (rates, ages, mode) are
declared here. config/planning.yaml only lists what the deployed graph changes.

Modes (`mode` parameter): "driving" (this planner). "parking" is the hook for the
parking planner: the node imports `autonomy_planning.parking.mode` and calls its
`make_mode(node_params) -> object with plan(scene) -> planner.PlanResult`; if that module
is missing the node refuses to start (exit 2 naming the parameter). "auto": driving, and
the parking mode takes over near a parking goal and hands back
(`autonomy_planning.parking.handover.DriveParkPlanner`; diagnostics `active_mode`).
"""
from __future__ import annotations

import importlib
import math
import time
from typing import Optional

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Odometry, Path
from visualization_msgs.msg import Marker, MarkerArray

from autonomy_planning.futures import FuturesConfig
from autonomy_planning.input_sync import PlanInputSync
from autonomy_planning.junction import JunctionConfig
from autonomy_planning.parking.handover import DriveParkPlanner
from autonomy_planning.maneuver_search import SearchConfig
from autonomy_planning.planner import PlanResult, Planner, PlannerConfig, safe_stop_trajectory
from autonomy_planning.trajectory_optimizer import OptimizerConfig
from autonomy_planning.scene import (Goal, Lane, PlanningScene, RoadMemory, StaticObjectTracker,
                                     road_from_lines)
from autonomy_stack.ros.node_runtime import StartupError, run_node
from autonomy_stack.params import ParamSpec, declare_parameters, spec_from_field
from autonomy_stack.vector_space import EgoState
from autonomy_interfaces.msg import (AgentFuture, AgentFutureArray, Corridor, CorridorSlice,
                                     ObjectArray, ObjectClass, PredictedPath, RoadStructure,
                                     Trajectory)
from autonomy_stack.params import ParameterError
from autonomy_stack.ros.qos import LATCHED, OUTPUTS, STATE
from autonomy_stack.ros.ros_conversions import (ego_state_is_finite, msg_to_object,
                                                msgs_to_vector_space, odometry_to_ego,
                                                path_to_points,
                                                quaternion_to_yaw, sec_to_stamp, stamp_to_sec,
                                                trajectory_to_msg,
                                                yaw_to_quaternion)

# node parameter -> the core config fields it sets ("<PlannerConfig path>"; "scene.", "lane." and
# "goal." are the node's PlanningScene / Lane / Goal). The first field is the declaration:
# default, type, range and description (`autonomy_stack.params.param`); the others take
# the same value.
_SOURCES = {"": PlannerConfig, "search": SearchConfig, "optimizer": OptimizerConfig,
            "futures": FuturesConfig, "junction": JunctionConfig, "scene": PlanningScene,
            "goal": Goal, "lane": Lane}
CORE_PARAMS = {
    "frame_id": ("scene.frame_id",),
    "speed_limit": ("lane.speed_limit",),
    "desired_speed": ("desired_speed",),
    "goal_tolerance": ("goal.tolerance",),
    "safe_stop_decel": ("safe_stop_decel",),
    "horizon": ("search.horizon", "futures.horizon", "optimizer.horizon"),
    "lane_change_start_times": ("search.lc_start_times",),
    "lane_change_durations": ("search.lc_durations",),
    "max_accel": ("optimizer.max_accel",),
    "max_decel": ("optimizer.max_decel",),
    "emergency_decel": ("optimizer.emergency_decel",),
    "max_jerk": ("optimizer.max_jerk",),
    "lat_acc_max": ("optimizer.lat_acc_max", "corridor.lat_acc_max"),
    "relevance_radius": ("futures.relevance_radius",),
    # junctions and merges (autonomy_planning/junction.py)
    "follower_lat_margin": ("junction.follower_lat_margin",),
    "imminent_ttc_s": ("junction.imminent_ttc_s",),
    "deadlock_wait_s": ("junction.deadlock_wait_s",),
    "deadlock_creep_speed": ("junction.deadlock_creep_speed",),
    "deadlock_discount": ("junction.deadlock_discount",),
}


def core_spec(name: str) -> ParamSpec:
    """The declaration of core parameter `name`, from its first field in CORE_PARAMS."""
    owner, _, attr = CORE_PARAMS[name][0].rpartition(".")
    return spec_from_field(_SOURCES[owner], attr, name=name)


PARAMS = [
    ParamSpec("mode", "driving", "planner mode (parking: autonomy_planning.parking.mode; "
                                 "auto: driving, the parking mode near a parking goal)",
              choices=("driving", "parking", "auto")),
    ParamSpec("rate_hz", 10.0, "replanning rate (trigger: timer)", min=0.5, max=50.0),
    ParamSpec("trigger", "timer", "when to plan: 'timer' (every 1/rate_hz) or 'objects' (once "
                                  "per /perception/objects message)", choices=("timer", "objects")),
    ParamSpec("input_wait_s", 0.2, "trigger objects: s (wall) a frame waits for the odometry "
              "(and with sync_road the road) of its stamp, then it is planned with what is "
              "there and counted late", min=0.0, max=5.0),
    ParamSpec("sync_road", False, "trigger objects: plan a frame only with the road of its own "
                                  "stamp (perception publishes both per frame)"),
    core_spec("frame_id"),
    ParamSpec("max_input_age", 0.5, "s: objects / road older than this are stale",
              min=0.05, max=10.0),
    ParamSpec("max_odom_age", 0.3, "s: odometry older than this is stale", min=0.02, max=10.0),
    ParamSpec("require_goal", False, "stop (instead of following the lane) without a goal"),
    ParamSpec("road_hold_s", 3.0, "s the last lanes from /perception/road are kept while new "
              "frames give no lane (0: not kept)", min=0.0, max=30.0),
    *(core_spec(name) for name in CORE_PARAMS if name != "frame_id"),
    ParamSpec("publish_markers", True, "publish /planning/markers"),
    ParamSpec("diagnostics_rate_hz", 2.0, "diagnostics rate (and on every level change)",
              min=0.1, max=50.0),
]

_LEVELS = {"OK": b"\x00", "WARN": b"\x01", "ERROR": b"\x02"}


def config_from_params(p: dict) -> PlannerConfig:
    """The PlannerConfig of the node's parameters `p` (CORE_PARAMS; the scene / goal ones
    are applied per cycle). The emergency deceleration is never below max_decel."""
    cfg = PlannerConfig()
    for name, paths in CORE_PARAMS.items():
        value = p[name]
        if isinstance(value, (list, tuple)):
            value = tuple(float(x) for x in value)
        for path in paths:
            owner, _, attr = path.rpartition(".")
            if owner in ("scene", "goal", "lane"):
                continue
            setattr(getattr(cfg, owner) if owner else cfg, attr, value)
    cfg.optimizer.emergency_decel = max(p["emergency_decel"], p["max_decel"])
    return cfg


class PlanningNode(Node):
    def __init__(self):
        super().__init__("planning")

        self.p = declare_parameters(self, PARAMS)
        for name in ("lane_change_start_times", "lane_change_durations"):
            vals = self.p[name]
            if not vals or not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
                                   for v in vals):
                raise ParameterError(f"parameter '{name}': expected non-empty list of numbers >= 0")
        self.cfg = config_from_params(self.p)
        if self.p["mode"] in ("parking", "auto"):
            try:
                mod = importlib.import_module("autonomy_planning.parking.mode")
            except ImportError as exc:
                raise StartupError(f"parameter 'mode': parking mode is not available ({exc})")
            if self.p["mode"] == "parking":
                self.impl = mod.make_mode(dict(self.p))
            else:   # hand-over at the lot (autonomy_planning/parking/handover.py)
                self.impl = DriveParkPlanner(Planner(self.cfg),
                                             lambda: mod.make_mode(dict(self.p)))
        else:
            self.impl = Planner(self.cfg)
        self.traj_pub = self.create_publisher(Trajectory, "/planning/trajectory", OUTPUTS)
        self.fut_pub = self.create_publisher(AgentFutureArray, "/planning/agent_futures", OUTPUTS)
        self.path_pub = self.create_publisher(Path, "/planning/path", OUTPUTS)
        self.corr_pub = self.create_publisher(Corridor, "/planning/corridor", OUTPUTS)
        self.mark_pub = self.create_publisher(MarkerArray, "/planning/markers", OUTPUTS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(ObjectArray, "/perception/objects", self.on_objects, OUTPUTS)
        self.create_subscription(RoadStructure, "/perception/road", self.on_road, OUTPUTS)
        self.create_subscription(Odometry, "/odom", self.on_odom, STATE)
        # the goal is published once (latched) or repeatedly: accept both
        self.create_subscription(PoseStamped, "/planning/goal", self.on_goal, LATCHED)
        self.create_subscription(Path, "/planning/route", self.on_route, LATCHED)
        # objects, road and odometry of one stamp are paired before planning: the executor's
        # order of three topics differs from run to run (lockstep runs drifted apart)
        self.sync = PlanInputSync(self.p["input_wait_s"], self.p["sync_road"])
        self._odom_prev = None
        self._planned_stamp = None       # stamp of the last frame planned (trigger objects)
        if self.p["trigger"] == "timer":
            self.create_timer(1.0 / self.p["rate_hz"], self.on_timer)
        else:   # flushes a frame whose inputs did not come within input_wait_s
            self.create_timer(0.05, self._try_plan, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.objects = self.road = self.ego = None
        self.t_objects = self.t_road = self.t_odom = None
        self.goal = None
        self.nav_route = None            # (N,2) odom, /planning/route
        self.static_tracker = StaticObjectTracker()
        self.road_memory = RoadMemory(self.p["road_hold_s"])
        self.lanes, self.boundaries, self.road_key = [], [], None
        self.dropped = {"objects": 0, "road": 0, "odom": 0, "goal": 0, "route": 0}
        self.counters = {"cycles": 0, "safe_stops": 0, "plan_errors": 0, "late_frames": 0}
        self.last_result = None
        self.last_cycle_ms = 0.0
        self.diag_period = 1.0 / self.p["diagnostics_rate_hz"]
        self.last_diag, self.last_level = -1e18, None
        self.status = ("ERROR", "waiting for inputs")
        self.get_logger().info(f"planning: mode {self.p['mode']}, " + (
            f"at {self.p['rate_hz']:.1f} Hz" if self.p["trigger"] == "timer"
            else "once per /perception/objects message"))

    # ------------------------------------------------------------------ inputs
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _drop(self, name: str, why: str) -> None:
        self.dropped[name] += 1
        topic = f"planning/{name}" if name in ("goal", "route") else name
        self.get_logger().error(f"/{topic} dropped: {why}",
                                throttle_duration_sec=1.0)

    def on_objects(self, msg) -> None:
        if msg.header.frame_id not in (self.p["frame_id"], ""):
            return self._drop("objects", f"frame '{msg.header.frame_id}' is not "
                                         f"'{self.p['frame_id']}'")
        try:
            objs = [msg_to_object(m) for m in msg.objects]
        except Exception as exc:
            return self._drop("objects", f"could not be converted: {exc}")
        bad = [o.id for o in objs if not all(math.isfinite(v) for v in (
            o.x, o.y, o.yaw, o.speed, o.accel, o.yaw_rate, o.length, o.width))
            or o.length <= 0.0 or o.width <= 0.0]
        if bad:
            # one bad object: drop that object, keep the rest
            self._drop("objects", f"non-finite / degenerate objects {bad[:5]}")
            objs = [o for o in objs if o.id not in bad]
        # parked cars: the message has no is_static flag (see StaticObjectTracker)
        now = self.now()
        if self.p["trigger"] == "objects":
            self.t_objects = now
            self.sync.add_objects(stamp_to_sec(msg.header.stamp), objs, time.monotonic())
            return self._try_plan()
        self.objects, self.t_objects = self.static_tracker.update(objs, now), now

    def _try_plan(self) -> None:
        """trigger objects: plan the pending frame once its odometry (and road) are there."""
        f = self.sync.ready(time.monotonic())
        if f is None:
            return
        if f.stamp == self._planned_stamp and self.last_result is not None:
            # the same frame again (a lockstep simulator holding or re-sending it): the same
            # plan again, not another cycle (repeats would advance the planner's own state
            # by as many plans as wall time allowed)
            self.publish_result(self.last_result, f.stamp)
            return
        if f.late:
            self.counters["late_frames"] += 1
            self.get_logger().warning(
                f"frame {f.stamp:.3f} planned without the {' and '.join(f.missing)} after "
                f"{self.p['input_wait_s']:g} s ({self.counters['late_frames']} late frames)",
                throttle_duration_sec=2.0)
        self.objects = self.static_tracker.update(f.objects, f.stamp)
        if f.road is not None:
            self.road = f.road
        self.on_timer(f.ego, f.stamp)

    def on_road(self, msg) -> None:
        if msg.header.frame_id not in (self.p["frame_id"], ""):
            return self._drop("road", f"frame '{msg.header.frame_id}' is not '{self.p['frame_id']}'")
        try:
            empty = ObjectArray()
            empty.header = msg.header
            lines = msgs_to_vector_space(empty, msg).lines
        except Exception as exc:
            return self._drop("road", f"could not be converted: {exc}")
        lines = [l for l in lines if len(l.points) >= 2 and np.all(np.isfinite(l.points))]
        self.road, self.t_road = lines, self.now()
        self.sync.add_road(stamp_to_sec(msg.header.stamp), lines)
        if self.p["trigger"] == "objects":
            self._try_plan()

    def on_odom(self, msg) -> None:
        try:
            ego = odometry_to_ego(msg)
        except Exception as exc:
            return self._drop("odom", f"could not be converted: {exc}")
        if not ego_state_is_finite(ego):
            return self._drop("odom", "non-finite pose or twist")
        if msg.header.frame_id not in (self.p["frame_id"], ""):
            return self._drop("odom", f"frame '{msg.header.frame_id}' is not '{self.p['frame_id']}'")
        now = self.now()
        prev = self._odom_prev
        if prev is not None:
            dt = ego.stamp - prev.stamp
            if 0.01 < dt < 0.5:
                ego.accel = 0.7 * prev.accel + 0.3 * (ego.speed - prev.speed) / dt
            else:
                ego.accel = prev.accel
        self._odom_prev = self.ego = ego
        self.t_odom = now
        self.sync.add_odom(ego)
        if self.p["trigger"] == "objects":
            self._try_plan()

    def on_goal(self, msg) -> None:
        p = msg.pose.position
        yaw = quaternion_to_yaw(msg.pose.orientation)
        if not all(math.isfinite(v) for v in (p.x, p.y, yaw)):
            return self._drop("goal", "non-finite pose")
        if msg.header.frame_id not in (self.p["frame_id"], ""):
            return self._drop("goal", f"frame '{msg.header.frame_id}' is not '{self.p['frame_id']}'")
        self.goal = Goal(p.x, p.y, yaw, tolerance=self.p["goal_tolerance"])

    def on_route(self, msg) -> None:
        if msg.header.frame_id != self.p["frame_id"]:
            return self._drop("route", f"frame '{msg.header.frame_id}' is not '{self.p['frame_id']}'")
        pts = path_to_points(msg)
        if len(pts) < 2 or not np.all(np.isfinite(pts)):
            return self._drop("route", f"{len(pts)} points or not finite")
        if self.nav_route is None or len(pts) != len(self.nav_route):
            self.get_logger().info(f"planning: navigation route of {len(pts)} points, "
                                   f"{float(np.hypot(*np.diff(pts, axis=0).T).sum()):.0f} m")
        self.nav_route = pts

    # ------------------------------------------------------------------ cycle
    def _stale(self, now: float):
        problems = []
        if self.ego is None:
            problems.append("no /odom yet")
        elif now - self.t_odom > self.p["max_odom_age"]:
            problems.append(f"/odom stale ({now - self.t_odom:.2f} s)")
        for name, t in (("objects", self.t_objects), ("road", self.t_road)):
            if t is None:
                problems.append(f"no /perception/{name} yet")
            elif now - t > self.p["max_input_age"]:
                problems.append(f"/perception/{name} stale ({now - t:.2f} s)")
        if self.p["require_goal"] and self.goal is None:
            problems.append("no /planning/goal")
        return problems

    def _update_lanes(self, ego: EgoState):
        key = (len(self.road), tuple((len(l.points), round(float(l.points[0][0]), 1),
                                      round(float(l.points[-1][1]), 1)) for l in self.road[:50]))
        if key != self.road_key or not self.lanes:
            # the same derivation as the in-process closed loop (one implementation)
            self.lanes, self.boundaries, held = self.road_memory.update(
                *road_from_lines(self.road, ego, self.p["speed_limit"]), self.now())
            if held:
                self.get_logger().warning("no lane in /perception/road: planning on the last lanes "
                                       f"(kept up to road_hold_s = {self.p['road_hold_s']:g} s)",
                                       throttle_duration_sec=2.0)
            self.road_key = key

    def on_timer(self, frame_ego: Optional[EgoState] = None,
                 frame_stamp: Optional[float] = None) -> None:
        """One cycle; with trigger objects, from the state at the frame's stamp, stamped
        with it (the plan's time origin is the state it starts from)."""
        t0 = time.perf_counter()
        now = self.now()
        problems = self._stale(now)
        src = frame_ego if frame_ego is not None else self.ego
        stamp = frame_stamp if frame_stamp is not None else now
        result = None
        if problems:
            self.status = ("ERROR", "safe stop: " + "; ".join(problems))
            self.get_logger().error(f"planning: {self.status[1]}", throttle_duration_sec=2.0)
            if self.ego is not None:
                ego = EgoState(**{**self.ego.__dict__, "stamp": now})
                self.counters["safe_stops"] += 1
                self.publish_trajectory(safe_stop_trajectory(
                    ego, decel=self.p["safe_stop_decel"], horizon=self.p["horizon"],
                    stamp=now, frame_id=self.p["frame_id"]))
        else:
            try:
                self._update_lanes(src)
                ego = EgoState(**{**src.__dict__, "stamp": stamp})
                scene = PlanningScene(stamp=stamp, ego=ego, agents=list(self.objects),
                                      lanes=self.lanes, boundaries=self.boundaries,
                                      goal=self.goal, speed_limit=self.p["speed_limit"],
                                      frame_id=self.p["frame_id"], nav_route=self.nav_route)
                result = self.impl.plan(scene)
                self.last_result = result
                self._planned_stamp = frame_stamp
                self.publish_result(result, stamp)
                level = "WARN" if (result.emergency or result.status != "ok") else "OK"
                self.status = (level, f"{result.maneuver} ({result.status}"
                               f"{', emergency' if result.emergency else ''})")
            except Exception as exc:  # never crash: stop and report
                self.counters["plan_errors"] += 1
                self.status = ("ERROR", f"safe stop: planner failed: {type(exc).__name__}: {exc}")
                self.get_logger().error(f"planning: {self.status[1]}", throttle_duration_sec=1.0)
                self.counters["safe_stops"] += 1
                self.publish_trajectory(safe_stop_trajectory(
                    EgoState(**{**self.ego.__dict__, "stamp": now}),
                    decel=self.p["safe_stop_decel"], horizon=self.p["horizon"], stamp=now,
                    frame_id=self.p["frame_id"]))
        self.counters["cycles"] += 1
        self.last_cycle_ms = (time.perf_counter() - t0) * 1e3
        if self.status[0] != self.last_level or now - self.last_diag >= self.diag_period \
                or now < self.last_diag:
            self.publish_diagnostics(now, result)

    # ------------------------------------------------------------------ outputs
    def publish_trajectory(self, traj):
        m = trajectory_to_msg(traj)
        self.traj_pub.publish(m)
        path = Path()
        path.header = m.header
        for i in range(len(traj)):
            ps = PoseStamped()
            ps.header = m.header
            ps.header.stamp = sec_to_stamp(traj.stamp + float(traj.t[i]))
            ps.pose.position.x, ps.pose.position.y = float(traj.x[i]), float(traj.y[i])
            ps.pose.orientation = yaw_to_quaternion(float(traj.yaw[i]))
            path.poses.append(ps)
        self.path_pub.publish(path)

    def publish_result(self, r: PlanResult, now: float) -> None:
        self.publish_trajectory(r.trajectory)
        self.fut_pub.publish(futures_to_msg(r.futures, now, self.p["frame_id"]))
        if r.corridor is not None and r.frame is not None and r.chosen is not None:
            self.corr_pub.publish(corridor_to_msg(r, now, self.p["frame_id"]))
        if self.p["publish_markers"]:
            self.mark_pub.publish(markers(r, now, self.p["frame_id"]))

    def publish_diagnostics(self, now: float, r) -> None:
        self.last_diag, self.last_level = now, self.status[0]
        arr = DiagnosticArray()
        arr.header.stamp = sec_to_stamp(now)
        s = DiagnosticStatus(name="planning: planner", hardware_id="autonomy_planning",
                             message=self.status[1][:500])
        s.level = _LEVELS[self.status[0]]
        age = lambda t: "never" if t is None else f"{now - t:.3f}"
        kv = [("mode", self.p["mode"]), ("active_mode", getattr(self.impl, "mode", self.p["mode"])),
              ("cycle_ms", f"{self.last_cycle_ms:.1f}"),
              ("odom_age_s", age(self.t_odom)), ("objects_age_s", age(self.t_objects)),
              ("road_age_s", age(self.t_road)), ("goal", "none" if self.goal is None else
                                                  f"{self.goal.x:.1f},{self.goal.y:.1f}"),
              ("lanes", str(len(self.lanes)))]
        if r is not None:
            kv += [("maneuver", r.maneuver), ("candidates_per_cycle", str(r.candidates_per_cycle)),
                   ("collision_probability", f"{r.collision_probability:.3f}"),
                   ("emergency", str(r.emergency)), ("optimiser", r.status)]
        kv += [(f"dropped_{k}", str(v)) for k, v in self.dropped.items()]
        kv += [(k, str(v)) for k, v in self.counters.items()]
        s.values = [KeyValue(key=k, value=v) for k, v in kv]
        arr.status = [s]
        self.diag_pub.publish(arr)


# ---------------------------------------------------------------------- conversions
def futures_to_msg(futures, now: float, frame_id: str):
    arr = AgentFutureArray()
    arr.header.stamp, arr.header.frame_id = sec_to_stamp(now), frame_id
    for f in futures:
        af = AgentFuture(agent_id=int(f.agent_id) & 0xFFFFFFFF,
                         object_class=ObjectClass(value=int(f.object_class)))
        for h in f.hypotheses:
            af.hypotheses.append(PredictedPath(label=h.label, probability=float(h.probability),
                                               points=trajectory_to_msg(h.trajectory).points))
        arr.agents.append(af)
    return arr


def corridor_to_msg(r: PlanResult, now: float, frame_id: str, step: int = 2):
    c = r.corridor
    m = Corridor()
    m.header.stamp, m.header.frame_id = sec_to_stamp(now), frame_id
    t_at = c.time_at_station(np.maximum.accumulate(r.chosen["s"]), r.chosen["t"])
    for i in range(0, len(c.stations), step):
        t = float(t_at[i]) if np.isfinite(t_at[i]) else float(c.times[-1])
        sl = CorridorSlice(station=float(c.stations[i]), time=t, heading=float(c.ref_heading[i]),
                           left_bound=float(c.left[i]), right_bound=float(c.right[i]),
                           speed_min=float(np.interp(t, c.times, c.speed_min)),
                           speed_max=float(np.interp(t, c.times, c.speed_max)))
        sl.reference.x, sl.reference.y = float(c.ref_x[i]), float(c.ref_y[i])
        m.slices.append(sl)
    return m


def markers(r: PlanResult, now: float, frame_id: str):
    stamp = sec_to_stamp(now)
    arr = MarkerArray()
    clear = Marker()
    clear.header.stamp, clear.header.frame_id = stamp, frame_id
    clear.action = Marker.DELETEALL
    arr.markers.append(clear)

    def strip(ns, mid, xs, ys, rgba, width=0.15, z=0.1):
        mk = Marker()
        mk.header.stamp, mk.header.frame_id = stamp, frame_id
        mk.ns, mk.id, mk.type, mk.action = ns, mid, Marker.LINE_STRIP, Marker.ADD
        mk.scale.x = width
        mk.color.r, mk.color.g, mk.color.b, mk.color.a = rgba
        mk.pose.orientation.w = 1.0
        mk.points = [Point(x=float(x), y=float(y), z=z) for x, y in zip(xs, ys)]
        return mk

    tr = r.trajectory
    arr.markers.append(strip("trajectory", 0, tr.x, tr.y, (0.1, 0.9, 0.2, 1.0), 0.3))
    if r.chosen is not None:
        arr.markers.append(strip("maneuver", 0, r.chosen["x"], r.chosen["y"], (0.9, 0.9, 0.1, 0.8)))
        txt = Marker()
        txt.header.stamp, txt.header.frame_id = stamp, frame_id
        txt.ns, txt.id, txt.type, txt.action = "maneuver_label", 0, Marker.TEXT_VIEW_FACING, Marker.ADD
        txt.pose.position.x, txt.pose.position.y, txt.pose.position.z = float(tr.x[0]), float(tr.y[0]), 3.0
        txt.pose.orientation.w = 1.0
        txt.scale.z = 1.0
        txt.color.r = txt.color.g = txt.color.b = txt.color.a = 1.0
        txt.text = r.maneuver
        arr.markers.append(txt)
    c, f = r.corridor, r.frame
    if c is not None and f is not None:
        for k, (side, dd) in enumerate((("left", c.left), ("right", c.right))):
            x, y, _ = f.ref.to_xy(c.stations, dd)
            arr.markers.append(strip("corridor", k, x, y, (0.2, 0.4, 1.0, 0.9), 0.1))
    mid = 0
    for fut in r.futures:
        for h in fut.hypotheses:
            p = float(h.probability)
            arr.markers.append(strip("futures", mid, h.trajectory.x, h.trajectory.y,
                                     (1.0, 1.0 - p, 0.1, 0.25 + 0.75 * p), 0.08 + 0.25 * p))
            mid += 1
    return arr


def main(args=None):
    return run_node(PlanningNode, args)
