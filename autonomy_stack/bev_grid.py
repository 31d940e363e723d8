"""The BEV raster conventions of the stack, written down once (ROS-free, numpy only).

Two layouts exist and every conversion between them goes through this module:

* **Network raster** (`BEVGrid`): the perception network's outputs and training targets.
  Ego-centred in `base_link` (x forward, y left). ``raster[row, col]``: row 0 is the
  *front* edge (x max), column 0 is the *left* edge (y max); cell (r, c) is centred at
  ``(x_max - (r + 0.5) res, y_max - (c + 0.5) res)``. Drawn on screen as stored, it is the
  driver's view from above (forward = up, left = left).
* **OccupancyGrid layout** (nav_msgs/OccupancyGrid, the simulator's label writer):
  ``grid[row, col]`` with ``col`` along +x and ``row`` along +y of the grid frame, cell
  (0, 0) at the grid origin (its lower x, lower y corner); cell (i, j) centred at
  ``(origin_x + (j + 0.5) res, origin_y + (i + 0.5) res)``.

For a network raster, the OccupancyGrid of the same extent has ``origin = (x_min, y_min)``
and ``grid = to_occupancy_layout(raster)`` (= ``raster[::-1, ::-1].T``): the network's
front-left cell lands at the grid's highest x and highest y. Round 1 published the raster
transposed but not flipped, i.e. rotated by 180 degrees; tests/test_bev_convention.py pushes an
asymmetric raster through the messages to keep this true."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np


class BEVGrid:
    """Geometry of a network raster: extent `x_range` x `y_range` metres at `res`."""

    def __init__(self, x_range: Sequence[float], y_range: Sequence[float], res: float):
        self.x_range, self.y_range, self.res = [float(v) for v in x_range], \
            [float(v) for v in y_range], float(res)
        self.H = int(round((self.x_range[1] - self.x_range[0]) / self.res))
        self.W = int(round((self.y_range[1] - self.y_range[0]) / self.res))

    @classmethod
    def from_config(cls, cfg: Dict) -> "BEVGrid":
        """From a perception model config (its `bev` section)."""
        b = cfg["bev"]
        return cls(b["x_range"], b["y_range"], b["resolution"])

    @property
    def shape(self):
        return (self.H, self.W)

    def to_rc(self, xy: np.ndarray) -> np.ndarray:
        """(x, y) metres -> continuous (row, col); cell centres at .5."""
        xy = np.asarray(xy, dtype=float)
        return np.stack([(self.x_range[1] - xy[..., 0]) / self.res,
                         (self.y_range[1] - xy[..., 1]) / self.res], -1)

    def to_xy(self, rc: np.ndarray) -> np.ndarray:
        """Continuous (row, col) -> (x, y) metres."""
        rc = np.asarray(rc, dtype=float)
        return np.stack([self.x_range[1] - rc[..., 0] * self.res,
                         self.y_range[1] - rc[..., 1] * self.res], -1)

    def cell_centre(self, r, c) -> np.ndarray:
        return self.to_xy(np.stack([np.asarray(r) + 0.5, np.asarray(c) + 0.5], -1))

    def cell_centres(self) -> np.ndarray:
        """[H, W, 2] (x, y) of every cell centre."""
        r, c = np.meshgrid(np.arange(self.H), np.arange(self.W), indexing="ij")
        return self.cell_centre(r, c)

    def contains(self, xy) -> np.ndarray:
        xy = np.asarray(xy)
        return ((xy[..., 0] > self.x_range[0]) & (xy[..., 0] < self.x_range[1]) &
                (xy[..., 1] > self.y_range[0]) & (xy[..., 1] < self.y_range[1]))

    def occupancy_origin(self):
        """(x, y) of the OccupancyGrid origin (lower corner) for this raster's extent."""
        return self.x_range[0], self.y_range[0]


def to_occupancy_layout(raster: np.ndarray) -> np.ndarray:
    """Network raster [H (x, front first), W (y, left first)] -> OccupancyGrid layout
    [rows along +y, cols along +x]."""
    return np.ascontiguousarray(np.asarray(raster)[::-1, ::-1].T)


def from_occupancy_layout(grid: np.ndarray) -> np.ndarray:
    """Inverse of `to_occupancy_layout`."""
    return np.ascontiguousarray(np.asarray(grid).T[::-1, ::-1])


def occupancy_cell_centres(shape, resolution: float, origin_xy) -> np.ndarray:
    """[rows, cols, 2] (x, y) in the grid's frame of every OccupancyGrid cell centre."""
    rows, cols = shape
    xs = origin_xy[0] + (np.arange(cols) + 0.5) * resolution
    ys = origin_xy[1] + (np.arange(rows) + 0.5) * resolution
    X, Y = np.meshgrid(xs, ys)
    return np.stack([X, Y], -1)
