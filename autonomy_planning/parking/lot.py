"""Parking-lot geometry as plain data, its rasters (occupancy, clearance), an exact footprint
check, and the pure parts of problem generation (no ROS).

A `Lot` holds what a parking search needs: an extent, an optional drivable polygon
(everything outside it is an obstacle), curb polylines (impassable), static boxes (parked
cars, cones, poles) and bays (4x2 rectangles with the heading of a car parked nose-in).
Lots come from a simulator `parking_lot` world passed in (`lot_from_world`), from a
perception `VectorSpace` (`lot_from_vector_space`) or are written by hand (tests).

Problems (`ParkingProblem`: lot, start pose, goal pose) are drawn from simulated lots by
`autonomy_tools.parking_problems.make_problem(seed)` (tools layer: it needs the simulator);
this module holds the pure parts it uses: `sample_start` (the lot's entrance pose, another
bay or a random collision-free pose in the aisle), `bay_goal_pose`, and the disjoint
training / held-out seed ranges (`train_seeds`, `heldout_seeds`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from autonomy_stack.geometry import box_corners, wrap_angle
from autonomy_vehicle.vehicle_model import VehicleParams
from autonomy_stack.vector_space import LineType

Pose = Tuple[float, float, float]          # x, y, yaw of the rear-axle centre

TRAIN_SEED_BASE = 0
HELDOUT_SEED_BASE = 1_000_000               # train seeds are < this, held-out seeds >= it
CURB_WIDTH = 0.2                            # m, kerb stones are obstacles this wide
# The lot's footprints run counter-clockwise from the front-left corner (front-left,
# rear-left, rear-right, front-right): `geometry.box_corners`' clockwise order re-indexed.
CCW_CORNERS = [0, 3, 2, 1]


@dataclass
class Box:
    """Static oriented box obstacle (centre, heading, length along heading, width)."""
    x: float
    y: float
    yaw: float
    length: float
    width: float

    def corners(self) -> np.ndarray:
        return box_corners(self.x, self.y, self.yaw, self.length, self.width)[CCW_CORNERS]


@dataclass
class Lot:
    bounds: Tuple[float, float, float, float]        # xmin, ymin, xmax, ymax of the search area
    curbs: List[np.ndarray] = field(default_factory=list)      # Nx2 polylines
    boxes: List[Box] = field(default_factory=list)
    bays: List[np.ndarray] = field(default_factory=list)       # 4x2 rectangles
    bay_headings: List[float] = field(default_factory=list)    # nose-in heading per bay
    target_bay: int = -1
    drivable: Optional[np.ndarray] = None             # Mx2 polygon; outside = obstacle
    curb_width: float = CURB_WIDTH
    bay_occupied: List[bool] = field(default_factory=list)
    entrance_pose: Optional[Pose] = None
    aisle_box: Optional[Tuple[float, float, float, float]] = None   # xmin, ymin, xmax, ymax


@dataclass
class ParkingProblem:
    lot: Lot
    start: Pose
    goal: Pose
    seed: int = -1
    reverse_in: bool = False
    cache: dict = field(default_factory=dict, repr=False)   # rasters reused by searches


def car_corners(pose: Pose, vp: VehicleParams = VehicleParams()) -> np.ndarray:
    """Footprint (4x2, `CCW_CORNERS` order) of the car with its rear axle at `pose`."""
    x, y, yaw = pose
    return box_corners(x, y, yaw, vp.length, vp.width, vp.center_offset)[CCW_CORNERS]


def bay_goal_pose(bay: np.ndarray, heading: float, reverse_in: bool,
                  vp: VehicleParams = VehicleParams(), back_gap: float = 0.6) -> Pose:
    """Rear-axle pose of a car parked in `bay` (nose-in: facing `heading`), centred
    laterally, its far end `back_gap` metres from the back of the bay (or centred when the
    bay is too short for that)."""
    bay = np.asarray(bay, float)
    cx, cy = bay.mean(0)
    hx, hy = math.cos(heading), math.sin(heading)
    proj = (bay[:, 0] - cx) * hx + (bay[:, 1] - cy) * hy
    depth = float(proj.max() - proj.min())
    shift = max(0.0, depth / 2.0 - back_gap - vp.length / 2.0)   # towards the aisle
    cx, cy = cx - shift * hx, cy - shift * hy
    yaw = heading + (math.pi if reverse_in else 0.0)
    yaw = float(wrap_angle(yaw))
    co = vp.center_offset
    return (float(cx - co * math.cos(yaw)), float(cy - co * math.sin(yaw)), yaw)


# --------------------------------------------------------------------------- rasters
class LotGrid:
    """Occupancy raster of a lot (conservative: a cell is occupied when an obstacle
    touches it) and its Euclidean clearance field (m)."""

    def __init__(self, lot: Lot, res: float = 0.1):
        self.lot, self.res = lot, float(res)
        xmin, ymin, xmax, ymax = lot.bounds
        self.x0, self.y0 = xmin, ymin
        self.nx = int(math.ceil((xmax - xmin) / res))
        self.ny = int(math.ceil((ymax - ymin) / res))
        xs = xmin + (np.arange(self.nx) + 0.5) * res
        ys = ymin + (np.arange(self.ny) + 0.5) * res
        X, Y = np.meshgrid(xs, ys, indexing="ij")        # (nx, ny)
        half_diag = res * math.sqrt(0.5)
        occ = np.zeros((self.nx, self.ny), bool)
        if lot.drivable is not None:
            occ |= ~_points_in_polygon(X, Y, np.asarray(lot.drivable, float), grow=half_diag)
        for b in lot.boxes:
            c, s = math.cos(b.yaw), math.sin(b.yaw)
            lx = (X - b.x) * c + (Y - b.y) * s
            ly = -(X - b.x) * s + (Y - b.y) * c
            occ |= (np.abs(lx) <= b.length / 2 + half_diag) & (np.abs(ly) <= b.width / 2 + half_diag)
        for pl in lot.curbs:
            pl = np.asarray(pl, float)[:, :2]
            for a, bb in zip(pl[:-1], pl[1:]):
                occ |= _dist_to_segment(X, Y, a, bb) <= lot.curb_width / 2 + half_diag
        occ[0, :] = occ[-1, :] = True
        occ[:, 0] = occ[:, -1] = True
        self.occ = occ
        self.clearance = ndimage.distance_transform_edt(~occ) * res   # 0 on obstacles
        self.clearance_flat = self.clearance.ravel()

    def index(self, x, y):
        ix = np.clip(((np.asarray(x) - self.x0) / self.res).astype(np.int64), 0, self.nx - 1)
        iy = np.clip(((np.asarray(y) - self.y0) / self.res).astype(np.int64), 0, self.ny - 1)
        return ix, iy

    def clearance_at(self, x, y):
        ix, iy = self.index(x, y)
        return self.clearance[ix, iy]


def _points_in_polygon(X, Y, poly, grow: float = 0.0):
    """Even-odd point-in-polygon on arrays; points within `grow` of an edge count as inside."""
    inside = np.zeros(X.shape, bool)
    n = len(poly)
    near = np.zeros(X.shape, bool)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        cond = (y1 > Y) != (y2 > Y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x1 + (Y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= cond & (X < xint)
        if grow > 0:
            near |= _dist_to_segment(X, Y, poly[i], poly[(i + 1) % n]) <= grow
    return inside | near


def _dist_to_segment(X, Y, a, b):
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    L2 = dx * dx + dy * dy
    if L2 < 1e-12:
        return np.hypot(X - ax, Y - ay)
    t = np.clip(((X - ax) * dx + (Y - ay) * dy) / L2, 0.0, 1.0)
    return np.hypot(X - (ax + t * dx), Y - (ay + t * dy))


# ------------------------------------------------------------------ exact footprint check
def _seg_dist(p, q, a, b) -> float:
    """Distance between segments pq and ab (2-D)."""
    def cross(o, u, v):
        return (u[0] - o[0]) * (v[1] - o[1]) - (u[1] - o[1]) * (v[0] - o[0])
    d1, d2 = cross(a, b, p), cross(a, b, q)
    d3, d4 = cross(p, q, a), cross(p, q, b)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and d1 * d2 < 0 and d3 * d4 < 0:
        return 0.0

    def pt_seg(pt, s0, s1):
        return float(_dist_to_segment(np.array(pt[0]), np.array(pt[1]), s0, s1))
    return min(pt_seg(p, a, b), pt_seg(q, a, b), pt_seg(a, p, q), pt_seg(b, p, q))


def _point_in_convex(pt, poly) -> bool:
    sgn = None
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        c = (b[0] - a[0]) * (pt[1] - a[1]) - (b[1] - a[1]) * (pt[0] - a[0])
        if abs(c) < 1e-12:
            continue
        if sgn is None:
            sgn = c > 0
        elif sgn != (c > 0):
            return False
    return True


def polygon_distance(P: np.ndarray, Q: np.ndarray) -> float:
    """Distance between two convex polygons (0 when they overlap)."""
    if _point_in_convex(P[0], Q) or _point_in_convex(Q[0], P):
        return 0.0
    best = math.inf
    for i in range(len(P)):
        for j in range(len(Q)):
            best = min(best, _seg_dist(P[i], P[(i + 1) % len(P)], Q[j], Q[(j + 1) % len(Q)]))
    return best


def _lot_geometry(lot: Lot):
    """Boxes (corners, centres, radii) and obstacle segments (curbs with their half width,
    drivable border with 0) as arrays, cached on the lot."""
    cache = getattr(lot, "_geometry", None)
    if cache is not None:
        return cache
    corners = [b.corners() for b in lot.boxes]
    centres = np.array([[b.x, b.y] for b in lot.boxes]).reshape(-1, 2)
    radii = np.array([math.hypot(b.length, b.width) / 2 for b in lot.boxes])
    segs, widths = [], []
    for pl in lot.curbs:
        pl = np.asarray(pl, float)[:, :2]
        for a, bb in zip(pl[:-1], pl[1:]):
            segs.append((a, bb))
            widths.append(lot.curb_width / 2)
    if lot.drivable is not None:
        poly = np.asarray(lot.drivable, float)
        for j in range(len(poly)):
            segs.append((poly[j], poly[(j + 1) % len(poly)]))
            widths.append(0.0)
    A = np.array([sg[0] for sg in segs]).reshape(-1, 2)
    B = np.array([sg[1] for sg in segs]).reshape(-1, 2)
    cache = (corners, centres, radii, A, B, np.array(widths))
    lot._geometry = cache
    return cache


def footprint_clearance(lot: Lot, pose: Pose, vp: VehicleParams = VehicleParams()) -> float:
    """Exact (geometric, no raster) clearance of the car footprint at `pose` to the lot's
    boxes, curbs (their width included) and drivable border; <= 0 means collision.
    Clearances above ~1 m are not resolved (far obstacles are skipped)."""
    car = car_corners(pose, vp)
    centre = car.mean(0)
    car_r = math.hypot(vp.length, vp.width) / 2
    horizon = 1.0
    best = horizon
    corners, centres, radii, A, B, W = _lot_geometry(lot)
    if len(centres):
        near = np.flatnonzero(np.hypot(*(centres - centre).T) - radii - car_r < horizon)
        for i in near.tolist():
            best = min(best, polygon_distance(car, corners[i]))
    if len(A):
        dseg = _dist_to_segment_many(centre, A, B)
        for j in np.flatnonzero(dseg - car_r - W < horizon).tolist():
            a, bb, w = A[j], B[j], W[j]
            if w > 0 and _point_in_convex(a, car):
                return -w
            for i in range(4):
                best = min(best, _seg_dist(car[i], car[(i + 1) % 4], a, bb) - w)
    if lot.drivable is not None:
        poly = np.asarray(lot.drivable, float)
        inside = _points_in_polygon(car[:, 0], car[:, 1], poly)
        if not np.all(inside):
            return 0.0
    xmin, ymin, xmax, ymax = lot.bounds
    best = min(best, float(np.min(car[:, 0] - xmin)), float(np.min(xmax - car[:, 0])),
               float(np.min(car[:, 1] - ymin)), float(np.min(ymax - car[:, 1])))
    return best


def _dist_to_segment_many(p, A, B):
    d = B - A
    L2 = np.maximum(np.sum(d * d, axis=1), 1e-12)
    t = np.clip(np.sum((p - A) * d, axis=1) / L2, 0.0, 1.0)
    q = A + t[:, None] * d
    return np.hypot(*(p - q).T)


# ------------------------------------------------------------------ sources of lots
def lot_from_world(world) -> Lot:
    """Convert an `autonomy_simulator.worlds.World` with `parking` data to a `Lot`."""
    pk = world.parking
    if pk is None:
        raise ValueError("world has no parking geometry")
    poly = np.asarray(world.drivable_polygons[0], float)[:, :2]
    pad = 1.0
    bounds = (float(poly[:, 0].min() - pad), float(poly[:, 1].min() - pad),
              float(poly[:, 0].max() + pad), float(poly[:, 1].max() + pad))
    boxes = [Box(o.x, o.y, o.yaw, o.length, o.width) for o in world.static_objects]
    curbs = [np.asarray(c.points, float)[:, :2] for c in world.curbs]
    return Lot(bounds=bounds, curbs=curbs, boxes=boxes,
               bays=[np.asarray(b, float) for b in pk.bays],
               bay_headings=[float(h) for h in pk.bay_headings], target_bay=int(pk.target_bay),
               drivable=poly, bay_occupied=[bool(b) for b in pk.bay_occupied],
               entrance_pose=tuple(float(v) for v in pk.entrance_pose),
               aisle_box=tuple(float(v) for v in pk.bounds))


def lot_from_vector_space(vs, bounds: Tuple[float, float, float, float],
                          drivable: Optional[np.ndarray] = None) -> Lot:
    """A lot from perception / ground truth: static objects become boxes, CURB lines curbs.
    `bounds` limits the search area (e.g. a window around ego and goal)."""
    boxes = [Box(o.x, o.y, o.yaw, o.length, o.width) for o in vs.objects]
    curbs = [np.asarray(l.points, float)[:, :2] for l in vs.lines if l.line_type == LineType.CURB]
    if drivable is None and vs.drivable_area is not None and len(vs.drivable_area) >= 3:
        drivable = np.asarray(vs.drivable_area, float)[:, :2]
    return Lot(bounds=tuple(float(b) for b in bounds), curbs=curbs, boxes=boxes, drivable=drivable)


# ------------------------------------------------------------------ problem generator
def train_seeds(n: int, offset: int = 0) -> List[int]:
    if offset + n > HELDOUT_SEED_BASE - TRAIN_SEED_BASE:
        raise ValueError("too many training seeds")
    return [TRAIN_SEED_BASE + offset + i for i in range(n)]


def heldout_seeds(n: int, offset: int = 0) -> List[int]:
    return [HELDOUT_SEED_BASE + offset + i for i in range(n)]


def _start_ok(cspace, pose: Pose, margin: float) -> bool:
    """Collision-free at pose and at poses shifted by `margin` (room to manoeuvre)."""
    x, y, yaw = pose
    for dx, dy in ((0, 0), (margin, 0), (-margin, 0), (0, margin), (0, -margin)):
        if not cspace.free(x + dx, y + dy, yaw):
            return False
    return True


def sample_start(lot: Lot, goal: Pose, cspace, rng, vp: VehicleParams = VehicleParams()) -> Pose:
    """A start pose: the entrance (20 %), another free bay parked nose- or reverse-in
    (30 %), or a random pose along the aisle facing either way (50 %)."""
    start = None
    kind = rng.random()
    if kind < 0.2 and lot.entrance_pose is not None:
        start = tuple(float(v) for v in lot.entrance_pose)
    elif kind < 0.5:
        free_bays = [k for k, occ in enumerate(lot.bay_occupied) if not occ and k != lot.target_bay]
        rng.shuffle(free_bays)
        for k in free_bays:
            cand = bay_goal_pose(lot.bays[k], lot.bay_headings[k], bool(rng.random() < 0.5), vp)
            if _start_ok(cspace, cand, 0.0):
                start = cand
                break
    if start is None:
        xmin, ymin, xmax, ymax = lot.aisle_box if lot.aisle_box is not None else lot.bounds
        aisle_y = 0.5 * (ymin + ymax)
        for _ in range(200):
            x = float(rng.uniform(xmin + 3.0, xmax - 3.0))
            y = float(aisle_y + rng.uniform(-1.0, 1.0))
            yaw = float(rng.choice([0.0, math.pi]) + math.radians(10.0) * int(rng.integers(-1, 2)))
            cand = (x, y, float(wrap_angle(yaw)))
            if math.hypot(x - goal[0], y - goal[1]) > 4.0 and _start_ok(cspace, cand, 0.3):
                start = cand
                break
    if start is None and lot.entrance_pose is not None:
        start = tuple(float(v) for v in lot.entrance_pose)
    return start
