"""Reference path for trajectory tracking (no rclpy).

A planner `Trajectory` (timed samples with signed speed) becomes a `TrackingReference`:
one or more `PathSegment`s plus the tracking state. A segment is a stretch driven in one
direction (forward or reverse); parking trajectories with cusps have several. Each segment
is parameterised by the travelled arc length `s` (increasing in the order of travel) and
answers projections (lateral / heading error of a pose) and interpolations (x, y, yaw,
speed, accel, curvature at any s).

Conventions (shared with `vehicle_model`): the reference point is the rear-axle centre;
`yaw` is the vehicle heading (in reverse the car moves against its heading); speed is
signed; curvature is `dyaw/d(signed s)` = tan(steer)/wheelbase, so the steering
feed-forward is `atan(wheelbase * curvature)` in both directions.  A reverse segment
whose curvature field has the opposite sign convention (dyaw/d(travelled s)) is detected
from the geometry and flipped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from autonomy_stack.geometry import wrap_angle
from autonomy_stack.vector_space import Trajectory


@dataclass
class Projection:
    s: float                # travelled arc length of the foot point on the segment
    lateral: float          # m, left of the path positive
    heading: float          # rad, ego yaw - path yaw (wrapped)
    before_start: float     # m the point lies before the segment's first sample (>= 0)
    after_end: float        # m the point lies beyond the segment's last sample (>= 0)
    index: int              # segment (polyline piece) index of the foot point
    distance: float         # m, Euclidean distance to the foot point


class PathSegment:
    """One direction of travel. Arrays are indexed by sample."""

    def __init__(self, t, x, y, yaw, speed, accel, curvature, direction: int):
        self.direction = 1 if direction >= 0 else -1
        self.t = np.asarray(t, float)
        self.x = np.asarray(x, float)
        self.y = np.asarray(y, float)
        self.yaw_u = np.unwrap(np.asarray(yaw, float))
        self.speed = np.asarray(speed, float)
        self.accel = np.asarray(accel, float)
        self.curvature = np.asarray(curvature, float)
        d = np.hypot(np.diff(self.x), np.diff(self.y))
        self.s = np.concatenate(([0.0], np.cumsum(d)))
        self.length = float(self.s[-1])
        # unit tangent of each polyline piece (for projection); zero-length pieces get the
        # heading direction so that the projection stays defined
        with np.errstate(invalid="ignore", divide="ignore"):
            tx = np.where(d > 1e-9, np.diff(self.x) / np.maximum(d, 1e-9), 0.0)
            ty = np.where(d > 1e-9, np.diff(self.y) / np.maximum(d, 1e-9), 0.0)
        self.seg_len = d
        self.tx, self.ty = tx, ty
        if self.direction < 0 and len(self.s) > 2 and self.length > 0.5:
            # curvature convention check: dyaw/d(signed s) with signed s = -travelled s
            geo = -np.gradient(self.yaw_u, self.s + 1e-9 * np.arange(len(self.s)))
            if float(np.dot(geo, self.curvature)) < 0.0:
                self.curvature = -self.curvature

    def __len__(self) -> int:
        return len(self.s)

    # ------------------------------------------------------------ queries
    def project(self, px: float, py: float, yaw: float, hint: Optional[int] = None,
                window: int = 60) -> Projection:
        n = len(self.s)
        if n == 1:
            dx, dy = px - self.x[0], py - self.y[0]
            c, s_ = math.cos(self.yaw_u[0]), math.sin(self.yaw_u[0])
            lon = dx * c + dy * s_ if self.direction > 0 else -(dx * c + dy * s_)
            return Projection(0.0, -dx * s_ + dy * c, wrap_angle(yaw - self.yaw_u[0]),
                              max(-lon, 0.0), max(lon, 0.0), 0, math.hypot(dx, dy))
        lo, hi = 0, n - 1
        if hint is not None:
            lo, hi = max(0, hint - 5), min(n - 1, hint + window)
        x0, y0 = self.x[lo:hi], self.y[lo:hi]
        tx, ty, L = self.tx[lo:hi], self.ty[lo:hi], self.seg_len[lo:hi]
        dx, dy = px - x0, py - y0
        a = dx * tx + dy * ty
        ac = np.clip(a, 0.0, L)
        ex, ey = dx - ac * tx, dy - ac * ty
        dist2 = ex * ex + ey * ey
        k = int(np.argmin(dist2))
        i = lo + k
        along = float(a[k])
        before = max(-along, 0.0) if i == 0 else 0.0
        after = max(along - float(L[k]), 0.0) if i == n - 2 else 0.0
        frac = float(ac[k] / L[k]) if L[k] > 1e-9 else 0.0
        s = float(self.s[i] + ac[k])
        yaw_ref = float(self.yaw_u[i] + frac * (self.yaw_u[i + 1] - self.yaw_u[i]))
        c, sn = math.cos(yaw_ref), math.sin(yaw_ref)
        fx, fy = float(x0[k] + ac[k] * tx[k]), float(y0[k] + ac[k] * ty[k])
        lateral = -(px - fx) * sn + (py - fy) * c
        return Projection(s=s, lateral=lateral, heading=wrap_angle(yaw - yaw_ref),
                          before_start=before, after_end=after, index=i,
                          distance=math.sqrt(float(dist2[k])))

    def at(self, s):
        """Interpolated (x, y, yaw, speed, accel, curvature) at travelled arc length(s)."""
        s = np.clip(s, 0.0, self.length)
        return (np.interp(s, self.s, self.x), np.interp(s, self.s, self.y),
                np.interp(s, self.s, self.yaw_u), np.interp(s, self.s, self.speed),
                np.interp(s, self.s, self.accel), np.interp(s, self.s, self.curvature))

    def speed_at(self, s):
        return np.interp(np.clip(s, 0.0, self.length), self.s, self.speed)

    def accel_at(self, s):
        return np.interp(np.clip(s, 0.0, self.length), self.s, self.accel)

    def curvature_at(self, s):
        return np.interp(np.clip(s, 0.0, self.length), self.s, self.curvature)

    def point_at(self, s: float):
        s = min(max(s, 0.0), self.length)
        return (float(np.interp(s, self.s, self.x)), float(np.interp(s, self.s, self.y)),
                float(np.interp(s, self.s, self.yaw_u)))


class TrackingReference:
    """What the controller tracks: a trajectory split into constant-direction segments,
    plus the tracking state (active segment, projection hint). (Not the planner's
    `autonomy_planning.path.ReferencePath`, a Frenet frame along a lane.)"""

    def __init__(self, traj: Trajectory, stop_speed: float = 0.05):
        self.traj = traj
        self.stamp = float(traj.stamp)
        self.segments: List[PathSegment] = split_segments(traj, stop_speed)
        self.active = 0
        self.hint: Optional[int] = None

    @property
    def segment(self) -> PathSegment:
        return self.segments[self.active]

    @property
    def is_last_segment(self) -> bool:
        return self.active >= len(self.segments) - 1

    def project(self, px: float, py: float, yaw: float) -> Projection:
        pr = self.segment.project(px, py, yaw, self.hint)
        if self.hint is not None and pr.distance > 1.0:
            # the windowed search may have lost the foot point (jump, loop): search all
            full = self.segment.project(px, py, yaw, None)
            if full.distance < pr.distance:
                pr = full
        self.hint = pr.index
        return pr

    def carry_progress(self, old: "TrackingReference", tol: float = 0.3) -> None:
        """A re-published trajectory with the same cusps as `old`: keep the segments that
        were already driven as done (otherwise the car would head back to the first cusp)."""
        k = 0
        for i in range(min(old.active, len(self.segments) - 1)):
            a, b = old.segments[i], self.segments[i]
            if a.direction != b.direction or math.hypot(a.x[-1] - b.x[-1],
                                                         a.y[-1] - b.y[-1]) > tol:
                break
            k = i + 1
        self.active = k

    def advance_if_reached(self, pr: Projection, speed: float, tol: float = 0.1,
                           overshoot: float = 0.3) -> bool:
        """At a cusp: switch to the next segment once the car stands at this one's end
        (or has rolled `overshoot` past it)."""
        if self.is_last_segment:
            return False
        remaining = self.segment.length - pr.s
        if (remaining < tol and abs(speed) < 0.05) or pr.after_end > overshoot:
            self.active += 1
            self.hint = None
            return True
        return False


def split_segments(traj: Trajectory, stop_speed: float = 0.05) -> List[PathSegment]:
    sp = np.asarray(traj.speed, float)
    n = len(sp)
    # direction of each sample: sign of speed; zero-speed samples inherit a neighbour's
    d = np.where(sp > stop_speed, 1, np.where(sp < -stop_speed, -1, 0))
    if not np.any(d):
        d[:] = 1
    else:
        last = 0
        for i in range(n):              # forward fill, then backward fill the start
            if d[i] == 0:
                d[i] = last
            else:
                last = d[i]
        first = int(d[np.nonzero(d)[0][0]])
        d[d == 0] = first
    cuts = [0] + [i for i in range(1, n) if d[i] != d[i - 1]] + [n]
    segs = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        # a segment ends at the cusp sample: include the first sample of the next one
        # only if it is the cusp point (speed ~ 0), so both segments share it
        bb = b + 1 if b < n and abs(sp[b]) <= stop_speed else b
        aa = a - 1 if a > 0 and abs(sp[a - 1]) <= stop_speed else a
        aa = max(aa, 0)
        sl = slice(aa, max(bb, aa + 1))
        segs.append(PathSegment(traj.t[sl], traj.x[sl], traj.y[sl], traj.yaw[sl],
                                traj.speed[sl], traj.accel[sl], traj.curvature[sl],
                                int(d[a])))
    return segs
