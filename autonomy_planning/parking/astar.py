"""A* over the motion primitives, with three heuristics:

- "euclid": min cost per metre x (straight-line distance to the goal point - goal radius),
- "route":  the same factor x a grid shortest-path distance (16-connected Dijkstra from
  the goal on a raster where the rear axle fits, ignoring heading), scaled by 1/1.028 and
  reduced by one cell diagonal so that it never exceeds the true geodesic distance, and
  never below the Euclidean one (max of two admissible heuristics),
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

    def __init__(self, space: SearchSpace, res: float = 0.25):
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
        # the rear axle of any collision-free pose is at least min(rear overhang, half
        # width) from every obstacle; subtract the clearance raster's error and half a
        # route cell diagonal so that no reachable cell is cut off (admissible)
        vp = space.vp
        need = min(vp.rear_overhang, vp.width / 2.0) - 2.0 * g.res * math.sqrt(0.5) \
            - res * math.sqrt(0.5)
        free = g.clearance_at(X, Y) >= need
        idx = np.arange(nx * ny).reshape(nx, ny)
        rows, cols, w = [], [], []
        for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1), (1, 2), (2, 1), (1, -2), (2, -1)):
            j0, j1 = max(0, -dy), ny - max(0, dy)   # knight moves may cut corners: shorter = admissible
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
        # 16-connected paths overestimate straight lines by up to ~2.7 %
        dist = dist / 1.028 - res * math.sqrt(2.0)
        dist = np.where(np.isfinite(dist), np.maximum(dist, 0.0), np.inf)
        self.dist = dist.reshape(nx, ny)
        pad = int(math.ceil((space.cfg.step + 1.0) / res))
        padded = np.full((nx + 2 * pad, ny + 2 * pad), np.inf)
        padded[pad:pad + nx, pad:pad + ny] = self.dist
        self.flat = padded.ravel()
        self.x0, self.y0 = xmin - pad * res, ymin - pad * res
        self.nx, self.ny = nx + 2 * pad, ny + 2 * pad
        self.inv = 1.0 / res

    def lookup(self, x, y):
        """Distance at points; the grid is padded by `pad` cells of inf beyond the lot so
        that end points of primitives from any node inside the lot need no clipping."""
        ix = ((x - self.x0) * self.inv).astype(np.int64)
        iy = ((y - self.y0) * self.inv).astype(np.int64)
        ix *= self.ny
        ix += iy
        return self.flat[ix]


def make_heuristic(space: SearchSpace, kind: str):
    k = space.cfg.min_cost_per_m
    gx, gy = space.goal_xy
    R = space.goal_radius
    if kind == "zero":
        return lambda x, y: np.zeros(np.shape(x))
    if kind == "euclid":
        def h_euclid(x, y):
            d = np.hypot(x - gx, y - gy)
            d -= R
            np.maximum(d, 0.0, out=d)
            d *= k
            return d
        return h_euclid
    if kind == "route":
        rh = RouteHeuristic(space)

        def h_route(x, y):      # max of two admissible heuristics is admissible
            d = np.hypot(x - gx, y - gy)
            d -= R
            return k * np.maximum(rh.lookup(x, y), d)
        return h_route
    raise ValueError(f"unknown heuristic {kind!r}")


def astar(space: SearchSpace, heuristic: str = "euclid", max_nodes: int = 2_000_000,
          max_seconds: float = math.inf, weight: float = 1.0) -> SearchResult:
    t0 = time.perf_counter()
    hfun = make_heuristic(space, heuristic)
    sx, sy, syaw = space.start
    h0 = space.h0
    keys_of = _state_keys(space)
    # nodes: (x, y, h, dir, g, parent, prim, goal_k)
    nodes = [(sx, sy, h0, 0, 0.0, -1, -1, -1)]
    start_key = keys_of(np.array([sx]), np.array([sy]), np.array([h0]), np.array([1]))[0]
    best_g = {start_key: 0.0}
    closed = set()
    heap = []
    hs = float(hfun(np.array([sx]), np.array([sy]))[0])
    if not space.pose_free(sx, sy, syaw):
        return SearchResult(False, math.inf, 0, wall_s=time.perf_counter() - t0, method=heuristic)
    heapq.heappush(heap, (weight * hs, 0.0, 0, start_key))
    expanded = 0
    goal_node = -1
    capped = False
    pop = heapq.heappop
    while heap:
        f, g, nid, key = pop(heap)
        if key is None:                      # a goal entry
            goal_node = nid
            break
        if key in closed:
            continue
        closed.add(key)
        if expanded >= max_nodes or (expanded & 1023 == 0 and time.perf_counter() - t0 > max_seconds):
            capped = True
            break
        expanded += 1
        _push_successors(space, nodes, nid, g, heap, best_g, closed, hfun, keys_of, weight)
    wall = time.perf_counter() - t0
    if goal_node < 0:
        return SearchResult(False, math.inf, expanded, wall_s=wall, capped=capped, method=heuristic)
    return SearchResult(True, nodes[goal_node][4], expanded, _reconstruct(nodes, goal_node),
                        wall, False, heuristic)


def _state_keys(space: SearchSpace):
    """keys_of(x, y, h, dir01) -> hashable state keys: (cell, heading, direction) on the
    `xy_res` grid, or rounded exact coordinates without one (tests)."""
    cfg = space.cfg
    nh = cfg.n_headings
    res = cfg.xy_res
    if res is None:               # exact states (tests): keys are rounded coordinates
        def keys_of(x, y, h, d01):
            return list(zip(np.round(x * 1e6).astype(np.int64).tolist(),
                            np.round(y * 1e6).astype(np.int64).tolist(), h.tolist(), d01.tolist()))
        return keys_of
    inv = 1.0 / res
    M = int(math.ceil((space.lot.bounds[3] - space.lot.bounds[1]) * inv)) + 64
    ox = int(-math.floor(space.lot.bounds[0] * inv)) + 32
    oy = int(-math.floor(space.lot.bounds[1] * inv)) + 32

    def keys_of(x, y, h, d01):
        kx = np.floor(x * inv).astype(np.int64) + ox
        ky = np.floor(y * inv).astype(np.int64) + oy
        return (((kx * M + ky) * nh + h) * 2 + d01).tolist()
    return keys_of


def _push_successors(space: SearchSpace, nodes: list, nid: int, g: float, heap: list,
                     best_g: dict, closed: set, hfun, keys_of, weight: float) -> None:
    """Expand node `nid` (cost so far g): push every collision-free primitive's end state
    that improves on its best known cost, and a goal entry (key None, f = g) for every
    primitive that ends in the goal region."""
    x, y, h, d = nodes[nid][:4]
    valid, goal_k, ex, ey, eh, cost = space.expand(x, y, h, d)
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return
    push = heapq.heappush
    prim_dir = space.prim_dir
    exs, eys, ehs = ex[idx], ey[idx], eh[idx]
    ng = (g + cost[idx]).tolist()
    hv = hfun(exs, eys).tolist()
    keys = keys_of(exs, eys, ehs, (prim_dir[idx] > 0).astype(np.int64))
    gks = goal_k[idx].tolist()
    exl, eyl, ehl = exs.tolist(), eys.tolist(), ehs.tolist()
    dl = prim_dir[idx].tolist()
    for j, p in enumerate(idx.tolist()):
        g2 = ng[j]
        gk = gks[j]
        if gk >= 0:
            nodes.append((exl[j], eyl[j], ehl[j], dl[j], g2, nid, p, gk))
            push(heap, (g2, g2, len(nodes) - 1, None))
            continue
        k2 = keys[j]
        if k2 in closed:
            continue
        old = best_g.get(k2)
        if old is not None and old <= g2:
            continue
        hh = hv[j]
        if hh == math.inf:
            continue
        best_g[k2] = g2
        nodes.append((exl[j], eyl[j], ehl[j], dl[j], g2, nid, p, -1))
        push(heap, (g2 + weight * hh, g2, len(nodes) - 1, k2))


def _reconstruct(nodes: list, goal_node: int) -> list:
    """The path to `goal_node`: list of (x, y, h, dir_in, prim_to_next,
    goal_k_of_that_prim)."""
    chain = []
    n = goal_node
    while n >= 0:
        chain.append(n)
        n = nodes[n][5]
    chain.reverse()
    path = []
    for i, n in enumerate(chain):
        x, y, h, d = nodes[n][:4]
        if i + 1 < len(chain):
            nxt = nodes[chain[i + 1]]
            path.append((x, y, h, d, nxt[6], nxt[7]))
        else:
            path.append((x, y, h, d, -1, -1))
    return path
