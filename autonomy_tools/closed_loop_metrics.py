"""Closed-loop episode metrics, one implementation for every closed loop of the stack (the
in-process suite `autonomy_tools.vision_closed_loop` / `bench/closed_loop.py` and the DDS
demo's report): an `EpisodeTrace` sampled at the planning rate (10 Hz) or faster ->
`episode_metrics` -> a flat dict of figures.

Definitions (all against ground truth, whatever the car planned on):
* collisions: samples at which the ego body (oriented box from `body`, rear-axle
  reference) overlaps any ground-truth object's box, counted once per object;
* goal_reached / time_to_goal_s: first sample whose rear axle is within `goal_tolerance`
  of the goal position (time from the first sample);
* off_road_s: time during which some point of the ego footprint lies more than
  `off_road_tolerance_m` outside the drivable area of the ground-truth lanes and the
  map's road outlines (`autonomy_control.supervisor.DrivableArea.from_lanes`, the
  supervisor's own geometry);
* max_route_deviation_m: max |lateral offset| of the rear axle from the route polyline;
  `route_deviation_at_max_m` keeps its sign (positive = left of the route);
* comfort: nuPlan definitions via `planning_closed_loop.comfort_metrics`;
* latency p50/p95 of the planner and of perception (s), when given;
* supervisor_stops: 1 when the supervisor raised an ERROR (each one latches a controlled
  stop for the rest of the episode), supervisor_events: how many reasons it named;
* silent_failure: 1 when the episode collided or went off-road and the supervisor never
  stopped the car.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from autonomy_stack.geometry import arc_length, box_corners, boxes_overlap, project_to_polyline
from autonomy_stack.vector_space import EgoState, ObjectState

from autonomy_control.supervisor import DrivableArea, SupervisorConfig, footprint_points
from autonomy_tools.planning_closed_loop import NUPLAN_LIMITS, comfort_metrics


@dataclass
class EpisodeTrace:
    """Everything sampled at the planning rate (10 Hz) or faster, in odom."""
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    accel: np.ndarray
    yaw_rate: np.ndarray
    objects: List[List[ObjectState]]       # ground truth at each sample (for collisions)
    lanes: list                            # ground-truth lanes (autonomy_planning.scene.Lane)
    route: Optional[np.ndarray]            # (N,2) route polyline
    goal: Optional[Tuple[float, float, float]]
    goal_tolerance: float
    body: Tuple[float, float, float]       # (front, rear, half_width) from the rear axle
    supervisor_events: Sequence[Tuple[float, str]] = ()     # (t, reason)
    planner_latency_s: Sequence[float] = ()
    perception_latency_s: Sequence[float] = ()
    emergency_t: Sequence[float] = field(default_factory=tuple)  # planner emergency plans
    # the map's drivable-area outlines ((M,2) each): asphalt beyond the lanes (the corners
    # of a junction between its turning lanes)
    road_polygons: Sequence[np.ndarray] = field(default_factory=tuple)


def _sample_dt(t: np.ndarray) -> np.ndarray:
    """Duration each sample stands for (forward difference, the last one repeats)."""
    if len(t) < 2:
        return np.zeros(len(t))
    d = np.diff(t)
    return np.append(d, d[-1])


def collision_events(tr: EpisodeTrace, near_m: float = 15.0) -> List[Tuple[float, int]]:
    """(t, object id) of the first overlap with each object."""
    front, rear, hw = tr.body
    length, offset = front + rear, (front - rear) / 2.0
    seen, out = set(), []
    for k in range(len(tr.t)):
        box = None
        for o in tr.objects[k] if k < len(tr.objects) else ():
            if o.id in seen or np.hypot(o.x - tr.x[k], o.y - tr.y[k]) > near_m:
                continue
            if box is None:
                box = box_corners(tr.x[k], tr.y[k], tr.yaw[k], length, 2.0 * hw, offset)
            if boxes_overlap(box, o.corners()):
                seen.add(o.id)
                out.append((float(tr.t[k]), int(o.id)))
    return out


def off_road_distances(tr: EpisodeTrace) -> np.ndarray:
    """Per sample: max distance (m) of the ego footprint outside the ground-truth drivable
    area: the lanes and the map's road outlines (0 inside; 0 everywhere when the trace has
    no lanes)."""
    if not tr.lanes:
        return np.zeros(len(tr.t))
    area = DrivableArea.from_lanes([(np.asarray(l.centerline, float)[:, :2], float(l.width))
                                    for l in tr.lanes], tr.road_polygons)
    front, rear, hw = tr.body
    out = np.zeros(len(tr.t))
    for k in range(len(tr.t)):
        ego = EgoState(x=float(tr.x[k]), y=float(tr.y[k]), yaw=float(tr.yaw[k]))
        out[k] = float(np.max(area.outside_distance(footprint_points(ego, front, rear, hw))))
    return out


def route_deviation(tr: EpisodeTrace) -> np.ndarray:
    """Signed lateral offset (m, positive left) of the rear axle from the route."""
    if tr.route is None or len(tr.route) < 2:
        return np.zeros(len(tr.t))
    route = np.asarray(tr.route, float)[:, :2]
    _, d = project_to_polyline(route, arc_length(route), np.column_stack([tr.x, tr.y]))
    return d


def _percentiles(values: Sequence[float], prefix: str) -> Dict[str, float]:
    v = np.asarray(list(values), float)
    if not len(v):
        return {f"{prefix}_p50_s": float("nan"), f"{prefix}_p95_s": float("nan")}
    return {f"{prefix}_p50_s": float(np.percentile(v, 50)),
            f"{prefix}_p95_s": float(np.percentile(v, 95))}


def episode_metrics(tr: EpisodeTrace, off_road_tolerance_m: Optional[float] = None
                    ) -> Dict[str, float]:
    """The closed-loop figures of one episode (see the module docstring)."""
    tol = SupervisorConfig().max_off_road_m if off_road_tolerance_m is None else off_road_tolerance_m
    t = np.asarray(tr.t, float)
    dt = _sample_dt(t)
    hits = collision_events(tr)
    goal_k = None
    if tr.goal is not None and len(t):
        dist = np.hypot(np.asarray(tr.x) - tr.goal[0], np.asarray(tr.y) - tr.goal[1])
        inside = np.flatnonzero(dist < tr.goal_tolerance)
        goal_k = int(inside[0]) if len(inside) else None
    off = off_road_distances(tr)
    dev = route_deviation(tr)
    k_dev = int(np.argmax(np.abs(dev))) if len(dev) else 0
    comfort = comfort_metrics(t, tr.speed, tr.yaw_rate, tr.accel, tr.emergency_t) if len(t) else \
        {"max_lat_acc": 0.0, "max_jerk": 0.0, "min_lon_acc": 0.0, "max_lon_acc": 0.0}
    off_road_s = float(dt[off > tol].sum())
    # every supervisor ERROR event latches a controlled stop (interface A)
    stops = int(len(tr.supervisor_events) > 0)
    m = {
        "duration_s": float(t[-1] - t[0]) if len(t) else 0.0,
        "collisions": len(hits),
        "first_collision_t": hits[0][0] if hits else float("nan"),
        "goal_reached": int(goal_k is not None),
        "time_to_goal_s": float(t[goal_k] - t[0]) if goal_k is not None else float("nan"),
        "off_road_s": off_road_s,
        "max_off_road_m": float(off.max()) if len(off) else 0.0,
        "max_route_deviation_m": float(abs(dev[k_dev])) if len(dev) else 0.0,
        "route_deviation_at_max_m": float(dev[k_dev]) if len(dev) else 0.0,
        "max_abs_lat_acc": comfort["max_lat_acc"],
        "max_abs_jerk": comfort["max_jerk"],
        "min_lon_acc": comfort["min_lon_acc"],
        "max_lon_acc": comfort["max_lon_acc"],
        "comfort_ok": int(comfort["max_lat_acc"] <= NUPLAN_LIMITS["max_lat_acc"]
                          and comfort["max_jerk"] <= NUPLAN_LIMITS["max_jerk"]),
        "supervisor_stops": stops,
        "supervisor_events": len(tr.supervisor_events),
        "silent_failure": int((len(hits) > 0 or off_road_s > 0.0) and stops == 0),
    }
    m.update(_percentiles(tr.planner_latency_s, "planner_latency"))
    m.update(_percentiles(tr.perception_latency_s, "perception_latency"))
    return m
