"""Report pieces of the closed-loop suite (bench/closed_loop.py): a diagnosis line per
vision episode (which perception error led to a miss), the Markdown table, and the video
of one episode (top-down vector space next to the camera mosaic, plain OpenCV drawing).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Sequence

import cv2
import numpy as np

from autonomy_stack.geometry import box_corners, to_frame

from autonomy_tools.closed_loop_metrics import EpisodeTrace, collision_events

TABLE_COLUMNS = [("collisions", "collisions", "{:d}"), ("goal_rate", "goal rate", "{:.2f}"),
                 ("off_road_s", "off-road s", "{:.1f}"),
                 ("max_route_deviation_m", "max route dev m", "{:.2f}"),
                 ("time_to_goal_s", "time to goal s", "{:.1f}"),
                 ("max_abs_lat_acc", "max lat acc", "{:.2f}"), ("max_abs_jerk", "max jerk", "{:.2f}"),
                 ("supervisor_stops", "sup. stops", "{:d}"), ("silent_failures", "silent", "{:d}"),
                 ("planner_latency_p50_ms", "planner p50 ms", "{:.1f}"),
                 ("perception_latency_p50_ms", "perception p50 ms", "{:.1f}")]


def diagnose(tr: EpisodeTrace, extra: dict, metrics: Dict[str, float]) -> str:
    """One line: how the episode ended and, for a vision miss, the perception evidence
    (was the object hit ever detected near where it was; how often lanes were missing)."""
    parts = [f"end={extra['end_reason']}"]
    cycles = extra["cycles"]
    if extra["mode"] == "vision" and cycles:
        n_lanes = np.array([c.get("lanes", 0) for c in cycles])
        lens = [max(c.get("lane_len") or [0.0]) for c in cycles]
        parts.append(f"no lane from road lines in {np.mean(n_lanes == 0):.0%} of cycles, "
                     f"longest lane median {np.median(lens):.0f} m")
    back = sum(1 for c in cycles if c.get("plan_backward"))
    if back:
        parts.append(f"planned path ran backwards in {back} cycles")
    for t_hit, oid in collision_events(tr)[:1]:
        k = int(np.searchsorted(tr.t, t_hit))
        k = min(k, len(tr.objects) - 1)
        obj = next((o for o in tr.objects[k] if o.id == oid), None)
        if obj is None:
            continue
        local = to_frame(np.array([[obj.x, obj.y]]), tr.x[k], tr.y[k], tr.yaw[k])[0]
        desc = (f"hit {obj.object_class.name.lower()} {oid} at ({local[0]:+.1f}, {local[1]:+.1f}) m "
                f"in the ego frame, t={t_hit:.1f} s")
        if extra["mode"] == "vision":
            recent = [c for c in cycles if t_hit - 2.0 <= c["t"] <= t_hit]
            seen = sum(1 for c in recent if any(math.hypot(x - obj.x, y - obj.y) < 2.5
                                                for x, y in c.get("det_xy", ())))
            desc += (f"; detected within 2.5 m in {seen}/{len(recent)} cycles of the last 2 s"
                     + (" -> missed detection" if seen <= len(recent) // 4 else
                        " -> detected, the plan still hit it"))
        parts.append(desc)
    if metrics.get("off_road_s", 0.0) > 0:
        parts.append(f"off road {metrics['off_road_s']:.1f} s (max {metrics['max_off_road_m']:.2f} m)")
    for m in extra.get("supervisor_messages", [])[:2]:
        parts.append(f"supervisor: {m}")
    return "; ".join(parts)


def markdown_table(summary: Dict[str, Dict[str, Dict[str, float]]], modes: Sequence[str]) -> str:
    head = "| scenario | mode | runs | " + " | ".join(c[1] for c in TABLE_COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(TABLE_COLUMNS))]
    for name, per_mode in summary.items():
        for mode in modes:
            s = per_mode.get(mode)
            if s is None:
                continue
            cells = []
            for key, _, fmt in TABLE_COLUMNS:
                v = s.get(key, float("nan"))
                cells.append("—" if isinstance(v, float) and math.isnan(v) else fmt.format(v))
            lines.append(f"| {name} | {mode} | {s['runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ video
_PX = 8.0          # pixels per metre of the top-down view
_SIZE = 512        # top-down view side (pixels): 64 m around the ego


def _to_px(pts: np.ndarray, ego) -> np.ndarray:
    """odom -> top-down pixels, ego-centred, forward = up, left = left."""
    local = to_frame(np.asarray(pts, float).reshape(-1, 2), ego.x, ego.y, ego.yaw)
    u = _SIZE / 2 - local[:, 1] * _PX
    v = _SIZE / 2 + 10 * _PX - local[:, 0] * _PX
    return np.stack([u, v], 1).round().astype(np.int32)


def _top_down(fr: dict, map_lanes: list, body) -> np.ndarray:
    img = np.full((_SIZE, _SIZE, 3), 40, np.uint8)
    ego = fr["ego"]
    for ln in map_lanes:       # ground-truth lanes, faint
        cv2.polylines(img, [_to_px(ln.centerline, ego)], False, (80, 80, 80), 1, cv2.LINE_AA)
    for ln in fr["lanes"]:     # lanes the planner got from perception's road lines
        cv2.polylines(img, [_to_px(ln.centerline, ego)], False, (0, 200, 0), 2, cv2.LINE_AA)
    for l in fr["lines"]:
        cv2.polylines(img, [_to_px(l.points[:, :2], ego)], False, (0, 200, 255), 1, cv2.LINE_AA)
    for o in fr["gt"]:         # ground truth: white outline; perception: red filled
        cv2.polylines(img, [_to_px(o.corners(), ego)], True, (255, 255, 255), 1, cv2.LINE_AA)
    for o in fr["objects"]:
        cv2.fillPoly(img, [_to_px(o.corners(), ego)], (60, 60, 230))
    if "plan" in fr and len(fr["plan"]) > 1:
        cv2.polylines(img, [_to_px(fr["plan"], ego)], False, (255, 160, 0), 2, cv2.LINE_AA)
    front, rear, hw = body
    ego_box = box_corners(ego.x, ego.y, ego.yaw, front + rear, 2 * hw, (front - rear) / 2)
    cv2.fillPoly(img, [_to_px(ego_box, ego)], (255, 255, 0))
    cv2.putText(img, f"t={fr['t']:.1f}s v={ego.speed:.1f}m/s", (8, 20), cv2.FONT_HERSHEY_SIMPLEX,
                0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _mosaic(images: Dict[str, np.ndarray]) -> np.ndarray:
    ims = list(images.values())
    rows = [np.hstack(ims[i:i + 4]) for i in range(0, len(ims), 4)]
    m = np.vstack(rows)
    scale = _SIZE / m.shape[1]
    m = cv2.resize(m, (_SIZE, int(round(m.shape[0] * scale))), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(m, cv2.COLOR_RGB2BGR)


def write_video(frames: List[dict], map_lanes: list, body, path: Path, fps: float = 10.0) -> int:
    """Top-down view (grey: map lanes, green: lanes from perception, orange: perceived road
    lines, white: true objects, red: perceived objects, blue: plan) above the rectified
    camera mosaic; returns the number of frames written."""
    if not frames:
        return 0
    first = np.vstack([_top_down(frames[0], map_lanes, body), _mosaic(frames[0]["images"])])
    h, w = first.shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not vw.isOpened():
        raise RuntimeError(f"cannot open a video writer for {path}")
    try:
        for fr in frames:
            vw.write(np.vstack([_top_down(fr, map_lanes, body), _mosaic(fr["images"])]))
    finally:
        vw.release()
    cv2.imwrite(str(Path(path).with_suffix(".png")),
                np.vstack([_top_down(frames[-1], map_lanes, body), _mosaic(frames[-1]["images"])]))
    return len(frames)
