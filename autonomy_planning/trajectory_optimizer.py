"""Continuous trajectory optimisation inside the convex corridor.

Formulation (the well-posed QP equivalent of "spline in heading and acceleration over
arc length"): the problem is split into two convex QPs that are solved alternately
(a sequential-QP on the path/speed coupling through v^2 * kappa):

* Path QP over arc length (piecewise-jerk spline d(sigma) of the lateral offset, states
  d, d', d'' per knot; d'' ~ curvature minus the reference's, d''' ~ curvature rate):
  cost = tracking the chosen maneuver's offset (the lane centre it keeps or changes to,
  a nudge's offset) + clearance (towards that offset, moved away from a corridor bound
  closer than `clearance`; the corridor's midpoint is never a target: lanes beside an
  empty road would pull the car off its lane centre) + d'^2 (heading) + v^2 d''^2 (lateral acceleration) + d'''^2 (lateral jerk);
  constraints = body inside the corridor's lateral bounds over its whole length (soft),
  |curvature| <= min(steering limit, a_lat_max / v^2) (hard), |d'''| bounded, initial state.
* Speed QP over time (piecewise-jerk s(t), states s, v, a at 0.1 s): cost = tracking the
  chosen speed profile (traversal time / progress) + a^2 + jerk^2 + slack on the station
  cap; constraints = speed bounds per time (corridor + curvature of the optimised path),
  acceleration and jerk limits (the vehicle's, tightened to nuPlan comfort), station cap
  (agents ahead / narrow passages), initial state.

Solver: OSQP. Both QPs are sparse and banded (a few hundred variables), OSQP's ADMM
caches the factorisation (the speed QP's matrices never change: only bounds and the
linear cost are updated each cycle), warm-starts from the previous cycle's solution, and
returns certificates of infeasibility, which trigger the emergency-braking fallback.
SciPy's SLSQP is dense and an order of magnitude slower at this size; CasADi/IPOPT would
be a heavier dependency for a problem that is convex once decoupled.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import osqp
import scipy.sparse as sp

from autonomy_stack.params import param
from autonomy_stack.geometry import wrap_angle
from autonomy_stack.vector_space import Trajectory
from autonomy_vehicle.vehicle_model import VehicleParams

from autonomy_planning.corridor import BodyBounds, Corridor
from autonomy_planning.piecewise_jerk import SpeedQP, path_matrices, solved, solver_settings
from autonomy_planning.path import ReferencePath


@dataclass
class OptimizerConfig:
    dt: float = 0.1
    horizon: float = 10.0
    path_knots: int = 60
    # limits (vehicle limits tightened to comfort; emergency fallback uses the vehicle's);
    # param(...): also a planning node parameter (planning_node.PARAMS)
    max_accel: float = param(2.0, "m/s^2, optimiser acceleration limit", min=0.1, max=5.0)
    max_decel: float = param(3.5, "m/s^2, optimiser comfortable deceleration", min=0.5,
                             max=9.0)
    emergency_decel: float = param(7.5, "m/s^2, emergency braking limit", min=1.0, max=10.0)
    max_jerk: float = param(4.0, "m/s^3, optimiser jerk limit", min=0.5, max=20.0)
    emergency_jerk: float = 15.0
    lat_acc_max: float = param(3.0, "m/s^2, optimiser lateral acceleration limit", min=0.5,
                               max=8.0)
    # fraction of the vehicle's max curvature (VehicleParams.max_curvature: tan(max_steer)
    # / wheelbase) the path may use: 0.85 x 0.211 = 0.18 1/m for the default vehicle
    curvature_margin: float = 0.85
    max_dkappa: float = 0.05             # 1/m^2: curvature change per metre (at speed)
    max_dkappa_low_speed: float = 0.25   # 1/m^2: ... at walking speed
    steer_rate_curvature: float = 0.2    # 1/(m s): curvature rate the steering allows
    body_margin: float = 0.12           # m: also absorbs the small-angle corner model error
    # weights
    w_s: float = 0.5
    w_v: float = 2.0
    w_a: float = 1.0
    w_j: float = 3.0
    w_slack: float = 2000.0
    w_ref: float = 1.0
    w_center: float = 0.15               # weight of the clearance target
    clearance: float = 0.3               # m kept from the corridor's body bounds if free
    w_d1: float = 5.0
    w_d2: float = 50.0
    w_d3: float = 2000.0
    sqp_iterations: int = 2
    sqp_speed_tol: float = 1.0           # m/s: re-shape the path if the speed moved more
    w_slack_lat: float = 2000.0
    w_slack_kappa: float = 2000.0
    # solver budget in iterations (deterministic: the same inputs give the same plan on
    # an idle and a loaded machine); OSQP's rho adaptation counted in iterations too
    max_iter: int = 1500
    adaptive_rho_interval: int = 50
    eps: float = 1e-3
    # s of wall clock per QP solve: only a safety net against a hung solve (max_iter takes
    # ~20 ms here); a result cut by it is not reproducible and is counted as such
    time_limit: float = 0.25
    accept_prim_res: float = 0.02        # m: accept an unfinished path QP below this residual


@dataclass
class OptResult:
    trajectory: Trajectory
    s: np.ndarray             # absolute stations at the output times
    d: np.ndarray             # lateral offsets at the output times
    path_sigma: np.ndarray    # path knots (relative stations)
    path_state: np.ndarray    # (K, 3) d, d', d''
    speed_state: np.ndarray   # (N+1, 3) s (relative), v, a
    emergency: bool
    status: str
    iterations: dict = field(default_factory=dict)


def clearance_target(d_ref, lo, hi, clearance: float):
    """Per knot: the maneuver's offset d_ref, moved to `clearance` inside the body bounds
    [lo, hi] where it is closer to one; their midpoint where they are narrower than two
    clearances."""
    lo_c, hi_c = lo + clearance, hi - clearance
    return np.where(lo_c <= hi_c, np.clip(d_ref, lo_c, hi_c), 0.5 * (lo + hi))


class TrajectoryOptimizer:
    def __init__(self, config: Optional[OptimizerConfig] = None,
                 vehicle: Optional[VehicleParams] = None):
        self.cfg = config or OptimizerConfig()
        self.vehicle = vehicle or VehicleParams()
        # 1/m: the curvature bound of the path QP (hard: the steering limit with a margin)
        self.max_curvature = self.cfg.curvature_margin * self.vehicle.max_curvature
        self.speed_qp = SpeedQP(self.cfg)
        self._prev = None
        self._path_solver = None
        self._path_K = None
        self._prev_path = None      # (abs stations of speed solution, times, x) for warm start

    def reset(self):
        self._prev = None
        self._prev_path = None

    # -------------------------------------------------------------- path QP
    def _path_qp(self, sig, lo, hi, d_ref, clear, v_at, kref, d0, d1_0, d2_0, fix_d2, warm=None,
                 corners=None, body=(3.8, 0.9)):
        """Piecewise-jerk path QP with soft lateral / curvature bounds (slacks with a
        large penalty: always feasible; a non-zero slack is reported). The OSQP workspace
        is kept (same sparsity every cycle): only values, bounds and costs are updated."""
        cfg = self.cfg
        K = len(sig)
        h = float(sig[1] - sig[0])
        A, R = path_matrices(K, h, body[0], body[1])
        l, u = self._path_bounds(A.shape[0], R, h, lo, hi, corners, v_at, kref, d0, d1_0,
                                 d2_0, fix_d2)
        P, q = self._path_cost(K, h, v_at, d_ref, clear)
        if self._path_solver is None or self._path_K != K:
            solver = osqp.OSQP()
            solver.setup(P, q, A, l, u, **solver_settings(cfg))
            self._path_solver, self._path_K = solver, K
        else:
            solver = self._path_solver
            solver.update(q=q, l=l, u=u, Px=P.data, Ax=A.data)
        if warm is not None:
            solver.warm_start(x=warm)
        res = solver.solve()
        self._log.append(("path", str(res.info.status), int(res.info.iter), round(res.info.run_time * 1e3, 2)))
        if not solved(res):
            # out of time / iterations: keep the iterate if it is (nearly) primal feasible
            # (better than the unconstrained fallback); otherwise give up
            ok = res.x is not None and np.all(np.isfinite(res.x)) and \
                float(res.info.prim_res) < cfg.accept_prim_res and \
                ("limit" in str(res.info.status) or "maximum" in str(res.info.status))
            if not ok:
                return None
        x = res.x
        self.path_slack = float(np.max(x[3 * K:4 * K]))
        self.curvature_slack = float(np.max(x[4 * K:5 * K]))
        return np.column_stack([x[:K], x[K:2 * K], x[2 * K:3 * K]])

    def _path_bounds(self, m: int, R: dict, h: float, lo, hi, corners, v_at, kref, d0, d1_0,
                     d2_0, fix_d2):
        """(l, u) of the path QP's m rows (row blocks R of `piecewise_jerk.path_matrices`): curvature
        rate, body and corner bounds, heading, curvature (the steering limit and
        a_lat_max / v^2, hard but for what a fixed initial curvature cannot shed), the
        initial state."""
        cfg = self.cfg
        K = len(v_at)
        INF = np.inf
        l = np.zeros(m)
        u = np.zeros(m)
        # curvature rate per metre: the steering rate limit divided by the speed (slow cars
        # can re-steer within a short distance), never above max_dkappa_low_speed
        v_mid = np.maximum(0.5 * (v_at[:-1] + v_at[1:]), 1.0)
        dk = np.minimum(np.maximum(cfg.steer_rate_curvature / v_mid, cfg.max_dkappa),
                        cfg.max_dkappa_low_speed) * h
        l[R["jerk"]:R["jerk"] + K - 1] = -dk
        u[R["jerk"]:R["jerk"] + K - 1] = dk
        l[R["lo"]:R["lo"] + K], u[R["lo"]:R["lo"] + K] = lo, INF
        l[R["hi"]:R["hi"] + K], u[R["hi"]:R["hi"] + K] = -INF, hi
        flo, fhi, rlo, rhi = corners if corners is not None else (lo, hi, lo, hi)
        l[R["flo"]:R["flo"] + K], u[R["flo"]:R["flo"] + K] = flo, INF
        l[R["fhi"]:R["fhi"] + K], u[R["fhi"]:R["fhi"] + K] = -INF, fhi
        l[R["rlo"]:R["rlo"] + K], u[R["rlo"]:R["rlo"] + K] = rlo, INF
        l[R["rhi"]:R["rhi"] + K], u[R["rhi"]:R["rhi"] + K] = -INF, rhi
        l[R["d1"]:R["d1"] + K], u[R["d1"]:R["d1"] + K] = -2.0, 2.0
        l[R["d1"]] = u[R["d1"]] = d1_0
        kmax = np.minimum(self.max_curvature, cfg.lat_acc_max / np.maximum(v_at, 0.1) ** 2)
        l[R["lo2"]:R["lo2"] + K], u[R["lo2"]:R["lo2"] + K] = -kmax - kref, INF
        l[R["hi2"]:R["hi2"] + K], u[R["hi2"]:R["hi2"] + K] = -INF, kmax - kref
        l[R["e"]:R["e"] + K], u[R["e"]:R["e"] + K] = 0.0, INF
        # the curvature bound is the vehicle's steering limit: hard (a path the car cannot
        # steer is useless however well it fits the corridor; the lateral bounds give way
        # instead). Its slack only absorbs what a fixed initial curvature cannot shed in
        # time at the curvature-rate limit.
        e2_max = np.zeros(K)
        l[R["d0"]] = u[R["d0"]] = d0
        if fix_d2:
            d2f = float(np.clip(d2_0, -self.max_curvature - kref[0], self.max_curvature - kref[0]))
            l[R["d0"] + 1] = u[R["d0"] + 1] = d2f
            shed = np.r_[0.0, np.cumsum(dk)]
            e2_max = np.maximum.reduce([e2_max, d2f - shed - (kmax - kref),
                                        (-kmax - kref) - (d2f + shed)])
        else:
            l[R["d0"] + 1], u[R["d0"] + 1] = -INF, INF
        l[R["e2"]:R["e2"] + K], u[R["e2"]:R["e2"] + K] = 0.0, e2_max + 1e-3
        return l, u

    def _path_cost(self, K: int, h: float, v_at, d_ref, clear):
        """(P, q) of the path QP: tracking d_ref, the clearance target clear, heading, lateral
        acceleration (weighted with v^2), lateral jerk, slacks."""
        cfg = self.cfg
        wv = 1.0 + v_at ** 2
        w3 = cfg.w_d3 / (h * h)
        diag = np.concatenate([np.full(K, cfg.w_ref + cfg.w_center), np.full(K, cfg.w_d1),
                               cfg.w_d2 * wv, np.full(K, 0.1 * cfg.w_slack_lat),
                               np.full(K, 0.1 * cfg.w_slack_kappa)])
        diag[2 * K:3 * K] += w3 * np.r_[1.0, np.full(K - 2, 2.0), 1.0]
        off = np.zeros(5 * K - 1)
        off[2 * K:3 * K - 1] = -w3
        P = sp.diags([diag, off], [0, 1], format="csc")
        P.sort_indices()
        q = np.zeros(5 * K)
        q[:K] = -(cfg.w_ref * d_ref + cfg.w_center * clear)
        q[3 * K:4 * K] = cfg.w_slack_lat
        q[4 * K:] = cfg.w_slack_kappa
        return P, q

    # -------------------------------------------------------------- main
    def optimize(self, ref: ReferencePath, corridor: Corridor, s_e: float, d_e: float,
                 rel_yaw: float, kappa_e: float, v0: float, a0: float, t_ref: np.ndarray,
                 S_ref: np.ndarray, D_ref: np.ndarray, V_ref: np.ndarray, body: tuple,
                 stamp: float = 0.0, frame_id: str = "odom", maneuver: str = "",
                 force_emergency: bool = False) -> OptResult:
        """Alternate the path QP (over arc length, for the speeds of the previous pass)
        and the speed QP (over time, bounded by the path's curvature) for up to
        `sqp_iterations` passes, starting from the chosen maneuver (S_ref, D_ref, V_ref
        on t_ref); fall back to the maneuver's path / a braking profile when a QP
        fails."""
        cfg = self.cfg
        self._log = []
        N = self.speed_qp.n
        t = np.arange(N + 1) * cfg.dt
        s_ref_rel = np.interp(t, t_ref, S_ref) - s_e
        v_ref = np.interp(t, t_ref, V_ref)
        v_min = np.interp(t, corridor.times, corridor.speed_min)
        v_max_c = np.interp(t, corridor.times, corridor.speed_max)
        s_cap = np.interp(t, corridor.times, np.where(np.isfinite(corridor.station_max),
                                                      corridor.station_max, 1e6)) - s_e
        Sm = np.maximum.accumulate(S_ref) + 1e-6 * np.arange(len(S_ref))
        bounds = BodyBounds(corridor, ref, body, cfg.body_margin)
        d1_0 = float(np.tan(np.clip(rel_yaw, -1.2, 1.2)))
        v_path = np.maximum(V_ref, 0.0)
        length = max(S_ref[-1] - s_e + 10.0, 20.0)
        path = None
        sig = None
        speed_x = None
        emergency = force_emergency
        status = "ok"
        for it in range(cfg.sqp_iterations):
            K = cfg.path_knots + 1
            sig = np.linspace(0.0, length, K)
            sig_abs = s_e + sig
            lo, hi, corners = bounds.path_bounds(sig, sig_abs, d_e, d1_0)
            v_at = np.interp(sig_abs, S_ref if it == 0 else s_e + speed_x[:, 0],
                             v_path if it == 0 else speed_x[:, 1])
            kref = ref.curvature_at(sig_abs)
            path = self._shape_path(sig, sig_abs, lo, hi, corners, np.interp(sig_abs, Sm, D_ref),
                                    v_at, kref, d_e, d1_0, kappa_e, v0, body)
            if path is None:
                d_fb = np.interp(sig_abs, Sm, D_ref)
                path = np.column_stack([d_fb, np.gradient(d_fb, sig), np.zeros(K)])
                status = "path_fallback"
            vmax = self._speed_bounds(kref, path, sig, s_ref_rel, v_max_c,
                                      speed_x if it > 0 else None, v0, a0, t)
            speed_x, emergency, solved = self._solve_speed(t, s_e, stamp, v0, a0, v_ref,
                                                           s_ref_rel, v_min, vmax, s_cap,
                                                           emergency)
            if not solved:
                status = "speed_fallback"
            new_len = max(speed_x[-1, 0] + 10.0, 20.0)
            if it + 1 < cfg.sqp_iterations:
                # another path/speed pass only if the speed the path was shaped for (v^2
                # kappa limits, lateral-acceleration weights) or the path length changed
                v_used = np.interp(s_e + speed_x[:, 0], sig_abs, v_at)
                if np.max(np.abs(v_used - speed_x[:, 1])) < cfg.sqp_speed_tol and \
                        abs(new_len - length) < 0.2 * length and speed_x[-1, 0] < sig[-1]:
                    break
                length = new_len
        self._prev = (s_e + speed_x[:, 0], t.copy(), speed_x.copy(), stamp)
        traj, s_abs, d_out = self._assemble(ref, s_e, sig, path, speed_x, t, stamp, frame_id,
                                            maneuver)
        return OptResult(traj, s_abs, d_out, sig, path, speed_x, emergency, status,
                         iterations={"solves": list(self._log)})

    def _shape_path(self, sig, sig_abs, lo, hi, corners, d_ref, v_at, kref, d_e: float,
                    d1_0: float, kappa_e: float, v0: float, body: tuple):
        """One path QP (warm-started from the previous cycle's path); None if it failed."""
        warm_p = None
        if self._prev_path is not None and len(sig) == len(self._prev_path[0]):
            ps, pp = self._prev_path
            warm_p = np.concatenate([np.interp(sig_abs, ps, pp[:, 0]),
                                     np.interp(sig_abs, ps, pp[:, 1]),
                                     np.interp(sig_abs, ps, pp[:, 2]), np.zeros(2 * len(sig))])
        clear = clearance_target(d_ref, lo, hi, self.cfg.clearance)
        path = self._path_qp(sig, lo, hi, d_ref, clear, v_at, kref, d_e, d1_0,
                             kappa_e - float(kref[0]), fix_d2=v0 > 3.0,
                             corners=corners, body=(body[0], body[1]),
                             warm=warm_p)
        if path is not None:
            self._prev_path = (sig_abs.copy(), path.copy())
        return path

    def _speed_bounds(self, kref, path, sig, s_ref_rel, v_max_c, speed_x, v0: float, a0: float,
                      t) -> np.ndarray:
        """Upper speed bound per time: the corridor's, the optimised path's curvature at
        the stations reached (those of the previous speed pass, if any), never below what
        comfortable braking can reach (keeps the QP feasible)."""
        cfg = self.cfg
        kap = np.abs(kref + path[:, 2])
        v_curve = np.sqrt(cfg.lat_acc_max / np.maximum(kap, 1e-4))
        s_pos = np.maximum(s_ref_rel, 0.0)
        vmax = np.minimum(v_max_c, np.interp(s_pos, sig, v_curve))
        if speed_x is not None:
            vmax = np.minimum(v_max_c, np.interp(speed_x[:, 0], sig, v_curve))
        vmax = np.maximum(vmax, 0.3)
        return np.maximum(vmax, self._braking_curve(v0, a0, t, cfg.max_decel, cfg.max_jerk) + 0.05)

    def _solve_speed(self, t, s_e: float, stamp: float, v0: float, a0: float, v_ref, s_ref_rel,
                     v_min, vmax, s_cap, emergency: bool):
        """(speed_x (N+1, 3): s, v, a; emergency; solved). An infeasible or badly slacked
        comfortable solve is retried with the emergency limits; without any solution the
        result is a braking profile (solved False)."""
        N = self.speed_qp.n
        warm = None
        if self._prev is not None:
            warm = self._warm(t, s_e, stamp)
        res = self.speed_qp.solve(v0, a0, v_ref, s_ref_rel, v_min, vmax, s_cap,
                                  emergency=emergency, warm=warm)
        self._log.append(("speed", str(res.info.status), int(res.info.iter), round(res.info.run_time * 1e3, 2)))
        x = res.x if solved(res) else None
        slack_bad = x is not None and np.max(x[3 * (N + 1):]) > 0.3
        if (x is None or slack_bad) and not emergency:
            emergency = True
            res = self.speed_qp.solve(v0, a0, v_ref, s_ref_rel, v_min, vmax, s_cap,
                                      emergency=True)
            x = res.x if solved(res) else None
        if x is None:
            return self._brake_profile(v0, a0, t), emergency, False
        K1 = N + 1
        return (np.column_stack([x[:K1], np.maximum(x[K1:2 * K1], 0.0), x[2 * K1:3 * K1]]),
                emergency, True)

    def _warm(self, t, s_e, stamp):
        """Previous speed solution shifted by the elapsed time (OSQP warm start)."""
        s_abs, t_prev, x_prev, stamp_prev = self._prev
        el = stamp - stamp_prev
        if not (0.0 <= el <= 1.0):
            return None
        tt = t + el
        s = np.interp(tt, t_prev, s_abs) - s_e
        v = np.interp(tt, t_prev, x_prev[:, 1])
        a = np.interp(tt, t_prev, x_prev[:, 2])
        return np.concatenate([s, v, a, np.zeros(len(t))])

    @staticmethod
    def _braking_curve(v0, a0, t, decel, jerk):
        """Lowest speed reachable under the comfortable limits (keeps the QP feasible:
        integrated as the speed QP integrates, v_k+1 = v_k + (a_k + a_k+1) dt / 2; an
        explicit-Euler curve lies ~decel dt / 2 below what the QP can reach, which made
        braking from above the speed limit infeasible and flagged it an emergency)."""
        v = np.empty(len(t))
        a = float(np.clip(a0, -decel, None))
        vk = max(v0, 0.0)
        dt = t[1] - t[0]
        v[0] = vk
        for k in range(1, len(t)):
            a_next = max(a - jerk * dt, -decel)
            vk = max(vk + 0.5 * (a + a_next) * dt, 0.0)
            a = a_next
            v[k] = vk
        return v

    @staticmethod
    def _brake_profile(v0, a0, t, decel=6.0):
        v = np.maximum(v0 - decel * t, 0.0)
        a = np.where(v > 0, -decel, 0.0)
        s = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * np.diff(t))])
        return np.column_stack([s, v, a])

    @staticmethod
    def _eval_path(sig, path, x):
        """Evaluate the piecewise-jerk path at relative stations x (constant beyond)."""
        h = sig[1] - sig[0]
        xc = np.clip(x, sig[0], sig[-1])
        k = np.clip(((xc - sig[0]) / h).astype(int), 0, len(sig) - 2)
        u = xc - sig[k]
        d, d1, d2 = path[k, 0], path[k, 1], path[k, 2]
        j = (path[k + 1, 2] - d2) / h
        dv = d + d1 * u + d2 * u * u / 2.0 + j * u ** 3 / 6.0
        d1v = d1 + d2 * u + j * u * u / 2.0
        d2v = d2 + j * u
        beyond = x > sig[-1]
        dv = np.where(beyond, path[-1, 0] + path[-1, 1] * (x - sig[-1]), dv)
        d1v = np.where(beyond, path[-1, 1], d1v)
        d2v = np.where(beyond, 0.0, d2v)
        return dv, d1v, d2v

    def _assemble(self, ref, s_e, sig, path, speed_x, t, stamp, frame_id, maneuver):
        sr = speed_x[:, 0]
        sr = np.maximum.accumulate(np.maximum(sr, 0.0))
        d, d1, d2 = self._eval_path(sig, path, sr)
        s_abs = s_e + sr
        x, y, h = ref.to_xy(s_abs, d)
        kr = ref.curvature_at(s_abs)
        one = 1.0 - kr * d
        dth = np.arctan2(d1, one)
        yaw = h + dth
        c = np.cos(dth)
        kappa = ((d2 + kr * d1 * np.tan(dth)) * c * c / one + kr) * c / one
        traj = Trajectory(t=t.copy(), x=x, y=y, yaw=wrap_angle(yaw),
                          speed=speed_x[:, 1].copy(), accel=speed_x[:, 2].copy(),
                          curvature=kappa, stamp=stamp, frame_id=frame_id, maneuver=maneuver)
        return traj, s_abs, d
