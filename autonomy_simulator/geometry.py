"""Small polyline helpers shared by the simulator's worlds, agents and labels (numpy only)."""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np


def arc_length(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length (N,) of an Nx2 polyline, starting at 0."""
    p = np.asarray(points, dtype=float)[:, :2]
    if len(p) < 2:
        return np.zeros(len(p))
    seg = np.hypot(*np.diff(p, axis=0).T)
    return np.concatenate([[0.0], np.cumsum(seg)])


def resample(points: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Resample a polyline at (about) `step` metres, keeping both end points."""
    p = np.asarray(points, dtype=float)[:, :2]
    s = arc_length(p)
    if s[-1] <= 1e-9:
        return p.copy()
    n = max(2, int(math.ceil(s[-1] / step)) + 1)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, p[:, 0]), np.interp(t, s, p[:, 1])], axis=1)


def headings(points: np.ndarray) -> np.ndarray:
    """Heading (rad) at every vertex (central differences)."""
    p = np.asarray(points, dtype=float)[:, :2]
    d = np.gradient(p, axis=0)
    return np.arctan2(d[:, 1], d[:, 0])


def curvature(points: np.ndarray) -> np.ndarray:
    """Signed curvature (1/m, positive = left) at every vertex."""
    p = np.asarray(points, dtype=float)[:, :2]
    if len(p) < 3:
        return np.zeros(len(p))
    h = np.unwrap(headings(p))
    s = arc_length(p)
    return np.gradient(h, s, edge_order=1)


def offset(points: np.ndarray, d: float) -> np.ndarray:
    """Polyline shifted by `d` metres to its left (negative: right)."""
    p = np.asarray(points, dtype=float)[:, :2]
    h = headings(p)
    return p + d * np.stack([-np.sin(h), np.cos(h)], axis=1)


def interpolate(points: np.ndarray, s_cum: np.ndarray, s: float) -> Tuple[float, float, float]:
    """(x, y, heading) at arc length `s` (clamped to the polyline)."""
    s = min(max(s, 0.0), float(s_cum[-1]))
    i = int(np.searchsorted(s_cum, s, side="right") - 1)
    i = min(max(i, 0), len(points) - 2)
    ds = s_cum[i + 1] - s_cum[i]
    t = 0.0 if ds <= 1e-12 else (s - s_cum[i]) / ds
    a, b = points[i], points[i + 1]
    return (float(a[0] + t * (b[0] - a[0])), float(a[1] + t * (b[1] - a[1])),
            float(math.atan2(b[1] - a[1], b[0] - a[0])))


def project(points: np.ndarray, s_cum: np.ndarray, q: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Project query points (Kx2) on the polyline: -> (s, d) arrays, d positive left.

    Points beyond the ends are extrapolated along the end segments."""
    p = np.asarray(points, dtype=float)[:, :2]
    q = np.atleast_2d(np.asarray(q, dtype=float))[:, :2]
    ax, ay = p[:-1, 0], p[:-1, 1]
    abx, aby = p[1:, 0] - ax, p[1:, 1] - ay          # (S,)
    L2 = np.maximum(abx * abx + aby * aby, 1e-12)
    aqx = q[:, 0:1] - ax                             # (K,S)
    aqy = q[:, 1:2] - ay
    t = (aqx * abx + aqy * aby) / L2
    tc = np.clip(t, 0.0, 1.0)
    dx = aqx - tc * abx
    dy = aqy - tc * aby
    j = np.argmin(dx * dx + dy * dy, axis=1)         # (K,)
    k = np.arange(len(q))
    tj = t[k, j]
    last = len(ax) - 1
    # extrapolate only on the first / last segment
    tj = np.where((j == 0) & (tj < 0), tj, np.where((j == last) & (tj > 1), tj,
                                                    np.clip(tj, 0.0, 1.0)))
    seg_len = np.sqrt(L2[j])
    s = s_cum[j] + tj * seg_len
    d = (abx[j] * aqy[k, j] - aby[j] * aqx[k, j]) / seg_len
    return s, d


def bezier(p0, h0, p1, h1, n: int = 30, k: float = 0.5) -> np.ndarray:
    """Cubic Bezier from p0 (heading h0) to p1 (heading h1), handles k * chord long."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    L = k * float(np.hypot(*(p1 - p0)))
    c0 = p0 + L * np.array([math.cos(h0), math.sin(h0)])
    c1 = p1 - L * np.array([math.cos(h1), math.sin(h1)])
    t = np.linspace(0.0, 1.0, n)[:, None]
    return ((1 - t) ** 3) * p0 + 3 * ((1 - t) ** 2) * t * c0 + 3 * (1 - t) * t ** 2 * c1 + t ** 3 * p1


def rot(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s], [s, c]])


def box_corners(x: float, y: float, yaw: float, length: float, width: float) -> np.ndarray:
    hl, hw = length / 2.0, width / 2.0
    local = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
    return local @ rot(yaw).T + np.array([x, y])


def point_in_polygon(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test for Kx2 points (vectorised over points)."""
    pts = np.atleast_2d(pts)
    x, y = pts[:, 0][:, None], pts[:, 1][:, None]
    a = np.asarray(poly, float)
    b = np.roll(a, -1, axis=0)
    ax, ay, bx, by = a[:, 0][None], a[:, 1][None], b[:, 0][None], b[:, 1][None]
    cond = (ay > y) != (by > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xint = ax + (y - ay) * (bx - ax) / (by - ay)
    return (cond & (x < xint)).sum(1) % 2 == 1
