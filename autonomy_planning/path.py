"""Reference paths and the Frenet frame (station s along the path, lateral offset d,
positive left). Pure numpy/scipy; shared by futures, search, corridor and optimiser.

A `ReferencePath` is a polyline resampled at a fixed spacing and extended by straight
segments before its start and after its end, so that rollouts that run past the drawn
lane still have a frame. Projection is vectorised (k-d tree on the samples, then an exact
projection onto the adjacent segment).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from scipy.spatial import cKDTree

from autonomy_stack.geometry import resample_polyline, wrap_angle

# vertices closer than this to their predecessor are dropped before resampling
MIN_SEGMENT = 1e-6


class ReferencePath:
    """Arc-length parameterised polyline with heading and curvature.

    `s = 0` is the first vertex of the given polyline; the path is extended by
    `extend_before` metres before it and `extend_after` metres after it.
    """

    def __init__(self, points: np.ndarray, ds: float = 0.5, extend_before: float = 30.0,
                 extend_after: float = 250.0, smooth_curvature: int = 5):
        p = resample_polyline(points, ds, min_segment=MIN_SEGMENT)
        if len(p) < 2:
            raise ValueError("reference path needs at least two distinct points")
        self.ds = float(ds)
        h0 = np.arctan2(*(p[1] - p[0])[::-1])
        h1 = np.arctan2(*(p[-1] - p[-2])[::-1])
        nb = int(np.ceil(extend_before / ds))
        na = int(np.ceil(extend_after / ds))
        before = p[0] - np.outer(np.arange(nb, 0, -1) * ds, [np.cos(h0), np.sin(h0)])
        after = p[-1] + np.outer(np.arange(1, na + 1) * ds, [np.cos(h1), np.sin(h1)])
        pts = np.vstack([before, p, after]) if nb else np.vstack([p, after])
        d = np.hypot(*np.diff(pts, axis=0).T)
        s = np.concatenate([[0.0], np.cumsum(d)])
        s0 = s[nb] if nb else 0.0
        self.s = s - s0
        self.xy = pts
        self.original_length = float(self.s[nb + len(p) - 1])
        g = np.gradient(pts, self.s, axis=0)
        self.heading = np.unwrap(np.arctan2(g[:, 1], g[:, 0]))
        k = np.gradient(self.heading, self.s)
        if smooth_curvature > 1:
            ker = np.ones(smooth_curvature) / smooth_curvature
            k = np.convolve(np.pad(k, smooth_curvature // 2, mode="edge"), ker, mode="valid")
        self.curvature = k
        self._tree = cKDTree(pts)
        self.s_min = float(self.s[0])
        self.s_max = float(self.s[-1])

    # -------------------------------------------------------------- queries
    def project(self, xy: np.ndarray):
        """Nx2 points -> (s, d) arrays (d positive left of the path)."""
        q = np.atleast_2d(np.asarray(xy, dtype=float))[:, :2]
        if len(q) == 1:
            s1, d1 = self._project_one(float(q[0, 0]), float(q[0, 1]))
            return np.array([s1]), np.array([d1])
        _, i = self._tree.query(q)
        i = np.clip(i, 0, len(self.s) - 2)
        # choose the segment (i-1,i) or (i,i+1) whose projection parameter is valid
        out_s = np.empty(len(q))
        out_d = np.empty(len(q))
        best = np.full(len(q), np.inf)
        for off in (0, -1):
            j = np.clip(i + off, 0, len(self.s) - 2)
            a = self.xy[j]
            b = self.xy[j + 1]
            ab = b - a
            L = np.hypot(ab[:, 0], ab[:, 1])
            t = np.einsum("ij,ij->i", q - a, ab) / np.maximum(L, 1e-9)
            tc = np.clip(t, 0.0, L)
            # allow extrapolation at the two ends
            tc = np.where((j == 0) & (t < 0), t, tc)
            tc = np.where((j == len(self.s) - 2) & (t > L), t, tc)
            u = ab / np.maximum(L, 1e-9)[:, None]
            foot = a + u * tc[:, None]
            r = q - foot
            dist = np.hypot(r[:, 0], r[:, 1])
            dd = u[:, 0] * r[:, 1] - u[:, 1] * r[:, 0]
            better = dist < best
            best = np.where(better, dist, best)
            out_s = np.where(better, self.s[j] + tc, out_s)
            out_d = np.where(better, dd, out_d)
        return out_s, out_d

    def _project_one(self, x: float, y: float):
        """Scalar fast path of `project` (one point)."""
        _, i = self._tree.query((x, y))
        n = len(self.s)
        best = (math.inf, 0.0, 0.0)
        for j in (min(max(i, 0), n - 2), min(max(i - 1, 0), n - 2)):
            ax, ay = self.xy[j]
            bx, by = self.xy[j + 1]
            ux, uy = bx - ax, by - ay
            L = math.hypot(ux, uy) or 1e-9
            ux, uy = ux / L, uy / L
            t = (x - ax) * ux + (y - ay) * uy
            tc = min(max(t, 0.0), L)
            if (j == 0 and t < 0) or (j == n - 2 and t > L):
                tc = t
            rx, ry = x - (ax + ux * tc), y - (ay + uy * tc)
            dist = math.hypot(rx, ry)
            if dist < best[0]:
                best = (dist, float(self.s[j]) + tc, ux * ry - uy * rx)
        return best[1], best[2]

    def heading_at(self, s):
        return np.interp(s, self.s, self.heading)

    def curvature_at(self, s):
        return np.interp(s, self.s, self.curvature)

    def point_at(self, s):
        s = np.asarray(s, dtype=float)
        return np.interp(s, self.s, self.xy[:, 0]), np.interp(s, self.s, self.xy[:, 1])

    def to_xy(self, s, d):
        """Frenet (s, d) -> (x, y, path heading at s). Works on any broadcastable shape."""
        s = np.asarray(s, dtype=float)
        d = np.asarray(d, dtype=float)
        x, y = self.point_at(s)
        h = self.heading_at(s)
        return x - d * np.sin(h), y + d * np.cos(h), h

    def frenet_heading(self, s, yaw):
        """Heading of a direction `yaw` relative to the path at s (wrapped)."""
        return wrap_angle(np.asarray(yaw) - self.heading_at(s))


def box_frenet_extents(length, width, rel_yaw):
    """Half extents along s and d of a box of (length, width) rotated by `rel_yaw`."""
    c = np.abs(np.cos(rel_yaw))
    sn = np.abs(np.sin(rel_yaw))
    hl = 0.5 * np.asarray(length)
    hw = 0.5 * np.asarray(width)
    return hl * c + hw * sn, hl * sn + hw * c


class PathCache:
    """Bounded least-recently-used cache of reference paths and their projections
    (a dict for `scene.build_road_frame` and `scene.lane_path`): geometry from perception
    changes every cycle, so entries keyed by it would otherwise pile up for ever. Reading
    an entry makes it the most recent; storing one beyond `max_entries` evicts the least
    recently used."""

    def __init__(self, max_entries: int = 512):
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = int(max_entries)
        self._d: "OrderedDict" = OrderedDict()

    def __contains__(self, key) -> bool:
        return key in self._d

    def __getitem__(self, key):
        value = self._d[key]
        self._d.move_to_end(key)
        return value

    def get(self, key, default=None):
        return self[key] if key in self._d else default

    def __setitem__(self, key, value) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)

    def clear(self) -> None:
        self._d.clear()
