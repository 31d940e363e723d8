"""Rasterise vector-space labels (ego frame) into the BEV training targets of the heads.

Raster convention: the network raster of autonomy_stack.bev_grid (row 0 = front, column 0
= left)."""
from __future__ import annotations

import math
import dataclasses
from typing import Dict, Iterable, List, Optional, Sequence

import cv2
import numpy as np

from autonomy_perception.classes import DET_CLASS_OF
from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.geometry import to_frame, wrap_angle
from autonomy_stack.vector_space import LineType, ObjectClass, ObjectState, RoadLine

LANE_TYPES = (LineType.LANE_DASHED_WHITE, LineType.LANE_SOLID_WHITE,
              LineType.LANE_DASHED_YELLOW, LineType.LANE_SOLID_YELLOW)
SHIFT = 4  # cv2 fixed-point bits


def _cv_pts(grid: BEVGrid, xy: np.ndarray) -> np.ndarray:
    rc = grid.to_rc(xy[:, :2])
    return np.round(np.stack([rc[:, 1], rc[:, 0]], -1) * (1 << SHIFT)).astype(np.int32)


def fill_polygons(grid: BEVGrid, polys: Iterable[np.ndarray]) -> np.ndarray:
    m = np.zeros((grid.H, grid.W), np.uint8)
    for p in polys:
        if p is not None and len(p) >= 3:
            # vertices at cell-centre convention: shift by -0.5 cells
            pts = _cv_pts(grid, np.asarray(p)[:, :2]) - (1 << (SHIFT - 1))
            cv2.fillPoly(m, [pts], 1, lineType=cv2.LINE_8, shift=SHIFT)
    return m


def draw_lines(grid: BEVGrid, lines: Iterable[np.ndarray], thickness: int = 1) -> np.ndarray:
    m = np.zeros((grid.H, grid.W), np.uint8)
    for p in lines:
        if p is not None and len(p) >= 2:
            pts = _cv_pts(grid, np.asarray(p)[:, :2]) - (1 << (SHIFT - 1))
            cv2.polylines(m, [pts], False, 1, thickness=thickness, lineType=cv2.LINE_8,
                          shift=SHIFT)
    return m


def segmentation_target(grid: BEVGrid, drivable_polys: Sequence[np.ndarray],
                        lines: Sequence[RoadLine], classes: Sequence[str]) -> np.ndarray:
    layers = {
        "drivable": lambda: fill_polygons(grid, drivable_polys),
        "lane": lambda: draw_lines(grid, [l.points for l in lines if l.line_type in LANE_TYPES]),
        "road_edge": lambda: draw_lines(grid, [l.points for l in lines
                                              if l.line_type == LineType.ROAD_EDGE]),
        "curb": lambda: draw_lines(grid, [l.points for l in lines if l.line_type == LineType.CURB]),
        "edge": lambda: draw_lines(grid, [l.points for l in lines
                                         if l.line_type in (LineType.ROAD_EDGE, LineType.CURB)]),
    }
    return np.stack([layers[c]() for c in classes]).astype(np.float32)


def gaussian_radius(length_cells: float, width_cells: float, min_overlap: float = 0.1) -> float:
    """Largest centre error (cells) at which a box of this footprint still overlaps its
    shifted copy by `min_overlap` IoU (CornerNet's three cases, as CenterPoint uses it)."""
    h, w = float(length_cells), float(width_cells)
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def heatmap_sigma(o: ObjectState, res: float, min_sigma: float = 0.5) -> float:
    """Size-aware Gaussian sigma (cells) of an object's centre heatmap (CenterPoint: radius
    from the footprint, sigma = (2 r + 1) / 6): wide for trucks, narrow for pedestrians."""
    r = max(0.0, gaussian_radius(o.length / res, o.width / res))
    return max(min_sigma, (2.0 * r + 1.0) / 6.0)


def detection_target(grid: BEVGrid, objects: Sequence[ObjectState], classes: Sequence[str],
                     ignore_ids: Optional[set] = None,
                     sigma: Optional[float] = None) -> Dict[str, np.ndarray]:
    """objects in the ego frame with ground velocity expressed in the ego frame (speed/yaw).
    Objects whose id is in `ignore_ids` are neither positives nor negatives. `sigma` (cells)
    fixes the heatmap width; None = size-aware (`heatmap_sigma`)."""
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
        sg = heatmap_sigma(o, grid.res) if sigma is None else float(sigma)
        g = np.exp(-((rr - ri) ** 2 + (cc - ci) ** 2) / (2 * sg ** 2)).astype(np.float32)
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
    x, y = points_to_ego(np.array([[o.x, o.y]]), ego)[0]
    return dataclasses.replace(o, x=float(x), y=float(y), yaw=float(wrap_angle(o.yaw - ego.yaw)))


def points_to_ego(p: np.ndarray, ego) -> np.ndarray:
    return to_frame(np.asarray(p, dtype=float)[:, :2], ego.x, ego.y, ego.yaw)
