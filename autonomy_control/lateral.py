"""Lateral (steering) controllers (no rclpy).

- `LateralMPC`: linear time-varying MPC solved with OSQP. Prediction model: path-frame
  error kinematics of the bicycle (lateral error, heading error) plus the steering
  actuator (first-order lag), linearised along the reference over the horizon: speed and
  curvature vary per step (preview of the upcoming curves and of the speed profile).
  Hard constraints: steering angle and steering *rate* (the actuator's rate limit, which
  is what bounds tracking on fast S-curves), so the optimiser plans within what the
  actuator can do instead of saturating after the fact.
- `PurePursuit` and `Stanley`: the classic geometric baselines for comparison.

All controllers share `compute(ctx) -> steering command (rad at the wheels)`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from autonomy_control.reference import PathSegment, Projection
from autonomy_vehicle.vehicle_model import VehicleParams


@dataclass
class LateralContext:
    """What a lateral controller sees at one control step (state already delay-compensated)."""
    seg: PathSegment
    proj: Projection            # projection of the (predicted) rear axle on `seg`
    x: float
    y: float
    yaw: float
    speed: float                # signed
    steer: float                # estimated actual wheel angle
    steer_cmd_prev: float       # previous command
    dt: float                   # control period


@dataclass
class MPCConfig:
    horizon: int = 30           # steps
    dt: float = 0.05            # s per step
    q_lateral: float = 20.0     # weight on lateral error (per m^2)
    q_heading: float = 4.0      # weight on heading error (per rad^2)
    q_terminal: float = 5.0     # terminal weight multiplier
    r_steer: float = 1.0        # weight on (command - feed-forward) (per rad^2)
    r_steer_rate: float = 600.0  # weight on command change between steps (per rad^2):
                                 # trades a few mm of tracking for lateral jerk
    rate_weight_speed: float = 10.0  # m/s: below it r_steer_rate shrinks with (v/this)^2
    rate_weight_min: float = 0.05    # ... down to this fraction (parking speeds): lateral
                                     # jerk grows with v^2 * steering rate
    speed_blend_s: float = 1.0  # s to blend from measured speed to the reference profile
    max_iter: int = 200
    eps: float = 1e-4


class LateralMPCSparse:
    """Reference implementation: the same QP in sparse (states + inputs) form, always
    solved by OSQP. Slower (ADMM iterations every step); kept as the oracle that the
    condensed `LateralMPC` is checked against in the tests."""
    NX = 3  # e_y, e_psi, delta

    def __init__(self, vp: VehicleParams = VehicleParams(), cfg: MPCConfig = MPCConfig()):
        # lazy: osqp only when a constraint binds (start-up time)
        import osqp
        self.vp, self.cfg = vp, cfg
        N, dt, nx = cfg.horizon, cfg.dt, self.NX
        self.N = N
        tau = max(vp.steer_time_constant, 1e-3)
        self.a = math.exp(-dt / tau)
        self.beta = (tau / dt) * (1.0 - self.a)      # mean fraction of delta_k over a step
        # |u - delta| <= rate * tau keeps the lag's initial rate within the rate limit
        self.du_max = vp.max_steer_rate * max(tau, 0.02)
        nX = nx * (N + 1)
        self.nX, self.nz = nX, nX + N
        self.iu = nX + np.arange(N)
        A = self._constraint_matrix()
        self.P = self._cost_matrix()
        n_eq = self.n_eq
        self.q = np.zeros(self.nz)
        self.l = np.zeros(self.m)
        self.u = np.zeros(self.m)
        self.l[n_eq:n_eq + N], self.u[n_eq:n_eq + N] = -vp.max_steer, vp.max_steer
        self.l[n_eq + N:], self.u[n_eq + N:] = -self.du_max, self.du_max
        self.solver = osqp.OSQP()
        self.solver.setup(self.P, self.q, A, self.l, self.u, verbose=False, warm_starting=True,
                          polishing=cfg.eps < 1e-5, eps_abs=cfg.eps, eps_rel=cfg.eps,
                          max_iter=cfg.max_iter, check_termination=10, adaptive_rho=True)
        self.last_status = ""
        self.last_solution = None
        self.predicted_lateral = np.zeros(N + 1)

    def _constraint_matrix(self) -> sp.csc_matrix:
        """Equality (dynamics) and inequality (steering bound, rate) rows. The entries
        that change every step are remembered as value slots (`self.slots`, indices into
        `self.vals`; `self.perm` maps them to the CSC data order)."""
        N, dt, nx, nX = self.N, self.cfg.dt, self.NX, self.nX
        rows, cols, vals = [], [], []
        slots = {}

        def add(r, c, v, kind=None):
            if kind is not None:
                slots.setdefault(kind, []).append(len(vals))
            rows.append(r)
            cols.append(c)
            vals.append(v)

        for i in range(nx):
            add(i, i, 1.0)
        for k in range(N):
            r0, xk, xk1, uk = nx * (k + 1), nx * k, nx * (k + 1), nX + k
            for i in range(nx):
                add(r0 + i, xk1 + i, 1.0)
            # row e_y
            add(r0 + 0, xk + 0, -1.0)
            add(r0 + 0, xk + 1, -dt, "vdt")
            add(r0 + 0, xk + 2, -1e-3, "ey_d")
            add(r0 + 0, uk, -1e-3, "ey_u")
            # row e_psi
            add(r0 + 1, xk + 0, 1e-3, "epsi_ey")
            add(r0 + 1, xk + 1, -1.0)
            add(r0 + 1, xk + 2, -1e-3, "epsi_d")
            add(r0 + 1, uk, -1e-3, "epsi_u")
            # row delta
            add(r0 + 2, xk + 2, -self.a)
            add(r0 + 2, uk, -(1.0 - self.a))
        n_eq = nx * (N + 1)
        for k in range(N):                       # steering bounds on u
            add(n_eq + k, nX + k, 1.0)
        for k in range(N):                       # rate: u_k - delta_k
            add(n_eq + N + k, nX + k, 1.0)
            add(n_eq + N + k, nx * k + 2, -1.0)
        self.n_eq, self.m = n_eq, n_eq + 2 * N
        self.slots = {k: np.array(v) for k, v in slots.items()}
        self.vals = np.array(vals, float)
        ids = np.arange(1, len(vals) + 1, dtype=float)
        A_ids = sp.csc_matrix((ids, (rows, cols)), shape=(self.m, self.nz))
        A_ids.sort_indices()
        self.perm = A_ids.data.astype(int) - 1
        return sp.csc_matrix((self.vals[self.perm], A_ids.indices, A_ids.indptr),
                             shape=A_ids.shape)

    def _cost_matrix(self) -> sp.csc_matrix:
        """Upper triangle of the constant Hessian (the data enters via q)."""
        cfg, N, nx = self.cfg, self.N, self.NX
        qd = np.zeros(self.nX)
        for k in range(1, N + 1):
            w = cfg.q_terminal if k == N else 1.0
            qd[nx * k + 0] = cfg.q_lateral * w
            qd[nx * k + 1] = cfg.q_heading * w
        Pu = sp.diags(np.full(N, cfg.r_steer))
        D = sp.diags([np.ones(N), -np.ones(N - 1)], [0, -1], shape=(N, N))  # u_k - u_{k-1}
        Pu = Pu + cfg.r_steer_rate * (D.T @ D)
        P = sp.block_diag([sp.diags(qd), Pu], format="csc") * 2.0
        return sp.triu(P, format="csc")

    def compute(self, c: LateralContext) -> float:
        cfg, N, dt, L = self.cfg, self.N, self.cfg.dt, self.vp.wheelbase
        seg = c.seg
        # ---- horizon reference: arc length, speed, curvature
        kk = np.arange(N)
        ref_v = np.empty(N)
        s = np.empty(N + 1)
        s[0] = c.proj.s
        v0 = c.speed
        blend = np.minimum(1.0, kk * dt / max(cfg.speed_blend_s, 1e-3))
        # two passes: speed profile at a first guess of s, then s from speeds
        s_guess = c.proj.s + np.abs(v0) * dt * kk
        vr = seg.speed_at(s_guess)
        ref_v = v0 + (vr - v0) * blend
        s[1:] = c.proj.s + np.cumsum(np.abs(ref_v) * dt)
        s_mid = 0.5 * (s[:-1] + s[1:])
        kap = seg.curvature_at(s_mid)
        # beyond the end of the segment: its last speed and curvature (interp clamps)
        v = ref_v
        dr = np.arctan(L * kap)
        dr = np.clip(dr, -self.vp.max_steer, self.vp.max_steer)
        g = v / (L * np.cos(dr) ** 2)
        gdt = g * dt
        b = self.beta
        vals = self.vals
        sl = self.slots
        vals[sl["vdt"]] = -v * dt
        vals[sl["ey_d"]] = -0.5 * v * dt * gdt * b
        vals[sl["ey_u"]] = -0.5 * v * dt * gdt * (1.0 - b)
        vals[sl["epsi_ey"]] = v * kap * kap * dt
        vals[sl["epsi_d"]] = -gdt * b
        vals[sl["epsi_u"]] = -gdt * (1.0 - b)
        nx = self.NX
        l, u = self.l, self.u
        x0 = (c.proj.lateral, c.proj.heading, c.steer)
        l[0:3] = u[0:3] = x0
        d = np.zeros((N, nx))
        d[:, 0] = -0.5 * v * dt * gdt * dr
        d[:, 1] = -gdt * dr
        l[nx:self.n_eq] = u[nx:self.n_eq] = d.ravel()
        q = self.q
        q[self.iu] = -2.0 * cfg.r_steer * dr
        q[self.iu[0]] += -2.0 * cfg.r_steer_rate * c.steer_cmd_prev
        self.solver.update(q=q, l=l, u=u, Ax=vals[self.perm])
        if self.last_solution is None:
            # cold start from the feed-forward
            z0 = np.zeros(self.nz)
            z0[self.iu] = dr
            self.solver.warm_start(x=z0)
        res = self.solver.solve(raise_error=False)
        st = res.info.status
        self.last_status = st
        if res.x is None or not np.all(np.isfinite(res.x)) or "solved" not in st \
                or "unsolved" in st:
            self.last_solution = None
            raise RuntimeError(f"MPC: OSQP {st}")
        self.last_solution = res.x
        self.predicted_lateral = res.x[0:self.nX:nx]
        return float(res.x[self.nX])

    def reset(self) -> None:
        self.last_solution = None


class LateralMPC:
    """Condensed LTV MPC over the steering commands U (N values).

    The predicted errors are affine in U (X = free response + Gamma U, built by one
    recursion over the horizon). The unconstrained optimum is one Cholesky solve of an NxN
    system; when it satisfies the steering angle and rate constraints it *is* the
    constrained optimum. Otherwise OSQP solves the constrained QP (the constraint matrix
    is constant: the actuator part of the model is time-invariant)."""
    NX = 3

    def __init__(self, vp: VehicleParams = VehicleParams(), cfg: MPCConfig = MPCConfig()):
        # lazy: osqp only when a constraint binds (start-up time)
        import osqp
        self.vp, self.cfg = vp, cfg
        N, dt = cfg.horizon, cfg.dt
        self.N = N
        tau = max(vp.steer_time_constant, 1e-3)
        self.a = math.exp(-dt / tau)
        self.beta = (tau / dt) * (1.0 - self.a)
        self.du_max = vp.max_steer_rate * max(tau, 0.02)
        # delta_k = a^k delta_0 + sum_j (1-a) a^(k-1-j) u_j  (k = 0..N-1): constant matrix
        Gd = np.zeros((N, N))
        for k in range(1, N):
            Gd[k] = self.a * Gd[k - 1]
            Gd[k, k - 1] += 1.0 - self.a
        self.Gd = Gd
        self.ak = self.a ** np.arange(N)
        D = np.eye(N) - np.eye(N, k=-1)
        self.DtD = D.T @ D
        self.Ir = cfg.r_steer * np.eye(N)
        w = np.ones(N)
        w[-1] = cfg.q_terminal
        self.wy, self.wp = cfg.q_lateral * w, cfg.q_heading * w
        # constrained fallback: OSQP on the condensed QP, dense P pattern (upper triangle)
        self.iu = np.triu_indices(N)
        P0 = sp.csc_matrix(np.triu(np.ones((N, N))))
        A = sp.csc_matrix(np.vstack([np.eye(N), np.eye(N) - Gd]))
        self.solver = osqp.OSQP()
        self.solver.setup(P0, np.zeros(N), A, -np.ones(2 * N), np.ones(2 * N), verbose=False,
                          warm_starting=True, polishing=True, eps_abs=1e-6, eps_rel=1e-6,
                          max_iter=4000)
        # CSC order of the upper-triangle entries (column-major): map from H
        self._P_rows, self._P_cols = P0.nonzero()
        order = np.lexsort((self._P_rows, self._P_cols))
        self._P_rows, self._P_cols = self._P_rows[order], self._P_cols[order]
        self.last_status = ""
        self.constrained_solves = 0
        self.predicted_lateral = np.zeros(N + 1)

    def _prediction(self, c: "LateralContext"):
        cfg, N, dt, L = self.cfg, self.N, self.cfg.dt, self.vp.wheelbase
        seg = c.seg
        kk = np.arange(N)
        v0 = c.speed
        blend = np.minimum(1.0, kk * dt / max(cfg.speed_blend_s, 1e-3))
        vr = seg.speed_at(c.proj.s + abs(v0) * dt * kk)
        v = v0 + (vr - v0) * blend
        s = c.proj.s + np.concatenate(([0.0], np.cumsum(np.abs(v) * dt)))
        kap = seg.curvature_at(0.5 * (s[:-1] + s[1:]))
        dr = np.clip(np.arctan(L * kap), -self.vp.max_steer, self.vp.max_steer)
        gdt = v / (L * np.cos(dr) ** 2) * dt
        b, a = self.beta, self.a
        # per-step A_k, B_k, d_k
        A = np.zeros((N, 3, 3))
        A[:, 0, 0] = 1.0
        A[:, 0, 1] = v * dt
        A[:, 0, 2] = 0.5 * v * dt * gdt * b
        A[:, 1, 0] = -v * kap * kap * dt
        A[:, 1, 1] = 1.0
        A[:, 1, 2] = gdt * b
        A[:, 2, 2] = a
        B = np.stack([0.5 * v * dt * gdt * (1 - b), gdt * (1 - b), np.full(N, 1 - a)], 1)
        d = np.stack([-0.5 * v * dt * gdt * dr, -gdt * dr, np.zeros(N)], 1)
        # free response and input response of e_y, e_psi at k = 1..N
        G = np.zeros((N + 1, 3, N))
        xf = np.zeros((N + 1, 3))
        xf[0] = (c.proj.lateral, c.proj.heading, c.steer)
        for k in range(N):
            Ak = A[k]
            xf[k + 1] = Ak @ xf[k] + d[k]
            G[k + 1] = Ak @ G[k]
            G[k + 1, :, k] += B[k]
        return dr, xf, G

    def compute(self, c: "LateralContext") -> float:
        cfg, N = self.cfg, self.N
        dr, xf, G = self._prediction(c)
        Gy, Gp = G[1:, 0, :], G[1:, 1, :]
        r_rate = cfg.r_steer_rate * min(1.0, max(cfg.rate_weight_min,
                                                 (c.speed / cfg.rate_weight_speed) ** 2))
        H = (Gy.T * self.wy) @ Gy + (Gp.T * self.wp) @ Gp + self.Ir + r_rate * self.DtD
        f = Gy.T @ (self.wy * xf[1:, 0]) + Gp.T @ (self.wp * xf[1:, 1]) - cfg.r_steer * dr
        f[0] -= r_rate * c.steer_cmd_prev
        try:
            U = -np.linalg.solve(H, f)
        except np.linalg.LinAlgError:
            U = None
        d0 = self.ak * c.steer                           # free response of delta_k
        ms, du = self.vp.max_steer, self.du_max
        feasible = U is not None and np.all(np.isfinite(U))
        if feasible:
            rate = U - (self.Gd @ U + d0)
            feasible = (np.max(np.abs(U)) <= ms + 1e-9 and np.max(np.abs(rate)) <= du + 1e-9)
        if feasible:
            self.last_status = "unconstrained"
        else:
            self.constrained_solves += 1
            Hs = 2.0 * H
            self.solver.update(Px=Hs[self._P_rows, self._P_cols], q=2.0 * f,
                               l=np.concatenate((np.full(N, -ms), d0 - du)),
                               u=np.concatenate((np.full(N, ms), d0 + du)))
            res = self.solver.solve(raise_error=False)
            st = res.info.status
            self.last_status = st
            if res.x is None or not np.all(np.isfinite(res.x)) or st not in (
                    "solved", "solved inaccurate", "maximum iterations reached"):
                raise RuntimeError(f"MPC: OSQP {st}")
            U = res.x
        self.predicted_lateral = np.concatenate(([xf[0, 0]], xf[1:, 0] + Gy @ U))
        self.last_solution = U
        return float(U[0])

    def reset(self) -> None:
        pass


@dataclass
class PurePursuitConfig:
    lookahead_time: float = 0.6     # s: Ld = lookahead_time * |v| + lookahead_min
    lookahead_min: float = 3.0      # m
    lookahead_max: float = 25.0     # m


class PurePursuit:
    def __init__(self, vp: VehicleParams = VehicleParams(),
                 cfg: PurePursuitConfig = PurePursuitConfig()):
        self.vp, self.cfg = vp, cfg

    def compute(self, c: LateralContext) -> float:
        cfg = self.cfg
        ld = min(max(cfg.lookahead_time * abs(c.speed) + cfg.lookahead_min,
                     cfg.lookahead_min), cfg.lookahead_max)
        tx, ty = target_point(c.seg, c.proj.s + ld)
        dx, dy = tx - c.x, ty - c.y
        cy, sy = math.cos(c.yaw), math.sin(c.yaw)
        xl, yl = dx * cy + dy * sy, -dx * sy + dy * cy
        d2 = max(xl * xl + yl * yl, 1e-6)
        return math.atan(2.0 * self.vp.wheelbase * yl / d2)

    def reset(self) -> None:
        pass


@dataclass
class StanleyConfig:
    gain: float = 1.5           # 1/s
    soft_speed: float = 1.0     # m/s
    feedforward: bool = True    # add atan(L * curvature) of the path at the front axle


class Stanley:
    """Front-axle Stanley law (forward driving); in reverse it defers to Pure Pursuit."""

    def __init__(self, vp: VehicleParams = VehicleParams(), cfg: StanleyConfig = StanleyConfig()):
        self.vp, self.cfg = vp, cfg
        self._pp = PurePursuit(vp)

    def compute(self, c: LateralContext) -> float:
        if c.seg.direction < 0:
            return self._pp.compute(c)
        L = self.vp.wheelbase
        fx, fy = c.x + L * math.cos(c.yaw), c.y + L * math.sin(c.yaw)
        pf = c.seg.project(fx, fy, c.yaw, None)
        ff = math.atan(L * float(c.seg.curvature_at(pf.s))) if self.cfg.feedforward else 0.0
        return ff - pf.heading - math.atan2(self.cfg.gain * pf.lateral,
                                           self.cfg.soft_speed + abs(c.speed))

    def reset(self) -> None:
        pass


def target_point(seg: PathSegment, s: float):
    """Point at travelled arc length s; beyond the end, extended along the last heading in
    the direction of travel."""
    if s <= seg.length:
        x, y, _ = seg.point_at(s)
        return x, y
    x, y, yaw = seg.point_at(seg.length)
    ext = (s - seg.length) * seg.direction
    return x + ext * math.cos(yaw), y + ext * math.sin(yaw)


def make_lateral(name: str, vp: VehicleParams, mpc_cfg: MPCConfig = MPCConfig(),
                 pp_cfg: PurePursuitConfig = PurePursuitConfig(),
                 st_cfg: StanleyConfig = StanleyConfig()):
    if name == "mpc":
        return LateralMPC(vp, mpc_cfg)
    if name == "pure_pursuit":
        return PurePursuit(vp, pp_cfg)
    if name == "stanley":
        return Stanley(vp, st_cfg)
    raise ValueError(f"unknown lateral controller '{name}' (mpc, pure_pursuit, stanley)")
