"""The piecewise-jerk QPs of `trajectory_optimizer` as OSQP problems: the sparse
constraint matrices (piecewise-jerk dynamics, jerk rows, the path QP's bound blocks), the
speed QP with its fixed structure (set up once, bounds and costs updated per cycle) and
the solver settings both share (iteration-bounded; the wall-clock limit a safety net)."""
from __future__ import annotations

import numpy as np
import osqp
import scipy.sparse as sp

def _pj_dynamics(n: int, h: float, offset: int = 0):
    """Rows of piecewise-jerk equality constraints for states (x, x', x'') stacked as
    [x_0..x_n | x'_0..x'_n | x''_0..x''_n] (n+1 knots, step h):
    x_{k+1} = x_k + x'_k h + x''_k h^2/3 + x''_{k+1} h^2/6,
    x'_{k+1} = x'_k + (x''_k + x''_{k+1}) h/2."""
    K = n + 1
    k = np.arange(n)
    r1 = 2 * k
    r2 = 2 * k + 1
    rows = np.concatenate([np.repeat(r1, 5), np.repeat(r2, 4)])
    cols = np.concatenate([np.column_stack([k + 1, k, K + k, 2 * K + k, 2 * K + k + 1]).ravel(),
                           np.column_stack([K + k + 1, K + k, 2 * K + k, 2 * K + k + 1]).ravel()])
    v1 = np.tile([1.0, -1.0, -h, -h * h / 3.0, -h * h / 6.0], n)
    v2 = np.tile([1.0, -1.0, -h / 2.0, -h / 2.0], n)
    return rows, cols + offset, np.concatenate([v1, v2]), 2 * n


def _jerk_rows(n: int, r0: int, offset: int = 0):
    K = n + 1
    k = np.arange(n)
    rows = np.repeat(r0 + k, 2)
    cols = np.column_stack([offset + 2 * K + k + 1, offset + 2 * K + k]).ravel()
    vals = np.tile([1.0, -1.0], n)
    return rows, cols, vals, r0 + n


def path_matrices(K: int, h: float, front: float = 3.8, rear: float = 0.9):
    """Constraint matrix of the path QP, variables [d | d' | d'' | e | e2] (e, e2 >= 0:
    slacks of the lateral and curvature bounds, so the QP is always feasible). Fixed
    sparsity for a given K; values depend on h. Row blocks (returned offsets):
    dynamics (2n, = 0) | jerk (n) | d + e >= lo | d - e <= hi | the same for the front
    (d + front d') and rear (d - rear d') body corners | d' | d'' + e2 >= lo2 |
    d'' - e2 <= hi2 | e >= 0 | e2 >= 0 | d_0 | d''_0."""
    n = K - 1
    r, c, v, nr = _pj_dynamics(n, h)
    jr, jc, jv, r0 = _jerk_rows(n, nr)
    k = np.arange(K)
    blocks_r, blocks_c, blocks_v = [r, jr], [c, jc], [v, jv]
    rows = {}
    cur = r0

    def add(name, cols_vals):
        nonlocal cur
        rows[name] = cur
        for cols, val in cols_vals:
            blocks_r.append(cur + k); blocks_c.append(cols); blocks_v.append(np.full(K, val))
        cur += K

    add("lo", [(k, 1.0), (3 * K + k, 1.0)])
    add("hi", [(k, 1.0), (3 * K + k, -1.0)])
    # body corners (small-angle): front d + front * d', rear d - rear * d'
    add("flo", [(k, 1.0), (K + k, front), (3 * K + k, 1.0)])
    add("fhi", [(k, 1.0), (K + k, front), (3 * K + k, -1.0)])
    add("rlo", [(k, 1.0), (K + k, -rear), (3 * K + k, 1.0)])
    add("rhi", [(k, 1.0), (K + k, -rear), (3 * K + k, -1.0)])
    add("d1", [(K + k, 1.0)])
    add("lo2", [(2 * K + k, 1.0), (4 * K + k, 1.0)])
    add("hi2", [(2 * K + k, 1.0), (4 * K + k, -1.0)])
    add("e", [(3 * K + k, 1.0)])
    add("e2", [(4 * K + k, 1.0)])
    rows["d0"] = cur
    blocks_r.append(np.array([cur, cur + 1])); blocks_c.append(np.array([0, 2 * K]))
    blocks_v.append(np.array([1.0, 1.0]))
    cur += 2
    A = sp.csc_matrix((np.concatenate(blocks_v), (np.concatenate(blocks_r), np.concatenate(blocks_c))),
                      shape=(cur, 5 * K))
    A.sort_indices()
    rows["n_eq"], rows["jerk"] = nr, nr
    return A, rows


def solver_settings(cfg) -> dict:
    """OSQP settings of both QPs: iteration-bounded (max_iter; rho adapted every
    adaptive_rho_interval iterations, never by its timing), the wall-clock time_limit only
    as a safety net."""
    return dict(verbose=False, eps_abs=cfg.eps, eps_rel=cfg.eps, max_iter=cfg.max_iter,
                polishing=True, warm_starting=True, time_limit=cfg.time_limit,
                adaptive_rho=True, adaptive_rho_interval=cfg.adaptive_rho_interval)


def solved(res) -> bool:
    """OSQP reports 'solved' or 'solved inaccurate' (accepted: within the tolerances we
    check afterwards); anything else (infeasible, max iterations) is a failure."""
    st = str(res.info.status).lower()
    return st.startswith("solved") and res.x is not None and np.all(np.isfinite(res.x))


class SpeedQP:
    """Piecewise-jerk speed QP with fixed structure (set up once, updated per cycle)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.n = int(round(cfg.horizon / cfg.dt))
        n, K, dt = self.n, self.n + 1, cfg.dt
        self.K = K
        nv = 4 * K           # s, v, a, slack
        rows, cols, vals, r = _pj_dynamics(n, dt)
        rows, cols, vals = list(rows), list(cols), list(vals)
        self.n_eq = r
        jr, jc, jv, r = _jerk_rows(n, r)
        rows += list(jr); cols += list(jc); vals += list(jv)
        self.r_jerk = (self.n_eq, r)
        # s_k - slack_k <= s_max_k
        self.r_cap = r
        for k in range(K):
            rows += [r + k, r + k]; cols += [k, 3 * K + k]; vals += [1.0, -1.0]
        r += K
        # identity on s (initial), v, a, slack
        self.r_id = r
        for k in range(4 * K):
            rows.append(r + k); cols.append(k); vals.append(1.0)
        r += 4 * K
        self.m = r
        self.A = sp.csc_matrix((vals, (rows, cols)), shape=(r, nv))
        # cost
        P = sp.lil_matrix((nv, nv))
        for k in range(K):
            P[k, k] += cfg.w_s
            P[K + k, K + k] += cfg.w_v
            P[2 * K + k, 2 * K + k] += cfg.w_a
            P[3 * K + k, 3 * K + k] += 1.0
        wj = cfg.w_j / (dt * dt)
        for k in range(n):
            i, j = 2 * K + k, 2 * K + k + 1
            P[i, i] += wj; P[j, j] += wj; P[i, j] -= wj; P[j, i] -= wj
        self.P = sp.triu(P.tocsc(), format="csc")
        self.nv = nv
        self.solver = None

    def solve(self, v0, a0, v_ref, s_ref, v_min, v_max, s_max, emergency=False, warm=None):
        cfg = self.cfg
        K, dt = self.K, cfg.dt
        a_min = -(cfg.emergency_decel if emergency else cfg.max_decel)
        jmax = cfg.emergency_jerk if emergency else cfg.max_jerk
        q = np.zeros(self.nv)
        q[:K] = -cfg.w_s * s_ref
        q[K:2 * K] = -cfg.w_v * v_ref
        q[3 * K:] = cfg.w_slack
        l = np.zeros(self.m)
        u = np.zeros(self.m)
        r0, r1 = self.r_jerk
        l[r0:r1] = -jmax * dt * (3.0 if emergency else 1.0)
        u[r0:r1] = jmax * dt * (3.0 if emergency else 1.0)
        l[self.r_cap:self.r_cap + K] = -np.inf
        u[self.r_cap:self.r_cap + K] = np.where(np.isfinite(s_max) & (s_max < 1e5), s_max, np.inf)
        rid = self.r_id
        # s
        l[rid:rid + K] = -np.inf; u[rid:rid + K] = np.inf
        l[rid] = u[rid] = 0.0
        # v
        vmin = np.minimum(v_min, v_max)
        l[rid + K:rid + 2 * K] = np.maximum(vmin, 0.0)
        u[rid + K:rid + 2 * K] = np.maximum(v_max, 0.0)
        l[rid + K] = u[rid + K] = max(v0, 0.0)
        # a
        a0c = float(np.clip(a0, a_min, cfg.max_accel))
        l[rid + 2 * K:rid + 3 * K] = a_min
        u[rid + 2 * K:rid + 3 * K] = cfg.max_accel
        l[rid + 2 * K] = u[rid + 2 * K] = a0c
        # slack >= 0
        l[rid + 3 * K:rid + 4 * K] = 0.0
        u[rid + 3 * K:rid + 4 * K] = np.inf
        if self.solver is None:
            self.solver = osqp.OSQP()
            self.solver.setup(self.P, q, self.A, l, u, **solver_settings(cfg))
        else:
            self.solver.update(q=q, l=l, u=u)
        if warm is not None:
            self.solver.warm_start(x=warm)
        res = self.solver.solve()
        return res
