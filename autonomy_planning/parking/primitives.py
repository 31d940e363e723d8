"""The discrete, kinematically feasible search space shared by A* and MCTS.

Motion primitives (hybrid-A* style): constant-curvature arcs of length `step` driven
forward or in reverse with a few steering settings whose heading change is an exact
multiple of the heading bin, so that headings stay on the lattice phi0 + k * dtheta
(phi0 = start yaw modulo dtheta) while positions stay continuous: every path is exactly a
sequence of arcs with curvature <= 1 / min turning radius.

Collision checking: the car's rectangle is covered by `n_disks` disks along its axis; a
pose is free when the clearance field (exact Euclidean distance transform of a
conservative occupancy raster) at every disk centre exceeds the disk radius plus a margin
covering the raster error and the gap between sampled poses along the arc (samples every
`check_ds` metres). Expansion is vectorised: one numpy pass checks all primitives and all
their samples of a node.

Costs (explicit, per primitive): distance (m) + traversal time (s; slower in reverse) +
steering comfort (|heading change|) + a penalty per direction change (gear change at
standstill). Collision is an infinite cost (the primitive is not generated). The goal test
runs on every sample of a primitive, so a path may end part-way along its last arc.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from scipy import fft as sfft

from autonomy_stack.geometry import wrap_angle
from autonomy_vehicle.vehicle_model import VehicleParams
from autonomy_planning.parking.lot import LotGrid, Lot, Pose


def _arc(d: int, kappa: float, s: np.ndarray):
    """Pose offsets (dx, dy, dyaw) after travelling s metres forward (d=1) or in reverse
    (d=-1) with steering curvature kappa, starting at the origin facing +x."""
    if abs(kappa) < 1e-12:
        lx, ly = s, np.zeros_like(s)
    else:
        lx, ly = np.sin(kappa * s) / kappa, (1 - np.cos(kappa * s)) / kappa
    if d > 0:
        return lx, ly, kappa * s
    return -lx, ly, -kappa * s


class CSpace:
    """Configuration-space obstacle raster: free[b, ix, iy] is True when the car with its
    rear axle anywhere in cell (ix, iy) and its yaw anywhere in heading bin b (bins centred
    on phi0 + b * 2 pi / n) does not touch an obstacle cell. Built by correlating the
    conservative occupancy raster with the footprint swept over the bin, inflated by the
    raster error and half the sample spacing along an arc (FFT). Bins are computed lazily,
    on first use (`ensure`), so a search that visits few headings pays for few bins."""

    def __init__(self, grid: LotGrid, phi0: float, cfg: "SearchConfig", vp: VehicleParams):
        self.grid, self.phi0, self.vp = grid, float(phi0), vp
        n = cfg.n_coll_headings
        self.n = n
        self.dbin = 2.0 * math.pi / n
        res = grid.res
        rmin = vp.wheelbase / math.tan(vp.max_steer)
        reach = math.hypot(vp.length - vp.rear_overhang, vp.width / 2.0)
        self.reach = reach
        # reference point anywhere in its cell + obstacle cell centre test + half sample gap
        # (translation, plus the rotation it brings at the farthest corner) + safety
        half_gap = 0.5 * cfg.check_ds * (1.0 + reach / rmin)
        self.margin = 2.0 * res * math.sqrt(0.5) + half_gap + cfg.safety
        R = int(math.ceil((reach + self.margin + res) / res))
        self.R = R
        u = np.arange(-R, R + 1) * res
        self.UX, self.UY = np.meshgrid(u, u, indexing="ij")
        self.shape = (sfft.next_fast_len(grid.nx + 2 * R), sfft.next_fast_len(grid.ny + 2 * R))
        self._occ_f = sfft.rfft2(grid.occ.astype(np.float32), s=self.shape, workers=1)
        self.free_arr = np.zeros((n, grid.nx, grid.ny), bool)
        self.free_flat = self.free_arr.reshape(-1)          # a view: filled in place
        self.ready = np.zeros(n, bool)

    def kernel(self, b: int) -> np.ndarray:
        """Footprint (rear axle at the centre) swept over heading bin b, inflated."""
        vp, m = self.vp, self.margin
        front, rear, hw = vp.length - vp.rear_overhang, vp.rear_overhang, vp.width / 2.0
        n_sub = 5                                   # yaws sampled across the bin
        sub_inflate = self.reach * (self.dbin / n_sub / 2.0)
        mm = m + sub_inflate
        K = np.zeros(self.UX.shape, bool)
        for f in (np.arange(n_sub) + 0.5) / n_sub - 0.5:
            yaw = self.phi0 + (b + f) * self.dbin
            c, s = math.cos(yaw), math.sin(yaw)
            lx = self.UX * c + self.UY * s
            ly = -self.UX * s + self.UY * c
            K |= (lx <= front + mm) & (lx >= -rear - mm) & (np.abs(ly) <= hw + mm)
        return K

    def ensure(self, bins):
        for b in np.unique(np.asarray(bins)).tolist():
            if self.ready[b]:
                continue
            K = self.kernel(b)[::-1, ::-1].astype(np.float32)     # correlation = conv w/ flip
            hit = sfft.irfft2(self._occ_f * sfft.rfft2(K, s=self.shape, workers=1),
                              s=self.shape, workers=1)
            R = self.R
            self.free_arr[b] = hit[R:R + self.grid.nx, R:R + self.grid.ny] < 0.5
            self.ready[b] = True

    def ensure_all(self):
        self.ensure(np.arange(self.n))

    def bin_of(self, yaw):
        return np.round((np.asarray(yaw) - self.phi0) / self.dbin).astype(np.int64) % self.n

    def free(self, x: float, y: float, yaw: float) -> bool:
        ix, iy = self.grid.index(x, y)
        b = int(self.bin_of(yaw))
        if not self.ready[b]:
            self.ensure([b])
        return bool(self.free_arr[b, int(ix), int(iy)])


@dataclass(frozen=True)
class SearchConfig:
    step: float = 2.0                 # m, arc length of a primitive
    n_headings: int = 36              # heading bins (10 deg)
    steer_bins: Tuple[int, ...] = (-2, -1, 0, 1, 2)   # heading change per primitive, in bins
    check_ds: float = 0.1             # m between collision-checked samples along an arc
    n_coll_headings: int = 72         # heading bins of the configuration-space raster
    xy_res: float = 0.2               # m, closed-set cell (None = exact states, tests)
    grid_res: float = 0.1             # m, occupancy / clearance raster
    safety: float = 0.02              # m, extra clearance beyond the raster/sampling margin
    # costs
    w_dist: float = 1.0               # per metre
    w_time: float = 1.0               # per second
    v_forward: float = 2.0            # m/s used for the traversal-time cost
    v_reverse: float = 1.0            # m/s
    w_steer: float = 0.5              # per radian of heading change
    w_switch: float = 3.0             # per direction change
    # goal tolerance (in the goal pose frame)
    tol_lon: float = 0.4
    tol_lat: float = 0.3
    tol_yaw: float = math.radians(5.5)

    @property
    def min_cost_per_m(self) -> float:
        return self.w_dist + self.w_time / self.v_forward


class SearchSpace:
    """Primitives, collision and goal checks for one lot, start heading and goal."""

    def __init__(self, lot: Lot, start: Pose, goal: Pose, cfg: SearchConfig = SearchConfig(),
                 vp: VehicleParams = VehicleParams(), grid: Optional[LotGrid] = None,
                 cspace: Optional["CSpace"] = None):
        self.lot, self.cfg, self.vp = lot, cfg, vp
        self.grid = grid if grid is not None else LotGrid(lot, cfg.grid_res)
        self.start = tuple(float(v) for v in start)
        self.goal = tuple(float(v) for v in goal)
        nh = cfg.n_headings
        self.dtheta = 2.0 * math.pi / nh
        k0 = int(round(self.start[2] / self.dtheta))
        phi0 = self.start[2] - k0 * self.dtheta               # in [-dtheta/2, dtheta/2]
        self.phi0 = 0.0 if abs(phi0) < 1e-9 else float(phi0)
        self.h0 = k0 % nh
        self.r_min = vp.wheelbase / math.tan(vp.max_steer)
        self._build_primitives()
        if cspace is None or cspace.phi0 != self.phi0:
            cspace = CSpace(self.grid, self.phi0, cfg, vp)
        self.cspace = cspace
        self._build_tables()
        gx, gy, gyaw = self.goal
        self.goal_c, self.goal_s = math.cos(gyaw), math.sin(gyaw)
        self.goal_xy = np.array([gx, gy])
        self.goal_radius = math.hypot(cfg.tol_lon, cfg.tol_lat)
        g = self.grid
        self._x0, self._y0, self._inv = g.x0, g.y0, 1.0 / g.res
        self._nx, self._ny = g.nx, g.ny
        # nodes this far inside the raster need no index clipping
        reach = cfg.step + 2 * g.res
        self._safe_box = (g.x0 + reach, g.y0 + reach, g.x0 + g.nx * g.res - reach,
                          g.y0 + g.ny * g.res - reach)
        self._goal_near = cfg.step + self.goal_radius + 0.1
        self._no_goal = np.full(self.n_prims, -1, np.int64)
        self._h_ready = np.zeros(nh, bool)

    def _build_primitives(self) -> None:
        """The motion primitives (direction x steering bin: arcs of one `step`) and their
        collision-check samples in the primitive's start frame."""
        cfg, rmin = self.cfg, self.r_min
        prims = []
        for d in (1, -1):
            for k in cfg.steer_bins:
                dth = k * self.dtheta
                kappa = dth / cfg.step           # curvature w.r.t. arc length, signed
                if abs(kappa) > 1.0 / rmin + 1e-9:
                    raise ValueError("steer_bins exceed the minimum turning radius")
                prims.append((d, k, kappa))
        self.prims = prims
        self.n_prims = len(prims)
        self.prim_dir = np.array([p[0] for p in prims], np.int64)
        # steering curvature tan(delta)/wheelbase (yaw rate = speed * curvature)
        self.prim_kappa = np.array([p[2] for p in prims])
        ns = int(round(cfg.step / cfg.check_ds))
        self.n_samples = ns
        s = cfg.check_ds * np.arange(1, ns + 1)                      # (S,)
        self.sample_s = s
        # local arc samples for each primitive (P, S): dx, dy, dyaw in the start frame.
        # Reverse: x' = -cos(yaw), yaw' = -kappa, so the heading changes by -k bins.
        dx = np.zeros((self.n_prims, ns))
        dy = np.zeros((self.n_prims, ns))
        dyaw = np.zeros((self.n_prims, ns))
        for i, (d, k, kappa) in enumerate(prims):
            dx[i], dy[i], dyaw[i] = _arc(d, kappa, s)
        self.prim_dh = np.array([k if d > 0 else -k for d, k, _ in prims], np.int64)
        self.local_dx, self.local_dy, self.local_dyaw = dx, dy, dyaw
        self.prim_len = np.full(self.n_prims, cfg.step)

    def _build_tables(self) -> None:
        """Per heading bin tables (H, P, S): sample offsets, yaws and C-space bin; edge
        costs per primitive (full step, per sample, by previous direction); end states."""
        cfg, cspace, nh = self.cfg, self.cspace, self.cfg.n_headings
        dx, dy, dyaw, s = self.local_dx, self.local_dy, self.local_dyaw, self.sample_s
        H = nh
        th = self.phi0 + self.dtheta * np.arange(H)
        c, sn = np.cos(th)[:, None, None], np.sin(th)[:, None, None]
        self.tab_x = c * dx[None] - sn * dy[None]                    # (H, P, S)
        self.tab_y = sn * dx[None] + c * dy[None]
        yaw_s = th[:, None, None] + dyaw[None]                       # (H, P, S)
        self.tab_yaw = yaw_s
        self.tab_cbin = cspace.bin_of(yaw_s) * (self.grid.nx * self.grid.ny)
        # edge costs per (prim) for a full step and per sample (truncated at a goal)
        cfgc = cfg
        per_m = np.where(self.prim_dir > 0, cfgc.w_dist + cfgc.w_time / cfgc.v_forward,
                         cfgc.w_dist + cfgc.w_time / cfgc.v_reverse)
        steer_per_m = cfgc.w_steer * np.abs(self.prim_kappa)
        self.cost_per_m = per_m + steer_per_m                        # (P,)
        self.sample_cost = self.cost_per_m[:, None] * s[None, :]     # (P, S)
        # full-step cost by previous direction (index prev_dir + 1: -1 rev, 0 start, 1 fwd)
        self.step_cost = np.stack([self.sample_cost[:, -1] + self.switch_cost(pd, self.prim_dir)
                                   for pd in (-1, 0, 1)])
        self.tab_endh = (np.arange(nh)[:, None] + self.prim_dh[None, :]) % nh   # (H, P)
        self.tab_endx = np.ascontiguousarray(self.tab_x[:, :, -1])
        self.tab_endy = np.ascontiguousarray(self.tab_y[:, :, -1])

    # ---------------------------------------------------------------- helpers
    def yaw_of(self, h: int) -> float:
        return float(wrap_angle(self.phi0 + self.dtheta * h))

    def pose_free(self, x: float, y: float, yaw: float) -> bool:
        return self.cspace.free(x, y, yaw)

    def in_goal(self, x, y, yaw):
        dx = np.asarray(x) - self.goal[0]
        dy = np.asarray(y) - self.goal[1]
        lon = dx * self.goal_c + dy * self.goal_s
        lat = -dx * self.goal_s + dy * self.goal_c
        dyaw = np.abs(wrap_angle(np.asarray(yaw) - self.goal[2]))
        return (np.abs(lon) <= self.cfg.tol_lon) & (np.abs(lat) <= self.cfg.tol_lat) & \
               (dyaw <= self.cfg.tol_yaw)

    def switch_cost(self, prev_dir: int, new_dir):
        """Direction-change penalty; prev_dir 0 = standing at the start (no penalty)."""
        if prev_dir == 0:
            return np.zeros_like(np.asarray(new_dir), dtype=float)
        return np.where(np.asarray(new_dir) != prev_dir, self.cfg.w_switch, 0.0)

    def expand(self, x: float, y: float, h: int, prev_dir: int):
        """All primitives from (x, y, heading bin h) at once.

        Returns (valid (P,), goal_k (P,) index of the first goal sample or -1,
        end_x, end_y (P,), end_h (P,), cost (P,)). A primitive with goal_k >= 0 ends at that
        sample (collision-checked up to it); otherwise it is valid when all samples are free.
        """
        if not self._h_ready[h]:
            self.cspace.ensure(self.tab_cbin[h] // (self._nx * self._ny))
            self._h_ready[h] = True
        sx = x + self.tab_x[h]                                      # (P, S)
        sy = y + self.tab_y[h]
        inv = self._inv
        ix = ((sx - self._x0) * inv).astype(np.int64)
        iy = ((sy - self._y0) * inv).astype(np.int64)
        sb = self._safe_box
        if not (sb[0] < x < sb[2] and sb[1] < y < sb[3]):
            np.clip(ix, 0, self._nx - 1, out=ix)
            np.clip(iy, 0, self._ny - 1, out=iy)
        ix *= self._ny
        ix += iy
        ix += self.tab_cbin[h]
        free = self.cspace.free_flat[ix]                            # (P, S)
        free_prefix = np.logical_and.accumulate(free, axis=1)
        valid = free_prefix[:, -1]
        if math.hypot(x - self.goal[0], y - self.goal[1]) > self._goal_near:
            return (valid, self._no_goal, self.tab_endx[h] + x, self.tab_endy[h] + y,
                    self.tab_endh[h], self.step_cost[prev_dir + 1])
        goal = self.in_goal(sx, sy, self.tab_yaw[h]) & free_prefix  # (P, S)
        has_goal = goal.any(axis=1)
        goal_k = np.where(has_goal, goal.argmax(axis=1), -1)
        valid = valid | has_goal
        kk = np.where(has_goal, goal_k, self.n_samples - 1)
        ar = np.arange(self.n_prims)
        end_x = sx[ar, kk]
        end_y = sy[ar, kk]
        end_h = self.tab_endh[h]
        cost = self.sample_cost[ar, kk] + self.switch_cost(prev_dir, self.prim_dir)
        return valid, goal_k, end_x, end_y, end_h, cost

    def primitive_samples(self, x: float, y: float, h: int, p: int, upto_k: int = -1,
                          ds: float = 0.05):
        """Dense (x, y, yaw, curvature, direction) samples along primitive p from the node,
        up to sample index upto_k (-1 = the whole arc); excludes the start point."""
        d, k, kappa = self.prims[p]
        L = self.cfg.step if upto_k < 0 else self.sample_s[upto_k]
        n = max(1, int(math.ceil(L / ds)))
        s = np.linspace(L / n, L, n)
        dx, dy, dyaw = _arc(d, kappa, s)
        th = self.phi0 + self.dtheta * h
        c, sn = math.cos(th), math.sin(th)
        X = x + c * dx - sn * dy
        Y = y + sn * dx + c * dy
        yaw = th + dyaw
        curv = np.full(n, kappa)             # steering curvature; yaw rate = speed * curv
        return X, Y, wrap_angle(yaw), curv, np.full(n, d)


def path_samples(space: SearchSpace, nodes: List[tuple], ds: float = 0.05):
    """Dense samples of a path given as [(x, y, h, prev_dir, prim, goal_k), ...] where each
    entry's prim / goal_k lead from it to the next; the last entry has prim = -1."""
    xs, ys, yaws, curvs, dirs = [nodes[0][0]], [nodes[0][1]], [space.yaw_of(nodes[0][2])], [0.0], [0]
    for (x, y, h, _pd, p, gk) in nodes[:-1]:
        X, Y, Yw, C, D = space.primitive_samples(x, y, h, p, gk, ds)
        xs.extend(X.tolist())
        ys.extend(Y.tolist())
        yaws.extend(Yw.tolist())
        curvs.extend(C.tolist())
        dirs.extend(D.tolist())
    if len(dirs) > 1:
        dirs[0] = dirs[1]
        curvs[0] = curvs[1]
    return (np.array(xs), np.array(ys), np.array(yaws), np.array(curvs), np.array(dirs))
