"""Supervisor node: the car never leaves the road silently. Thin: the checks are
`autonomy_control.supervisor.Supervisor` (off_road, off_route, over_speed, no_progress,
goal_passed).

Inputs: /odom, /perception/bev/drivable (OccupancyGrid; frame `odom`, or the ego frame
`base_link` located by the odometry at the grid's stamp), /planning/route (nav_msgs/Path,
latched: the navigation route the car must keep to; without one, the planned path
/planning/path stands for it), /planning/path (where "path free" looks), /planning/goal,
/perception/objects (odom or base_link; for "path free").
Outputs: /supervisor/status (DiagnosticStatus "supervisor": level, message naming every
reason with its value and limit, values with the figures) at `rate_hz` and on every
change; /diagnostics (the same status) at `diagnostics_rate_hz` and on every change.
An ERROR (latched until the episode ends) makes control_node stop the car. Each event is
logged once. A missing or stale input switches its check off and says so (WARN, value
`checks_off`), never silently. A new goal, a clock that jumps back or an ego that
jumps (the simulator restarted the episode) starts a new episode (`Supervisor.reset`)."""
from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Optional, Tuple

import numpy as np
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path

from autonomy_control.supervisor import (DrivableArea, Supervisor, SupervisorConfig,
                                         SupervisorInputs, path_is_free)
from autonomy_interfaces.msg import ObjectArray
from autonomy_stack.bev_grid import BEVGrid, from_occupancy_layout
from autonomy_stack.geometry import arc_length, from_frame, project_to_polyline
from autonomy_stack.params import ParamSpec, declare_parameters, spec_from_field
from autonomy_stack.ros.node_runtime import run_node
from autonomy_stack.ros.qos import LATCHED, OUTPUTS, STATE
from autonomy_stack.ros.ros_conversions import (msg_to_object, odometry_to_ego, path_to_points,
                                                quaternion_to_yaw, sec_to_stamp, stamp_to_sec)
from autonomy_vehicle.vehicle_model import VehicleParams

_V = VehicleParams()
CORE_PARAMS = [spec_from_field(SupervisorConfig, f.name)
               for f in dataclasses.fields(SupervisorConfig)]
PARAMS = CORE_PARAMS + [
    ParamSpec("rate_hz", 10.0, "checks and /supervisor/status per second", min=0.5,
              max=100.0),
    ParamSpec("diagnostics_rate_hz", 1.0, "/diagnostics rate (and on every change)",
              min=0.1, max=50.0),
    ParamSpec("speed_limit", 0.0, "m/s for over_speed (0: no limit, check off)", min=0.0,
              max=60.0),
    ParamSpec("vehicle_length", _V.length, "m, body", min=0.5, max=30.0),
    ParamSpec("vehicle_width", _V.width, "m, body", min=0.5, max=5.0),
    ParamSpec("rear_overhang", _V.rear_overhang, "m, rear bumper behind the rear axle",
              min=0.0, max=10.0),
    ParamSpec("drivable_threshold", 50, "OccupancyGrid value (0..100) from which a cell is "
              "drivable", min=1, max=100),
    ParamSpec("max_input_age", 1.0, "s: drivable raster, path and objects older than this "
              "(against the odometry) switch their checks off", min=0.05, max=60.0),
    ParamSpec("pose_tolerance", 0.1, "s between a base_link grid's stamp and the odometry "
              "that locates it", min=0.001, max=2.0),
    ParamSpec("path_free_lookahead", 30.0, "m ahead along the path checked for objects",
              min=1.0, max=200.0),
    ParamSpec("path_free_half_width", 1.5, "m each side of the path checked for objects",
              min=0.1, max=10.0),
    ParamSpec("odom_frame", "odom", "the fixed frame of odometry, path, goal"),
]

_LEVEL = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN,
          "ERROR": DiagnosticStatus.ERROR}


def is_teleport(prev, ego, max_jump_m: float = 10.0) -> bool:
    """The ego moved farther than `max_jump_m` (plus 3x what its speed allows) between two
    odometry messages less than 1 s apart: the simulator restarted the episode (the clock
    runs on, the goal may stay the same)."""
    t, x, y, _ = prev
    dt = ego.stamp - t
    return 0.0 <= dt < 1.0 and \
        math.hypot(ego.x - x, ego.y - y) > max_jump_m + 3.0 * abs(ego.speed) * dt


def usable_route(path: Optional[np.ndarray], ego, min_length: float = 2.0):
    """The planned path as the route to check against, or None where it says nothing
    about the way to go: a standing plan (shorter than `min_length`) or one that ends
    behind the ego (its direction would be arbitrary: heading errors of ~pi and a false
    goal_passed were seen in the vision closed loop)."""
    if path is None or len(path) < 2:
        return None
    s_cum = arc_length(path)
    if s_cum[-1] < min_length:
        return None
    s_ego, _ = project_to_polyline(path, s_cum, [[ego.x, ego.y]])
    return path if s_ego[0] < s_cum[-1] - 0.5 else None


def drivable_from_grid(msg, pose, threshold: int) -> DrivableArea:
    """OccupancyGrid (cells >= `threshold` drivable) whose header frame is at `pose`
    (x, y, yaw) in odom -> DrivableArea (the grid's frame = its origin, in odom)."""
    info = msg.info
    occ = np.asarray(msg.data, dtype=np.int8).reshape(info.height, info.width)
    mask = from_occupancy_layout(occ >= threshold)
    res = float(info.resolution)
    grid = BEVGrid((0.0, info.width * res), (0.0, info.height * res), res)
    o = info.origin
    origin = from_frame(np.array([[o.position.x, o.position.y]]), *pose)[0]
    return DrivableArea.from_raster(mask, grid, (float(origin[0]), float(origin[1]),
                                                 pose[2] + quaternion_to_yaw(o.orientation)))


class SupervisorNode(Node):
    def __init__(self):
        super().__init__("supervisor")
        p = self.p = declare_parameters(self, PARAMS)
        self.cfg = SupervisorConfig(**{s.name: p[s.name] for s in CORE_PARAMS})
        self.sup = Supervisor(self.cfg)
        self.body = (p["vehicle_length"] - p["rear_overhang"], p["rear_overhang"],
                     p["vehicle_width"] / 2.0)
        self.poses: deque = deque(maxlen=400)            # (t, x, y, yaw) of /odom
        self.ego = None
        self.drivable: Optional[Tuple[float, DrivableArea]] = None   # (stamp, area)
        self.route: Optional[Tuple[float, np.ndarray]] = None     # the planned path
        self.nav_route: Optional[np.ndarray] = None                # /planning/route (odom)
        self.goal: Optional[Tuple[float, float, float]] = None
        self.objects: Optional[Tuple[float, list]] = None
        self.dropped = {"drivable": 0, "path": 0, "goal": 0, "objects": 0, "odom": 0,
                        "route": 0}
        self.events_logged = 0
        self.last_key = None
        self.last_diag = -1e18
        self.status_pub = self.create_publisher(DiagnosticStatus, "/supervisor/status", STATE)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Odometry, "/odom", self.on_odom, STATE)
        self.create_subscription(OccupancyGrid, "/perception/bev/drivable", self.on_drivable,
                                 OUTPUTS)
        self.create_subscription(Path, "/planning/path", self.on_path, OUTPUTS)
        self.create_subscription(PoseStamped, "/planning/goal", self.on_goal, LATCHED)
        self.create_subscription(Path, "/planning/route", self.on_nav_route, LATCHED)
        self.create_subscription(ObjectArray, "/perception/objects", self.on_objects, OUTPUTS)
        self.create_timer(1.0 / p["rate_hz"], self.on_timer)
        self.get_logger().info(f"supervisor: checks at {p['rate_hz']:.0f} Hz, body "
                               f"{self.body}, speed limit {p['speed_limit']:.1f} m/s")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _drop(self, name: str, why: str) -> None:
        self.dropped[name] += 1
        self.get_logger().error(f"supervisor: {name} dropped: {why}", throttle_duration_sec=2.0)

    # ------------------------------------------------------------------ inputs
    def on_odom(self, msg) -> None:
        ego = odometry_to_ego(msg)
        if not all(math.isfinite(v) for v in (ego.x, ego.y, ego.yaw, ego.speed, ego.stamp)):
            self._drop("odom", "not finite (NaN/inf)")
            return
        if self.poses and ego.stamp < self.poses[-1][0] - 1.0:
            self.get_logger().warning("supervisor: odometry time jumped back: new episode")
            self.new_episode()
        elif self.poses and is_teleport(self.poses[-1], ego):
            self.get_logger().warning("supervisor: the ego jumped (episode restart): new episode")
            self.new_episode()
        self.ego = ego
        self.poses.append((ego.stamp, ego.x, ego.y, ego.yaw))

    def pose_in_odom(self, frame_id: str, stamp: float):
        """(x, y, yaw) of `frame_id` in odom at `stamp`, or None (with the reason)."""
        if frame_id == self.p["odom_frame"]:
            return (0.0, 0.0, 0.0), None
        if frame_id != "base_link":
            return None, f"frame '{frame_id}' is neither {self.p['odom_frame']} nor base_link"
        if not self.poses:
            return None, "no odometry yet to locate base_link"
        ts = np.array([q[0] for q in self.poses])
        k = int(np.argmin(np.abs(ts - stamp)))
        if abs(ts[k] - stamp) > self.p["pose_tolerance"]:
            return None, f"no odometry within {self.p['pose_tolerance']} s of its stamp"
        return self.poses[k][1:], None

    def on_drivable(self, msg) -> None:
        info = msg.info
        stamp = stamp_to_sec(msg.header.stamp)
        n = info.width * info.height
        if n == 0 or len(msg.data) != n or not info.resolution > 0:
            self._drop("drivable", f"{info.width}x{info.height} grid with {len(msg.data)} "
                       f"cells at resolution {info.resolution}")
            return
        pose, why = self.pose_in_odom(msg.header.frame_id, stamp)
        if pose is None:
            self._drop("drivable", why)
            return
        # the raster's frame: the grid origin (its lower corner) in odom
        self.drivable = (stamp, drivable_from_grid(msg, pose, self.p["drivable_threshold"]))

    def on_path(self, msg) -> None:
        if msg.header.frame_id != self.p["odom_frame"]:
            self._drop("path", f"frame '{msg.header.frame_id}' is not {self.p['odom_frame']}")
            return
        pts = np.array([[ps.pose.position.x, ps.pose.position.y] for ps in msg.poses],
                       float).reshape(-1, 2)
        if not np.all(np.isfinite(pts)):
            self._drop("path", "not finite (NaN/inf)")
            return
        self.route = (stamp_to_sec(msg.header.stamp), pts if len(pts) >= 2 else None)

    def on_nav_route(self, msg) -> None:
        if msg.header.frame_id != self.p["odom_frame"]:
            self._drop("route", f"frame '{msg.header.frame_id}' is not {self.p['odom_frame']}")
            return
        pts = path_to_points(msg)
        if len(pts) < 2 or not np.all(np.isfinite(pts)):
            self._drop("route", f"{len(pts)} points or not finite")
            return
        self.nav_route = pts

    def on_goal(self, msg) -> None:
        q = msg.pose
        g = (q.position.x, q.position.y, quaternion_to_yaw(q.orientation))
        if msg.header.frame_id != self.p["odom_frame"] or not all(map(math.isfinite, g)):
            self._drop("goal", f"frame '{msg.header.frame_id}' or not finite")
            return
        if self.goal is None or math.hypot(g[0] - self.goal[0], g[1] - self.goal[1]) > 1.0:
            self.get_logger().info(f"supervisor: new goal ({g[0]:.1f}, {g[1]:.1f}): new episode")
            self.new_episode()
        self.goal = g

    def on_objects(self, msg) -> None:
        stamp = stamp_to_sec(msg.header.stamp)
        pose, why = self.pose_in_odom(msg.header.frame_id, stamp)
        if pose is None:
            self._drop("objects", why)
            return
        objs = []
        for m in msg.objects:
            o = msg_to_object(m)
            if pose != (0.0, 0.0, 0.0):
                o.x, o.y = (float(v) for v in from_frame(np.array([[o.x, o.y]]), *pose)[0])
                o.yaw += pose[2]
            objs.append(o)
        self.objects = (stamp, objs)

    def new_episode(self) -> None:
        self.sup.reset()
        self.drivable = self.route = self.objects = None
        self.poses.clear()

    # ------------------------------------------------------------------ cycle
    def fresh(self, item, now_stamp: float):
        """The item's data if its stamp is within max_input_age of the odometry."""
        if item is None:
            return None
        return item[1] if abs(now_stamp - item[0]) <= self.p["max_input_age"] else None

    def on_timer(self) -> None:
        now = self.now()
        if self.ego is None:
            self.publish(now, "WARN", "no /odom yet: checks off", [], {}, ["all"])
            return
        ego = self.ego
        drivable = self.fresh(self.drivable, ego.stamp)
        path = usable_route(self.fresh(self.route, ego.stamp), ego)
        # the route the car must keep to: the navigation route when one is given (the planned
        # path follows the car's own mistakes), else the planned path
        route = self.nav_route if self.nav_route is not None else path
        objects = self.fresh(self.objects, ego.stamp)
        limit = self.p["speed_limit"] if self.p["speed_limit"] > 0 else None
        # without a fresh object list the path is not known to be free: no_progress waits
        free = objects is not None and path_is_free(
            ego, path, objects, self.p["path_free_lookahead"], self.p["path_free_half_width"])
        st = self.sup.update(SupervisorInputs(
            stamp=ego.stamp, ego=ego, body=self.body, drivable=drivable, route=route,
            speed_limit=limit, goal=self.goal, path_free=free))
        off = [name for name, v in (("off_road", drivable), ("off_route", route),
                                    ("path_free", objects), ("goal", self.goal)) if v is None]
        for e in self.sup.events[self.events_logged:]:
            self.get_logger().error(f"supervisor: ERROR {e.message}: controlled stop")
        self.events_logged = len(self.sup.events)
        level = st.level if st.level == "ERROR" or not off else "WARN"
        message = st.message if st.level == "ERROR" or not off else \
            f"ok; checks off (input missing or stale): {', '.join(off)}"
        values = dict(st.values, path_free=float(free))
        self.publish(now, level, message, st.reasons, values, off)

    def publish(self, now: float, level: str, message: str, reasons, values, off) -> None:
        s = DiagnosticStatus(name="supervisor", hardware_id="autonomy_control",
                             message=message[:500])
        s.level = _LEVEL[level]
        kv = [("reasons", ",".join(reasons)), ("stop", str(bool(reasons)).lower()),
              ("stop_decel_mps2", f"{self.cfg.stop_decel:.3f}"),
              ("checks_off", ",".join(off)), ("events", str(len(self.sup.events)))]
        kv += [(k, f"{v:.3f}") for k, v in values.items()]
        kv += [(f"dropped_{k}", str(v)) for k, v in self.dropped.items()]
        s.values = [KeyValue(key=k, value=v) for k, v in kv]
        self.status_pub.publish(s)
        key = (level, message)
        if key != self.last_key or now - self.last_diag >= 1.0 / self.p["diagnostics_rate_hz"] \
                or now < self.last_diag:
            self.last_key, self.last_diag = key, now
            arr = DiagnosticArray()
            arr.header.stamp = sec_to_stamp(now)
            arr.status = [s]
            self.diag_pub.publish(arr)


def main(args=None):
    return run_node(SupervisorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
