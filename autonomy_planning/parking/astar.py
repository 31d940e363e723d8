"""A* over the motion primitives, with three heuristics:

- "euclid": min cost per metre x (straight-line distance to the goal point - goal radius),
- "route":  the same factor x a grid shortest-path distance (8-connected Dijkstra from the
  goal on a raster where the rear axle fits, ignoring heading), scaled by cos(22.5 deg) and
  reduced by one cell so it never exceeds the true geodesic distance (admissible),
- "zero":   Dijkstra (uniform-cost search).

Closed set: (cell of `xy_res`, heading bin, last direction) as in hybrid A*; with
`xy_res=None` states are only merged when identical (exact search over the primitive
graph, used by the optimality tests). `expanded` counts nodes popped and expanded.
"""
from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from autonomy_planning.parking.primitives import SearchSpace


@dataclass
class SearchResult:
    success: bool
    cost: float
    expanded: int
    path: List[tuple] = field(default_factory=list)   # [(x, y, h, prev_dir, prim, goal_k)]
    wall_s: float = 0.0
    capped: bool = False
    method: str = ""


class RouteHeuristic:
    """Grid shortest-path distance (m) from every cell to the goal, ignoring heading."""

    def __init__(self, space: SearchSpace, res: float = 0.25, axle_clearance: float = 1.0):
        g = space.grid
        self.res = res
        xmin, ymin, xmax, ymax = space.lot.bounds
        self.x0, self.y0 = xmin, ymin
        nx = int(math.ceil((xmax - xmin) / res))
        ny = int(math.ceil((ymax - ymin) / res))
        self.nx, self.ny = nx, ny
        xs = xmin + (np.arange(nx) + 0.5) * res
        ys = ymin + (np.arange(ny) + 0.5) * res
        X, Y = np.meshgrid(xs, ys, indexing="ij")
        # the rear axle of any collision-free pose has at least this clearance (it lies
        # inside the first disk, whose centre needs r_need); stay below it (raster error)
        need = min(axle_clearance, space.r_need - abs(space.disk_offs[0])) - res
        free = g.clearance_at(X, Y) >= need
        idx = np.arange(nx * ny).reshape(nx, ny)
        rows, cols, w = [], [], []
        for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1)):
            j0, j1 = max(0, -dy), ny - max(0, dy)
            a = free[0:nx - dx, j0:j1]
            b = free[dx:nx, j0 + dy:j1 + dy]
            ia = idx[0:nx - dx, j0:j1]
            ib = idx[dx:nx, j0 + dy:j1 + dy]
            m = a & b
            rows.append(ia[m])
            cols.append(ib[m])
            w.append(np.full(int(m.sum()), res * math.hypot(dx, dy)))
        rows = np.concatenate(rows)
        cols = np.concatenate(cols)
        w = np.concatenate(w)
        G = coo_matrix((np.concatenate([w, w]), (np.concatenate([rows, cols]),
                                                 np.concatenate([cols, rows]))),
                       shape=(nx * ny, nx * ny)).tocsr()
        gx, gy = space.goal_xy
        near = (np.hypot(X - gx, Y - gy) <= space.goal_radius) & free
        sources = idx[near]
        if len(sources) == 0:
            gi = min(max(int((gx - xmin) / res), 0), nx - 1)
            gj = min(max(int((gy - ymin) / res), 0), ny - 1)
            sources = np.array([idx[gi, gj]])
        dist = dijkstra(G, directed=False, indices=sources, min_only=True)
        # 8-connected paths overestimate straight lines by up to 1/cos(22.5 deg)
        dist = dist * math.cos(math.pi / 8) - res * math.sqrt(2.0)
        dist = np.where(np.isfinite(dist), np.maximum(dist, 0.0), np.inf)
        self.dist = dist.reshape(nx, ny)
        self.flat = self.dist.ravel()

    def lookup(self, x, y):
        ix = np.clip(((np.asarray(x) - self.x0) / self.res).astype(np.int64), 0, self.nx - 1)
        iy = np.clip(((np.asarray(y) - self.y0) / self.res).astype(np.int64), 0, self.ny - 1)
        return self.flat[ix * self.ny + iy]


def make_heuristic(space: SearchSpace, kind: str):
    k = space.cfg.min_cost_per_m
    gx, gy = space.goal_xy
    R = space.goal_radius
    if kind == "zero":
        return lambda x, y: np.zeros(np.shape(x))
    if kind == "euclid":
        return lambda x, y: k * np.maximum(np.hypot(np.asarray(x) - gx, np.asarray(y) - gy) - R, 0.0)
    if kind == "route":
        rh = RouteHeuristic(space)
        return lambda x, y: k * rh.lookup(x, y)
    raise ValueError(f"unknown heuristic {kind!r}")


def astar(space: SearchSpace, heuristic: str = "euclid", max_nodes: int = 2_000_000,
          max_seconds: float = math.inf, weight: float = 1.0) -> SearchResult:
    t0 = time.perf_counter()
    hfun = make_heuristic(space, heuristic)
    cfg = space.cfg
    nh = cfg.n_headings
    res = cfg.xy_res
    sx, sy, syaw = space.start
    h0 = space.h0
    # node storage: parallel lists; node id = index
    NX, NY, NH, NG, NPAR, NPRIM, NGK, NDIR = [], [], [], [], [], [], [], []

    def key_of(x, y, h, d):
        if res is None:
            return (round(x * 1e6), round(y * 1e6), h, d)
        return (int(math.floor(x / res)), int(math.floor(y / res)), h, d)

    best_g = {}
    closed = set()
    heap = []
    NX.append(sx); NY.append(sy); NH.append(h0); NG.append(0.0)
    NPAR.append(-1); NPRIM.append(-1); NGK.append(-1); NDIR.append(0)
    best_g[key_of(sx, sy, h0, 0)] = 0.0
    hs = float(hfun(np.array([sx]), np.array([sy]))[0])
    heapq.heappush(heap, (weight * hs, 0.0, 0, False))
    if not space.pose_free(sx, sy, syaw):
        return SearchResult(False, math.inf, 0, wall_s=time.perf_counter() - t0, method=heuristic)
    expanded = 0
    goal_node = -1
    capped = False
    prim_dir = space.prim_dir
    while heap:
        f, g, nid, is_goal = heapq.heappop(heap)
        if is_goal:
            goal_node = nid
            break
        x, y, h, d = NX[nid], NY[nid], NH[nid], NDIR[nid]
        key = key_of(x, y, h, d)
        if key in closed:
            continue
        closed.add(key)
        if expanded >= max_nodes or (time.perf_counter() - t0) > max_seconds:
            capped = True
            break
        expanded += 1
        valid, goal_k, ex, ey, eh, cost = space.expand(x, y, h, d)
        if not valid.any():
            continue
        ng = g + cost
        hv = hfun(ex, ey)
        for p in np.flatnonzero(valid).tolist():
            gk = int(goal_k[p])
            g2 = float(ng[p])
            x2, y2, h2, d2 = float(ex[p]), float(ey[p]), int(eh[p]), int(prim_dir[p])
            if gk >= 0:
                k2 = ("goal", nid, p)
            else:
                k2 = key_of(x2, y2, h2, d2)
                if k2 in closed:
                    continue
                old = best_g.get(k2)
                if old is not None and old <= g2:
                    continue
                best_g[k2] = g2
            new_id = len(NX)
            NX.append(x2); NY.append(y2); NH.append(h2); NG.append(g2)
            NPAR.append(nid); NPRIM.append(p); NGK.append(gk); NDIR.append(d2)
            hh = 0.0 if gk >= 0 else float(hv[p])
            if not math.isfinite(hh):
                continue
            heapq.heappush(heap, (g2 + weight * hh, g2, new_id, gk >= 0))
    wall = time.perf_counter() - t0
    if goal_node < 0:
        return SearchResult(False, math.inf, expanded, wall_s=wall, capped=capped, method=heuristic)
    # reconstruct: list of (x, y, h, prev_dir, prim_to_next, goal_k_of_that_prim)
    chain = []
    n = goal_node
    while n >= 0:
        chain.append(n)
        n = NPAR[n]
    chain.reverse()
    path = []
    for i, n in enumerate(chain):
        if i + 1 < len(chain):
            nxt = chain[i + 1]
            path.append((NX[n], NY[n], NH[n], NDIR[n], NPRIM[nxt], NGK[nxt]))
        else:
            path.append((NX[n], NY[n], NH[n], NDIR[n], -1, -1))
    return SearchResult(True, NG[goal_node], expanded, path, wall, False, heuristic)
