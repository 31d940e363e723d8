"""The auto-labeler of one clip: perception over the whole clip (`clip.perceive_clip`), the
offline global tracker (`tracker.track_clip`) and the road fusion (`road.RoadGrid`).

    labels = autolabel_clip(bag, engine)
    labels.objects[k]     # odom-frame ObjectStates of frame k (track ids, smoothed kinematics)
    labels.road           # RoadGrid (odom) fused over the clip
    labels.objects_in_ego(k), labels.road_raster(k, grid)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from autonomy_autolabel.clip import ClipFrame, ClipPerception, perceive_clip
from autonomy_autolabel.road import RoadGrid
from autonomy_autolabel.tracker import Track, TrackerConfig, labels_per_frame, track_clip
from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.geometry import to_frame, wrap_angle
from autonomy_stack.vector_space import ObjectState


@dataclass
class AutolabelConfig:
    decode_score: float = 0.2        # detections the tracker sees (the car's operating point is 0.3)
    road_cell_m: float = 0.5
    road_range_scale_m: float = 15.0
    keep_online_rasters: bool = False  # keep each frame's segmentation (uint8) for evaluation
    tracker: TrackerConfig = field(default_factory=TrackerConfig)


@dataclass
class ClipLabels:
    perception: ClipPerception
    tracks: List[Track]
    objects: List[List[ObjectState]]   # per frame, odom
    road: RoadGrid
    timings_s: dict

    @property
    def frames(self) -> List[ClipFrame]:
        return self.perception.frames

    @property
    def stamps(self) -> np.ndarray:
        return self.perception.stamps

    @property
    def duration_s(self) -> float:
        s = self.stamps
        if len(s) < 2:
            return 0.0
        return float(s[-1] - s[0] + np.median(np.diff(s)))

    def objects_in_ego(self, k: int) -> List[ObjectState]:
        return objects_to_ego(self.objects[k], self.frames[k].pose)

    def road_raster(self, k: int, grid: BEVGrid) -> np.ndarray:
        return self.road.ego_raster(grid, self.frames[k].pose)


def objects_to_ego(objs: List[ObjectState], pose) -> List[ObjectState]:
    if not objs:
        return []
    xy = to_frame(np.array([[o.x, o.y] for o in objs]), *pose)
    out = []
    for o, p in zip(objs, xy):
        e = ObjectState(**{**o.__dict__})
        e.x, e.y, e.yaw = float(p[0]), float(p[1]), float(wrap_angle(o.yaw - pose[2]))
        out.append(e)
    return out


def autolabel_clip(bag, engine, cfg: Optional[AutolabelConfig] = None) -> ClipLabels:
    """Label one clip (see the module docstring); raises clip.ClipError on an unusable bag."""
    cfg = cfg or AutolabelConfig()
    seg_classes = engine.config["heads"].get("segmentation", {}).get("classes", [])
    road = RoadGrid(seg_classes, cfg.road_cell_m, cfg.road_range_scale_m)
    t_road = [0.0]

    def fuse(frame: ClipFrame, outputs) -> None:
        if "seg" in outputs:
            if cfg.keep_online_rasters:
                frame.seg = np.clip(np.rint(outputs["seg"] * 255), 0, 255).astype(np.uint8)
            t = time.perf_counter()
            road.add_frame(outputs["seg"], engine.grid, frame.pose)
            t_road[0] += time.perf_counter() - t

    t0 = time.perf_counter()
    perc = perceive_clip(bag, engine, cfg.decode_score, on_frame=fuse)
    t1 = time.perf_counter()
    tracks = track_clip([f.detections for f in perc.frames], perc.stamps, cfg.tracker)
    t2 = time.perf_counter()
    timings = {"perception_s": t1 - t0 - t_road[0], "network_s": perc.network_s,
               "road_fusion_s": t_road[0], "tracking_s": t2 - t1}
    return ClipLabels(perc, tracks, labels_per_frame(tracks, len(perc.frames)), road, timings)
