"""Perception metrics (pure numpy, no torch):

* `IoUAccumulator`: intersection-over-union of binary BEV rasters accumulated over frames
  (sum of intersections / sum of unions, so empty frames do not count as perfect);
* `DetectionEvaluator`: nuScenes-style detection AP with *BEV centre-distance* matching
  (thresholds 0.5/1/2/4 m), per class group; detections are matched greedily in order of
  decreasing score to the nearest unmatched ground-truth object of the same group within the
  threshold; a detection within the threshold of an *ignored* ground-truth object (e.g. never
  visible) is neither TP nor FP; AP is the area under the precision envelope (all-point
  interpolation). Also: velocity error (m/s, L2 of the 2-D over-ground velocity) over matches
  at `velocity_match_m` and detections scoring >= `score_threshold`; occlusion persistence
  recall = share of currently fully occluded objects (seen within the last 2 s) that have a
  same-group detection scoring >= `score_threshold` within `persistence_match_m`; recall
  at the operating point = share of ground-truth objects matched (`velocity_match_m`) by a
  detection scoring >= `score_threshold`.
Optional per-range AP (`range_bins` = ((label, lo, hi), ...) over the radial distance from
the frame's origin, the ego rear axle): a ground-truth object counts in the bin of its own
range; a detection in the bin of the ground-truth object it matched, or, unmatched (FP), in
the bin of its own range; matching itself is done once per frame over all ranges.
The class grouping is a parameter (`group_of`); the one protocol that fixes all of these is
`autonomy_perception.evaluation.protocol`.
Objects are `autonomy_stack.vector_space.ObjectState` in one frame (the ego frame)."""
from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from autonomy_stack.vector_space import ObjectClass, ObjectState

GROUP_OF = {ObjectClass.CAR: "vehicle", ObjectClass.TRUCK: "vehicle",
            ObjectClass.PEDESTRIAN: "pedestrian", ObjectClass.CYCLIST: "cyclist",
            ObjectClass.CONE: "static", ObjectClass.POLE: "static", ObjectClass.BARRIER: "static",
            ObjectClass.UNKNOWN: "static"}
GROUPS = ("vehicle", "pedestrian", "cyclist", "static")
THRESHOLDS = (0.5, 1.0, 2.0, 4.0)


def group(o: ObjectState) -> str:
    return GROUP_OF.get(ObjectClass(int(o.object_class)), "static")


class IoUAccumulator:
    def __init__(self):
        self.inter = 0
        self.union = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        p, g = np.asarray(pred, bool), np.asarray(gt, bool)
        self.inter += int((p & g).sum())
        self.union += int((p | g).sum())

    @property
    def value(self) -> float:
        return float(self.inter / self.union) if self.union else float("nan")


def average_precision(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> float:
    """tp: 1/0 per (non-ignored) detection; all-point interpolated AP."""
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.asarray(tp, float)[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1.0 - tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    mrec = np.concatenate([[0.0], recall, [recall[-1]]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


class DetectionEvaluator:
    def __init__(self, thresholds: Sequence[float] = THRESHOLDS, score_threshold: float = 0.3,
                 velocity_match_m: float = 2.0, persistence_match_m: float = 2.0,
                 group_of: Optional[Callable[[ObjectState], str]] = None,
                 range_bins: Sequence[Tuple[str, float, float]] = ()):
        self.thresholds = tuple(thresholds)
        self.score_threshold = score_threshold
        self.velocity_match_m = velocity_match_m
        self.persistence_match_m = persistence_match_m
        self.group_of = group_of or group
        self.range_bins = tuple(range_bins)
        # per (group, threshold): list of (score, tp, range bin) ; number of gt per group
        self.records: Dict[tuple, List[tuple]] = {}
        self.n_gt: Dict[str, int] = {g: 0 for g in GROUPS}
        self.n_gt_bin: Dict[tuple, int] = {}
        self.found: Dict[str, int] = {g: 0 for g in GROUPS}
        self.vel_errors: List[float] = []
        self.occ_total = 0
        self.occ_found = 0

    def range_bin(self, o: ObjectState) -> Optional[str]:
        """Label of the range bin of `o` (radial distance from the frame origin); None
        without bins or beyond the last one."""
        r = math.hypot(o.x, o.y)
        for label, lo, hi in self.range_bins:
            if lo <= r < hi:
                return label
        return None

    @staticmethod
    def _match(dets: List[ObjectState], gts: List[ObjectState], ign: List[ObjectState], thr: float):
        """Greedy by score: returns list of (det index, gt index or -1 (FP) or -2 (ignored))."""
        order = sorted(range(len(dets)), key=lambda i: -dets[i].score)
        used = set()
        res = []
        for i in order:
            d = dets[i]
            best, bj = thr, -1
            for j, g in enumerate(gts):
                if j in used:
                    continue
                dist = math.hypot(d.x - g.x, d.y - g.y)
                if dist <= best:
                    best, bj = dist, j
            if bj >= 0:
                used.add(bj)
                res.append((i, bj))
            elif any(math.hypot(d.x - g.x, d.y - g.y) <= thr for g in ign):
                res.append((i, -2))
            else:
                res.append((i, -1))
        return res

    def add_frame(self, dets: List[ObjectState], gts: List[ObjectState],
                  ignore: Iterable[ObjectState] = (), occluded_recent: Iterable[ObjectState] = ()):
        """dets: predictions with .score; gts: objects that must be detected (visible);
        ignore: objects that count neither way (e.g. not visible); occluded_recent: fully
        occluded objects seen within the memory window (for persistence recall; they are
        also ignored for AP)."""
        ignore = list(ignore)
        occ = list(occluded_recent)
        group_of = self.group_of
        for g in gts:
            self.n_gt[group_of(g)] = self.n_gt.get(group_of(g), 0) + 1
            key = (group_of(g), self.range_bin(g))
            self.n_gt_bin[key] = self.n_gt_bin.get(key, 0) + 1
        for grp in GROUPS:
            dg = [d for d in dets if group_of(d) == grp]
            gg = [g for g in gts if group_of(g) == grp]
            ig = [g for g in ignore + occ if group_of(g) == grp]
            for thr in self.thresholds:
                for i, j in self._match(dg, gg, ig, thr):
                    if j != -2:
                        rb = self.range_bin(gg[j] if j >= 0 else dg[i])
                        self.records.setdefault((grp, thr), []).append(
                            (dg[i].score, 1 if j >= 0 else 0, rb))
            sel = [d for d in dg if d.score >= self.score_threshold]
            for i, j in self._match(sel, gg, [], self.velocity_match_m):
                if j >= 0:
                    d, g = sel[i], gg[j]
                    self.found[grp] += 1
                    self.vel_errors.append(math.hypot(d.vx - g.vx, d.vy - g.vy))
        for g in occ:
            self.occ_total += 1
            if any(group_of(d) == group_of(g) and d.score >= self.score_threshold
                   and math.hypot(d.x - g.x, d.y - g.y) <= self.persistence_match_m for d in dets):
                self.occ_found += 1

    def ap(self, grp: str, thr: float, range_bin: Optional[str] = None) -> float:
        """AP of one group at one threshold; with `range_bin`, of that range bin only."""
        r = self.records.get((grp, thr), [])
        if range_bin is not None:
            r = [x for x in r if x[2] == range_bin]
        n_gt = self.n_gt.get(grp, 0) if range_bin is None else self.n_gt_bin.get((grp, range_bin), 0)
        return average_precision(np.array([x[1] for x in r]), np.array([x[0] for x in r]), n_gt)

    def mean_ap(self, grp: str, range_bin: Optional[str] = None) -> float:
        v = [self.ap(grp, t, range_bin) for t in self.thresholds]
        return float(np.mean(v)) if not any(math.isnan(x) for x in v) else float("nan")

    def recall(self, grp: str) -> float:
        n = self.n_gt.get(grp, 0)
        return self.found.get(grp, 0) / n if n else float("nan")

    @property
    def velocity_error(self) -> float:
        return float(np.mean(self.vel_errors)) if self.vel_errors else float("nan")

    @property
    def occluded_recall(self) -> float:
        return self.occ_found / self.occ_total if self.occ_total else float("nan")

    def summary(self) -> Dict:
        out = {"ap": {g: {str(t): self.ap(g, t) for t in self.thresholds} for g in GROUPS if self.n_gt[g]},
               "mean_ap": {g: self.mean_ap(g) for g in GROUPS if self.n_gt[g]},
               "n_gt": dict(self.n_gt), "velocity_error": self.velocity_error,
               "velocity_matches": len(self.vel_errors), "occluded_recall": self.occluded_recall,
               "occluded_total": self.occ_total,
               "recall": {g: self.recall(g) for g in GROUPS if self.n_gt[g]}}
        if self.range_bins:
            labels = [b[0] for b in self.range_bins]
            out["ap_by_range"] = {g: {b: self.mean_ap(g, b) for b in labels}
                                  for g in GROUPS if self.n_gt[g]}
            out["n_gt_by_range"] = {g: {b: self.n_gt_bin.get((g, b), 0) for b in labels}
                                    for g in GROUPS if self.n_gt[g]}
        return out
