"""Raster network outputs -> sparse vector space (no rclpy).

* objects: peaks of the objectness raster (3x3 max-pool NMS, score threshold) decoded with
  the per-cell offset, size, heading, class and velocity, then a light tracker (greedy
  nearest-neighbour association with a motion-predicted gate) gives them persistent ids;
* lines: lane lines and road edges/curbs become polylines: connected components of the
  thresholded raster, each ordered along its principal axis and averaged per cell-sized bin
  (straight and gently curved lines; sub-cell accuracy from the averaging);
* drivable area: the outer contour of the largest drivable component.
All in the ego frame (base_link). Tracking is done in odom when the ego pose is given
(`process(..., ego=EgoState)`), else in the ego frame using only object velocities.
Cost for a 48x48 raster: ~1-2 ms (numpy + OpenCV), well inside the per-frame budget."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from autonomy_stack.vector_space import (EgoState, LineType, ObjectClass, ObjectState, RoadLine,
                                          VectorSpace)

from autonomy_stack.bev_grid import BEVGrid

from .classes import OBJECT_CLASS_OF

LINE_TYPE_OF = {"lane": LineType.LANE_DASHED_WHITE, "edge": LineType.ROAD_EDGE,
                "road_edge": LineType.ROAD_EDGE, "curb": LineType.CURB}


def _maxpool3(a: np.ndarray) -> np.ndarray:
    return cv2.dilate(a.astype(np.float32), np.ones((3, 3), np.uint8))


def decode_objects(out: Dict[str, np.ndarray], grid: BEVGrid, classes: Sequence[str],
                   score_threshold: float = 0.5, max_objects: int = 100) -> List[ObjectState]:
    """Per-frame numpy rasters (as returned by InferenceEngine.step) -> ego-frame objects,
    highest score first (ids are 0; the tracker assigns them)."""
    obj = out["obj"]
    peaks = (obj >= _maxpool3(obj) - 1e-7) & (obj >= score_threshold)
    rr, cc = np.nonzero(peaks)
    order = np.argsort(-obj[rr, cc])[:max_objects]
    res = []
    for r, c in zip(rr[order], cc[order]):
        centre = grid.cell_centre(r, c)
        x, y = centre + out["offset"][:, r, c]
        l, w, h = np.exp(np.clip(out["size"][:, r, c], -3, 4))
        yaw = math.atan2(float(out["heading"][0, r, c]), float(out["heading"][1, r, c]))
        vx, vy = (float(v) for v in out["vel"][:, r, c])
        ci = int(np.argmax(out["cls"][:, r, c]))
        res.append(ObjectState(0, OBJECT_CLASS_OF.get(classes[ci], ObjectClass.UNKNOWN), float(x), float(y),
                               yaw, float(l), float(w), float(h), z=float(h) / 2.0,
                               speed=vx * math.cos(yaw) + vy * math.sin(yaw),
                               score=float(obj[r, c]), is_static=classes[ci] == "static"))
    return res


class Tracker:
    """Greedy nearest-neighbour multi-object tracker with constant-velocity prediction."""

    def __init__(self, gate_m: float = 2.5, max_age: int = 5):
        self.gate, self.max_age = gate_m, max_age
        self.tracks: Dict[int, dict] = {}
        self.next_id = 1

    def reset(self):
        self.tracks.clear()
        self.next_id = 1

    def update(self, dets: List[ObjectState], dt: float) -> List[ObjectState]:
        """dets in a fixed frame (or the ego frame); returns them with track ids."""
        pred = {i: (t["x"] + t["vx"] * dt, t["y"] + t["vy"] * dt) for i, t in self.tracks.items()}
        pairs = []
        for di, d in enumerate(dets):
            for ti, (px, py) in pred.items():
                dist = math.hypot(d.x - px, d.y - py)
                if dist < self.gate:
                    pairs.append((dist, di, ti))
        pairs.sort()
        used_d, used_t = set(), set()
        for _, di, ti in pairs:
            if di in used_d or ti in used_t:
                continue
            used_d.add(di)
            used_t.add(ti)
            dets[di].id = ti
        for di, d in enumerate(dets):
            if di not in used_d:
                d.id = self.next_id
                self.next_id += 1
        alive = {}
        for d in dets:
            alive[d.id] = {"x": d.x, "y": d.y, "vx": d.vx, "vy": d.vy, "age": 0}
        for ti, t in self.tracks.items():
            if ti not in alive and t["age"] + 1 <= self.max_age:
                x, y = pred[ti]
                alive[ti] = {"x": x, "y": y, "vx": t["vx"], "vy": t["vy"], "age": t["age"] + 1}
        self.tracks = alive
        return dets


def extract_polylines(mask: np.ndarray, grid: BEVGrid, line_type: LineType,
                      min_cells: int = 3, start_id: int = 0) -> List[RoadLine]:
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    lines = []
    for k in range(1, n):
        rr, cc = np.nonzero(lab == k)
        if len(rr) < min_cells:
            continue
        pts = grid.cell_centre(rr, cc)                       # [M, 2] metres
        mu = pts.mean(0)
        _, _, vt = np.linalg.svd(pts - mu, full_matrices=False)
        s = (pts - mu) @ vt[0]
        bins = np.floor((s - s.min()) / grid.res).astype(int)
        # mean point per bin along the principal axis (bincount: no Python loop per bin)
        used, inv = np.unique(bins, return_inverse=True)
        cnt = np.bincount(inv, minlength=len(used)).astype(float)
        poly = np.stack([np.bincount(inv, weights=pts[:, 0], minlength=len(used)) / cnt,
                         np.bincount(inv, weights=pts[:, 1], minlength=len(used)) / cnt], -1)
        if len(poly) >= 2:
            lines.append(RoadLine(start_id + len(lines), line_type, poly,
                                  confidence=1.0))
    return lines


def drivable_polygon(mask: np.ndarray, grid: BEVGrid) -> Optional[np.ndarray]:
    cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not cs:
        return None
    c = max(cs, key=cv2.contourArea)[:, 0, :]                # (col, row)
    if len(c) < 3:
        return None
    return grid.to_xy(np.stack([c[:, 1] + 0.5, c[:, 0] + 0.5], -1))


class PostProcessor:
    def __init__(self, cfg: Dict, score_threshold: float = 0.5, seg_threshold: float = 0.5,
                 track: bool = True):
        self.grid = BEVGrid.from_config(cfg)
        heads = cfg["heads"]
        self.det_classes = heads["detection"]["classes"] if "detection" in heads else []
        self.seg_classes = heads["segmentation"]["classes"] if "segmentation" in heads else []
        self.score_threshold, self.seg_threshold = score_threshold, seg_threshold
        self.tracker = Tracker() if track else None
        self.last_stamp: Optional[float] = None

    def reset(self):
        self.last_stamp = None
        if self.tracker:
            self.tracker.reset()

    def process(self, out: Dict[str, np.ndarray], stamp: float, frame_id: str = "base_link",
                ego: Optional[EgoState] = None) -> VectorSpace:
        objs = decode_objects(out, self.grid, self.det_classes, self.score_threshold) \
            if "obj" in out else []
        if self.tracker is not None:
            dt = 0.0 if self.last_stamp is None else max(0.0, stamp - self.last_stamp)
            if ego is not None:   # track in odom, report in the ego frame
                c, s = math.cos(ego.yaw), math.sin(ego.yaw)
                world = [ObjectState(0, o.object_class, ego.x + c * o.x - s * o.y,
                                     ego.y + s * o.x + c * o.y, o.yaw + ego.yaw, o.length,
                                     o.width, o.height, speed=o.speed) for o in objs]
                self.tracker.update(world, dt)
                for o, w in zip(objs, world):
                    o.id = w.id
            else:
                self.tracker.update(objs, dt)
        self.last_stamp = stamp
        lines: List[RoadLine] = []
        drivable = None
        if "seg" in out:
            for i, name in enumerate(self.seg_classes):
                m = out["seg"][i] >= self.seg_threshold
                if name == "drivable":
                    drivable = drivable_polygon(m, self.grid)
                elif name in LINE_TYPE_OF:
                    lines += extract_polylines(m, self.grid, LINE_TYPE_OF[name], start_id=len(lines))
        return VectorSpace(stamp, frame_id, objs, lines, drivable)
