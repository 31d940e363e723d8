"""A lane route of the simulated world as one polyline (no ROS, deterministic): `Path`
joins the centrelines of a sequence of lanes (successors end to start, lane changes
blended), and answers what the agents ask along it: pose at an arc length, lane, lane
start, speed limit, curvature, stop lines and junction spans."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from autonomy_simulator import geometry as geo
from autonomy_simulator.worlds import World
from autonomy_stack.geometry import (arc_length, interpolate_polyline, polyline_headings,
                                     project_to_polyline, wrap_angle)


class Path:
    """A route through lanes as one polyline (1 m spacing). Consecutive lanes are either
    successors (joined end to start) or left/right neighbours (a lane change blended over
    `blend` metres at arc length `change_at[k]` of the lane being left)."""

    def __init__(self, world: World, lanes: Sequence[int], change_at: Optional[Sequence[float]] = None,
                 blend: float = 25.0):
        self.lanes = list(lanes)
        L0 = world.lanes[self.lanes[0]]
        pts = [p for p in L0.centerline]
        ids = [L0.id] * len(pts)
        start = 0                              # index in pts where the current lane starts
        n_changes = sum(1 for a, b in zip(self.lanes[:-1], self.lanes[1:])
                        if b in (world.lanes[a].left, world.lanes[a].right))
        changes = list(change_at) if change_at is not None else []
        k_change = 0
        for prev, nxt in zip(self.lanes[:-1], self.lanes[1:]):
            a, b = world.lanes[prev], world.lanes[nxt]
            if nxt in (a.left, a.right):
                if k_change < len(changes):
                    s_c = float(changes[k_change])
                else:
                    span = max(a.length - blend - 15.0, 1.0)
                    s_c = 5.0 + span * (k_change + 0.5) / max(n_changes, 1)
                k_change += 1
                seg = np.array(pts[start:])
                seg_s = arc_length(seg)
                q = np.array(a.pose_at(s_c)[:2])
                keep = int(np.argmin(np.hypot(seg[:, 0] - q[0], seg[:, 1] - q[1])))
                s0 = float(seg_s[keep])
                pa0 = seg[keep]
                sb0 = float(project_to_polyline(b.centerline, b.s, pa0[None])[0][0])
                del pts[start + keep + 1:], ids[start + keep + 1:]
                n = max(2, int(blend))
                for i in range(1, n + 1):
                    u = i / n
                    w = 0.5 * (1.0 - math.cos(math.pi * u))
                    xa, ya, _ = interpolate_polyline(seg, seg_s, s0 + u * blend)
                    xb, yb, _ = interpolate_polyline(b.centerline, b.s, sb0 + u * blend)
                    pts.append(np.array([(1 - w) * xa + w * xb, (1 - w) * ya + w * yb]))
                    ids.append(b.id)
                rest = b.centerline[b.s > sb0 + blend + 0.5]
                pts.extend(rest)
                ids.extend([b.id] * len(rest))
                start = len(pts) - len(rest) - n
            else:
                c = b.centerline
                if np.hypot(*(c[0] - pts[-1])) < 0.3:
                    c = c[1:]
                start = len(pts)
                pts.extend(c)
                ids.extend([b.id] * len(c))
        self.points = np.array(pts)
        self.s = arc_length(self.points)
        keep = np.concatenate([[True], np.diff(self.s) > 1e-6])
        self.points, self.lane_ids = self.points[keep], np.array(ids)[keep]
        self.s = arc_length(self.points)
        self.stops = []                        # [(lane_id, s_on_path)]
        for lid in self.lanes:
            ln = world.lanes[lid]
            if ln.stop_line_s is not None:
                q = np.array([ln.pose_at(ln.stop_line_s)[:2]])
                s_stop, d_stop = project_to_polyline(self.points, self.s, q)
                if abs(d_stop[0]) < 1.0:
                    self.stops.append((lid, float(s_stop[0])))
        self.junction_spans = []               # [(connector lane id, s_start, s_end)]
        for lid in dict.fromkeys(int(i) for i in self.lane_ids):
            if world.lanes[lid].in_junction:
                idx = np.nonzero(self.lane_ids == lid)[0]
                s0 = float(self.s[max(idx[0] - 1, 0)])
                self.junction_spans.append((lid, s0, float(self.s[idx[-1]])))
        self.kappa = np.abs(geo.curvature(self.points))
        self.headings = polyline_headings(self.points)
        self.h_unwrapped = np.unwrap(self.headings)
        self.limits = np.array([world.lanes[int(i)].speed_limit for i in self.lane_ids])

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def _index(self, s: float) -> int:
        return int(min(max(np.searchsorted(self.s, s, side="right") - 1, 0), len(self.s) - 1))

    def lane_at(self, s: float) -> int:
        return int(self.lane_ids[self._index(s)])

    def lane_start(self, s: float) -> float:
        """Arc length on the path where the lane at `s` begins."""
        i = self._index(s)
        lid = self.lane_ids[i]
        while i > 0 and self.lane_ids[i - 1] == lid:
            i -= 1
        return float(self.s[i])

    def limit_at(self, s: float) -> float:
        return float(self.limits[self._index(s)])

    def max_kappa(self, s0: float, s1: float) -> float:
        i0 = int(np.searchsorted(self.s, s0))
        i1 = int(np.searchsorted(self.s, s1)) + 1
        k = self.kappa[i0:i1]
        return float(k.max()) if len(k) else 0.0

    def pose(self, s: float, d: float = 0.0) -> Tuple[float, float, float]:
        """(x, y, heading) at arc length s, offset d to the left; the heading is
        interpolated between vertices (smooth yaw rate on curves)."""
        x, y, _ = interpolate_polyline(self.points, self.s, s)
        h = float(np.interp(s, self.s, self.h_unwrapped))
        h = wrap_angle(h)
        return x - d * math.sin(h), y + d * math.cos(h), h
