"""Label quality against the simulator's ground truth: the auto-labels and the online
perception output of the same clip, under the one evaluation protocol
(`autonomy_perception.evaluation.protocol`, through `autonomy_replay.perception_eval`:
vehicle AP, velocity error, BEV IoU), plus the figures the protocol does not have, over
the same matches (a same-group detection scoring >= the protocol's `score_threshold`
within `velocity_match_m`, matched greedily by score as `DetectionEvaluator` matches):

* `position_err_m`: mean BEV centre distance of the matches;
* `accel_err`: mean |a - a_gt| along the heading (online: the network has no
  acceleration output; a consumer differentiates the tracked speed: (v_t - v_{t-1}) / dt
  per online track id, 0 at a track's first frame);
* `parked_accuracy`: vehicle matches whose parked decision is right; a ground-truth
  vehicle is parked when its speed stays below 0.1 m/s in every ground-truth frame of the
  clip; auto-labels: the track's static flag; online: speed < `ONLINE_PARKED_SPEED`;
* `occluded_persistence`: of the ground-truth objects hidden for >= 1 s inside the extent
  (not visible by the protocol's rule: fewer than `min_visible_px` pixels, i.e. fully or
  all but fully occluded; visible right before and right after), the share whose track
  survives:
  the track id matched at the last visible frame is matched again at the first visible
  frame after, and an object of that id lies within 4 m of the hidden object in every
  occluded frame in between.
Ground truth is read from /ground_truth/objects + /ground_truth/ego + /ground_truth/bev/*
of the clip; the labeler never reads them.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from autonomy_autolabel.labeler import ClipLabels
from autonomy_perception.evaluation.metrics import DetectionEvaluator
from autonomy_perception.evaluation.protocol import EvaluationProtocol, ProtocolEvaluator, nan_to_none
from autonomy_replay.bag import stamp_ns
from autonomy_replay.bag_data import BagData, layer_key, non_image
from autonomy_replay.perception_eval import (EvalFrame, _nearest, _stamps, bag_frames,
                                             pose_at, pose_sources, raster_on_grid)
from autonomy_stack.geometry import from_frame
from autonomy_stack.vector_space import ObjectState

ONLINE_PARKED_SPEED = 0.5
GT_PARKED_SPEED = 0.1
MIN_OCCLUSION_S = 1.0
PERSISTENCE_RADIUS_M = 4.0


def ground_truth_rasters(inp: BagData, frames: List[EvalFrame], protocol: EvaluationProtocol,
                         layers: Sequence[str]) -> Dict[int, Dict[str, Tuple[np.ndarray, np.ndarray]]]:
    """{gt stamp: {network layer: (ground truth 0..1, valid)}} on the protocol grid, from
    /ground_truth/bev/<layer> (resampled as the training labels are)."""
    gt_pose, _ = pose_sources(inp, inp)
    topics = {layer_key(t.rsplit("/", 1)[1]): t for t in inp.types if t.startswith("/ground_truth/bev/")}
    msgs = {n: inp.get(topics[layer_key(n)]) for n in layers if layer_key(n) in topics}
    stamps = {n: _stamps(m) for n, m in msgs.items()}
    centres = protocol.grid.cell_centres()
    out: Dict[int, Dict] = {}
    for f in frames:
        g = pose_at(gt_pose, f.stamp_ns)
        if g is None:
            continue
        c_odom = from_frame(centres.reshape(-1, 2), *g).reshape(centres.shape)
        for n, m in msgs.items():
            msg = _nearest(m, stamps[n], f.stamp_ns)
            if msg is None:
                continue
            v = raster_on_grid(msg, gt_pose, c_odom, centres, f.stamp_ns, protocol.grid.res,
                               "mean" if n == "drivable" else "max")
            if v is not None:
                out.setdefault(f.stamp_ns, {})[n] = (np.maximum(v, 0) / 100.0, v >= 0)
    return out


def parked_ids(frames: List[EvalFrame]) -> Dict[int, bool]:
    speeds: Dict[int, float] = {}
    for f in frames:
        for o in f.ground_truth:
            speeds[int(o.id)] = max(speeds.get(int(o.id), 0.0), abs(o.speed))
    return {i: s < GT_PARKED_SPEED for i, s in speeds.items()}


def online_accelerations(labels: ClipLabels) -> List[List[ObjectState]]:
    """Online objects per frame with accel = finite difference of the tracked speed."""
    prev: Dict[int, Tuple[float, float]] = {}
    out = []
    for f in labels.frames:
        t = f.stamp_ns * 1e-9
        cur = {}
        objs = []
        for o in f.online:
            o2 = ObjectState(**{**o.__dict__})
            p = prev.get(int(o.id))
            o2.accel = (o.speed - p[1]) / (t - p[0]) if p and t > p[0] else 0.0
            cur[int(o.id)] = (t, o.speed)
            objs.append(o2)
        prev = cur
        out.append(objs)
    return out


class ExtraFigures:
    """Position / acceleration error, parked accuracy and occluded persistence of one
    variant (see the module docstring)."""

    def __init__(self, protocol: EvaluationProtocol, parked: Dict[int, bool], is_parked):
        self.p, self.parked, self.is_parked = protocol, parked, is_parked
        self.pos, self.acc, self.park = [], [], []
        self.track_of: List[Dict[int, Optional[int]]] = []    # per frame: gt id -> matched track id
        self.near: List[Dict[int, set]] = []                   # per frame: gt id -> ids within 4 m

    def add(self, dets: List[ObjectState], gts: List[ObjectState]) -> None:
        p = self.p
        sel = [d for d in dets if d.score >= p.score_threshold and p.inside(d)]
        gin = [g for g in gts if p.inside(g)]
        vis = [g for g in gin if p.visible(g)]
        match: Dict[int, Optional[int]] = {}
        for grp in {p.group(g) for g in vis}:
            dg = [d for d in sel if p.group(d) == grp]
            gg = [g for g in vis if p.group(g) == grp]
            for i, j in DetectionEvaluator._match(dg, gg, [], p.velocity_match_m):
                if j < 0:
                    continue
                d, g = dg[i], gg[j]
                match[int(g.id)] = int(d.id)
                self.pos.append(math.hypot(d.x - g.x, d.y - g.y))
                self.acc.append(abs(d.accel - g.accel))
                if grp == "vehicle":
                    self.park.append(self.is_parked(d) == self.parked.get(int(g.id), False))
        self.track_of.append(match)
        self.near.append({int(g.id): {int(d.id) for d in dets if p.group(d) == p.group(g) and
                                      math.hypot(d.x - g.x, d.y - g.y) <= PERSISTENCE_RADIUS_M}
                          for g in gin if not p.visible(g)})

    def persistence(self, gt_frames: List[EvalFrame]) -> Tuple[float, int]:
        """(share of >= 1 s occlusion episodes whose track survives, episodes)."""
        p = self.p
        state: Dict[int, List] = {}          # gt id -> [frame index, kind] sequence
        for k, f in enumerate(gt_frames):
            for g in f.ground_truth:
                if p.inside(g):
                    kind = "vis" if p.visible(g) else "occ"
                    state.setdefault(int(g.id), []).append((k, kind))
        kept = total = 0
        for gid, seq in state.items():
            for a in range(1, len(seq)):
                if seq[a][1] != "occ" or seq[a - 1][1] != "vis" or seq[a][0] != seq[a - 1][0] + 1:
                    continue
                b = a
                while b < len(seq) and seq[b][1] == "occ" and seq[b][0] == seq[a][0] + (b - a):
                    b += 1
                if b >= len(seq) or seq[b][1] != "vis" or seq[b][0] != seq[b - 1][0] + 1:
                    continue
                k0, k1 = seq[a - 1][0], seq[b][0]
                if (gt_frames[k1].stamp_ns - gt_frames[k0].stamp_ns) * 1e-9 - 0.1 < MIN_OCCLUSION_S:
                    continue
                total += 1
                tid = self.track_of[k0].get(gid)
                if tid is not None and self.track_of[k1].get(gid) == tid and all(
                        tid in self.near[k].get(gid, set()) for k in range(k0 + 1, k1)):
                    kept += 1
        return (kept / total if total else float("nan")), total

    def figures(self, gt_frames: List[EvalFrame]) -> Dict:
        pers, n = self.persistence(gt_frames)
        mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
        return {"position_err_m": mean(self.pos), "accel_err": mean(self.acc),
                "parked_accuracy": mean([float(x) for x in self.park]),
                "occluded_persistence": pers, "occlusion_episodes": n, "matches": len(self.pos)}


def evaluate_clip(bag, labels: ClipLabels, protocol: EvaluationProtocol,
                  static_speed: float = ONLINE_PARKED_SPEED) -> Dict:
    """{"online": {...}, "autolabel": {...}} for one labeled clip (see the module docstring).
    The online rasters need the clip labeled with `keep_online_rasters`."""
    inp = BagData(bag, non_image)
    if not inp.get("/ground_truth/objects"):
        raise ValueError(f"{bag}: no /ground_truth/objects: label quality needs a simulator clip")
    gt_frames = bag_frames(inp, inp, protocol, with_predictions=False)
    seg_classes = labels.road.layers
    gt_r = ground_truth_rasters(inp, gt_frames, protocol, seg_classes)
    index = {f.stamp_ns: k for k, f in enumerate(labels.frames)}
    parked = parked_ids(gt_frames)
    online = online_accelerations(labels)
    variants = {
        "online": (ProtocolEvaluator(protocol, seg_classes),
                   ExtraFigures(protocol, parked, lambda d: abs(d.speed) < static_speed)),
        "autolabel": (ProtocolEvaluator(protocol, seg_classes),
                      ExtraFigures(protocol, parked, lambda d: bool(d.is_static)))}
    used = []
    for f in gt_frames:
        k = index.get(f.stamp_ns)
        t = f.stamp_ns * 1e-9
        if k is None:
            for ev, _ in variants.values():
                ev.observe(t, f.ground_truth)
            continue
        used.append(f)
        fr = labels.frames[k]
        gtr = gt_r.get(f.stamp_ns, {})
        auto_r = labels.road_raster(k, protocol.grid) if gtr else None
        for name, (ev, extra) in variants.items():
            if name == "online":
                dets = online[k]
                ras = {n: (fr.seg[i] / 255.0,) + gtr[n] for i, n in enumerate(seg_classes)
                       if n in gtr and fr.seg is not None}
            else:
                dets = labels.objects_in_ego(k)
                ras = {n: (auto_r[i],) + gtr[n] for i, n in enumerate(seg_classes) if n in gtr}
            ev.add_frame(t, dets, f.ground_truth, ras)
            extra.add(dets, f.ground_truth)
    out = {}
    for name, (ev, extra) in variants.items():
        s = ev.summary()
        out[name] = {"vehicle_ap": s["vehicle_ap"], "velocity_err": s["velocity_error"],
                     "road_iou": s["iou"].get("drivable", float("nan")),
                     "iou": s["iou"], "occluded_recall": s["occluded_recall"],
                     "vehicle_recall": s["recall"].get("vehicle", float("nan")),
                     **extra.figures(used)}
    out["frames"] = len(used)
    return nan_to_none(out)
