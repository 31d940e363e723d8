"""Replay metrics in pure numpy (no rclpy): BEV IoU, detection AP at BEV centre-distance
thresholds, velocity error, persistence of occluded objects, ego-footprint collisions,
comfort and progress. Inputs are plain arrays / dicts so that both decoded bag messages
and in-memory vector-space data can be evaluated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from autonomy_stack.geometry import box_corners, boxes_overlap, polyline_length

AP_THRESHOLDS_M = (0.5, 1.0, 2.0, 4.0)       # nuScenes BEV centre distances
MATCH_THRESHOLD_M = 2.0                      # for velocity error and persistence
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


def grid_iou(pred: Grid, gt: Grid, threshold: int = 50) -> Optional[float]:
    """IoU of occupied cells (value >= threshold) evaluated on the ground-truth cells that are
    known (value >= 0); the prediction is sampled at their centres (nearest cell). None when
    both are empty."""
    pts = gt.cell_centres()
    p = pred.lookup(pts, fill=-1)
    known = gt.data >= 0
    g_occ = (gt.data >= threshold) & known
    p_occ = (p >= threshold) & known
    union = np.count_nonzero(g_occ | p_occ)
    if union == 0:
        return None
    return float(np.count_nonzero(g_occ & p_occ) / union)


# ---------------------------------------------------------------- detection
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


def _greedy_match(pred: Boxes, gt: Boxes, thr: float, same_class: bool = True):
    """Predictions in descending score; each takes the nearest unmatched GT within thr.
    Returns list of (pred index, gt index or -1) in processing order."""
    order = np.argsort(-pred.score, kind="stable")
    taken = np.zeros(len(gt), bool)
    out = []
    if len(gt):
        d = np.linalg.norm(pred.xy[:, None, :] - gt.xy[None, :, :], axis=-1)
    for pi in order:
        gi = -1
        if len(gt):
            cand = d[pi].copy()
            cand[taken] = np.inf
            if same_class:
                cand[gt.cls != pred.cls[pi]] = np.inf
            j = int(np.argmin(cand))
            if cand[j] <= thr:
                gi = j
                taken[j] = True
        out.append((int(pi), gi))
    return out


def average_precision(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> Optional[float]:
    """All-point interpolated AP (area under the precision envelope over recall)."""
    if n_gt == 0:
        return None
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = tp[order].astype(float)
    ctp, cfp = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    mrec = np.concatenate([[0.0], recall, [recall[-1]]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def detection_metrics(frames: Sequence[Tuple[Boxes, Boxes]],
                      thresholds: Sequence[float] = AP_THRESHOLDS_M,
                      match_threshold: float = MATCH_THRESHOLD_M) -> dict:
    """frames: [(prediction, ground truth)] paired by stamp. Returns per-class AP per
    threshold, mAP, velocity error of matches, persistence of occluded objects."""
    classes = sorted({int(c) for _, g in frames for c in g.cls})
    ap: Dict[str, Dict[str, Optional[float]]] = {}
    for c in classes:
        ap[str(c)] = {}
        for thr in thresholds:
            scores, tps, n_gt = [], [], 0
            for pred, gt in frames:
                pm, gm = pred.cls == c, gt.cls == c
                n_gt += int(np.count_nonzero(gm))
                if not np.any(pm):
                    continue
                sub_p = Boxes(pred.xy[pm], pred.cls[pm], pred.score[pm], pred.vel[pm],
                              pred.ids[pm], pred.occluded[pm])
                sub_g = Boxes(gt.xy[gm], gt.cls[gm], gt.score[gm], gt.vel[gm], gt.ids[gm],
                              gt.occluded[gm])
                for pi, gi in _greedy_match(sub_p, sub_g, thr):
                    scores.append(sub_p.score[pi])
                    tps.append(gi >= 0)
            ap[str(c)][f"{thr:g}"] = average_precision(np.asarray(scores, float),
                                                       np.asarray(tps, bool), n_gt)
    per_thr = {}
    for thr in thresholds:
        vals = [ap[c][f"{thr:g}"] for c in ap if ap[c][f"{thr:g}"] is not None]
        per_thr[f"{thr:g}"] = float(np.mean(vals)) if vals else None
    all_vals = [v for v in per_thr.values() if v is not None]
    # velocity error and persistence at the match threshold (class-aware)
    verr, occl_total, occl_found, vis_total, vis_found = [], 0, 0, 0, 0
    for pred, gt in frames:
        matches = _greedy_match(pred, gt, match_threshold)
        matched_gt = {gi: pi for pi, gi in matches if gi >= 0}
        for gi, pi in matched_gt.items():
            verr.append(float(np.linalg.norm(pred.vel[pi] - gt.vel[gi])))
        for gi in range(len(gt)):
            if gt.occluded[gi]:
                occl_total += 1
                occl_found += gi in matched_gt
            else:
                vis_total += 1
                vis_found += gi in matched_gt
    return {
        "classes": classes, "ap": ap, "map_per_threshold": per_thr,
        "map": float(np.mean(all_vals)) if all_vals else None,
        "frames": len(frames),
        "velocity_error_mps": {"mean": float(np.mean(verr)) if verr else None,
                               "p95": float(np.percentile(verr, 95)) if verr else None,
                               "matches": len(verr)},
        "persistence_occluded": {
            "occluded_gt": occl_total, "tracked": occl_found,
            "ratio": occl_found / occl_total if occl_total else None},
        "recall_visible": vis_found / vis_total if vis_total else None,
    }


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
