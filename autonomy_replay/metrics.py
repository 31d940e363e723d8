"""Replay metrics in pure numpy (no rclpy): BEV rasters read from bags (`Grid`), ground-truth
agents over time, ego-footprint collisions, comfort and progress. Inputs are plain arrays /
dicts so that both decoded bag messages and in-memory vector-space data can be evaluated.
Perception figures (detection AP, velocity error, occluded recall, BEV IoU) are not here:
they follow the one evaluation protocol, autonomy_perception.evaluation.protocol, through
perception_eval.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from autonomy_stack.geometry import box_corners, boxes_overlap, polyline_length

# comfort bounds (nuPlan's): longitudinal accel, lateral accel, jerk, yaw rate/accel
COMFORT_LIMITS = {"lon_accel_min": -4.05, "lon_accel_max": 2.40, "lat_accel_abs": 4.89,
                  "jerk_abs": 4.13, "lon_jerk_abs": 4.13, "yaw_rate_abs": 0.95,
                  "yaw_accel_abs": 1.93}


# ---------------------------------------------------------------- BEV rasters
@dataclass
class Grid:
    """An occupancy raster: data[row, col] (row = y index, col = x index, like
    nav_msgs/OccupancyGrid), cell size `resolution`, origin pose (x, y, yaw) of cell (0, 0)'s
    corner in the frame of the grid."""
    data: np.ndarray
    resolution: float
    origin_x: float = 0.0
    origin_y: float = 0.0
    origin_yaw: float = 0.0

    def cell_centres(self) -> np.ndarray:
        h, w = self.data.shape
        jj, ii = np.meshgrid(np.arange(w), np.arange(h))
        lx, ly = (jj + 0.5) * self.resolution, (ii + 0.5) * self.resolution
        c, s = math.cos(self.origin_yaw), math.sin(self.origin_yaw)
        return np.stack([self.origin_x + c * lx - s * ly, self.origin_y + s * lx + c * ly], -1)

    def lookup(self, xy: np.ndarray, fill: int = -1) -> np.ndarray:
        """Values at world points (nearest cell); `fill` outside the grid."""
        c, s = math.cos(self.origin_yaw), math.sin(self.origin_yaw)
        dx, dy = xy[..., 0] - self.origin_x, xy[..., 1] - self.origin_y
        lx, ly = c * dx + s * dy, -s * dx + c * dy
        j = np.floor(lx / self.resolution).astype(int)
        i = np.floor(ly / self.resolution).astype(int)
        h, w = self.data.shape
        inside = (i >= 0) & (i < h) & (j >= 0) & (j < w)
        out = np.full(xy.shape[:-1], fill, dtype=self.data.dtype)
        out[inside] = self.data[i[inside], j[inside]]
        return out


# ---------------------------------------------------------------- objects
@dataclass
class Boxes:
    """Objects of one frame as arrays (N rows)."""
    xy: np.ndarray                  # N x 2 centre
    cls: np.ndarray                 # N int
    score: np.ndarray               # N float
    vel: np.ndarray                 # N x 2
    ids: np.ndarray                 # N int
    occluded: np.ndarray            # N bool
    yaw: Optional[np.ndarray] = None
    size: Optional[np.ndarray] = None   # N x 2 (length, width)

    @staticmethod
    def empty() -> "Boxes":
        return Boxes(np.zeros((0, 2)), np.zeros(0, int), np.zeros(0), np.zeros((0, 2)),
                     np.zeros(0, int), np.zeros(0, bool), np.zeros(0), np.zeros((0, 2)))

    def __len__(self) -> int:
        return int(len(self.xy))


# ---------------------------------------------------------------- planning
@dataclass
class EgoShape:
    length: float = 4.7
    width: float = 1.9
    rear_overhang: float = 0.9        # rear bumper behind base_link (rear axle)

    def footprint(self, x, y, yaw) -> np.ndarray:
        off = self.length / 2.0 - self.rear_overhang     # box centre ahead of the rear axle
        return box_corners(x, y, yaw, self.length, self.width, center_offset=off)


class AgentTracks:
    """Ground-truth agents over time: positions interpolated per id between frames."""

    def __init__(self, frames: Sequence[Tuple[float, Boxes]]):
        self.times = np.array([t for t, _ in frames], float)
        self.frames = [b for _, b in frames]

    def at(self, t: float) -> Optional[Boxes]:
        if len(self.times) == 0 or t < self.times[0] - 1e-6 or t > self.times[-1] + 1e-6:
            return None
        k = int(np.clip(np.searchsorted(self.times, t), 0, len(self.times) - 1))
        if k > 0 and abs(self.times[k - 1] - t) < abs(self.times[k] - t):
            k -= 1
        return self.frames[k]


def collisions(poses: Sequence[Tuple[float, float, float, float]], agents: AgentTracks,
               ego: EgoShape = EgoShape()) -> List[dict]:
    """poses: (t, x, y, yaw) of the ego; returns one entry per (pose, agent) overlap."""
    out = []
    for t, x, y, yaw in poses:
        b = agents.at(t)
        if b is None or len(b) == 0:
            continue
        fp = ego.footprint(x, y, yaw)
        for k in range(len(b)):
            if np.linalg.norm(b.xy[k] - fp.mean(0)) > (ego.length + float(np.max(b.size[k]))):
                continue
            ob = box_corners(b.xy[k, 0], b.xy[k, 1], float(b.yaw[k]), b.size[k, 0], b.size[k, 1])
            if boxes_overlap(fp, ob):
                out.append({"t": float(t), "agent_id": int(b.ids[k]),
                            "ego": [float(x), float(y)], "agent": b.xy[k].tolist()})
    return out


def comfort(t: np.ndarray, speed: np.ndarray, yaw: np.ndarray,
            accel: Optional[np.ndarray] = None, curvature: Optional[np.ndarray] = None) -> dict:
    """Kinematic comfort of a timed profile (finite differences where not given)."""
    t = np.asarray(t, float)
    if len(t) < 3 or np.any(np.diff(t) <= 0):
        return {"samples": int(len(t)), "comfortable": None}
    v = np.asarray(speed, float)
    yaw_u = np.unwrap(np.asarray(yaw, float))
    a = np.asarray(accel, float) if accel is not None else np.gradient(v, t)
    jerk = np.gradient(a, t)
    yaw_rate = np.gradient(yaw_u, t)
    yaw_acc = np.gradient(yaw_rate, t)
    lat = v * v * np.asarray(curvature, float) if curvature is not None else v * yaw_rate
    res = {
        "samples": int(len(t)),
        "lon_accel_min": float(a.min()), "lon_accel_max": float(a.max()),
        "lat_accel_abs_max": float(np.abs(lat).max()),
        "jerk_abs_max": float(np.abs(jerk).max()),
        "yaw_rate_abs_max": float(np.abs(yaw_rate).max()),
        "yaw_accel_abs_max": float(np.abs(yaw_acc).max()),
    }
    L = COMFORT_LIMITS
    res["comfortable"] = bool(
        res["lon_accel_min"] >= L["lon_accel_min"] and res["lon_accel_max"] <= L["lon_accel_max"]
        and res["lat_accel_abs_max"] <= L["lat_accel_abs"] and res["jerk_abs_max"] <= L["jerk_abs"]
        and res["yaw_rate_abs_max"] <= L["yaw_rate_abs"]
        and res["yaw_accel_abs_max"] <= L["yaw_accel_abs"])
    return res


def path_length(xy: np.ndarray) -> float:
    return polyline_length(np.asarray(xy, float).reshape(-1, 2))


def summarize(values: Iterable[float]) -> dict:
    v = np.asarray(list(values), float)
    if v.size == 0:
        return {"count": 0}
    return {"count": int(v.size), "mean": float(v.mean()), "p50": float(np.percentile(v, 50)),
            "p95": float(np.percentile(v, 95)), "max": float(v.max())}
