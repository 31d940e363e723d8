"""Supervisor: the car never leaves the road silently (ROS-free).

Every cycle `Supervisor.update` checks the ego against what it should be doing and raises
a reason when a limit is broken:

- ``off_road``: the ego's footprint (body outline) lies more than `max_off_road_m` outside
  the drivable area (`DrivableArea`: lanes from a map / ground truth, or a BEV raster from
  perception or the simulator);
- ``off_route``: the rear axle is more than `max_route_deviation_m` from the route polyline,
  or, while moving, the direction of travel differs from the route's by more than
  `max_heading_error_rad`;
- ``over_speed``: |speed| above the speed limit by more than `speed_margin_mps` for
  `speed_persist_s`;
- ``no_progress``: less than `min_progress_m` of progress in `no_progress_s` while the path
  ahead is free and there is somewhere to go (a goal or a route, goal not reached);
- ``goal_passed``: the ego is beyond the goal, along the route (or the goal's heading
  without a route), by more than `goal_passed_m`.

Any reason -> status ERROR and `stop`: the controller brings the car to a controlled stop
(`TrackingController.set_supervisor_stop`). A supervisor stop is final for the episode:
`stop` and the reasons stay latched until `reset()`. A missing input skips its check.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.geometry import (arc_length, box_corners, from_frame, interpolate_polyline,
                                     project_to_polyline, remove_duplicate_points, to_frame,
                                     wrap_angle)
from autonomy_stack.params import param
from autonomy_stack.vector_space import EgoState, ObjectState

REASONS = ("off_road", "off_route", "over_speed", "no_progress", "goal_passed")


@dataclass
class SupervisorConfig:
    max_off_road_m: float = param(0.3, "m the ego footprint may leave the drivable area",
                                  min=0.0, max=10.0)
    # measured in-process on the catalogue's scenario routes (19 runs): a nudge around
    # parked cars reaches 2.7 m, a double lane change 4.8 m from the route polyline
    max_route_deviation_m: float = param(6.0, "m of the rear axle from the route",
                                         min=0.1, max=100.0)
    max_heading_error_rad: float = param(0.7, "rad between direction of travel and route",
                                         min=0.05, max=3.2)
    heading_check_min_speed_mps: float = param(
        1.0, "m/s: the heading check runs only faster than this", min=0.0, max=20.0)
    speed_margin_mps: float = param(1.5, "m/s over the speed limit allowed", min=0.0,
                                    max=30.0)
    speed_persist_s: float = param(1.0, "s over speed_margin_mps before over_speed",
                                   min=0.0, max=60.0)
    no_progress_s: float = param(15.0, "s without min_progress_m of progress while the path "
                                 "is free -> no_progress", min=1.0, max=600.0)
    min_progress_m: float = param(1.0, "m of progress that counts", min=0.01, max=100.0)
    goal_tolerance_m: float = param(2.0, "m: standing this close to the goal is arrival, "
                                    "not a lack of progress", min=0.1, max=50.0)
    goal_passed_m: float = param(4.0, "m beyond the goal (along the route) -> goal_passed",
                                 min=0.1, max=100.0)
    stop_decel: float = param(2.5, "m/s^2 asked of control for the supervisor stop (control "
                              "never exceeds its own stop_decel)", min=0.1, max=10.0)


# --------------------------------------------------------------------------- drivable area
class DrivableArea:
    """Where the car may be, in odom; `outside_distance` says how far points lie outside
    (0 inside). Built from lanes (centreline +/- width/2, exact) or from a BEV raster
    (a distance transform, accurate to about half a cell). Raster points outside the
    raster's extent count as inside: the raster carries no evidence there."""

    def __init__(self, lanes=None, raster=None):
        self._lanes = lanes or []
        self._polygons = []
        self._raster = raster

    @classmethod
    def from_lanes(cls, lanes: Sequence[Tuple[np.ndarray, float]],
                   polygons: Sequence[np.ndarray] = ()) -> "DrivableArea":
        """[(centreline (N,2) odom, width m)]: the union of the lanes' rectangles along
        each centreline segment (points beyond a lane's ends are outside it), and of the
        optional `polygons` ((M,2) odom outlines, e.g. the map's drivable area). Lanes
        alone miss the corners of an intersection between its turning lanes (up to
        0.36 m measured in double_lane_change_left_turn): pass the road outline there."""
        prepared = []
        for centreline, width in lanes:
            c = remove_duplicate_points(np.asarray(centreline, float)[:, :2])
            if len(c) >= 2 and width > 0:
                prepared.append((c, arc_length(c), float(width) / 2.0))
        area = cls(lanes=prepared)
        area._polygons = [np.asarray(p, float)[:, :2] for p in polygons if len(p) >= 3]
        return area

    @classmethod
    def from_raster(cls, mask: np.ndarray, grid: BEVGrid, pose: Tuple[float, float, float]
                    ) -> "DrivableArea":
        """`mask` [H, W] bool in the network raster convention of `grid`
        (autonomy_stack.bev_grid: row 0 = front / x max, column 0 = left / y max), the grid's
        frame located at `pose` (x, y, yaw) in odom."""
        mask = np.asarray(mask, bool)
        if mask.shape != grid.shape:
            raise ValueError(f"drivable mask {mask.shape} does not match the grid {grid.shape}")
        if mask.any():
            # distance (cells) of every cell to its nearest drivable cell, and that cell
            _, idx = ndimage.distance_transform_edt(~mask, return_indices=True)
        else:
            idx = None
        return cls(raster=(mask, grid, tuple(float(v) for v in pose), idx))

    def outside_distance(self, points: np.ndarray) -> np.ndarray:
        """(N,2) odom points -> metres outside the drivable area (0 inside)."""
        pts = np.atleast_2d(np.asarray(points, float))[:, :2]
        if self._raster is not None:
            return self._raster_outside(pts)
        best = np.full(len(pts), np.inf)
        for poly in self._polygons:
            best = np.minimum(best, _polygon_outside(poly, pts))
        for c, s_cum, half in self._lanes:
            s, d = project_to_polyline(c, s_cum, pts)
            lateral = np.maximum(np.abs(d) - half, 0.0)
            along = np.maximum(np.maximum(-s, s - s_cum[-1]), 0.0)
            best = np.minimum(best, np.hypot(lateral, along))
        return best

    def _raster_outside(self, pts: np.ndarray) -> np.ndarray:
        mask, grid, pose, idx = self._raster
        local = to_frame(pts, *pose)
        rc = grid.to_rc(local)
        r = np.floor(rc[:, 0]).astype(int)
        c = np.floor(rc[:, 1]).astype(int)
        inside_extent = (r >= 0) & (r < grid.H) & (c >= 0) & (c < grid.W)
        out = np.zeros(len(pts))
        if idx is None:
            out[inside_extent] = np.inf
            return out
        k = np.nonzero(inside_extent)[0]
        rr, cc = r[k], c[k]
        nr, nc = idx[0][rr, cc], idx[1][rr, cc]
        # distance from the point to the nearest drivable cell's square (0 when it is in it)
        dr = np.maximum(np.maximum(nr - rc[k, 0], rc[k, 0] - (nr + 1)), 0.0)
        dc = np.maximum(np.maximum(nc - rc[k, 1], rc[k, 1] - (nc + 1)), 0.0)
        out[k] = np.hypot(dr, dc) * grid.res
        return out


def _polygon_outside(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Metres of each point outside the simple polygon `poly` (0 inside; even-odd rule)."""
    a, b = poly, np.roll(poly, -1, axis=0)
    px, py = pts[:, 0:1], pts[:, 1:2]
    crosses = ((a[:, 1] > py) != (b[:, 1] > py)) & \
        (px < a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) /
         np.where(b[:, 1] == a[:, 1], 1e-12, b[:, 1] - a[:, 1]))
    inside = np.count_nonzero(crosses, axis=1) % 2 == 1
    # exact distance to the nearest edge (segment, ends included)
    ab = b - a
    t = ((px - a[:, 0]) * ab[:, 0] + (py - a[:, 1]) * ab[:, 1]) / \
        np.maximum((ab * ab).sum(1), 1e-12)
    t = np.clip(t, 0.0, 1.0)
    d = np.hypot(px - a[:, 0] - t * ab[:, 0], py - a[:, 1] - t * ab[:, 1]).min(axis=1)
    return np.where(inside, 0.0, d)


def footprint_points(ego: EgoState, front: float, rear: float, half_width: float,
                     n: int = 3) -> np.ndarray:
    """(4 n, 2) odom points on the body outline: each side of the box from `rear` behind to
    `front` ahead of the rear axle (the ego state's reference point), `half_width` to each
    side, sampled with `n` points per side (corners included)."""
    length = front + rear
    corners = box_corners(ego.x, ego.y, ego.yaw, length, 2.0 * half_width,
                          center_offset=(front - rear) / 2.0)
    n = max(int(n), 1)
    t = np.arange(n)[:, None] / n
    sides = [corners[i] + t * (corners[(i + 1) % 4] - corners[i]) for i in range(4)]
    return np.concatenate(sides, axis=0)


def path_is_free(ego: EgoState, route: Optional[np.ndarray], objects: Sequence[ObjectState],
                 lookahead_m: float = 30.0, half_width: float = 1.5) -> bool:
    """False when an object's box reaches into the corridor `half_width` to each side of the
    route over `lookahead_m` ahead of the ego (straight ahead along the ego's heading
    without a route)."""
    if route is None or len(route) < 2:
        route = from_frame(np.array([[0.0, 0.0], [lookahead_m, 0.0]]), ego.x, ego.y, ego.yaw)
    route = remove_duplicate_points(np.asarray(route, float)[:, :2])
    if len(route) < 2:
        return True
    s_cum = arc_length(route)
    s_ego = float(project_to_polyline(route, s_cum, [[ego.x, ego.y]])[0][0])
    for o in objects:
        s, d = project_to_polyline(route, s_cum, box_corners(o.x, o.y, o.yaw, o.length,
                                                             o.width))
        if s.max() >= s_ego and s.min() <= s_ego + lookahead_m and \
                d.max() >= -half_width and d.min() <= half_width:
            return False
    return True


# --------------------------------------------------------------------------- supervisor
@dataclass
class SupervisorInputs:
    stamp: float
    ego: EgoState
    body: Tuple[float, float, float]       # (front, rear, half_width) from the rear axle
    drivable: Optional[DrivableArea] = None
    route: Optional[np.ndarray] = None     # (N,2) odom polyline the car should follow
    speed_limit: Optional[float] = None
    goal: Optional[Tuple[float, float, float]] = None
    path_free: bool = True


@dataclass
class SupervisorStatus:
    stamp: float
    level: str                 # "OK" or "ERROR"
    reasons: List[str]         # latched reasons (subset of REASONS), in order of appearance
    message: str               # every reason with its measured value and limit
    stop: bool                 # bring the car to a controlled stop (latched until reset())
    values: Dict[str, float] = field(default_factory=dict)


class Supervisor:
    def __init__(self, cfg: SupervisorConfig = SupervisorConfig()):
        self.cfg = cfg
        self.events: List[SupervisorStatus] = []
        self.reset()

    def reset(self) -> None:
        """A new episode: forget the latched stop, reasons and timers (events are kept)."""
        self._latched: Dict[str, str] = {}       # reason -> its message at the event
        self._over_since: Optional[float] = None
        self._anchor: Optional[Tuple[float, float, float]] = None   # (t, x, y)

    @property
    def stopped(self) -> bool:
        return bool(self._latched)

    def update(self, inp: SupervisorInputs) -> SupervisorStatus:
        values: Dict[str, float] = {}
        found: Dict[str, str] = {}
        for check in (self._off_road, self._off_route, self._over_speed,
                      self._no_progress, self._goal_passed):
            check(inp, values, found)
        new = [r for r in found if r not in self._latched]
        for r in new:
            self._latched[r] = found[r]
        reasons = list(self._latched)
        status = SupervisorStatus(
            stamp=inp.stamp, level="ERROR" if reasons else "OK", reasons=reasons,
            message="; ".join(self._latched[r] for r in reasons) if reasons else "ok",
            stop=bool(reasons), values=values)
        for r in new:
            self.events.append(SupervisorStatus(inp.stamp, "ERROR", [r], found[r], True,
                                                dict(values)))
        return status

    # ------------------------------------------------------------------ checks
    def _off_road(self, inp: SupervisorInputs, values, found) -> None:
        if inp.drivable is None:
            return
        front, rear, half_width = inp.body
        out = float(np.max(inp.drivable.outside_distance(
            footprint_points(inp.ego, front, rear, half_width))))
        values["off_road_m"] = out
        if out > self.cfg.max_off_road_m:
            found["off_road"] = (f"off_road: footprint {out:.2f} m outside the drivable area "
                                 f"(limit {self.cfg.max_off_road_m:.2f} m)")

    def _off_route(self, inp: SupervisorInputs, values, found) -> None:
        route = _clean_route(inp.route)
        if route is None:
            return
        c = self.cfg
        ego = inp.ego
        s_cum = arc_length(route)
        s, d = project_to_polyline(route, s_cum, [[ego.x, ego.y]])
        dev = abs(float(d[0]))
        _, _, route_heading = interpolate_polyline(route, s_cum, float(s[0]))
        travel = ego.yaw if ego.speed >= 0.0 else ego.yaw + math.pi
        # positive: the car points to the left of the route's direction
        heading_error = float(wrap_angle(travel - route_heading))
        values["route_deviation_m"] = dev
        values["heading_error_rad"] = heading_error
        msgs = []
        if dev > c.max_route_deviation_m:
            msgs.append(f"{dev:.2f} m from the route (limit {c.max_route_deviation_m:.2f} m)")
        if abs(ego.speed) > c.heading_check_min_speed_mps and \
                abs(heading_error) > c.max_heading_error_rad:
            msgs.append(f"heading error {heading_error:+.2f} rad "
                        f"(limit {c.max_heading_error_rad:.2f} rad)")
        if msgs:
            found["off_route"] = "off_route: " + ", ".join(msgs)

    def _over_speed(self, inp: SupervisorInputs, values, found) -> None:
        if inp.speed_limit is None:
            self._over_since = None
            return
        c = self.cfg
        over = abs(inp.ego.speed) - inp.speed_limit
        values["speed_over_mps"] = over
        if over <= c.speed_margin_mps:
            self._over_since = None
            return
        if self._over_since is None or inp.stamp < self._over_since:
            self._over_since = inp.stamp
        held = inp.stamp - self._over_since
        values["over_speed_s"] = held
        if held >= c.speed_persist_s:
            found["over_speed"] = (
                f"over_speed: {abs(inp.ego.speed):.2f} m/s, {over:.2f} m/s over the limit "
                f"{inp.speed_limit:.2f} m/s for {held:.1f} s (limit {c.speed_margin_mps:.2f} "
                f"m/s for {c.speed_persist_s:.1f} s)")

    def _no_progress(self, inp: SupervisorInputs, values, found) -> None:
        """Timer of no progress; runs only while the path is free, the car has somewhere
        to go and is not at its goal, and no stop was ordered (a stopped car is expected
        to stand)."""
        c = self.cfg
        ego = inp.ego
        at_goal = inp.goal is not None and \
            math.hypot(ego.x - inp.goal[0], ego.y - inp.goal[1]) <= c.goal_tolerance_m
        somewhere_to_go = inp.goal is not None or _clean_route(inp.route) is not None
        if not inp.path_free or at_goal or not somewhere_to_go or self.stopped:
            self._anchor = None
            return
        if self._anchor is None or inp.stamp < self._anchor[0] or \
                math.hypot(ego.x - self._anchor[1], ego.y - self._anchor[2]) >= c.min_progress_m:
            self._anchor = (inp.stamp, ego.x, ego.y)
        waited = inp.stamp - self._anchor[0]
        values["no_progress_s"] = waited
        if waited >= c.no_progress_s:
            found["no_progress"] = (
                f"no_progress: less than {c.min_progress_m:.2f} m in {waited:.1f} s with the "
                f"path free (limit {c.no_progress_s:.1f} s)")

    def _goal_passed(self, inp: SupervisorInputs, values, found) -> None:
        if inp.goal is None:
            return
        gx, gy, gyaw = inp.goal
        ego = inp.ego
        route = _clean_route(inp.route)
        if route is not None:
            s_cum = arc_length(route)
            s, _ = project_to_polyline(route, s_cum, [[ego.x, ego.y], [gx, gy]])
            beyond = float(s[0] - s[1])
        else:
            beyond = float(to_frame(np.array([[ego.x, ego.y]]), gx, gy, gyaw)[0, 0])
        values["beyond_goal_m"] = beyond
        if beyond > self.cfg.goal_passed_m:
            found["goal_passed"] = (f"goal_passed: {beyond:.2f} m beyond the goal "
                                    f"(limit {self.cfg.goal_passed_m:.2f} m)")


def _clean_route(route: Optional[np.ndarray]) -> Optional[np.ndarray]:
    if route is None:
        return None
    r = np.asarray(route, float)
    if r.ndim != 2 or len(r) < 2 or not np.all(np.isfinite(r[:, :2])):
        return None
    r = remove_duplicate_points(r[:, :2])
    return r if len(r) >= 2 else None
