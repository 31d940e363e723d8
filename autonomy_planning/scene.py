"""The plain planning scene (no ROS): ego state, other agents, lanes / road structure and
a goal or route. The planner takes one of these per cycle, so it can be fed from the
simulator, from a bag (via `scene_from_vector_space`) or from any other simulator.

Also here: `build_road_frame`, which turns a scene into the ego's Frenet frame (reference
path along the route, lateral offsets of the neighbouring lanes, drivable bounds per
station, the station by which the ego must be in the route lane, the goal station).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence
from dataclasses import replace

import numpy as np

from autonomy_stack.params import param
from autonomy_stack.vector_space import (EgoState, LineType, ObjectClass, ObjectState,
                                         RoadLine, VectorSpace)

from autonomy_stack.geometry import (arc_length, fit_velocity, polyline_length, resample_polyline,
                                     smooth_polyline, wrap_angle)
from autonomy_planning.path import MIN_SEGMENT, ReferencePath
# lanes and routes (also imported from here by their users)
from autonomy_planning.routes import (LaneIndex, fingerprint, geometry_key,  # noqa: F401
                                      lane_index, lane_path, locate_lane, route_lanes,
                                      route_link, route_to_goal)

NO_LANE_SPEED_LIMIT = 13.9     # m/s when the ego is on no lane and the scene gives no limit
STATIC_CLASSES = (ObjectClass.CONE, ObjectClass.POLE, ObjectClass.BARRIER)
VEHICLE_CLASSES = (ObjectClass.CAR, ObjectClass.TRUCK, ObjectClass.CYCLIST,
                   ObjectClass.UNKNOWN)


@dataclass
class Lane:
    """One lane: centreline in the driving direction (Nx2, odom frame, m), width (m), its
    own speed limit (m/s), the ids of the lanes it leads to."""
    id: int
    centerline: np.ndarray
    width: float = 3.5
    # param(...): also the planning node's `speed_limit` (the limit of the lanes it derives
    # from perception, which carry none)
    speed_limit: float = param(13.9, "m/s, speed limit of lanes derived from perception",
                               min=0.5, max=60.0)
    successors: List[int] = field(default_factory=list)
    # lanes driven in the opposite direction of a two-way road may be entered to go
    # around an obstacle, never changed into as a lane
    oncoming: bool = False
    stop_line_s: Optional[float] = None   # arc length of a stop line (must stop there)
    # the lane goes on beyond its last point (a perceived lane ends where perception's range
    # does): its end is no deadline to be back in it (a map lane's end is: it merges)
    open_end: bool = False


@dataclass
class Goal:
    x: float
    y: float
    yaw: float = 0.0
    tolerance: float = param(2.5, "m: goal reached within this distance", min=0.1, max=50.0)
    lane_id: Optional[int] = None


@dataclass
class PlanningScene:
    stamp: float
    ego: EgoState
    agents: List[ObjectState] = field(default_factory=list)
    lanes: List[Lane] = field(default_factory=list)
    boundaries: List[np.ndarray] = field(default_factory=list)  # curbs / road edges (Nx2)
    goal: Optional[Goal] = None
    route_lane_ids: List[int] = field(default_factory=list)     # optional explicit route
    # the navigation route (Nx2, odom): the road-level path to the goal a navigation map
    # gives (/planning/route). Without route lanes (perceived lanes carry no ids or
    # successors) it says which way to go where the perceived lanes end or branch:
    # through junctions, into turns (`nav_reference`)
    nav_route: Optional[np.ndarray] = None
    # a scene-wide speed limit (m/s) on top of every lane's own, only when given (None: the
    # lanes' limits; without a lane, NO_LANE_SPEED_LIMIT)
    speed_limit: Optional[float] = None
    # param(...): also planning node parameters (planning_node.PARAMS)
    frame_id: str = param("odom", "planning frame (inputs must be in it)")

    def lane(self, lane_id: int) -> Optional[Lane]:
        for ln in self.lanes:
            if ln.id == lane_id:
                return ln
        return None

    def speed_limit_on(self, lane_id: Optional[int]) -> float:
        """Speed limit (m/s) on lane `lane_id`: the lane's own, capped by the scene-wide
        limit when one is given; off any lane the scene-wide limit or
        NO_LANE_SPEED_LIMIT."""
        ln = self.lane(lane_id) if lane_id is not None else None
        if ln is None:
            return NO_LANE_SPEED_LIMIT if self.speed_limit is None else float(self.speed_limit)
        if self.speed_limit is None:
            return float(ln.speed_limit)
        return min(float(ln.speed_limit), float(self.speed_limit))


# ---------------------------------------------------------------- vector space -> scene
def lanes_from_road_lines(lines: Sequence[RoadLine], ego: Optional[EgoState] = None,
                          min_width: float = 2.4, max_width: float = 5.0) -> List[Lane]:
    """Derive lanes from painted lane lines and road edges/curbs (perception output has no
    lane objects): every pair of roughly parallel neighbouring boundary lines 2.4-5 m
    apart bounds one lane whose centreline is their midline. Lanes beyond a yellow line
    (seen from the ego) are oncoming; the direction of each lane follows the ego heading
    (reversed for oncoming lanes). An unmarked two-way street (two road edges / curbs
    with no painted line between them, 2 x 2.4-5 m apart) is split down the middle into two
    lanes, the left one (seen from the ego) oncoming (right-hand traffic). Works for roads
    that are locally parallel (streets, highways); intersections need lanes from a map or
    the simulator. Each centreline is smoothed (`smooth_polyline`): perceived lines wiggle.
    """
    bounds = [l for l in lines if l.line_type in (
        LineType.LANE_DASHED_WHITE, LineType.LANE_SOLID_WHITE, LineType.LANE_DASHED_YELLOW,
        LineType.LANE_SOLID_YELLOW, LineType.ROAD_EDGE, LineType.CURB)
        and len(l.points) >= 2 and polyline_length(l.points) > 4.0]
    if not bounds:
        return []
    ego_xy = np.array([ego.x, ego.y]) if ego is not None else None
    # reference: the boundary closest to the ego (or the longest)
    if ego_xy is not None:
        ref_line = min(bounds, key=lambda l: np.min(np.hypot(*(l.points[:, :2] - ego_xy).T)))
    else:
        ref_line = max(bounds, key=lambda l: polyline_length(l.points))
    ref = ReferencePath(ref_line.points[:, :2], ds=1.0, extend_before=200, extend_after=200)
    if ego is not None and np.cos(wrap_angle(ego.yaw - ref.heading_at(ref.project([ego_xy])[0][0]))) < 0:
        ref = ReferencePath(ref_line.points[::-1, :2], ds=1.0, extend_before=200,
                            extend_after=200)
    entries = []
    for l in bounds:
        pts = resample_polyline(l.points[:, :2], 1.0, min_segment=MIN_SEGMENT)
        s, d = ref.project(pts)
        order = np.argsort(s)
        entries.append((float(np.median(d)), l, s[order], d[order], pts[order]))
    entries.sort(key=lambda e: e[0])
    lanes: List[Lane] = []
    ego_d = float(ref.project([ego_xy])[1][0]) if ego_xy is not None else 0.0
    for (d0, l0, s0, dd0, p0), (d1, l1, s1, dd1, p1) in zip(entries[:-1], entries[1:]):
        lo, hi = max(s0[0], s1[0]), min(s0[-1], s1[-1])
        if hi - lo < 4.0:
            continue
        grid = np.arange(lo, hi, 1.0)
        da = np.interp(grid, s0, dd0)
        db = np.interp(grid, s1, dd1)
        w = float(np.median(db - da))
        yellow = [e[0] for e in entries if e[1].line_type in (
            LineType.LANE_DASHED_YELLOW, LineType.LANE_SOLID_YELLOW)]
        if min_width <= w <= max_width:
            halves = [(da, db, None)]
        elif (2.0 * min_width <= w <= 2.0 * max_width
              and l0.line_type in (LineType.ROAD_EDGE, LineType.CURB)
              and l1.line_type in (LineType.ROAD_EDGE, LineType.CURB)):
            # unmarked two-way street: right half with the ego, left half oncoming
            mid = 0.5 * (da + db)
            halves = [(da, mid, False), (mid, db, True)]
            w = 0.5 * w
        else:
            continue
        for lo_d, hi_d, onc in halves:
            mid_d = 0.5 * (lo_d + hi_d)
            x, y, _ = ref.to_xy(grid, mid_d)
            # perceived lines wiggle: the planner's reference needs a smooth centre
            centre = smooth_polyline(np.column_stack([x, y]))
            lane_mid = float(np.median(mid_d))
            if onc is None:
                # oncoming: separated from the ego by a yellow line
                onc = any(min(lane_mid, ego_d) < yd < max(lane_mid, ego_d) for yd in yellow)
            if onc:
                centre = centre[::-1]
            lanes.append(Lane(id=len(lanes) + 1, centerline=centre, width=w, oncoming=onc,
                              open_end=True))
    return lanes


class StaticObjectTracker:
    """Flags parked vehicles as static when the source cannot say so (the ObjectArray
    message carries no is_static flag, so over DDS every parked car arrives as a car at
    0 m/s, which the predictor would then expect to pull out any moment).

    A car or truck (by track id) observed for at least `min_observed` seconds and for more
    than `skip` + `window` observations that has not moved is static. Moved means, over its
    last `window` observations (a track's first `skip` are not used): the median |speed| is
    at least `moving_speed`, and its positions (least-squares fit over time, in the fixed
    frame) moved at least max(moving_speed / 2, 0.4 x that median speed). Both because of
    what perception gives (measured in the vision closed loop, narrow street): the first
    frames' velocities and positions are noise (parked cars at 6-9 m/s, positions running
    ahead at 4-5 m/s in odom for the first 1.5 s while the video queues and the spatial
    RNN fill); the velocity head gives parked cars ahead about the ego's own speed (3.4 m/s
    while the ego drove at 3.3: the car was predicted to drive away and the ego ran into
    it), while their positions stay put; and a parked car's position drifts 1-2 m while
    the ego approaches it (a range-dependent bias) at a velocity of 0.0-0.2 m/s. Either
    alone flagged parked cars as "moved". A lead car at the ego's speed moves in both. Once
    moved a car is never static again (one waiting in a queue that has driven stays an
    agent). Objects that already carry `is_static` keep it; other classes are unchanged
    (cones, poles and barriers are static by class, pedestrians may start walking any
    time)."""

    CLASSES = (ObjectClass.CAR, ObjectClass.TRUCK)

    def __init__(self, min_observed: float = 0.5, moving_speed: float = 2.0,
                 forget_after: float = 5.0, window: int = 10, skip: int = 5,
                 warmup_s: float = 1.5):
        self.min_observed = min_observed
        self.moving_speed = moving_speed
        self.forget_after = forget_after
        self.window, self.skip, self.warmup_s = window, skip, warmup_s
        self._t0: Optional[float] = None
        self._tracks: Dict[int, dict] = {}

    def reset(self):
        self._tracks.clear()
        self._t0 = None

    def _moved(self, tr: dict) -> bool:
        h = np.asarray(tr["hist"], dtype=float)          # (n, 4): t, x, y, speed
        if len(h) < self.window or np.ptp(h[:, 0]) <= 0.0:
            return False
        v_net = float(np.median(np.abs(h[:, 3])))
        if v_net < self.moving_speed:
            return False
        v_pos = float(np.hypot(*fit_velocity(h[:, 0], h[:, 1:3])))
        return v_pos >= max(0.5 * self.moving_speed, 0.4 * v_net)

    def update(self, objects: Sequence[ObjectState], stamp: float) -> List[ObjectState]:
        if self._t0 is None or stamp < self._t0:
            self._t0 = stamp
        out = []
        for o in objects:
            tr = self._tracks.get(o.id)
            if tr is None or stamp < tr["last"] or stamp - tr["last"] > self.forget_after:
                tr = self._tracks[o.id] = {"first": stamp, "last": stamp, "moved": False,
                                           "n": 0, "hist": deque(maxlen=self.window)}
            tr["last"] = stamp
            tr["n"] += 1
            if tr["n"] > self.skip and stamp - self._t0 >= self.warmup_s:
                tr["hist"].append((stamp, o.x, o.y, o.speed))
            if not tr["moved"] and self._moved(tr):
                tr["moved"] = True
            if (not o.is_static and o.object_class in self.CLASSES and not tr["moved"]
                    and len(tr["hist"]) >= self.window and stamp - tr["first"] >= self.min_observed):
                o = replace(o, is_static=True)
            out.append(o)
        for k in [k for k, tr in self._tracks.items() if stamp - tr["last"] > self.forget_after]:
            del self._tracks[k]
        return out


def road_from_lines(lines: Sequence[RoadLine], ego: Optional[EgoState], speed_limit: float):
    """What the planning node derives from /perception/road (odom frame): lanes from the
    painted lines / edges (`lanes_from_road_lines`) at the configured speed limit, and the
    road edges / curbs as boundaries. Returns (lanes, boundaries)."""
    lanes = lanes_from_road_lines(lines, ego)
    for ln in lanes:
        ln.speed_limit = speed_limit
    boundaries = [np.asarray(l.points, dtype=float)[:, :2] for l in lines
                  if l.line_type in (LineType.ROAD_EDGE, LineType.CURB) and len(l.points) >= 2]
    return lanes, boundaries


class RoadMemory:
    """The last lanes and boundaries derived from perception (odom frame), held for
    `hold_s` seconds while new frames give no lane. Measured on vision (narrow street seed
    0): mid-manoeuvre, 0.26 rad off the road's heading, the road lines gave no lane for
    4 s; without a lane the reference is a straight line along the ego's heading, and the
    ego drove off the road along it. In odom a road seen 1-3 s ago is still where it was."""

    def __init__(self, hold_s: float = 3.0):
        self.hold_s = hold_s
        self._last: Optional[tuple] = None          # (stamp, lanes, boundaries)

    def reset(self):
        self._last = None

    def update(self, lanes: List[Lane], boundaries: list, stamp: float) -> tuple:
        """-> (lanes, boundaries, held): this frame's when it has a lane, else the last
        ones with a lane (held=True) while younger than hold_s, else this frame's."""
        if lanes:
            self._last = (stamp, lanes, boundaries)
            return lanes, boundaries, False
        if self._last is not None and 0.0 <= stamp - self._last[0] <= self.hold_s:
            return self._last[1], self._last[2], True
        return lanes, boundaries, False


def scene_from_vector_space(v: VectorSpace, ego: EgoState, goal: Optional[Goal] = None,
                            lanes: Optional[List[Lane]] = None,
                            speed_limit: Optional[float] = None) -> PlanningScene:
    """Planning scene from perception output (objects + road lines) and odometry."""
    if lanes is None:
        lanes = lanes_from_road_lines(v.lines, ego)
    boundaries = [np.asarray(l.points, dtype=float)[:, :2] for l in v.lines
                  if l.line_type in (LineType.ROAD_EDGE, LineType.CURB) and len(l.points) >= 2]
    return PlanningScene(stamp=v.stamp, ego=ego, agents=list(v.objects), lanes=lanes,
                         boundaries=boundaries, goal=goal, speed_limit=speed_limit,
                         frame_id=v.frame_id)


@dataclass
class RoadFrame:
    """The ego's Frenet frame for one cycle."""
    ref: ReferencePath
    ref_key: tuple                      # identifies the reference (lane ids) for warm start
    lane_offsets: np.ndarray            # lateral offsets of same-direction lane centres
    lane_width: float
    oncoming_offsets: np.ndarray        # lateral offsets of oncoming lane centres
    station_grid: np.ndarray            # stations of the road bounds
    road_left: np.ndarray               # left drivable bound (d) per station
    road_right: np.ndarray              # right drivable bound (d) per station
    route_deadline: float               # station by which d must be ~0 (route lane); inf if none
    goal_station: float                 # station of the goal along ref; inf if none
    stop_stations: List[tuple]          # [(station, key)] stop lines on the route
    ego_s: float
    ego_d: float
    ego_rel_yaw: float
    speed_limit: float                  # at the start of the route (its first lane)
    # the speed limit along the reference: limit_values[i] from station limit_stations[i]
    # on (each route lane's own, capped by the scene-wide one when given)
    limit_stations: np.ndarray = field(default_factory=lambda: np.zeros(1))
    limit_values: np.ndarray = field(default_factory=lambda: np.full(1, np.inf))

    def speed_limit_at(self, s) -> np.ndarray:
        """Speed limit (m/s) at stations s along the reference."""
        i = np.searchsorted(self.limit_stations, np.asarray(s, dtype=float), side="right") - 1
        return self.limit_values[np.clip(i, 0, len(self.limit_values) - 1)]


def build_road_frame(scene: PlanningScene, paths: Optional[Dict] = None,
                     lookahead: float = 220.0) -> RoadFrame:
    """The ego's Frenet frame: the reference path along the route lanes (a straight line
    along the ego heading without a lane), the neighbouring lane centres, the drivable
    bounds per station, the route deadline, the goal station and the stop lines.
    `paths` caches reference paths and projections across cycles."""
    ego = scene.ego
    lanes = [l for l in scene.lanes if len(l.centerline) >= 2]
    by_id = {l.id: l for l in lanes}
    route, leave = route_lanes(scene, lanes, paths, lookahead)
    route = [r for r in route if r in by_id]
    ref, key, lane_width, speed_limit = _route_reference(scene, by_id, route, paths)
    s_e, d_e = ref.project([[ego.x, ego.y]])
    s_e, d_e = float(s_e[0]), float(d_e[0])
    rel_yaw = float(wrap_angle(ego.yaw - ref.heading_at(s_e)))
    # the projections of every lane and boundary onto the reference are cached per
    # (reference, road) pair
    cache = paths if paths is not None else {}
    same, onc = _neighbour_offsets(ref, key, lanes, route, s_e, paths, cache)
    grid = np.arange(s_e - 10.0, s_e + lookahead, 1.0)
    left, right = _drivable_bounds(scene, ref, key, grid, same, onc, lane_width, d_e, cache)
    # route deadline: the station by which the ego must be in the route lane (the
    # reference starts with it): the end of the lane the route changes lanes from (an
    # acceleration lane ending), else the end of the first route lane
    deadline = np.inf
    if route:
        end_of = by_id[leave] if leave in by_id else by_id[route[0]]
        # (measured: with the end of a perceived lane 20-30 m ahead as the deadline, a nudge
        # past a row of parked cars had to be back in the lane before the row ended, and the
        # ego stopped behind it)
        if leave in by_id or not end_of.open_end:
            deadline = float(ref.project([end_of.centerline[-1]])[0][0])
    goal_station = np.inf
    if scene.goal is not None:
        gs, gd = ref.project([[scene.goal.x, scene.goal.y]])
        if abs(gd[0]) < 8.0 and gs[0] > s_e - 5.0:
            goal_station = float(gs[0])
    stops = []
    acc = 0.0
    limit_s, limit_v = [], []
    for k, rid in enumerate(route):
        ln = by_id[rid]
        limit_s.append(acc)
        limit_v.append(scene.speed_limit_on(rid))
        if ln.stop_line_s is not None:
            stops.append((acc + float(ln.stop_line_s), (rid, round(float(ln.stop_line_s), 1))))
        acc += polyline_length(ln.centerline)
        if k + 1 < len(route):      # a gap bridged to the next route lane
            acc += float(np.hypot(*(by_id[route[k + 1]].centerline[0] - ln.centerline[-1])))
    # stations were accumulated along the joined centrelines (s = 0 at the start)
    return RoadFrame(stop_stations=stops, ref=ref, ref_key=key, lane_offsets=same, lane_width=lane_width,
                     oncoming_offsets=onc, station_grid=grid, road_left=left, road_right=right,
                     route_deadline=deadline, goal_station=goal_station, ego_s=s_e, ego_d=d_e,
                     ego_rel_yaw=rel_yaw, speed_limit=speed_limit,
                     limit_stations=np.array(limit_s or [0.0]),
                     limit_values=np.array(limit_v or [speed_limit]))


NAV_LANE_TOLERANCE = 2.0   # m: a perceived lane further than this from the navigation route left it
NAV_JOIN_GAP = 2.0         # m along the route from a lane's last point to where the route takes over
NAV_BLEND = 40.0           # m over which the route's offset from the lane's end fades out


def nav_reference(nav: np.ndarray, ego: EgoState, lane_pts: Optional[np.ndarray] = None
                  ) -> np.ndarray:
    """The reference polyline from the navigation route `nav` (Nx2, odom): the perceived
    lane centreline `lane_pts` up to where it leaves the route (NAV_LANE_TOLERANCE m),
    then the route, shifted sideways by the lane end's offset from it and fading to the
    route itself over NAV_BLEND m (a road-level route is not where the lane is: a direct
    join bent the reference 1-2 m within a few metres, whose curvature capped the speed
    at 6 m/s on the highway); without a lane, the route from 10 m behind the ego.
    Resampled at 1 m and smoothed over 5 m."""
    nav = resample_polyline(nav, 1.0, min_segment=MIN_SEGMENT)
    path = ReferencePath(nav, ds=1.0, extend_before=0.0, extend_after=0.0)
    s_e = float(path.project([[ego.x, ego.y]])[0][0])
    start, shift = s_e - 10.0, 0.0
    head = np.zeros((0, 2))
    if lane_pts is not None and len(lane_pts) >= 2:
        lane = resample_polyline(np.asarray(lane_pts, float)[:, :2], 1.0, min_segment=MIN_SEGMENT)
        s_l, d_l = path.project(lane)
        far = np.flatnonzero((np.abs(d_l) > NAV_LANE_TOLERANCE) & (s_l > s_e - 5.0))
        keep = np.arange(far[0] if len(far) else len(lane))
        keep = keep[s_l[keep] >= s_e - 10.0]
        if len(keep) >= 2:
            head = lane[keep]
            start, shift = float(s_l[keep[-1]]) + NAV_JOIN_GAP, float(d_l[keep[-1]])
    s_nav = arc_length(nav)
    m = s_nav >= start
    tail = nav[m]
    if len(tail) and shift != 0.0:
        h = path.heading_at(s_nav[m])
        w = shift * np.clip(1.0 - (s_nav[m] - start) / NAV_BLEND, 0.0, 1.0)
        tail = tail + np.column_stack([-np.sin(h) * w, np.cos(h) * w])
    pts = np.vstack([head, tail]) if len(tail) else head
    if len(pts) < 2:
        pts = nav[-2:]
    pts = resample_polyline(pts, 1.0, min_segment=MIN_SEGMENT)
    if len(pts) >= 7:
        k = np.ones(5) / 5.0
        inner = np.column_stack([np.convolve(pts[:, i], k, mode="valid") for i in (0, 1)])
        pts = np.vstack([pts[:2], inner, pts[-2:]])
    return pts


def _route_reference(scene: PlanningScene, by_id: Dict[int, Lane], route: List[int], paths):
    """(reference path, its key, lane width, speed limit): the route lanes' centrelines
    joined, or without a route a straight line along the ego heading; cached in
    `paths` by key."""
    ego = scene.ego
    if route:
        pts = [by_id[route[0]].centerline]
        for rid in route[1:]:
            c = by_id[rid].centerline
            if np.hypot(*(c[0] - pts[-1][-1])) < 1e-3:
                c = c[1:]
            pts.append(c)
        ref_pts = np.vstack(pts)
        key = tuple(route)
        if scene.nav_route is not None and len(scene.nav_route) >= 2 and not scene.route_lane_ids:
            # perceived lanes: followed while they agree with the navigation route, which
            # takes over where they end or leave it (a turn, a junction)
            ref_pts = nav_reference(np.asarray(scene.nav_route, dtype=float)[:, :2], ego, ref_pts)
            key = key + ("nav",)
        lane_width = float(by_id[route[0]].width)
        speed_limit = float(by_id[route[0]].speed_limit)
        if scene.speed_limit is not None:
            speed_limit = min(speed_limit, float(scene.speed_limit))
    elif scene.nav_route is not None and len(scene.nav_route) >= 2:
        ref_pts = nav_reference(np.asarray(scene.nav_route, dtype=float)[:, :2], ego)
        key = ("nav", geometry_key(scene.nav_route))
        lane_width = 3.5
        speed_limit = NO_LANE_SPEED_LIMIT if scene.speed_limit is None else float(scene.speed_limit)
    else:
        # no lane: a straight reference along the ego heading
        L = 200.0
        ref_pts = np.array([[ego.x, ego.y],
                            [ego.x + L * np.cos(ego.yaw), ego.y + L * np.sin(ego.yaw)]])
        key = ("heading", round(ego.x, -1), round(ego.y, -1))
        lane_width = 3.5
        speed_limit = NO_LANE_SPEED_LIMIT if scene.speed_limit is None else float(scene.speed_limit)
    ckey = ("route",) + key + (geometry_key(ref_pts),)
    ref = (paths.get(ckey) if paths is not None else None)
    if ref is None:
        ref = ReferencePath(ref_pts, ds=0.5, extend_before=30.0, extend_after=250.0)
        if paths is not None:
            paths[ckey] = ref
    return ref, key, lane_width, speed_limit


def _neighbour_offsets(ref: ReferencePath, key: tuple, lanes: List[Lane], route: List[int],
                       s_e: float, paths, cache: dict):
    """Lateral offsets of the lane centres parallel to the reference over the next 80 m:
    (same direction incl. 0 = the reference, oncoming), sorted."""
    lkey = ("lanes_on",) + key + (fingerprint([l.centerline for l in lanes]),)
    if lkey not in cache:
        proj = []
        for ln in lanes:
            if route and ln.id in route:
                continue
            p = lane_path(ln, paths)
            pts = p.xy[(p.s >= 0) & (p.s <= p.original_length)]
            s, d = ref.project(pts)
            hd = np.cos(wrap_angle(p.heading[(p.s >= 0) & (p.s <= p.original_length)] - ref.heading_at(s)))
            proj.append((ln, s, d, hd))
        cache[lkey] = proj
    same, onc = [0.0], []
    for ln, s, d, hd in cache[lkey]:
        m = (s > s_e - 10.0) & (s < s_e + 80.0)
        if m.sum() < 5:
            continue
        dm = d[m]
        if np.std(dm) > 0.6 or abs(np.median(dm)) > 12.0 or abs(np.median(dm)) < 1.5:
            continue
        (same if (np.median(hd[m]) > 0 and not ln.oncoming) else onc).append(float(np.median(dm)))
    return np.array(sorted(set(np.round(same, 2)))), np.array(sorted(set(np.round(onc, 2))))


def _hold_forward(values: np.ndarray, hold: int) -> np.ndarray:
    """Finite samples carried forward over up to `hold` following non-finite ones."""
    out = values.copy()
    last, since = np.nan, hold + 1
    for k, v in enumerate(values):
        if np.isfinite(v):
            last, since = v, 0
        else:
            since += 1
            if since <= hold and np.isfinite(last):
                out[k] = last
    return out


def _drivable_bounds(scene: PlanningScene, ref: ReferencePath, key: tuple, grid, same, onc,
                     lane_width: float, d_e: float, cache: dict, hold_m: float = 30.0):
    """(left, right) drivable bounds (d) at the stations `grid`: the scene's boundaries
    (curbs / road edges roughly parallel to the reference), held `hold_m` beyond where
    they end (perceived edges end 20-25 m ahead, and the road beyond was taken as only the
    lane centres' width: no way past a row of parked cars), else half a lane beyond the
    outermost lane centres; they always contain the ego (offset d_e)."""
    all_centres = np.concatenate([same, onc]) if len(onc) else same
    default_left = float(np.max(all_centres) + lane_width / 2.0 + 0.3)
    default_right = float(np.min(all_centres) - lane_width / 2.0 - 0.3)
    left = np.full(len(grid), default_left)
    right = np.full(len(grid), default_right)
    if not scene.boundaries:
        return left, right
    bkey = ("bounds_on",) + key + (fingerprint(scene.boundaries),)
    if bkey not in cache:
        cache[bkey] = _boundaries_on(ref, scene.boundaries)
    g0, bl0, br0 = cache[bkey]
    idx = np.clip(np.round(grid - g0[0]).astype(int), 0, len(g0) - 1)
    hold = int(round(hold_m))
    bl = _hold_forward(np.where(np.isfinite(bl0[idx]), bl0[idx], np.nan), hold)
    br = _hold_forward(np.where(np.isfinite(br0[idx]), br0[idx], np.nan), hold)
    left = np.where(np.isfinite(bl), np.minimum(bl, default_left + 3.0), left)
    right = np.where(np.isfinite(br), np.maximum(br, default_right - 3.0), right)
    # bounds must contain the ego; a sample that does not is noise
    left = np.maximum(left, min(d_e + 1.2, default_left))
    right = np.minimum(right, max(d_e - 1.2, default_right))
    return left, right


def _boundaries_on(ref: ReferencePath, boundaries) -> tuple:
    """(stations at 1 m over the whole reference, nearest boundary on the left (+inf
    where none), nearest on the right (-inf where none)) of the boundaries roughly
    parallel to the reference within 15 m."""
    g0 = np.arange(ref.s_min, ref.s_max, 1.0)
    bl = np.full(len(g0), np.inf)
    br = np.full(len(g0), -np.inf)
    for b in boundaries:
        pts = resample_polyline(np.asarray(b)[:, :2], 0.5, min_segment=MIN_SEGMENT)
        if len(pts) < 2:
            continue
        s, d = ref.project(pts)
        seg_h = np.arctan2(*np.gradient(pts, axis=0).T[::-1])
        par = np.abs(np.cos(wrap_angle(seg_h - ref.heading_at(s)))) > 0.8
        m = par & (np.abs(d) < 15.0) & (s >= g0[0]) & (s <= g0[-1])
        if not np.any(m):
            continue
        idx = np.clip(np.round(s[m] - g0[0]).astype(int), 0, len(g0) - 1)
        dm = d[m]
        lm = dm > 0
        np.minimum.at(bl, idx[lm], dm[lm])
        np.maximum.at(br, idx[~lm], dm[~lm])
    return g0, bl, br
