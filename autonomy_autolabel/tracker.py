"""Offline global tracker with hindsight (pure numpy + scipy, no ROS, no torch).

Input: the detections of every frame of a clip, in `odom` (a fixed ground frame), as the
perception network decoded them. Output: tracks with one size each and smoothed
kinematics at every frame between their first and last detection, gaps included.

0. **Static objects first (hindsight)**: all detections of the clip, per class group, are
   clustered in odom by mode seeking (the detection with the most score mass within
   `static_radius_m` becomes a centre, its neighbours' mean the position, repeated):
   a cluster whose detections span at least `static_min_s`, carry at least
   `static_min_mass` of score and do not drift (see 6) is a parked object; its
   detections (the nearest one per frame) are taken out before the tracking below. A row
   of parked cars 2.7 m apart, each detected with ~0.8 m noise, otherwise makes tracks
   hop from car to car as the ego drives past.
1. **Forward tracklets**: per frame, Hungarian assignment (scipy) of detections to the
   tracklets seen within `max_gap_s`, cost = distance to the prediction (a straight-line
   least-squares fit of the tracklet's last `velocity_window` detections),
   gated by `gate_m + gate_per_s * gap` (a longer occlusion -> a wider gate).
2. **Global stitching (past and future)**: a tracklet that ends is joined to one that
   starts later (within `max_gap_s`) when the forward extrapolation of the first and the
   backward extrapolation of the second meet (mean of both distances < the gate): the
   future track decides, which an online tracker cannot do.
3. **Pruning**: tracklets with fewer than `min_detections` or a mean score below
   `min_mean_score` are dropped (flicker / false positives).
4. **One size per track** (score-weighted median of length, width, height), one class
   (score-weighted vote) and one score: the evidence of all its detections,
   `1 - exp(-sum(scores) / evidence_scale)` (a car seen in 30 frames at 0.25 is surer
   than one seen once at 0.5).
5. **Smoothing**: a Rauch-Tung-Striebel smoother with a constant-acceleration model per
   axis on the frame times from the first to the last detection; frames without a
   detection are prediction steps, so occlusion gaps are bridged by the smoothed path.
   Velocity, acceleration and yaw rate come from the smoothed state.
7. **Duplicates**: a parked track inside the footprint of a surer parked track is dropped
   (one car's detections spread along its length can form two clusters).
   A standing cluster that a slow track leaves from or arrives at (within `max_gap_s`,
   1.5 m) is a vehicle that stopped (a queue, a stop line), not a parked one: joined.
6. **Static / parked**: a track whose detections stay within `static_extent_m` of their
   median (80th percentile of the distances: a few outliers do not move a parked car) and
   whose start and end (medians of its first and last third) lie within `static_extent_m`
   of each other gets one position (the median), velocity, acceleration and yaw rate
   exactly 0; so does every track of a static class (cone, pole, barrier: what moves there
   is detection drift). Positions, not the network's velocity, decide: the network reports
   velocities for parked cars seen from a moving ego.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from autonomy_stack.geometry import wrap_angle
from autonomy_stack.vector_space import ObjectClass, ObjectState


STATIC_CLASSES = (ObjectClass.BARRIER, ObjectClass.CONE, ObjectClass.POLE)


@dataclass
class TrackerConfig:
    gate_m: float = 2.5              # association gate at one frame's gap (m)
    gate_per_s: float = 1.5          # extra gate per second of gap (m/s)
    max_gate_m: float = 6.0
    max_gap_s: float = 3.0           # longest occlusion bridged
    min_detections: int = 4
    min_mean_score: float = 0.22
    evidence_scale: float = 2.0      # track score = 1 - exp(-sum of detection scores / this)
    velocity_window: int = 10        # detections of a tracklet's straight-line fit (prediction)
    accel_noise: float = 2.0         # RTS process noise: jerk density (m/s^3)
    position_noise_m: float = 0.5    # RTS measurement noise (m, 1 sigma)
    velocity_noise: float = 1.0      # RTS noise of the network's velocity (m/s, 1 sigma); 0: unused
    static_extent_m: float = 1.5     # a parked object's detections stay within this (m)
    static_radius_m: float = 1.2     # cluster radius of the static-object pass (m)
    static_min_s: float = 1.0        # a static cluster spans at least this long (s)
    static_min_mass: float = 3.0     # ... and holds at least this much detection score
    moving_heading_speed: float = 1.5  # above: yaw from the smoothed velocity


@dataclass
class Detection:
    frame: int
    t: float
    obj: ObjectState                 # odom frame


@dataclass
class Track:
    id: int
    detections: List[Detection] = field(default_factory=list)
    object_class: ObjectClass = ObjectClass.UNKNOWN
    size: tuple = (0.0, 0.0, 0.0)    # length, width, height
    score: float = 0.0
    static: bool = False
    frames: np.ndarray = None        # frame indices covered (first..last detection)
    states: List[ObjectState] = None  # smoothed labels at `frames` (odom)
    observed: np.ndarray = None      # per covered frame: a detection was associated

    @property
    def first(self) -> Detection:
        return self.detections[0]

    @property
    def last(self) -> Detection:
        return self.detections[-1]

    def predict(self, t: float, window: int, at_end: bool = True) -> np.ndarray:
        """Position at time t from a straight-line least-squares fit of the last (or
        first) `window` detections (noise averaged out: a parked car's anchor does not
        wander with its noisiest detection); one detection: it, moved with the network's
        velocity."""
        d = self.detections[-window:] if at_end else self.detections[:window]
        ts = np.array([x.t for x in d])
        xy = np.array([[x.obj.x, x.obj.y] for x in d])
        if len(d) >= 3 and ts[-1] - ts[0] > 0.25:
            A = np.stack([np.ones_like(ts), ts - ts[-1]], 1)
            coef, *_ = np.linalg.lstsq(A, xy, rcond=None)
            return coef[0] + coef[1] * (t - ts[-1])
        ref = d[-1] if at_end else d[0]
        return np.array([ref.obj.x + ref.obj.vx * (t - ref.t), ref.obj.y + ref.obj.vy * (t - ref.t)])


def _gate(cfg: TrackerConfig, gap_s: float) -> float:
    return min(cfg.max_gate_m, cfg.gate_m + cfg.gate_per_s * max(0.0, gap_s))


def forward_tracklets(frames: Sequence[Sequence[ObjectState]], stamps: Sequence[float],
                      cfg: TrackerConfig) -> List[Track]:
    """Step 1: Hungarian association frame by frame with gap-dependent gates."""
    tracks: List[Track] = []
    alive: List[Track] = []
    for k, (dets, t) in enumerate(zip(frames, stamps)):
        alive = [tr for tr in alive if t - tr.last.t <= cfg.max_gap_s]
        used = set()
        if alive and dets:
            cost = np.full((len(alive), len(dets)), 1e6)
            for i, tr in enumerate(alive):
                gap = t - tr.last.t
                p = tr.predict(t, cfg.velocity_window)
                g = _gate(cfg, gap)
                for j, d in enumerate(dets):
                    dist = math.hypot(d.x - p[0], d.y - p[1])
                    if dist < g:
                        cost[i, j] = dist
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] < 1e6:
                    alive[i].detections.append(Detection(k, t, dets[j]))
                    used.add(j)
        for j, d in enumerate(dets):
            if j not in used:
                tr = Track(len(tracks) + 1, [Detection(k, t, d)])
                tracks.append(tr)
                alive.append(tr)
    return tracks


def static_clusters(frames: Sequence[Sequence[ObjectState]], stamps: np.ndarray,
                    cfg: TrackerConfig) -> Tuple[List[Track], List[List[ObjectState]]]:
    """Step 0: parked objects found over the whole clip -> (their tracks, the detections
    left per frame)."""
    dets = [(k, d) for k, fr in enumerate(frames) for d in fr]
    taken = set()
    tracks: List[Track] = []
    for grp in sorted({_group(d) for _, d in dets}):
        idx = [i for i, (_, d) in enumerate(dets) if _group(d) == grp]
        if not idx:
            continue
        xy = np.array([[dets[i][1].x, dets[i][1].y] for i in idx])
        w = np.array([dets[i][1].score for i in idx])
        tree = cKDTree(xy)
        free = np.ones(len(idx), bool)
        mass = np.array([w[n].sum() for n in tree.query_ball_point(xy, cfg.static_radius_m)])
        for j in np.argsort(-mass):
            if not free[j] or mass[j] < cfg.static_min_mass:
                continue
            c = xy[j]
            for _ in range(3):                                   # mean shift
                nb = [n for n in tree.query_ball_point(c, cfg.static_radius_m) if free[n]]
                if not nb:
                    break
                c = np.average(xy[nb], axis=0, weights=w[nb])
            nb = [n for n in tree.query_ball_point(c, cfg.static_radius_m) if free[n]]
            best: Dict[int, int] = {}                            # frame -> nearest detection
            for n in nb:
                k = dets[idx[n]][0]
                if k not in best or np.hypot(*(xy[n] - c)) < np.hypot(*(xy[best[k]] - c)):
                    best[k] = n
            sel = [best[k] for k in sorted(best)]
            if (not sel or w[sel].sum() < cfg.static_min_mass
                    or stamps[dets[idx[sel[-1]]][0]] - stamps[dets[idx[sel[0]]][0]] < cfg.static_min_s
                    or not is_static(xy[sel], cfg.static_extent_m)):
                continue
            free[sel] = False
            taken.update(idx[n] for n in sel)
            tracks.append(Track(0, [Detection(dets[idx[n]][0], float(stamps[dets[idx[n]][0]]),
                                              dets[idx[n]][1]) for n in sel], static=True))
    rest: List[List[ObjectState]] = [[] for _ in frames]
    for i, (k, d) in enumerate(dets):
        if i not in taken:
            rest[k].append(d)
    return tracks, rest


def merge_stopped(parked: List[Track], moving: List[Track], cfg: TrackerConfig,
                  near_m: float = 1.5, slow: float = 2.0) -> List[Track]:
    """A standing cluster that a slow moving track leaves from (or arrives at) is a vehicle
    that stopped, not a parked one: the two become one track (no longer static)."""
    used = set()
    for s in parked:
        pos = np.median([[d.obj.x, d.obj.y] for d in s.detections], 0)
        for m in moving:
            if id(m) in used or _group(m.first.obj) != _group(s.first.obj):
                continue
            w = cfg.velocity_window
            for end_t, ref_t, other_t in ((m.first.t, s.last.t, m.first.t + 0.5),
                                          (m.last.t, s.first.t, m.last.t - 0.5)):
                dt_gap = (end_t - ref_t) * (1 if end_t == m.first.t else -1)
                if not -1.0 <= dt_gap <= cfg.max_gap_s:
                    continue
                p0 = m.predict(end_t, w, at_end=end_t != m.first.t)
                speed = np.hypot(*(m.predict(other_t, w, at_end=end_t != m.first.t) - p0)) / 0.5
                if np.hypot(*(p0 - pos)) <= near_m and speed <= slow:
                    frames_m = {d.frame for d in m.detections}
                    s.detections = sorted([d for d in s.detections if d.frame not in frames_m]
                                          + m.detections, key=lambda d: d.t)
                    s.static = False
                    used.add(id(m))
                    break
            if not s.static:
                break
    return parked + [m for m in moving if id(m) not in used]


def _group(o: ObjectState) -> int:
    c = ObjectClass(int(o.object_class))
    return {ObjectClass.TRUCK: ObjectClass.CAR, ObjectClass.CONE: ObjectClass.BARRIER,
            ObjectClass.POLE: ObjectClass.BARRIER, ObjectClass.UNKNOWN: ObjectClass.BARRIER}.get(c, c)


def stitch(tracks: List[Track], cfg: TrackerConfig) -> List[Track]:
    """Step 2: join tracklet ends to later tracklet starts, cheapest pair first, when the
    forward extrapolation of one and the backward extrapolation of the other agree."""
    tracks = sorted(tracks, key=lambda tr: tr.first.t)
    pairs = []
    for a in tracks:
        for b in tracks:
            gap = b.first.t - a.last.t
            if b is a or gap <= 0 or gap > cfg.max_gap_s or _group(a.last.obj) != _group(b.first.obj):
                continue
            w = cfg.velocity_window
            fwd = np.hypot(*(a.predict(b.first.t, w) - b.predict(b.first.t, w, at_end=False)))
            bwd = np.hypot(*(b.predict(a.last.t, w, at_end=False) - a.predict(a.last.t, w)))
            cost = 0.5 * (fwd + bwd)
            if cost < _gate(cfg, gap):
                pairs.append((cost, a.id, b.id))
    pairs.sort()
    by_id = {tr.id: tr for tr in tracks}
    head_of = {tr.id: tr.id for tr in tracks}        # tracklet -> the track it now belongs to
    has_next, has_prev = set(), set()
    for _, ia, ib in pairs:
        if ia in has_next or ib in has_prev:
            continue
        ha = head_of[ia]
        if by_id[ha].last.t >= by_id[ib].first.t:     # the chain already reaches past b
            continue
        by_id[ha].detections += by_id[ib].detections
        for k, h in head_of.items():
            if h == ib:
                head_of[k] = ha
        has_next.add(ia)
        has_prev.add(ib)
    merged = [by_id[i] for i in sorted(set(head_of.values()))]
    for tr in merged:
        tr.detections.sort(key=lambda d: d.t)
    return merged


def rts_smooth(t: np.ndarray, z: np.ndarray, observed: np.ndarray, accel_noise: float,
               meas_noise: float, zv: Optional[np.ndarray] = None,
               vel_noise: float = 1.0) -> np.ndarray:
    """Constant-acceleration Kalman filter + Rauch-Tung-Striebel smoother of one axis.
    t [N] times, z [N] position measurements, zv [N] velocity measurements (the network's
    own, optional), both ignored where not `observed` -> [N, 3] smoothed (position,
    velocity, acceleration)."""
    n = len(t)
    x = np.array([z[observed][0], 0.0 if zv is None else zv[observed][0], 0.0])
    P = np.diag([meas_noise ** 2, 25.0, 9.0])
    H = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) if zv is not None else np.array([[1.0, 0.0, 0.0]])
    R = np.diag([meas_noise ** 2, vel_noise ** 2][:len(H)])
    q = accel_noise ** 2
    xs_f, Ps_f, xs_p, Ps_p, Fs = np.zeros((n, 3)), np.zeros((n, 3, 3)), np.zeros((n, 3)), \
        np.zeros((n, 3, 3)), np.zeros((n, 3, 3))
    for k in range(n):
        dt = 0.0 if k == 0 else float(t[k] - t[k - 1])
        F = np.array([[1.0, dt, 0.5 * dt * dt], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
        Q = q * np.array([[dt ** 5 / 20, dt ** 4 / 8, dt ** 3 / 6], [dt ** 4 / 8, dt ** 3 / 3, dt ** 2 / 2],
                          [dt ** 3 / 6, dt ** 2 / 2, dt]])
        if k > 0:
            x, P = F @ x, F @ P @ F.T + Q
        Fs[k], xs_p[k], Ps_p[k] = F, x, P
        if observed[k]:
            meas = np.array([z[k]] if zv is None else [z[k], zv[k]])
            S = H @ P @ H.T + R
            K = P @ H.T @ np.linalg.inv(S)
            x = x + K @ (meas - H @ x)
            P = P - K @ H @ P
        xs_f[k], Ps_f[k] = x, P
    xs = xs_f.copy()
    for k in range(n - 2, -1, -1):
        C = Ps_f[k] @ Fs[k + 1].T @ np.linalg.inv(Ps_p[k + 1])
        xs[k] = xs_f[k] + C @ (xs[k + 1] - xs_p[k + 1])
    return xs


def _weighted_median(v: np.ndarray, w: np.ndarray) -> float:
    o = np.argsort(v)
    c = np.cumsum(w[o])
    return float(v[o][np.searchsorted(c, 0.5 * c[-1])])


def _circular_mean(a: np.ndarray, w: np.ndarray) -> float:
    return math.atan2(float(np.sum(w * np.sin(a))), float(np.sum(w * np.cos(a))))


def is_static(xy: np.ndarray, extent_m: float) -> bool:
    """Detections [N, 2] of a parked object: spread and start-to-end drift within extent_m."""
    med = np.median(xy, 0)
    spread = np.percentile(np.hypot(*(xy - med).T), 80)
    third = max(1, len(xy) // 3)
    drift = np.hypot(*(np.median(xy[:third], 0) - np.median(xy[-third:], 0)))
    return bool(spread <= extent_m and drift <= extent_m)


def finish_track(tr: Track, stamps: np.ndarray, cfg: TrackerConfig) -> None:
    """Steps 4-6 on one track: size, class, score, smoothed states at every covered frame,
    the static decision."""
    ds = tr.detections
    w = np.array([d.obj.score for d in ds])
    tr.size = tuple(_weighted_median(np.array([getattr(d.obj, f) for d in ds]), w)
                    for f in ("length", "width", "height"))
    votes: Dict[int, float] = {}
    for d in ds:
        votes[int(d.obj.object_class)] = votes.get(int(d.obj.object_class), 0.0) + d.obj.score
    tr.object_class = ObjectClass(max(votes, key=votes.get))
    tr.score = float(1.0 - math.exp(-float(w.sum()) / cfg.evidence_scale))
    tr.frames = np.arange(ds[0].frame, ds[-1].frame + 1)
    tt = stamps[tr.frames]
    obs = np.zeros(len(tr.frames), bool)
    zx, zy, zvx, zvy = (np.zeros(len(tr.frames)) for _ in range(4))
    for d in ds:                                      # one detection per frame (Hungarian)
        i = d.frame - ds[0].frame
        obs[i], zx[i], zy[i], zvx[i], zvy[i] = True, d.obj.x, d.obj.y, d.obj.vx, d.obj.vy
    tr.observed = obs
    use_v = cfg.velocity_noise > 0
    sx = rts_smooth(tt, zx, obs, cfg.accel_noise, cfg.position_noise_m, zvx if use_v else None,
                    cfg.velocity_noise)
    sy = rts_smooth(tt, zy, obs, cfg.accel_noise, cfg.position_noise_m, zvy if use_v else None,
                    cfg.velocity_noise)
    speed = np.hypot(sx[:, 1], sy[:, 1])
    # cones, poles and barriers do not move: their apparent motion is detection drift
    tr.static = (tr.static or tr.object_class in STATIC_CLASSES
                 or is_static(np.stack([zx[obs], zy[obs]], 1), cfg.static_extent_m))
    det_yaw = _circular_mean(np.array([d.obj.yaw for d in ds]), w)
    L, W, Hh = tr.size
    tr.states = []
    if tr.static:
        x0, y0 = float(np.median(zx[obs])), float(np.median(zy[obs]))
        for k in range(len(tr.frames)):
            tr.states.append(ObjectState(tr.id, tr.object_class, x0, y0, det_yaw, L, W, Hh, z=Hh / 2,
                                         score=tr.score, occluded=not obs[k], is_static=True))
        return
    # heading: of the velocity where the object moves, else the detections' heading
    vel_yaw = np.arctan2(sy[:, 1], sx[:, 1])
    yaw = np.where(speed >= cfg.moving_heading_speed, vel_yaw, det_yaw)
    acc_long = (sx[:, 2] * np.cos(yaw) + sy[:, 2] * np.sin(yaw))
    yaw_rate = np.where(speed >= cfg.moving_heading_speed,
                        (sx[:, 1] * sy[:, 2] - sy[:, 1] * sx[:, 2]) / np.maximum(speed, 1e-6) ** 2, 0.0)
    for k in range(len(tr.frames)):
        tr.states.append(ObjectState(
            tr.id, tr.object_class, float(sx[k, 0]), float(sy[k, 0]), float(wrap_angle(float(yaw[k]))),
            L, W, Hh, z=Hh / 2, speed=float(speed[k]), accel=float(acc_long[k]),
            yaw_rate=float(yaw_rate[k]), score=tr.score, occluded=not obs[k]))


def track_clip(frames: Sequence[Sequence[ObjectState]], stamps: Sequence[float],
               cfg: TrackerConfig = TrackerConfig()) -> List[Track]:
    """The whole offline tracker: detections per frame (odom) -> finished tracks."""
    stamps = np.asarray(stamps, float)
    parked, rest = static_clusters(frames, stamps, cfg)
    tracks = merge_stopped(parked, stitch(forward_tracklets(rest, stamps, cfg), cfg), cfg)
    keep = [tr for tr in tracks if len(tr.detections) >= cfg.min_detections
            and np.mean([d.obj.score for d in tr.detections]) >= cfg.min_mean_score]
    for tr in keep:
        finish_track(tr, stamps, cfg)
    keep = suppress_duplicate_parked(keep)
    for i, tr in enumerate(keep):
        tr.id = i + 1
        for st in tr.states:
            st.id = tr.id
    return keep


def suppress_duplicate_parked(tracks: List[Track], share_of_length: float = 0.45) -> List[Track]:
    """One parked car's detections spread along its length (~1 m noise on a 4.5 m box) can
    form two clusters: a parked track closer than `share_of_length` x the length of a
    surer parked track of the same group is the same object and is dropped (a distance,
    not the footprint: a wrong heading would make the footprint reach the next bay)."""
    kept: List[Track] = []
    for tr in sorted(tracks, key=lambda t: -t.score):
        s = tr.states[0]
        if tr.static and any(o.static and _group(o.states[0]) == _group(s) and
                             math.hypot(s.x - o.states[0].x, s.y - o.states[0].y)
                             < share_of_length * o.size[0] for o in kept):
            continue
        kept.append(tr)
    return sorted(kept, key=lambda t: (t.frames[0], t.id))


def labels_per_frame(tracks: Sequence[Track], n_frames: int) -> List[List[ObjectState]]:
    """Track states regrouped by frame (odom)."""
    out: List[List[ObjectState]] = [[] for _ in range(n_frames)]
    for tr in tracks:
        for k, s in zip(tr.frames, tr.states):
            out[int(k)].append(s)
    return out
