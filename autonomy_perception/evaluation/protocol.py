"""The one evaluation protocol of the perception outputs (pure numpy, no ROS, no torch).

Used by the offline evaluation (`evaluation/evaluate.py`: training validation, the bench)
and by the replay report / demo (`autonomy_replay/report.py`), so that one checkpoint gets
one figure whichever way it is evaluated. Everything is in the ego frame (`base_link`, the
rear axle) of the frame's ground-truth stamp.

`EvaluationProtocol` (frozen) fixes:

* **range crop**: the network's BEV extent `x_range` x `y_range` (from the checkpoint's model
  config `cfg["bev"]`, `from_model_config`; or a given half extent, default +-24 m).
  Ground-truth objects and detections whose centre lies outside are dropped (as nuScenes
  drops everything beyond its class range): a detection inside matched to nothing inside
  is a false positive.
* **visibility rule**: a ground-truth object *must be detected* when it is visible:
  `visible_pixels >= min_visible_px` and not `occluded`. A fully `occluded` object that was
  visible within the last `memory_s` seconds (same object id) counts for the occluded
  (persistence) recall; for AP it is ignored like every other not-visible object (a
  detection within the threshold of an ignored object is neither TP nor FP).
  Visibility memory is kept per sequence, in stamp order, over every ground-truth frame
  seen (`observe`), also those without a prediction, and from objects anywhere (also
  outside the extent).
* **class mapping**: groups vehicle (car, truck), pedestrian, cyclist, static (cone, pole,
  barrier, unknown): the network reports static objects as BARRIER, so a CONE ground
  truth matches a BARRIER detection. Matching is within a group only.
* **matching and AP**: BEV centre distance 0.5 / 1 / 2 / 4 m, greedy by decreasing score to
  the nearest unmatched ground-truth object of the group; AP per threshold = area under
  the precision envelope (all-point); the group's AP (e.g. `vehicle_ap`) is the mean over
  the four thresholds (nuScenes-style). `metrics.DetectionEvaluator` implements it.
* **operating point**: `score_threshold` (0.3) for velocity error (L2 of the 2-D velocity
  over matches within `velocity_match_m`), recall, and occluded recall (a same-group
  detection within `persistence_match_m`).
* **per-range table**: AP per group per radial range bin from the rear axle, 0-10, 10-20,
  20-30+ m (the last bin runs to the extent's corner, 34 m at +-24 m). A ground-truth
  object belongs to the bin of its own range; a detection to the bin of the ground-truth
  object it matched, or, when unmatched (a false positive), to the bin of its own range.
  Matching is done once per frame over all ranges (a detection at 9.8 m matched to a car
  at 10.3 m is a true positive of the 10-20 m bin).
* **BEV IoU**: per layer, over the network extent only (the network's raster cells;
  cells where the ground truth is unknown are left out), both sides thresholded at
  `raster_threshold` (0.5 probability), accumulated over all frames (sum of intersections
  / sum of unions, so empty frames do not count as perfect).

`ProtocolEvaluator(protocol, layers).add_frame(stamp, detections, ground_truth, rasters)`
evaluates one frame; `summary()` gives `vehicle_ap`, `vehicle_ap_per_threshold`, `ap` (per
group and threshold), `mean_ap` (per group), `vehicle_ap_by_range` / `ap_by_range`,
`velocity_error`, `recall`, `occluded_recall`, `iou` (per layer), counts, and the protocol
itself. `markdown(summary)` renders the same figures as tables.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from autonomy_perception.evaluation.metrics import (GROUP_OF, GROUPS, THRESHOLDS,
                                                    DetectionEvaluator, IoUAccumulator)
from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.vector_space import ObjectClass, ObjectState

RANGE_BINS: Tuple[Tuple[str, float, float], ...] = (
    ("0-10", 0.0, 10.0), ("10-20", 10.0, 20.0), ("20-30+", 20.0, math.inf))
CLASS_GROUPS: Tuple[Tuple[str, str], ...] = tuple((c.name, g) for c, g in GROUP_OF.items())
DEFAULT_HALF_EXTENT_M = 24.0


@dataclass(frozen=True)
class EvaluationProtocol:
    x_range: Tuple[float, float] = (-DEFAULT_HALF_EXTENT_M, DEFAULT_HALF_EXTENT_M)
    y_range: Tuple[float, float] = (-DEFAULT_HALF_EXTENT_M, DEFAULT_HALF_EXTENT_M)
    resolution: float = 1.0                 # BEV cell (m) of the IoU rasters
    extent_source: str = "default +-24 m"
    min_visible_px: int = 4
    memory_s: float = 2.0
    class_groups: Tuple[Tuple[str, str], ...] = CLASS_GROUPS
    thresholds: Tuple[float, ...] = THRESHOLDS
    score_threshold: float = 0.3
    velocity_match_m: float = 2.0
    persistence_match_m: float = 2.0
    range_bins: Tuple[Tuple[str, float, float], ...] = RANGE_BINS
    raster_threshold: float = 0.5

    @classmethod
    def from_model_config(cls, cfg: Mapping, source: str = "the checkpoint's model config",
                          **overrides) -> "EvaluationProtocol":
        """The network's BEV extent and cell from a perception model config (`cfg["bev"]`)."""
        b = cfg["bev"]
        return cls(x_range=(float(b["x_range"][0]), float(b["x_range"][1])),
                   y_range=(float(b["y_range"][0]), float(b["y_range"][1])),
                   resolution=float(b["resolution"]), extent_source=source, **overrides)

    @classmethod
    def with_half_extent(cls, half_extent_m: float = DEFAULT_HALF_EXTENT_M,
                         resolution: float = 1.0, source: Optional[str] = None,
                         **overrides) -> "EvaluationProtocol":
        h = float(half_extent_m)
        return cls(x_range=(-h, h), y_range=(-h, h), resolution=float(resolution),
                   extent_source=source or f"+-{h:g} m", **overrides)

    # ------------------------------------------------------------------ rules
    @property
    def grid(self) -> BEVGrid:
        return BEVGrid(self.x_range, self.y_range, self.resolution)

    def group(self, o: ObjectState) -> str:
        name = ObjectClass(int(o.object_class)).name
        for cls_name, grp in self.class_groups:
            if cls_name == name:
                return grp
        return "static"

    def inside(self, o: ObjectState) -> bool:
        return bool(self.x_range[0] < o.x < self.x_range[1] and
                    self.y_range[0] < o.y < self.y_range[1])

    def visible(self, o: ObjectState) -> bool:
        return int(o.visible_pixels) >= self.min_visible_px and not bool(o.occluded)

    def range_bin(self, x: float, y: float) -> Optional[str]:
        r = math.hypot(x, y)
        for label, lo, hi in self.range_bins:
            if lo <= r < hi:
                return label
        return None

    def describe(self) -> Dict:
        """JSON-ready description (what report.json / the evaluation JSON carry)."""
        d = asdict(self)
        d["range_bins"] = [[lbl, lo, None if math.isinf(hi) else hi] for lbl, lo, hi in self.range_bins]
        d["class_groups"] = dict(self.class_groups)
        d["x_range"], d["y_range"] = list(self.x_range), list(self.y_range)
        d["thresholds"] = list(self.thresholds)
        return d


class ProtocolEvaluator:
    """Accumulates frames under one `EvaluationProtocol`."""

    def __init__(self, protocol: EvaluationProtocol, layers: Sequence[str] = ()):
        self.protocol = protocol
        self.det = DetectionEvaluator(protocol.thresholds, protocol.score_threshold,
                                      protocol.velocity_match_m, protocol.persistence_match_m,
                                      group_of=protocol.group, range_bins=protocol.range_bins)
        self.iou: Dict[str, IoUAccumulator] = {layer: IoUAccumulator() for layer in layers}
        self.iou_frames: Dict[str, int] = {layer: 0 for layer in layers}
        self.frames = 0
        self._last_seen: Dict[tuple, float] = {}
        self._grid = protocol.grid

    # ------------------------------------------------------------------ visibility
    def observe(self, stamp: float, ground_truth: Iterable[ObjectState], sequence=0):
        """Update the visibility memory with one ground-truth frame; returns (visible,
        occluded_recent, ignored) lists (not yet cropped to the extent)."""
        p = self.protocol
        vis, occ, ign = [], [], []
        for o in ground_truth:
            key = (sequence, int(o.id))
            if p.visible(o):
                self._last_seen[key] = float(stamp)
                vis.append(o)
            elif bool(o.occluded) and key in self._last_seen and \
                    float(stamp) - self._last_seen[key] <= p.memory_s + 1e-9:
                occ.append(o)
            else:
                ign.append(o)
        return vis, occ, ign

    # ------------------------------------------------------------------ one frame
    def add_frame(self, stamp: float, detections: Iterable[ObjectState],
                  ground_truth: Iterable[ObjectState],
                  rasters: Optional[Mapping[str, Tuple]] = None, sequence=0) -> None:
        """One frame: ego-frame `detections` (with .score) and `ground_truth` (with
        visible_pixels / occluded) at `stamp` (s); `rasters` {layer: (prediction, ground
        truth[, valid])} on the protocol's grid (network raster layout, [H, W],
        probabilities 0..1; `valid` False where the ground truth is unknown). `sequence`
        keys the visibility memory (one per recorded sequence)."""
        p = self.protocol
        vis, occ, ign = self.observe(stamp, ground_truth, sequence)
        inside = p.inside
        dets = [d for d in detections if inside(d)]
        self.det.add_frame(dets, [o for o in vis if inside(o)],
                           ignore=[o for o in ign if inside(o)],
                           occluded_recent=[o for o in occ if inside(o)])
        self.add_rasters(rasters or {})
        self.frames += 1

    def add_rasters(self, rasters: Mapping[str, Tuple]) -> None:
        """BEV IoU only (`add_frame` calls this): {layer: (prediction, ground truth[, valid])}."""
        p = self.protocol
        for layer, r in rasters.items():
            pred, gt = np.asarray(r[0]), np.asarray(r[1])
            if pred.shape != self._grid.shape or gt.shape != self._grid.shape:
                raise ValueError(f"raster '{layer}': shapes {pred.shape} / {gt.shape}, the "
                                 f"protocol's grid is {self._grid.shape}")
            pb, gb = pred >= p.raster_threshold, gt >= p.raster_threshold
            if len(r) > 2 and r[2] is not None:
                valid = np.asarray(r[2], bool)
                pb, gb = pb & valid, gb & valid
            self.iou.setdefault(layer, IoUAccumulator()).add(pb, gb)
            self.iou_frames[layer] = self.iou_frames.get(layer, 0) + 1

    # ------------------------------------------------------------------ figures
    def summary(self) -> Dict:
        s = self.det.summary()
        bins = [b[0] for b in self.protocol.range_bins]
        veh = s["ap"].get("vehicle", {})
        return {
            "protocol": self.protocol.describe(),
            "frames": self.frames,
            "vehicle_ap": s["mean_ap"].get("vehicle", float("nan")),
            "vehicle_ap_per_threshold": {str(t): veh.get(str(t), float("nan"))
                                         for t in self.protocol.thresholds},
            "vehicle_ap_by_range": {b: s.get("ap_by_range", {}).get("vehicle", {}).get(b, float("nan"))
                                    for b in bins},
            "ap": s["ap"], "mean_ap": s["mean_ap"], "ap_by_range": s.get("ap_by_range", {}),
            "n_gt": s["n_gt"], "n_gt_by_range": s.get("n_gt_by_range", {}),
            "velocity_error": s["velocity_error"], "velocity_matches": s["velocity_matches"],
            "recall": s["recall"],
            "occluded_recall": s["occluded_recall"], "occluded_total": s["occluded_total"],
            "iou": {layer: a.value for layer, a in self.iou.items()},
            "iou_frames": dict(self.iou_frames),
        }


def evaluate_frames(protocol: EvaluationProtocol, frames: Iterable[Tuple],
                    layers: Sequence[str] = ()) -> Dict:
    """Convenience: frames = [(stamp, detections, ground_truth[, rasters[, sequence]])]."""
    ev = ProtocolEvaluator(protocol, layers)
    for f in frames:
        ev.add_frame(*f)
    return ev.summary()


# ---------------------------------------------------------------------- output
def nan_to_none(o):
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: nan_to_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [nan_to_none(v) for v in o]
    return o


def _f(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def markdown(summary: Dict, title: Optional[str] = None) -> str:
    """The protocol's figures as markdown: headline table, AP per group and threshold, the
    per-range table, IoU per layer. Accepts a summary with NaN or None."""
    p = summary.get("protocol", {})
    thr = [str(t) for t in p.get("thresholds", THRESHOLDS)]
    bins = [b[0] for b in p.get("range_bins", RANGE_BINS)]
    lines = [f"**{title}**", ""] if title else []
    xr, yr = p.get("x_range", ["?", "?"]), p.get("y_range", ["?", "?"])
    lines.append(f"Protocol: extent x {xr[0]}..{xr[1]} m, y {yr[0]}..{yr[1]} m "
                 f"({p.get('extent_source', '?')}); visible = >= {p.get('min_visible_px')} px and "
                 f"not occluded; occluded recall over objects seen within {p.get('memory_s')} s; "
                 f"groups vehicle/pedestrian/cyclist/static; centre distance "
                 f"{'/'.join(thr)} m; operating point score >= {p.get('score_threshold')}; "
                 f"{summary.get('frames')} frames.")
    lines += ["", "| vehicle AP | " + " | ".join(f"AP@{t}" for t in thr)
              + " | velocity err (m/s) | vehicle recall | occluded recall | "
              + " | ".join(f"{k} IoU" for k in summary.get("iou", {})) + " |",
              "|---" * (4 + len(thr) + len(summary.get("iou", {}))) + "|"]
    vpt = summary.get("vehicle_ap_per_threshold", {})
    lines.append(f"| {_f(summary.get('vehicle_ap'))} | "
                 + " | ".join(_f(vpt.get(t)) for t in thr)
                 + f" | {_f(summary.get('velocity_error'))} | "
                 f"{_f((summary.get('recall') or {}).get('vehicle'))} | "
                 f"{_f(summary.get('occluded_recall'))} ({summary.get('occluded_total', 0)}) | "
                 + " | ".join(_f(v) for v in summary.get("iou", {}).values()) + " |")
    aps, mean = summary.get("ap", {}), summary.get("mean_ap", {})
    if aps:
        lines += ["", "| group | n gt | AP (mean) | " + " | ".join(f"AP@{t}" for t in thr) + " |",
                  "|---" * (3 + len(thr)) + "|"]
        for g in GROUPS:
            if g in aps:
                lines.append(f"| {g} | {summary.get('n_gt', {}).get(g, 0)} | {_f(mean.get(g))} | "
                             + " | ".join(_f(aps[g].get(t)) for t in thr) + " |")
    abr, nbr = summary.get("ap_by_range", {}), summary.get("n_gt_by_range", {})
    if abr:
        lines += ["", "AP by range (mean over thresholds; n gt in brackets):", "",
                  "| group | " + " | ".join(f"{b} m" for b in bins) + " |",
                  "|---" * (1 + len(bins)) + "|"]
        for g in GROUPS:
            if g in abr:
                lines.append(f"| {g} | " + " | ".join(
                    f"{_f(abr[g].get(b))} ({nbr.get(g, {}).get(b, 0)})" for b in bins) + " |")
    return "\n".join(lines) + "\n"
