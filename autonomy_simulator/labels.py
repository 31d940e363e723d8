"""Perfect labels from the simulation (no ROS): ego-centred BEV rasters and object labels.

BEV grid (`BevSpec`): ego-centred in base_link, x forward, y left; `extent_x` x `extent_y`
metres at `cell` metres, ego at (`origin_x`, `origin_y`) offset of the grid's lower corner.
Array layout = nav_msgs/OccupancyGrid: raster[row, col], col along +x, row along +y, cell
(row, col) centred at (origin_x + (col + 0.5) * cell, origin_y + (row + 0.5) * cell).

Layers (`LAYERS`, uint8 0/1): drivable (asphalt polygon), lane_lines (lane paint, stop
lines, bay lines), road_edges (road edges and curbs), objects (footprints of vehicles,
pedestrians and static obstacles).

Object labels: the ego-frame boxes with class, id, velocity (over-ground, as speed along
the box heading), acceleration, yaw rate and visibility (`visible_pixels` from the
renderer's per-object pixel counts; `occluded` = no pixel in any camera; fully occluded
objects stay in the labels).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Dict, List, Optional

import cv2
import numpy as np

from autonomy_stack.vector_space import LineType, ObjectState, VectorSpace

LAYERS = ("drivable", "lane_lines", "road_edges", "objects")
PAINT_TYPES = (LineType.LANE_DASHED_WHITE, LineType.LANE_SOLID_WHITE, LineType.LANE_DASHED_YELLOW,
               LineType.LANE_SOLID_YELLOW, LineType.STOP_LINE, LineType.PARKING_BAY)
EDGE_TYPES = (LineType.ROAD_EDGE, LineType.CURB)
SHIFT = 4                          # cv2 sub-pixel bits


@dataclass(frozen=True)
class BevSpec:
    extent_x: float = 100.0
    extent_y: float = 100.0
    cell: float = 0.5
    origin_x: float = -50.0        # lower corner of the grid in base_link
    origin_y: float = -50.0
    line_width: float = 0.3        # m drawn for lane lines / edges

    @property
    def nx(self) -> int:
        return int(round(self.extent_x / self.cell))

    @property
    def ny(self) -> int:
        return int(round(self.extent_y / self.cell))

    def to_px(self, pts: np.ndarray) -> np.ndarray:
        """base_link metres -> fixed-point pixel coordinates (col, row) for cv2."""
        p = np.asarray(pts, float)[:, :2]
        col = (p[:, 0] - self.origin_x) / self.cell - 0.5
        row = (p[:, 1] - self.origin_y) / self.cell - 0.5
        return np.round(np.stack([col, row], 1) * (1 << SHIFT)).astype(np.int32)

    def cell_centers(self) -> np.ndarray:
        """(ny, nx, 2) metres of every cell centre."""
        xs = self.origin_x + (np.arange(self.nx) + 0.5) * self.cell
        ys = self.origin_y + (np.arange(self.ny) + 0.5) * self.cell
        X, Y = np.meshgrid(xs, ys)
        return np.stack([X, Y], -1)


def _clip_far(pts: np.ndarray, spec: BevSpec) -> np.ndarray:
    """Clamp coordinates far outside the grid (cv2 fixed point overflows otherwise)."""
    lim = 4 * max(spec.extent_x, spec.extent_y)
    return np.clip(pts, -lim, lim)


def bev_rasters(v: VectorSpace, spec: BevSpec = BevSpec()) -> Dict[str, np.ndarray]:
    """Rasterise an ego-frame ("base_link") VectorSpace into the BEV layers."""
    if v.frame_id != "base_link":
        raise ValueError("bev_rasters needs the vector space in the ego frame (base_link)")
    out = {k: np.zeros((spec.ny, spec.nx), np.uint8) for k in LAYERS}
    if v.drivable_area is not None and len(v.drivable_area) >= 3:
        cv2.fillPoly(out["drivable"], [spec.to_px(_clip_far(v.drivable_area, spec))], 1,
                     lineType=cv2.LINE_8, shift=SHIFT)
    th = max(1, int(round(spec.line_width / spec.cell)))
    for line in v.lines:
        layer = "lane_lines" if line.line_type in PAINT_TYPES else \
            "road_edges" if line.line_type in EDGE_TYPES else None
        if layer is None or len(line.points) < 2:
            continue
        pts = np.asarray(line.points, float)[:, :2]
        far = np.hypot(pts[:, 0] - (spec.origin_x + spec.extent_x / 2),
                       pts[:, 1] - (spec.origin_y + spec.extent_y / 2)).min()
        if far > 2 * max(spec.extent_x, spec.extent_y):
            continue
        cv2.polylines(out[layer], [spec.to_px(_clip_far(pts, spec))], False, 1, thickness=th,
                      lineType=cv2.LINE_8, shift=SHIFT)
    for o in v.objects:
        if abs(o.x) > 2 * spec.extent_x or abs(o.y) > 2 * spec.extent_y:
            continue
        cv2.fillPoly(out["objects"], [spec.to_px(o.corners())], 1, lineType=cv2.LINE_8, shift=SHIFT)
    return out


def in_grid(o: ObjectState, spec: BevSpec) -> bool:
    return (spec.origin_x <= o.x < spec.origin_x + spec.extent_x and
            spec.origin_y <= o.y < spec.origin_y + spec.extent_y)


def object_labels(objects_ego: List[ObjectState], visible_pixels: Optional[Dict[int, int]] = None,
                  spec: Optional[BevSpec] = None, min_pixels: int = 1) -> List[ObjectState]:
    """Ego-frame objects with visibility set (from the renderer's per-object pixel counts;
    None = unknown, all marked visible with 0 pixels counted), optionally cropped to the grid.
    Occluded objects stay in the list with `occluded=True`."""
    out = []
    for o in objects_ego:
        if spec is not None and not in_grid(o, spec):
            continue
        if visible_pixels is None:
            out.append(replace(o, visible_pixels=0, occluded=False))
        else:
            n = int(visible_pixels.get(int(o.id), 0))
            out.append(replace(o, visible_pixels=n, occluded=n < min_pixels))
    return out


OBJECT_FIELDS = ("id", "class", "x", "y", "z", "yaw", "length", "width", "height", "vx", "vy",
                 "speed", "accel", "yaw_rate", "visible_pixels", "occluded", "is_static")


def objects_to_array(objs: List[ObjectState]) -> np.ndarray:
    """(N, len(OBJECT_FIELDS)) float32; vx, vy = over-ground velocity in the objects' frame."""
    rows = [[o.id, int(o.object_class), o.x, o.y, o.z, o.yaw, o.length, o.width, o.height,
             o.speed * math.cos(o.yaw), o.speed * math.sin(o.yaw), o.speed, o.accel, o.yaw_rate,
             o.visible_pixels, float(o.occluded), float(o.is_static)] for o in objs]
    return np.asarray(rows, np.float32).reshape(-1, len(OBJECT_FIELDS))
