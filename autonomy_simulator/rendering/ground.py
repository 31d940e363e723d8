"""The ground as the renderer draws it: top-down rasters (colour + semantic class) of
asphalt, road edges, kerbs and lane paint around a centre, with seeded value noise for
wear and patches; the key that tells when the static road geometry changed."""
import hashlib
from typing import List, Optional

import cv2
import numpy as np

from autonomy_simulator.rendering.semantics import (ASPHALT, CURB_COLOR, EDGE_COLOR, SEM_CURB,
                                                    SEM_GROUND, SEM_LANE_MARKING, SEM_ROAD,
                                                    SEM_ROAD_EDGE)
from autonomy_simulator.scene import SceneSnapshot


def noise_texture(seed: int, size: int = 512) -> np.ndarray:
    """Tileable multi-octave value noise in [0, 255] (uint8), seeded."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for cells in (8, 16, 32, 64, 128, 256, 512):
        g = rng.random((cells, cells)).astype(np.float32)
        g = np.pad(g, ((0, 1), (0, 1)), mode="wrap")
        up = cv2.resize(g, (size + size // cells, size + size // cells),
                        interpolation=cv2.INTER_CUBIC if cells < size else cv2.INTER_NEAREST)
        acc += amp * up[:size, :size]
        total += amp
        amp *= 0.62
    acc /= total
    acc = (acc - acc.min()) / max(float(acc.max() - acc.min()), 1e-6)
    return (acc * 255).astype(np.uint8)


def _dash_segments(pts: np.ndarray, dash: float, gap: float) -> List[np.ndarray]:
    """Split a polyline into painted pieces (dash, gap pattern along the arc length)."""
    pts = np.asarray(pts, float)[:, :2]
    if dash <= 0 or gap <= 0 or len(pts) < 2:
        return [pts]
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = s[-1]
    out = []
    period = dash + gap
    start = 0.0
    while start < total:
        end = min(start + dash, total)
        inner = s[(s > start) & (s < end)]
        ss = np.concatenate([[start], inner, [end]])
        xy = np.stack([np.interp(ss, s, pts[:, 0]), np.interp(ss, s, pts[:, 1])], 1)
        out.append(xy)
        start += period
    return out


class GroundLayer:
    """A top-down raster of the ground (colour RGB + class) around a centre."""

    def __init__(self, size: int, res: float):
        self.size = int(size)
        self.res = float(res)
        self.x0 = 0.0
        self.y0 = 0.0
        self.center = (1e18, 1e18)
        self.key = None

    def world_to_px(self, pts: np.ndarray) -> np.ndarray:
        p = (np.asarray(pts, float)[:, :2] - [self.x0, self.y0]) / self.res - 0.5
        return np.round(p * 16).astype(np.int32)   # shift = 4 (1/16 pixel)

    def build(self, snap: SceneSnapshot, cx: float, cy: float, noise: Optional[np.ndarray] = None):
        n, r = self.size, self.res
        self.center = (cx, cy)
        self.x0 = cx - n * r / 2
        self.y0 = cy - n * r / 2
        col = np.empty((n, n, 3), np.uint8)
        col[:] = (np.asarray(snap.ground_color) * 255).astype(np.uint8)
        cls = np.full((n, n), SEM_GROUND, np.uint8)
        polys = [self.world_to_px(p) for p in snap.drivable_polygons if len(p) >= 3]
        if polys:
            cv2.fillPoly(col, polys, tuple(int(c * 255) for c in ASPHALT), cv2.LINE_8, 4)
            cv2.fillPoly(cls, polys, SEM_ROAD, cv2.LINE_8, 4)
        ew = max(1, int(round(0.25 / r)))
        for e in snap.road_edges:
            pts = self.world_to_px(e.points)
            cv2.polylines(col, [pts], False, tuple(int(c * 255) for c in EDGE_COLOR), ew,
                          cv2.LINE_AA, 4)
            cv2.polylines(cls, [pts], False, SEM_ROAD_EDGE, ew, cv2.LINE_8, 4)
        for c in snap.curbs:
            pts = self.world_to_px(c.points)
            cv2.polylines(col, [pts], False, tuple(int(v * 255) for v in CURB_COLOR),
                          max(1, int(round(0.2 / r))), cv2.LINE_AA, 4)
            cv2.polylines(cls, [pts], False, SEM_CURB, max(1, int(round(0.2 / r))), cv2.LINE_8, 4)
        paint_col = np.zeros_like(col)
        paint_a = np.zeros((n, n), np.uint8)
        for pl in snap.painted_lines:
            w_px = pl.width / r
            th = max(1, int(round(w_px)))
            alpha = int(255 * min(1.0, w_px))
            pieces = [self.world_to_px(p) for p in _dash_segments(pl.line.points, pl.dash_length,
                                                                   pl.gap_length) if len(p) >= 2]
            if not pieces:
                continue
            c = tuple(int(v * 255) for v in pl.color)
            cv2.polylines(paint_col, pieces, False, c, th, cv2.LINE_8, 4)
            cv2.polylines(paint_a, pieces, False, alpha, th, cv2.LINE_AA, 4)
            cv2.polylines(cls, pieces, False, SEM_LANE_MARKING, th, cv2.LINE_8, 4)
        a = (paint_a.astype(np.float32) / 255.0)[..., None]
        col = col * (1 - a) + paint_col * a
        if noise is not None:
            # low-frequency variation (patches, wear) sampled at world coordinates
            ns = noise.shape[0]
            for period, amp in ((9.0, 0.22), (77.0, 0.25)):
                cells = (np.arange(n) + 0.5) * r
                ix = np.floor((self.x0 + cells) / period * ns).astype(np.int64) % ns
                iy = np.floor((self.y0 + cells) / period * ns).astype(np.int64) % ns
                nz = noise[iy[:, None], ix[None, :]]
                col *= (1.0 + amp * (nz.astype(np.float32) / 255.0 - 0.5))[..., None]
        return np.clip(col, 0, 255).astype(np.uint8), cls



def ground_key(snap: SceneSnapshot) -> str:
    """Hash of the static road geometry of a snapshot (drivable polygons, paint, kerbs,
    edges, verge colour): the ground rasters and kerb meshes are rebuilt when it changes."""
    geo = hashlib.sha1()
    for p in snap.drivable_polygons:
        geo.update(np.ascontiguousarray(p, np.float64).tobytes())
    for pl in snap.painted_lines:
        geo.update(np.ascontiguousarray(pl.line.points, np.float64).tobytes())
        geo.update(repr((pl.width, pl.color, pl.dash_length, pl.gap_length)).encode())
    for rl in list(snap.curbs) + list(snap.road_edges):
        geo.update(np.ascontiguousarray(rl.points, np.float64).tobytes())
        geo.update(repr(rl.height).encode())
    geo.update(repr(tuple(snap.ground_color)).encode())
    return geo.hexdigest()


def ground_quad(ex: float, ey: float, half_size: float, z: float = -0.005) -> np.ndarray:
    """6x3 float32 vertices of a square (two triangles) of half side `half_size` around
    (ex, ey) at height `z` (slightly below z = 0)."""
    S = half_size
    quad = np.array([[ex - S, ey - S], [ex + S, ey - S], [ex + S, ey + S],
                     [ex - S, ey - S], [ex + S, ey + S], [ex - S, ey + S]])
    v = np.zeros((6, 3), np.float32)
    v[:, :2] = quad
    v[:, 2] = z
    return v
