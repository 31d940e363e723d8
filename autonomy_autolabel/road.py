"""Road surface semantics fused in `odom` over a whole clip, and over several trips (pure
numpy + OpenCV, no ROS, no torch).

`RoadGrid` is a sparse grid of square tiles in odom (`cell` metres, tiles created where a
frame looked, so a clip of any length costs memory in proportion to the area driven past,
not to its duration). Each frame's segmentation probabilities (network raster, ego frame)
are resampled bilinearly onto the odom cells under the raster's footprint and accumulated
as a weighted mean, weight `1 / (1 + (r / range_scale_m)^2)` at range r from the ego:
a place is seen from many poses over the clip and the near views count most. The value
of a cell is the weighted mean probability of each layer (drivable, lane, edge); cells
never seen are unknown.

What it is not: the keynote's implicit MLP re-projected into every camera. The network
gives no height, so the grid holds semantics only (the road is taken as flat: z = 0).

Multi-trip: `fuse_trips(grids)` aligns every trip to the first by its road features
(phase correlation of the lane + edge layers over the common area: a translation in odom)
and adds their sums, so a place one trip saw badly or not at all gets the other trips'
labels.
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.geometry import from_frame, to_frame

TILE = 128


class RoadGrid:
    def __init__(self, layers: Sequence[str], cell: float = 0.5, range_scale_m: float = 15.0):
        self.layers = list(layers)
        self.cell = float(cell)
        self.range_scale_m = float(range_scale_m)
        self.tiles: Dict[Tuple[int, int], np.ndarray] = {}   # (ti, tj) -> [L + 1, TILE, TILE]
        self.frames = 0

    # ------------------------------------------------------------------ accumulation
    def _index(self, xy: np.ndarray) -> np.ndarray:
        return np.floor(np.asarray(xy, float) / self.cell).astype(np.int64)

    def _block(self, i0: int, j0: int, i1: int, j1: int, create: bool):
        """Yield (tile array, tile slice, block slice) covering global cells [i0, i1) x
        [j0, j1) (i along x, j along y)."""
        for ti in range(i0 // TILE, (i1 - 1) // TILE + 1):
            for tj in range(j0 // TILE, (j1 - 1) // TILE + 1):
                key = (ti, tj)
                if key not in self.tiles:
                    if not create:
                        continue
                    self.tiles[key] = np.zeros((len(self.layers) + 1, TILE, TILE), np.float32)
                a0, a1 = max(i0, ti * TILE), min(i1, (ti + 1) * TILE)
                b0, b1 = max(j0, tj * TILE), min(j1, (tj + 1) * TILE)
                yield (self.tiles[key], (slice(a0 - ti * TILE, a1 - ti * TILE), slice(b0 - tj * TILE, b1 - tj * TILE)),
                       (slice(a0 - i0, a1 - i0), slice(b0 - j0, b1 - j0)))

    def add_frame(self, seg: np.ndarray, grid: BEVGrid, pose: Tuple[float, float, float]) -> None:
        """seg [L, H, W] probabilities (network raster of `grid`, ego frame at `pose`)."""
        corners = np.array([[grid.x_range[a], grid.y_range[b]] for a in (0, 1) for b in (0, 1)])
        c = from_frame(corners, *pose)
        (i0, j0), (i1, j1) = self._index(c.min(0)), self._index(c.max(0)) + 1
        ii, jj = np.meshgrid(np.arange(i0, i1), np.arange(j0, j1), indexing="ij")
        centres = (np.stack([ii, jj], -1) + 0.5) * self.cell                     # odom
        ego = to_frame(centres.reshape(-1, 2), *pose).reshape(centres.shape)
        rc = grid.to_rc(ego) - 0.5                                                 # pixel coords
        inside = grid.contains(ego)
        r = np.hypot(ego[..., 0], ego[..., 1])
        w = np.where(inside, 1.0 / (1.0 + (r / self.range_scale_m) ** 2), 0.0).astype(np.float32)
        mx, my = rc[..., 1].astype(np.float32), rc[..., 0].astype(np.float32)
        vals = [cv2.remap(np.ascontiguousarray(seg[k], np.float32), mx, my, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE) for k in range(len(self.layers))]
        block = np.stack([v * w for v in vals] + [w])
        for tile, ts, bs in self._block(int(i0), int(j0), int(i1), int(j1), True):
            tile[(slice(None),) + ts] += block[(slice(None),) + bs]
        self.frames += 1

    # ------------------------------------------------------------------ queries
    def sample(self, xy: np.ndarray) -> np.ndarray:
        """[..., 2] odom points -> [..., L] mean probabilities (nan where never seen)."""
        xy = np.asarray(xy, float)
        flat = xy.reshape(-1, 2)
        idx = self._index(flat)
        out = np.full((len(flat), len(self.layers)), np.nan, np.float32)
        ti, tj = idx[:, 0] // TILE, idx[:, 1] // TILE
        for key in set(zip(ti.tolist(), tj.tolist())):
            tile = self.tiles.get(key)
            if tile is None:
                continue
            sel = (ti == key[0]) & (tj == key[1])
            a, b = idx[sel, 0] - key[0] * TILE, idx[sel, 1] - key[1] * TILE
            wsum = tile[-1, a, b]
            ok = wsum > 0
            vals = tile[:-1, a, b] / np.where(ok, wsum, 1.0)
            out[np.nonzero(sel)[0][ok]] = vals[:, ok].T
        return out.reshape(xy.shape[:-1] + (len(self.layers),))

    def ego_raster(self, grid: BEVGrid, pose: Tuple[float, float, float]) -> np.ndarray:
        """The fused labels as a network raster [L, H, W] of `grid` in the ego frame at
        `pose` (unknown cells 0)."""
        centres = grid.cell_centres()
        v = self.sample(from_frame(centres.reshape(-1, 2), *pose).reshape(centres.shape))
        return np.nan_to_num(np.moveaxis(v, -1, 0), nan=0.0)

    def bounds(self) -> Optional[Tuple[int, int, int, int]]:
        """(i0, j0, i1, j1) global cell bounds of the tiles, None when empty."""
        if not self.tiles:
            return None
        k = np.array(list(self.tiles))
        return (int(k[:, 0].min() * TILE), int(k[:, 1].min() * TILE),
                int((k[:, 0].max() + 1) * TILE), int((k[:, 1].max() + 1) * TILE))

    def dense(self, bounds: Tuple[int, int, int, int]) -> np.ndarray:
        """[L + 1, i1 - i0, j1 - j0] weighted sums + weights over `bounds` (zeros where unseen)."""
        i0, j0, i1, j1 = bounds
        out = np.zeros((len(self.layers) + 1, i1 - i0, j1 - j0), np.float32)
        for tile, ts, bs in self._block(i0, j0, i1, j1, False):
            out[(slice(None),) + bs] += tile[(slice(None),) + ts]
        return out

    def add_dense(self, sums: np.ndarray, i0: int, j0: int) -> None:
        i1, j1 = i0 + sums.shape[1], j0 + sums.shape[2]
        for tile, ts, bs in self._block(i0, j0, i1, j1, True):
            tile[(slice(None),) + ts] += sums[(slice(None),) + bs]

    @property
    def memory_bytes(self) -> int:
        return sum(t.nbytes for t in self.tiles.values())


# ---------------------------------------------------------------------- multi-trip
def _feature_image(dense: np.ndarray, layers: List[str]) -> np.ndarray:
    w = np.maximum(dense[-1], 1e-6)
    feats = [dense[layers.index(n)] / w for n in ("lane", "edge") if n in layers]
    img = np.sum(feats, 0) if feats else dense[0] / w
    return np.where(dense[-1] > 0, img, 0.0).astype(np.float32)


def align_trip(base: RoadGrid, trip: RoadGrid, max_shift_m: float = 8.0) -> Tuple[float, float, float]:
    """Translation (dx, dy) in metres that moves `trip` onto `base`, from the phase
    correlation of their road-feature layers over the union of both areas, and its
    response (0..1; below ~0.05 the trips share too little to align: (0, 0) is returned)."""
    bb, bt = base.bounds(), trip.bounds()
    if bb is None or bt is None:
        return 0.0, 0.0, 0.0
    b = (min(bb[0], bt[0]), min(bb[1], bt[1]), max(bb[2], bt[2]), max(bb[3], bt[3]))
    fa = _feature_image(base.dense(b), base.layers)
    fb = _feature_image(trip.dense(b), trip.layers)
    win = cv2.createHanningWindow(fa.shape[::-1], cv2.CV_32F)
    (sj, si), resp = cv2.phaseCorrelate(fb.astype(np.float64), fa.astype(np.float64), win.astype(np.float64))
    dx, dy = si * base.cell, sj * base.cell
    if resp < 0.05 or math.hypot(dx, dy) > max_shift_m:
        return 0.0, 0.0, float(resp)
    return float(dx), float(dy), float(resp)


def fuse_trips(grids: Iterable[RoadGrid], align: bool = True) -> Tuple[RoadGrid, List[Tuple[float, float, float]]]:
    """One RoadGrid from several trips through the same place: each trip shifted onto the
    first by whole cells (`align_trip`), sums and weights added. Returns the fused grid
    and each trip's (dx, dy, response)."""
    grids = list(grids)
    if not grids:
        raise ValueError("fuse_trips needs at least one RoadGrid")
    base = grids[0]
    fused = RoadGrid(base.layers, base.cell, base.range_scale_m)
    shifts = []
    for g in grids:
        if g.layers != base.layers or g.cell != base.cell:
            raise ValueError(f"trips differ in layers/cell: {g.layers}/{g.cell} vs {base.layers}/{base.cell}")
        dx, dy, resp = align_trip(base, g) if (align and g is not base) else (0.0, 0.0, 1.0)
        shifts.append((dx, dy, resp))
        b = g.bounds()
        if b is None:
            continue
        di, dj = int(round(dx / g.cell)), int(round(dy / g.cell))
        fused.add_dense(g.dense(b), b[0] + di, b[1] + dj)
        fused.frames += g.frames
    return fused, shifts
