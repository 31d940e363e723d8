"""The one copy of the stack's plane geometry (ROS-free, numpy + math only).

Conventions (those of `vector_space`): x forward, y left, yaw counter-clockwise from +x in
radians; a frame's pose is (x, y, yaw) of its origin in the parent frame (e.g. the ego's
rear axle in odom). Polylines are Nx2 arrays (extra columns are ignored unless a function
says otherwise).

- angles: `wrap_angle` -> [-pi, pi) (scalar in, scalar out; array in, array out)
- frames: `rotation`, `to_frame` (parent -> local, e.g. world -> ego),
  `from_frame` (local -> parent)
- boxes: `box_corners` (4x2, order front-left, front-right, rear-right, rear-left:
  clockwise seen from above), `boxes_overlap` (separating-axis test of two convex polygons)
- polylines: `arc_length` (cumulative s), `polyline_length`, `remove_duplicate_points`,
  `resample_polyline`, `polyline_headings`, `interpolate_polyline`, `project_to_polyline`,
  `offset_polyline`

Tests: tests/test_geometry.py (which also fails when a second copy of these helpers appears).
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------- angles
def wrap_angle(a):
    """Angle(s) wrapped to [-pi, pi) (pi itself maps to -pi).

    A Python / numpy float gives a float of the same type; anything else (arrays, lists)
    an ndarray with the input's float dtype."""
    if isinstance(a, (float, int)):
        return (a + math.pi) % TWO_PI - math.pi
    return (np.asarray(a) + np.pi) % TWO_PI - np.pi


# --------------------------------------------------------------------------- frames
def rotation(yaw: float) -> np.ndarray:
    """2x2 rotation matrix by `yaw` (counter-clockwise): local -> parent directions."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s], [s, c]])


def from_frame(points, x: float, y: float, yaw: float) -> np.ndarray:
    """Points given in a frame whose origin is at (x, y, yaw) of the parent -> parent frame
    (e.g. ego -> world). NxK (K >= 2): the first two columns move, the others are kept."""
    p = np.asarray(points, dtype=float)
    out = p.copy()
    out[:, :2] = p[:, :2] @ rotation(yaw).T + np.array([x, y])
    return out


def to_frame(points, x: float, y: float, yaw: float) -> np.ndarray:
    """Parent-frame points -> the frame whose origin is at (x, y, yaw) (e.g. world -> ego).
    NxK (K >= 2): the first two columns move, the others are kept."""
    p = np.asarray(points, dtype=float)
    out = p.copy()
    out[:, :2] = (p[:, :2] - np.array([x, y])) @ rotation(yaw)
    return out


# --------------------------------------------------------------------------- boxes
def box_corners(x: float, y: float, yaw: float, length: float, width: float,
                center_offset: float = 0.0) -> np.ndarray:
    """4x2 corners of an oriented box: front-left, front-right, rear-right, rear-left
    (clockwise seen from above; "front" is along `yaw`).

    (x, y) is the box centre, or with `center_offset` a reference point that far behind
    the centre along the heading (e.g. a car's rear axle: offset = axle-to-centre)."""
    c, s = math.cos(yaw), math.sin(yaw)
    hl, hw = length / 2.0, width / 2.0
    local = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
    return local @ np.array([[c, s], [-s, c]]) + np.array([x + center_offset * c,
                                                           y + center_offset * s])


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test of two convex polygons given as Kx2 vertices in order (either
    direction), e.g. two `box_corners`. Touching counts as overlapping."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    for poly in (a, b):
        for k in range(len(poly)):
            e = poly[(k + 1) % len(poly)] - poly[k]
            n = np.array([-e[1], e[0]])
            pa, pb = a @ n, b @ n
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


# --------------------------------------------------------------------------- polylines
def _xy(points) -> np.ndarray:
    return np.asarray(points, dtype=float)[:, :2]


def arc_length(points) -> np.ndarray:
    """Cumulative arc length s (N,) at the vertices of a polyline, starting at 0."""
    p = _xy(points)
    if len(p) < 2:
        return np.zeros(len(p))
    seg = np.hypot(*np.diff(p, axis=0).T)
    return np.concatenate([[0.0], np.cumsum(seg)])


def polyline_length(points) -> float:
    """Total length (m) of a polyline (0 for fewer than two points)."""
    p = _xy(points)
    if len(p) < 2:
        return 0.0
    return float(np.sum(np.hypot(*np.diff(p, axis=0).T)))


def remove_duplicate_points(points, tol: float = 1e-6) -> np.ndarray:
    """Nx2 polyline without the vertices closer than `tol` to their predecessor."""
    p = _xy(points)
    seg = np.hypot(*np.diff(p, axis=0).T)
    return p[np.concatenate([[True], seg > tol])]


def resample_polyline(points, step: float = 1.0, min_segment: float = 0.0) -> np.ndarray:
    """Polyline resampled at (about) `step` metres, both end points kept (evenly spaced:
    ceil(length / step) pieces). With `min_segment` > 0 vertices closer than that to their
    predecessor are dropped first. Fewer than two distinct points come back as they are."""
    p = remove_duplicate_points(points, min_segment) if min_segment > 0 else _xy(points)
    s = arc_length(p)
    if len(p) < 2 or s[-1] <= 1e-9:
        return p.copy()
    n = max(2, int(math.ceil(s[-1] / step)) + 1)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, p[:, 0]), np.interp(t, s, p[:, 1])], axis=1)


def polyline_headings(points) -> np.ndarray:
    """Heading (rad, in (-pi, pi]) at every vertex, from central differences over the
    vertex index (one-sided at the ends)."""
    d = np.gradient(_xy(points), axis=0)
    return np.arctan2(d[:, 1], d[:, 0])


def interpolate_polyline(points, s_cum: np.ndarray, s: float) -> Tuple[float, float, float]:
    """(x, y, heading of the segment) at arc length `s` (clamped to the polyline);
    `s_cum` = `arc_length(points)`."""
    s = min(max(s, 0.0), float(s_cum[-1]))
    i = int(np.searchsorted(s_cum, s, side="right") - 1)
    i = min(max(i, 0), len(points) - 2)
    ds = s_cum[i + 1] - s_cum[i]
    t = 0.0 if ds <= 1e-12 else (s - s_cum[i]) / ds
    a, b = points[i], points[i + 1]
    return (float(a[0] + t * (b[0] - a[0])), float(a[1] + t * (b[1] - a[1])),
            float(math.atan2(b[1] - a[1], b[0] - a[0])))


def project_to_polyline(points, s_cum: np.ndarray, q) -> Tuple[np.ndarray, np.ndarray]:
    """Exact projection of query points (Kx2) on the polyline (nearest segment, brute
    force over all segments) -> (s, d) arrays, d positive left; `s_cum` =
    `arc_length(points)`. Points beyond the ends are extrapolated along the end segments."""
    p = _xy(points)
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


def offset_polyline(points, d: float) -> np.ndarray:
    """Polyline shifted by `d` metres to its left (negative: right) along the vertex
    normals of `polyline_headings`."""
    p = _xy(points)
    h = polyline_headings(p)
    return p + d * np.stack([-np.sin(h), np.cos(h)], axis=1)


def smooth_polyline(points, degree: int = 3) -> np.ndarray:
    """A noisy, roughly straight-to-gently-curved polyline (a lane centre from perceived
    lines) smoothed by a least-squares polynomial of `degree` in its principal-axis frame,
    keeping its points' order and along-axis positions. Perceived centres wiggle by
    +-0.3-0.5 m every few metres, i.e. curvatures up to 0.2 1/m on a straight street, which
    the planner reads as lateral acceleration at speed. Returns the input unchanged when it
    folds back along its principal axis (a tight curve: not a function of the axis)."""
    p = _xy(points).astype(float)
    if len(p) < degree + 2:
        return p.copy()
    c = p.mean(axis=0)
    _, _, vt = np.linalg.svd(p - c, full_matrices=False)
    u, n = vt[0], np.array([-vt[0][1], vt[0][0]])
    a, b = (p - c) @ u, (p - c) @ n
    da = np.diff(a)
    if not (np.all(da > 0) or np.all(da < 0)):
        return p.copy()
    coef = np.polyfit(a, b, degree)
    return c + np.outer(a, u) + np.outer(np.polyval(coef, a), n)


def fit_velocity(t, xy) -> Tuple[float, float]:
    """Least-squares velocity (vx, vy) of positions `xy` (N x 2) sampled at times `t` (N,):
    the slope of a straight-line fit, robust to per-sample position noise. Needs a span of
    time (t not all equal)."""
    t = np.asarray(t, dtype=float)
    p = np.asarray(xy, dtype=float)
    tc = t - t.mean()
    vx, vy = tc @ (p - p.mean(axis=0)) / (tc @ tc)
    return float(vx), float(vy)
