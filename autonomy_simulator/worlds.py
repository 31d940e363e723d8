"""Seeded procedural driving worlds with perfect vector-space ground truth (no ROS).

Every builder takes a `seed` (and parameters) and returns a `World`:

- `road(seed, ...)`           straight or curved multi-lane road (piecewise-constant curvature)
- `intersection(seed, ...)`   four-way intersection, `lanes` per direction with a left-turn
                               lane, stop lines (all-way or minor-road stop), connector lanes
- `narrow_street(seed, ...)`  two-way street without centre line, parked cars and cones on
                               both sides, curbs and sidewalk poles
- `parking_lot(seed, ...)`    lot with marked bays, curbs, parked cars, cones, poles and a free
                               target bay; `World.parking` holds its geometry as plain data
- `random_world(seed)`        one of the above with random parameters (training data)

Ground truth (world frame: x, y on the ground, z up; "odom" in ROS):
- `World.painted_lines` lane lines (dashed/solid, white/yellow), stop lines, bay lines
  (`scene.PaintedLine` wrapping a `vector_space.RoadLine` label),
- `World.curbs` (RoadLine CURB, `height` > 0), `World.road_edges` (RoadLine ROAD_EDGE),
- `World.drivable_polygons[0]` the outer drivable-area polygon (one simple polygon),
- `World.static_objects` oriented boxes with class (parked cars, cones, poles),
- `World.lanes` {lane_id: Lane} centerlines with width, left/right neighbour (same
  direction), successors/predecessors, turn type, speed limit and stop line; `lanes_dict()`
  gives them as plain lists/floats for other developers (planner, routes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from autonomy_simulator import geometry as geo
from autonomy_stack.geometry import (arc_length, interpolate_polyline, offset_polyline,
                                     project_to_polyline, resample_polyline, rotation)
from autonomy_simulator.scene import PaintedLine
from autonomy_stack.vector_space import LineType, ObjectClass, ObjectState, RoadLine, VectorSpace
from autonomy_vehicle.vehicle_model import VehicleParams

WHITE = (0.92, 0.92, 0.90)
YELLOW = (0.95, 0.78, 0.15)
CAR_COLORS = [(0.75, 0.1, 0.1), (0.1, 0.2, 0.6), (0.85, 0.85, 0.85), (0.15, 0.15, 0.15),
              (0.5, 0.5, 0.55), (0.1, 0.45, 0.2), (0.9, 0.6, 0.1), (0.35, 0.2, 0.1),
              (0.6, 0.75, 0.9), (0.55, 0.1, 0.45)]
CONE_COLOR = (1.0, 0.45, 0.0)
POLE_COLOR = (0.55, 0.55, 0.6)
CURB_HEIGHT = 0.15
STATIC_ID_BASE = 10000      # static objects get ids >= this; agents below


@dataclass
class Lane:
    id: int
    centerline: np.ndarray           # Nx2, direction of travel, ~1 m spacing
    width: float
    left: Optional[int] = None       # neighbour lane, same direction, to the left
    right: Optional[int] = None
    successors: List[int] = field(default_factory=list)
    predecessors: List[int] = field(default_factory=list)
    turn: str = "none"               # none | straight | left | right (connector lanes)
    speed_limit: float = 13.9        # m/s
    stop_line_s: Optional[float] = None   # arc length of the stop line (lane must stop)
    in_junction: bool = False
    s: np.ndarray = field(default=None, repr=False)   # cumulative arc length

    def __post_init__(self):
        self.centerline = np.asarray(self.centerline, dtype=float)
        self.s = arc_length(self.centerline)

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def pose_at(self, s: float) -> Tuple[float, float, float]:
        return interpolate_polyline(self.centerline, self.s, s)


@dataclass
class ParkingLot:
    """Plain-data parking-lot geometry (world frame) for parking-problem generators."""
    bounds: Tuple[float, float, float, float]     # xmin, ymin, xmax, ymax of the lot
    curbs: List[np.ndarray]                        # polylines Nx2
    bays: List[np.ndarray]                         # 4x2 rectangles (corners, CCW)
    bay_headings: List[float]                      # heading a car parked nose-in faces
    bay_occupied: List[bool]
    target_bay: int
    static_boxes: List[ObjectState]                # parked cars, cones, poles
    entrance_pose: Tuple[float, float, float]      # x, y, yaw where the ego enters
    goal_pose: Tuple[float, float, float]          # rear-axle pose parked in the target bay

    def as_dict(self) -> dict:
        return {
            "bounds": list(self.bounds),
            "curbs": [c.tolist() for c in self.curbs],
            "bays": [b.tolist() for b in self.bays],
            "bay_headings": list(self.bay_headings),
            "bay_occupied": list(self.bay_occupied),
            "target_bay": self.target_bay,
            "static_boxes": [{"id": o.id, "class": int(o.object_class), "x": o.x, "y": o.y,
                              "yaw": o.yaw, "length": o.length, "width": o.width,
                              "height": o.height} for o in self.static_boxes],
            "entrance_pose": list(self.entrance_pose),
            "goal_pose": list(self.goal_pose),
        }


@dataclass
class World:
    name: str
    seed: int
    lanes: Dict[int, Lane]
    drivable_polygons: List[np.ndarray]
    painted_lines: List[PaintedLine]
    curbs: List[RoadLine]
    road_edges: List[RoadLine]
    static_objects: List[ObjectState]
    object_colors: Dict[int, Tuple[float, float, float]]
    parking: Optional[ParkingLot] = None
    junction: Optional[np.ndarray] = None          # polygon of the intersection box
    crosswalks: List[np.ndarray] = field(default_factory=list)   # 4x2 rectangles
    ground_color: Tuple[float, float, float] = (0.35, 0.42, 0.28)
    params: dict = field(default_factory=dict)

    # ---------------------------------------------------------------- ground truth
    def road_lines(self) -> List[RoadLine]:
        return [p.line for p in self.painted_lines] + list(self.curbs) + list(self.road_edges)

    def vector_space(self, stamp: float = 0.0) -> VectorSpace:
        """Static ground truth in the world frame (agents are added by the Simulation)."""
        return VectorSpace(stamp=stamp, frame_id="odom", objects=list(self.static_objects),
                           lines=self.road_lines(), drivable_area=self.drivable_polygons[0])

    def lanes_dict(self) -> dict:
        """Lanes as plain data: {id: {centerline, width, left, right, successors, ...}}."""
        return {lid: {"centerline": ln.centerline.tolist(), "width": ln.width,
                      "left": ln.left, "right": ln.right, "successors": list(ln.successors),
                      "predecessors": list(ln.predecessors), "turn": ln.turn,
                      "speed_limit": ln.speed_limit, "stop_line_s": ln.stop_line_s,
                      "in_junction": ln.in_junction, "length": ln.length}
                for lid, ln in self.lanes.items()}

    def nearest_lane(self, x: float, y: float, yaw: Optional[float] = None) -> Tuple[int, float, float]:
        """(lane_id, s, d) of the lane closest to (x, y) (heading-compatible if yaw given)."""
        best = None
        for lid, ln in self.lanes.items():
            s, d = project_to_polyline(ln.centerline, ln.s, np.array([[x, y]]))
            s, d = float(s[0]), float(d[0])
            cost = abs(d) + max(0.0, -s) + max(0.0, s - ln.length)
            if yaw is not None:
                h = ln.pose_at(s)[2]
                if math.cos(h - yaw) < 0.5:
                    cost += 100.0
            if ln.in_junction:
                cost += 0.5
            if best is None or cost < best[0]:
                best = (cost, lid, s, d)
        return best[1], best[2], best[3]

    def route_lanes(self, start_lane: int, turns: Tuple[str, ...] = (), max_lanes: int = 20,
                    rng: Optional[np.random.Generator] = None) -> List[int]:
        """Lane sequence from `start_lane` following successors; at a branch pick the
        successor whose turn type is the next entry of `turns` (else random / first)."""
        out = [start_lane]
        turns = list(turns)
        while len(out) < max_lanes:
            succ = self.lanes[out[-1]].successors
            if not succ:
                break
            pick = None
            if len(succ) > 1 and turns:
                want = turns.pop(0)
                pick = next((s for s in succ if self.lanes[s].turn == want), None)
            if pick is None:
                pick = succ[int(rng.integers(len(succ)))] if (rng is not None and len(succ) > 1) else succ[0]
            if pick in out:
                break
            out.append(pick)
        return out


# ==================================================================== builder
class _Builder:
    def __init__(self, name: str, seed: int):
        self.name, self.seed = name, seed
        self.rng = np.random.default_rng(seed)
        self.lanes: Dict[int, Lane] = {}
        self.painted: List[PaintedLine] = []
        self.curbs: List[RoadLine] = []
        self.edges: List[RoadLine] = []
        self.objects: List[ObjectState] = []
        self.colors: Dict[int, Tuple[float, float, float]] = {}
        self._line_id = 1
        self._obj_id = STATIC_ID_BASE

    def lane(self, centerline, width, **kw) -> Lane:
        lid = len(self.lanes) + 1
        ln = Lane(lid, resample_polyline(centerline, 1.0), width, **kw)
        self.lanes[lid] = ln
        return ln

    def link(self, a: Lane, b: Lane):
        a.successors.append(b.id)
        b.predecessors.append(a.id)

    def paint(self, pts, line_type: LineType, width=0.15, dash=(0.0, 0.0)):
        pts = np.asarray(pts, float)
        color = YELLOW if line_type in (LineType.LANE_DASHED_YELLOW, LineType.LANE_SOLID_YELLOW) else WHITE
        rl = RoadLine(self._line_id, line_type, pts)
        self._line_id += 1
        self.painted.append(PaintedLine(rl, width=width, color=color, dash_length=dash[0],
                                        gap_length=dash[1]))
        return rl

    def lane_line(self, pts, dashed: bool, yellow: bool = False):
        if yellow:
            lt = LineType.LANE_DASHED_YELLOW if dashed else LineType.LANE_SOLID_YELLOW
        else:
            lt = LineType.LANE_DASHED_WHITE if dashed else LineType.LANE_SOLID_WHITE
        return self.paint(pts, lt, 0.15, (3.0, 6.0) if dashed else (0.0, 0.0))

    def curb(self, pts, height=CURB_HEIGHT):
        rl = RoadLine(self._line_id, LineType.CURB, np.asarray(pts, float), height=height)
        self._line_id += 1
        self.curbs.append(rl)

    def edge(self, pts):
        rl = RoadLine(self._line_id, LineType.ROAD_EDGE, np.asarray(pts, float))
        self._line_id += 1
        self.edges.append(rl)

    def obj(self, cls: ObjectClass, x, y, yaw, length, width, height, color=None) -> ObjectState:
        o = ObjectState(id=self._obj_id, object_class=cls, x=float(x), y=float(y), yaw=float(yaw),
                        length=length, width=width, height=height, z=height / 2.0,
                        is_static=True)
        self._obj_id += 1
        self.objects.append(o)
        if color is None:
            color = (CAR_COLORS[int(self.rng.integers(len(CAR_COLORS)))] if cls in
                     (ObjectClass.CAR, ObjectClass.TRUCK) else
                     CONE_COLOR if cls == ObjectClass.CONE else POLE_COLOR)
        self.colors[o.id] = tuple(float(c) for c in color)
        return o

    def parked_car(self, x, y, yaw):
        L = float(self.rng.uniform(4.2, 4.9))
        W = float(self.rng.uniform(1.75, 1.95))
        H = float(self.rng.uniform(1.4, 1.6))
        return self.obj(ObjectClass.CAR, x, y, yaw, L, W, H)

    def cone(self, x, y):
        return self.obj(ObjectClass.CONE, x, y, 0.0, 0.35, 0.35, 0.7)

    def pole(self, x, y, height=None):
        h = float(height if height is not None else self.rng.uniform(3.0, 6.0))
        return self.obj(ObjectClass.POLE, x, y, 0.0, 0.25, 0.25, h)

    def world(self, polygon, **kw) -> World:
        ground = (0.30 + 0.08 * float(self.rng.random()), 0.40 + 0.06 * float(self.rng.random()),
                  0.25 + 0.05 * float(self.rng.random()))
        return World(self.name, self.seed, self.lanes, [np.asarray(polygon, float)], self.painted,
                     self.curbs, self.edges, self.objects, self.colors, ground_color=ground, **kw)


def _reference_line(length: float, curvatures: List[Tuple[float, float]], x0=0.0, y0=0.0,
                    yaw0=0.0, step=1.0) -> np.ndarray:
    """Integrate piecewise-constant curvature [(segment_length, kappa), ...] into a polyline."""
    pts = [(x0, y0)]
    x, y, h = x0, y0, yaw0
    for seg_len, k in curvatures:
        n = max(1, int(round(seg_len / step)))
        ds = seg_len / n
        for _ in range(n):
            h_mid = h + 0.5 * k * ds
            x += ds * math.cos(h_mid)
            y += ds * math.sin(h_mid)
            h += k * ds
            pts.append((x, y))
    return np.array(pts)


# ==================================================================== worlds
def road(seed: int = 0, length: float = 400.0, lanes_forward: int = 2, lanes_backward: int = 1,
         lane_width: float = 3.6, curved: bool = True, max_curvature: float = 1.0 / 150.0,
         curbs: Optional[bool] = None, speed_limit: float = 25.0, n_cones: int = 4,
         n_poles: int = 12) -> World:
    """Multi-lane road along +x from the origin; straight if `curved` is False."""
    b = _Builder("road", seed)
    rng = b.rng
    if curved:
        segs, done = [], 0.0
        segs.append((40.0, 0.0))
        done = 40.0
        while done < length:
            L = float(rng.uniform(60, 140))
            k = float(rng.uniform(-max_curvature, max_curvature)) if rng.random() < 0.7 else 0.0
            segs.append((min(L, length - done), k))
            done += L
    else:
        segs = [(length, 0.0)]
    ref = _reference_line(length, segs)
    w = lane_width
    shoulder = 0.6
    nf, nb = lanes_forward, lanes_backward
    fwd = [b.lane(offset_polyline(ref, -(i + 0.5) * w), w, speed_limit=speed_limit)
           for i in range(nf)]
    bwd = [b.lane(offset_polyline(ref, (j + 0.5) * w)[::-1], w, speed_limit=speed_limit)
           for j in range(nb)]
    for group in (fwd, bwd):
        for i, ln in enumerate(group):   # index 0 is next to the centre = leftmost
            ln.left = group[i - 1].id if i > 0 else None
            ln.right = group[i + 1].id if i + 1 < len(group) else None
    # paint
    if nb > 0 and nf > 0:
        b.lane_line(ref, dashed=False, yellow=True)
    for i in range(1, nf):
        b.lane_line(offset_polyline(ref, -i * w), dashed=True)
    for j in range(1, nb):
        b.lane_line(offset_polyline(ref, j * w), dashed=True)
    b.lane_line(offset_polyline(ref, -nf * w + 0.2), dashed=False)
    b.lane_line(offset_polyline(ref, nb * w - 0.2), dashed=False)
    right_edge = offset_polyline(ref, -nf * w - shoulder)
    left_edge = offset_polyline(ref, nb * w + shoulder)
    use_curbs = bool(rng.random() < 0.5) if curbs is None else curbs
    for e in (right_edge, left_edge):
        (b.curb if use_curbs else b.edge)(e)
    # cones on the shoulder, poles beyond the edge
    s_ref = arc_length(ref)
    for _ in range(n_cones):
        s = float(rng.uniform(30, s_ref[-1] - 10))
        x, y, h = interpolate_polyline(ref, s_ref, s)
        side = -1 if rng.random() < 0.5 else 1
        d = side * ((nf if side < 0 else nb) * w + shoulder * 0.5)
        b.cone(x - d * math.sin(h), y + d * math.cos(h))
    for k in range(n_poles):
        s = float((k + rng.uniform(0.2, 0.8)) * s_ref[-1] / max(n_poles, 1))
        x, y, h = interpolate_polyline(ref, s_ref, s)
        side = -1 if k % 2 == 0 else 1
        d = side * ((nf if side < 0 else nb) * w + shoulder + 1.5)
        b.pole(x - d * math.sin(h), y + d * math.cos(h))
    poly = np.concatenate([right_edge, left_edge[::-1]])
    return b.world(poly, params=dict(kind="road", length=length, lanes_forward=nf,
                                     lanes_backward=nb, lane_width=w, curved=curved,
                                     reference=ref))


ARMS = {"east": 0.0, "north": math.pi / 2, "west": math.pi, "south": -math.pi / 2}


def _intersection_arm(b: _Builder, a: float, n: int, w: float, L: float, H: float,
                      stop_d: float, has_stop: bool, speed_limit: float, crosswalks: bool):
    """One arm at angle `a` of `intersection`: `n` incoming and `n` outgoing lanes (index 0
    innermost) with their neighbours and stop line, the paint, and the crosswalk area
    (None without crosswalks). Returns (incoming lanes, outgoing lanes, crosswalk)."""
    u = np.array([math.cos(a), math.sin(a)])
    nrm = np.array([-u[1], u[0]])
    inc, out = [], []
    for i in range(n):              # i = 0: innermost (left-turn lane)
        d = (i + 0.5) * w
        p0, p1 = u * L + nrm * d, u * stop_d + nrm * d
        inc.append(b.lane(np.stack([p0, p1]), w, speed_limit=speed_limit))
        q0, q1 = u * stop_d - nrm * d, u * L - nrm * d
        out.append(b.lane(np.stack([q0, q1]), w, speed_limit=speed_limit))
    for grp in (inc, out):
        for i, ln in enumerate(grp):
            ln.left = grp[i - 1].id if i > 0 else None
            ln.right = grp[i + 1].id if i + 1 < n else None
    for ln in inc:
        ln.stop_line_s = ln.length if has_stop else None
    # paint: centre yellow, lane dividers (solid over the last 25 m: turn lanes), edges
    b.lane_line(np.stack([u * L, u * stop_d]), dashed=False, yellow=True)
    for i in range(1, n):
        d = i * w
        b.lane_line(np.stack([u * L + nrm * d, u * (stop_d + 25) + nrm * d]), dashed=True)
        b.lane_line(np.stack([u * (stop_d + 25) + nrm * d, u * stop_d + nrm * d]), dashed=False)
        b.lane_line(np.stack([u * stop_d - nrm * d, u * L - nrm * d]), dashed=True)
    if has_stop:
        b.paint(np.stack([u * stop_d + nrm * 0.1, u * stop_d + nrm * (n * w)]),
                LineType.STOP_LINE, width=0.4)
    cw = None
    if crosswalks:
        c0 = u * (stop_d - 0.3)
        c1 = u * (H + 0.3)
        cw = np.stack([c0 + nrm * H, c0 - nrm * H, c1 - nrm * H, c1 + nrm * H])
    return inc, out, cw


def _intersection_connectors(b: _Builder, incoming: Dict[str, List[Lane]],
                             outgoing: Dict[str, List[Lane]], n: int, w: float,
                             speed_limit: float) -> None:
    """Junction lanes of `intersection`: left from the innermost lane, straight and right
    from the outermost one (Bezier curves), middle lanes straight across."""
    order = list(ARMS)
    # The vehicle arriving from arm A travels -u_A; turning left it leaves on the arm to its
    # left: for travel direction -u_A, left = rot90(-u_A) which is the arm at angle a_A - 90.
    for arm in order:
        k = order.index(arm)
        left_arm, right_arm, opp = order[(k - 1) % 4], order[(k + 1) % 4], order[(k + 2) % 4]
        inc = incoming[arm]
        for turn, src, dst_arm, dst in (("left", inc[0], left_arm, outgoing[left_arm][0]),
                                        ("straight", inc[-1] if n > 1 else inc[0], opp, outgoing[opp][-1] if n > 1 else outgoing[opp][0]),
                                        ("right", inc[-1], right_arm, outgoing[right_arm][-1])):
            p0 = src.centerline[-1]
            h0 = math.atan2(*(src.centerline[-1] - src.centerline[-2])[::-1])
            p1 = dst.centerline[0]
            h1 = math.atan2(*(dst.centerline[1] - dst.centerline[0])[::-1])
            pts = geo.bezier(p0, h0, p1, h1, n=25, k=0.55 if turn != "straight" else 0.35)
            c = b.lane(pts, w, turn=turn, in_junction=True, speed_limit=min(speed_limit, 8.0 if turn != "straight" else speed_limit))
            b.link(src, c)
            b.link(c, dst)
        for mid in inc[1:-1]:           # middle lanes go straight
            dst = outgoing[opp][inc.index(mid)]
            p0, p1 = mid.centerline[-1], dst.centerline[0]
            c = b.lane(np.stack([p0, p1]), w, turn="straight", in_junction=True, speed_limit=speed_limit)
            b.link(mid, c)
            b.link(c, dst)


def intersection(seed: int = 0, lanes: int = 2, lane_width: float = 3.5, arm_length: float = 80.0,
                 stop: str = "all_way", corner_radius: float = 6.0, speed_limit: float = 13.9,
                 crosswalks: bool = True, n_poles: int = 8) -> World:
    """Four-way intersection centred on the origin. Each arm has `lanes` incoming lanes (the
    leftmost is a left-turn-only lane, the rightmost also turns right) and `lanes`
    outgoing lanes. `stop`: 'all_way' (stop lines on every arm) or 'minor' (north/south arms
    stop, east/west is the priority road)."""
    b = _Builder("intersection", seed)
    w, n = lane_width, lanes
    sh = 0.5
    H = n * w + sh                      # half width of each arm = half size of the junction box
    r = corner_radius
    stop_d = H + 3.0                    # stop line distance from the centre (crosswalk inside)
    L = arm_length
    cws: List[np.ndarray] = []
    incoming: Dict[str, List[Lane]] = {}
    outgoing: Dict[str, List[Lane]] = {}
    for arm, a in ARMS.items():
        has_stop = stop == "all_way" or arm in ("north", "south")
        incoming[arm], outgoing[arm], cw = _intersection_arm(
            b, a, n, w, L, H, stop_d, has_stop, speed_limit, crosswalks)
        if cw is not None:
            cws.append(cw)
    _intersection_connectors(b, incoming, outgoing, n, w, speed_limit)
    # outer boundary (cross with filleted corners), curbs along it
    quads = []
    for q in range(4):
        R = rotation(q * math.pi / 2)
        arc = [(H + r - r * math.sin(t), H + r - r * math.cos(t)) for t in np.linspace(0, math.pi / 2, 9)]
        pts = np.array([(L, H)] + arc + [(H, L)])   # from the east arm's top edge to the north arm's right edge
        pts = pts @ R.T
        quads.append(pts)
        b.curb(pts)
    poly = np.concatenate(quads)
    for k in range(n_poles):
        q = k % 4
        R = rotation(q * math.pi / 2)
        d = float(b.rng.uniform(H + r + 2, L - 5))
        b.pole(*(R @ np.array([d, H + 2.0])))
    wld = b.world(poly, junction=np.array([[H, H], [-H, H], [-H, -H], [H, -H]]),
                  params=dict(kind="intersection", lanes=n, lane_width=w, half_width=H,
                              stop_distance=stop_d, stop=stop, arm_length=L,
                              incoming={k: [l.id for l in v] for k, v in incoming.items()},
                              outgoing={k: [l.id for l in v] for k, v in outgoing.items()}))
    wld.crosswalks = cws          # pedestrian crossing areas (geometry only, not painted)
    return wld


def narrow_street(seed: int = 0, length: float = 170.0, width: float = 7.0,
                  parked_per_side: int = 3, cones: int = 3, speed_limit: float = 8.3,
                  ego_side_start: float = 22.0, oncoming_side_start: float = 75.0) -> World:
    """Two-way street along +x (ego lane y < 0, oncoming lane y > 0) without a centre line.
    Parked cars stand against the curbs in clusters (ego side first, then the oncoming
    side): next to a cluster only one vehicle fits, so oncoming traffic must yield or go
    around."""
    b = _Builder("narrow_street", seed)
    rng = b.rng
    half = width / 2.0
    lw = width / 2.0
    yl = half / 2.0
    ego_lane = b.lane(np.array([[0.0, -yl], [length, -yl]]), lw, speed_limit=speed_limit)
    onc_lane = b.lane(np.array([[length, yl], [0.0, yl]]), lw, speed_limit=speed_limit)
    b.curb(np.array([[0.0, -half], [length, -half]]))
    b.curb(np.array([[length, half], [0.0, half]]))
    clusters = {"ego_side": [], "oncoming_side": []}
    x = ego_side_start + float(rng.uniform(0, 3))
    for _ in range(parked_per_side):
        o = b.parked_car(x, -half + 0.15 + 0.95, 0.0)
        clusters["ego_side"].append(o.id)
        x += o.length + float(rng.uniform(0.8, 2.0))
    x = oncoming_side_start + float(rng.uniform(0, 3))
    for _ in range(parked_per_side):
        o = b.parked_car(x, half - 0.15 - 0.95, math.pi)
        clusters["oncoming_side"].append(o.id)
        x += o.length + float(rng.uniform(0.8, 2.0))
    for k in range(cones):
        b.cone(float(rng.uniform(8, 14)) + 4 * k, -half + 0.4)
    for k in range(10):
        side = 1 if k % 2 else -1
        b.pole(10 + k * (length - 20) / 10 + float(rng.uniform(-2, 2)), side * (half + 1.2))
    poly = np.array([[0.0, -half], [length, -half], [length, half], [0.0, half]])
    return b.world(poly, params=dict(kind="narrow_street", width=width, length=length,
                                     ego_lane=ego_lane.id, oncoming_lane=onc_lane.id,
                                     clusters=clusters))


def parking_lot(seed: int = 0, bays_per_row: int = 10, bay_width: float = 2.7,
                bay_depth: float = 5.2, aisle: float = 7.0, occupancy: float = 0.75,
                target_bay: Optional[int] = None, n_cones: int = 4) -> World:
    """Parking lot with two rows of bays (south row faces north, north row faces south)
    around an east-west aisle; an entrance road from the west. The ego starts on the
    entrance road; `World.parking` holds the geometry as plain data."""
    b = _Builder("parking_lot", seed)
    rng = b.rng
    margin = 5.0
    x0 = margin
    Lx = 2 * margin + bays_per_row * bay_width
    Ly = 2 * bay_depth + aisle
    y_aisle = bay_depth + aisle / 2.0
    ent_len, ent_half = 40.0, 3.5
    bays, headings, occupied = [], [], []
    for row, (y_lo, heading) in enumerate(((0.0, -math.pi / 2), (bay_depth + aisle, math.pi / 2))):
        for i in range(bays_per_row):
            xl = x0 + i * bay_width
            rect = np.array([[xl, y_lo], [xl + bay_width, y_lo], [xl + bay_width, y_lo + bay_depth],
                             [xl, y_lo + bay_depth]])
            bays.append(rect)
            headings.append(heading)
    nb = len(bays)
    if target_bay is None:
        target_bay = int(rng.integers(2, bays_per_row - 2)) + (bays_per_row if rng.random() < 0.5 else 0)
    for k, rect in enumerate(bays):
        occ = k != target_bay and bool(rng.random() < occupancy)
        occupied.append(occ)
        # paint the three closed sides of the bay (the aisle side stays open)
        row_south = k < bays_per_row
        if row_south:
            pts = np.array([rect[3], rect[0], rect[1], rect[2]])
        else:
            pts = np.array([rect[0], rect[3], rect[2], rect[1]])
        b.paint(pts, LineType.PARKING_BAY, width=0.12)
        if occ:
            c = rect.mean(0)
            b.parked_car(c[0] + float(rng.uniform(-0.15, 0.15)), c[1] + float(rng.uniform(-0.2, 0.2)),
                         headings[k] + float(rng.uniform(-0.05, 0.05)))
    # curbs: lot perimeter except the entrance gap on the west side
    curbs = [np.array([[0.0, y_aisle + ent_half], [0.0, Ly], [Lx, Ly], [Lx, 0.0], [0.0, 0.0],
                       [0.0, y_aisle - ent_half]]),
             np.array([[-ent_len, y_aisle + ent_half], [0.0, y_aisle + ent_half]]),
             np.array([[0.0, y_aisle - ent_half], [-ent_len, y_aisle - ent_half]])]
    for c in curbs:
        b.curb(c)
    # entrance lanes (in: eastbound south half, out: westbound) and aisle lanes
    lin = b.lane(np.array([[-ent_len, y_aisle - 1.75], [0.0, y_aisle - 1.75]]), 3.5, speed_limit=4.0)
    lout = b.lane(np.array([[0.0, y_aisle + 1.75], [-ent_len, y_aisle + 1.75]]), 3.5, speed_limit=4.0)
    ain = b.lane(np.array([[0.0, y_aisle - 1.75], [Lx - 2.0, y_aisle - 1.75]]), 3.5, speed_limit=3.0)
    aout = b.lane(np.array([[Lx - 2.0, y_aisle + 1.75], [0.0, y_aisle + 1.75]]), 3.5, speed_limit=3.0)
    b.link(lin, ain)
    b.link(aout, lout)
    # cones near the east end of the aisle, poles at lot corners / edges
    for k in range(n_cones):
        b.cone(Lx - 1.5 - float(rng.uniform(0, 1.0)), y_aisle + float(rng.uniform(-2.5, 2.5)))
    for (px, py) in ((-1.0, -1.0), (Lx + 1.0, -1.0), (Lx + 1.0, Ly + 1.0), (-1.0, Ly + 1.0),
                     (Lx / 2, -1.0), (Lx / 2, Ly + 1.0)):
        b.pole(px, py, height=6.0)
    poly = np.array([[-ent_len, y_aisle - ent_half], [0.0, y_aisle - ent_half], [0.0, 0.0],
                     [Lx, 0.0], [Lx, Ly], [0.0, Ly], [0.0, y_aisle + ent_half],
                     [-ent_len, y_aisle + ent_half]])
    b.edge(poly[[0, 7]])      # the far end of the entrance road (no curb there)
    rect = bays[target_bay]
    cx, cy = rect.mean(0)
    h = headings[target_bay]
    co = VehicleParams().center_offset
    goal = (float(cx - co * math.cos(h)), float(cy - co * math.sin(h)), float(h))
    lot = ParkingLot(bounds=(0.0, 0.0, Lx, Ly), curbs=curbs, bays=bays, bay_headings=headings,
                     bay_occupied=occupied, target_bay=target_bay,
                     static_boxes=list(b.objects), entrance_pose=(-ent_len + 5.0, y_aisle - 1.75, 0.0),
                     goal_pose=goal)
    return b.world(poly, parking=lot, params=dict(kind="parking_lot", aisle_y=y_aisle,
                                                  entrance_lane=lin.id, aisle_lane=ain.id))


def random_world(seed: int) -> World:
    """A world of random kind and parameters (training data)."""
    rng = np.random.default_rng(seed)
    kind = ["road", "road", "intersection", "narrow_street", "parking_lot"][int(rng.integers(5))]
    sub = int(rng.integers(2 ** 31))
    if kind == "road":
        return road(sub, lanes_forward=int(rng.integers(1, 4)), lanes_backward=int(rng.integers(0, 3)),
                    lane_width=float(rng.uniform(3.2, 3.8)), curved=bool(rng.random() < 0.7),
                    max_curvature=float(rng.uniform(1 / 300, 1 / 80)))
    if kind == "intersection":
        return intersection(sub, lanes=int(rng.integers(1, 4)), lane_width=float(rng.uniform(3.2, 3.7)),
                            stop="all_way" if rng.random() < 0.5 else "minor")
    if kind == "narrow_street":
        return narrow_street(sub, width=float(rng.uniform(6.0, 7.0)))
    return parking_lot(sub, bays_per_row=int(rng.integers(6, 14)), occupancy=float(rng.uniform(0.3, 0.95)))
