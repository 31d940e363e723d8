"""Rasterise vector-space labels (ego frame) into the BEV training targets of the heads.

Raster convention (shared with the network): row 0 = front (x max), column 0 = left
(y max); cell (r, c) centre = (x_max - (r + .5) res, y_max - (c + .5) res)."""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence

import cv2
import numpy as np

from autonomy_stack.vector_space import LineType, ObjectClass, ObjectState, RoadLine

DET_CLASS_OF = {ObjectClass.CAR: "car", ObjectClass.TRUCK: "truck",
                ObjectClass.PEDESTRIAN: "pedestrian", ObjectClass.CYCLIST: "cyclist",
                ObjectClass.CONE: "static", ObjectClass.POLE: "static",
                ObjectClass.BARRIER: "static", ObjectClass.UNKNOWN: "static"}
OBJECT_CLASS_OF = {"car": ObjectClass.CAR, "truck": ObjectClass.TRUCK,
                   "pedestrian": ObjectClass.PEDESTRIAN, "cyclist": ObjectClass.CYCLIST,
                   "static": ObjectClass.BARRIER}
LANE_TYPES = (LineType.LANE_DASHED_WHITE, LineType.LANE_SOLID_WHITE,
              LineType.LANE_DASHED_YELLOW, LineType.LANE_SOLID_YELLOW)
SHIFT = 4  # cv2 fixed-point bits


class BEVGrid:
    def __init__(self, x_range, y_range, res):
        self.x_range, self.y_range, self.res = list(x_range), list(y_range), float(res)
        self.H = int(round((x_range[1] - x_range[0]) / res))
        self.W = int(round((y_range[1] - y_range[0]) / res))

    @classmethod
    def from_config(cls, cfg: Dict) -> "BEVGrid":
        b = cfg["bev"]
        return cls(b["x_range"], b["y_range"], b["resolution"])

    def to_rc(self, xy: np.ndarray) -> np.ndarray:
        """(x, y) metres -> continuous (row, col), cell centres at .5."""
        xy = np.asarray(xy, dtype=float)
        return np.stack([(self.x_range[1] - xy[..., 0]) / self.res,
                         (self.y_range[1] - xy[..., 1]) / self.res], -1)

    def to_xy(self, rc: np.ndarray) -> np.ndarray:
        rc = np.asarray(rc, dtype=float)
        return np.stack([self.x_range[1] - rc[..., 0] * self.res,
                         self.y_range[1] - rc[..., 1] * self.res], -1)

    def cell_centre(self, r, c):
        return self.to_xy(np.stack([np.asarray(r) + 0.5, np.asarray(c) + 0.5], -1))

    def contains(self, xy) -> np.ndarray:
        xy = np.asarray(xy)
        return ((xy[..., 0] > self.x_range[0]) & (xy[..., 0] < self.x_range[1]) &
                (xy[..., 1] > self.y_range[0]) & (xy[..., 1] < self.y_range[1]))

    def _cv_pts(self, xy: np.ndarray) -> np.ndarray:
        rc = self.to_rc(xy[:, :2])
        return np.round(np.stack([rc[:, 1], rc[:, 0]], -1) * (1 << SHIFT)).astype(np.int32)

    def fill_polygons(self, polys: Iterable[np.ndarray]) -> np.ndarray:
        m = np.zeros((self.H, self.W), np.uint8)
        for p in polys:
            if p is not None and len(p) >= 3:
                # vertices at cell-centre convention: shift by -0.5 cells
                pts = self._cv_pts(np.asarray(p)[:, :2]) - (1 << (SHIFT - 1))
                cv2.fillPoly(m, [pts], 1, lineType=cv2.LINE_8, shift=SHIFT)
        return m

    def draw_lines(self, lines: Iterable[np.ndarray], thickness: int = 1) -> np.ndarray:
        m = np.zeros((self.H, self.W), np.uint8)
        for p in lines:
            if p is not None and len(p) >= 2:
                pts = self._cv_pts(np.asarray(p)[:, :2]) - (1 << (SHIFT - 1))
                cv2.polylines(m, [pts], False, 1, thickness=thickness, lineType=cv2.LINE_8,
                              shift=SHIFT)
        return m


def segmentation_target(grid: BEVGrid, drivable_polys: Sequence[np.ndarray],
                        lines: Sequence[RoadLine], classes: Sequence[str]) -> np.ndarray:
    layers = {
        "drivable": lambda: grid.fill_polygons(drivable_polys),
        "lane": lambda: grid.draw_lines([l.points for l in lines if l.line_type in LANE_TYPES]),
        "road_edge": lambda: grid.draw_lines([l.points for l in lines
                                              if l.line_type == LineType.ROAD_EDGE]),
        "curb": lambda: grid.draw_lines([l.points for l in lines if l.line_type == LineType.CURB]),
        "edge": lambda: grid.draw_lines([l.points for l in lines
                                         if l.line_type in (LineType.ROAD_EDGE, LineType.CURB)]),
    }
    return np.stack([layers[c]() for c in classes]).astype(np.float32)


def detection_target(grid: BEVGrid, objects: Sequence[ObjectState], classes: Sequence[str],
                     ignore_ids: Optional[set] = None, sigma: float = 0.8) -> Dict[str, np.ndarray]:
    """objects in the ego frame with ground velocity expressed in the ego frame (speed/yaw).
    Objects whose id is in `ignore_ids` are neither positives nor negatives."""
    H, W = grid.H, grid.W
    heat = np.zeros((H, W), np.float32)
    ign = np.zeros((H, W), np.float32)
    reg = np.zeros((H, W), np.float32)
    off = np.zeros((2, H, W), np.float32)
    size = np.zeros((3, H, W), np.float32)
    head = np.zeros((2, H, W), np.float32)
    vel = np.zeros((2, H, W), np.float32)
    cls = np.full((H, W), -1, np.int64)
    rr, cc = np.mgrid[0:H, 0:W]
    ignore_ids = ignore_ids or set()
    cls_idx = {c: i for i, c in enumerate(classes)}
    for o in objects:
        xy = np.array([o.x, o.y])
        if not grid.contains(xy):
            continue
        r, c = grid.to_rc(xy)
        ri, ci = int(np.floor(r)), int(np.floor(c))
        g = np.exp(-((rr - ri) ** 2 + (cc - ci) ** 2) / (2 * sigma ** 2)).astype(np.float32)
        if o.id in ignore_ids:
            ign = np.maximum(ign, (g > 0.01).astype(np.float32))
            continue
        heat = np.maximum(heat, g)
        heat[ri, ci] = 1.0
        reg[ri, ci] = 1.0
        centre = grid.cell_centre(ri, ci)
        off[:, ri, ci] = xy - centre
        size[:, ri, ci] = np.log(np.maximum([o.length, o.width, o.height], 0.1))
        head[:, ri, ci] = [np.sin(o.yaw), np.cos(o.yaw)]
        vel[:, ri, ci] = [o.speed * np.cos(o.yaw), o.speed * np.sin(o.yaw)]
        cls[ri, ci] = cls_idx.get(DET_CLASS_OF.get(ObjectClass(int(o.object_class)), "static"), 0)
    ign = ign * (heat < 0.999)
    return {"obj_heat": heat[None], "obj_ignore": ign[None], "reg_mask": reg[None],
            "offset": off, "size": size, "heading": head, "vel": vel, "cls": cls}


def object_to_ego(o: ObjectState, ego) -> ObjectState:
    """World-frame object -> ego frame (position, yaw; speed stays the ground speed along the
    object's heading, so vx/vy become the ground velocity expressed in ego axes)."""
    c, s = np.cos(ego.yaw), np.sin(ego.yaw)
    dx, dy = o.x - ego.x, o.y - ego.y
    import dataclasses
    return dataclasses.replace(o, x=c * dx + s * dy, y=-s * dx + c * dy,
                               yaw=float(np.arctan2(np.sin(o.yaw - ego.yaw), np.cos(o.yaw - ego.yaw))))


def points_to_ego(p: np.ndarray, ego) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    c, s = np.cos(ego.yaw), np.sin(ego.yaw)
    dx, dy = p[:, 0] - ego.x, p[:, 1] - ego.y
    return np.stack([c * dx + s * dy, -s * dx + c * dy], -1)
