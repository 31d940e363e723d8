"""Simulator-only plane geometry (numpy only): polyline curvature, Bezier connectors and
point-in-polygon. The shared helpers (arc length, resampling, headings, projection,
offsets, rotation, box corners, angle wrapping) are in `autonomy_stack.geometry`."""
from __future__ import annotations

import math

import numpy as np

from autonomy_stack.geometry import arc_length, polyline_headings


def curvature(points: np.ndarray) -> np.ndarray:
    """Signed curvature (1/m, positive = left) at every vertex."""
    p = np.asarray(points, dtype=float)[:, :2]
    if len(p) < 3:
        return np.zeros(len(p))
    h = np.unwrap(polyline_headings(p))
    s = arc_length(p)
    return np.gradient(h, s, edge_order=1)


def bezier(p0, h0, p1, h1, n: int = 30, k: float = 0.5) -> np.ndarray:
    """Cubic Bezier from p0 (heading h0) to p1 (heading h1), handles k * chord long."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    L = k * float(np.hypot(*(p1 - p0)))
    c0 = p0 + L * np.array([math.cos(h0), math.sin(h0)])
    c1 = p1 - L * np.array([math.cos(h1), math.sin(h1)])
    t = np.linspace(0.0, 1.0, n)[:, None]
    return ((1 - t) ** 3) * p0 + 3 * ((1 - t) ** 2) * t * c0 + 3 * (1 - t) * t ** 2 * c1 + t ** 3 * p1


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
