"""Candidate rollouts of the maneuver search (`maneuver_search`), all profiles at once in
numpy: lateral offset profiles d_i(t) (quintic blends to a target offset and back) and
longitudinal profiles s_j(t), v_j(t), a_j(t) (jerk-limited rollouts of simple speed
controllers: cruise, stop at a point, follow a lead; closed-form constant-acceleration
profiles for the other agents).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np


def smoothstep(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


@dataclass
class LateralSet:
    d: np.ndarray          # (I, T) lateral offset of the reference point
    dd: np.ndarray         # (I, T) lateral velocity
    ddd: np.ndarray        # (I, T) lateral acceleration
    kind: List[str]        # keep / lane_change_left / lane_change_right / nudge_left / ...
    target: np.ndarray     # (I,) final offset
    peak_jerk: np.ndarray  # (I,)

    def __len__(self):
        return self.d.shape[0]


@dataclass
class LongitudinalSet:
    s: np.ndarray          # (J, T) station travelled from now (m)
    v: np.ndarray          # (J, T)
    a: np.ndarray          # (J, T)
    kind: List[str]        # cruise / stop / follow
    a_cmd0: np.ndarray     # (J,) intended (commanded) acceleration at t = 0
    emergency: np.ndarray  # (J,) bool: needs braking harder than comfortable
    stop_d: np.ndarray = None  # (J,) stop distance (inf for non-stop profiles)

    def __len__(self):
        return self.s.shape[0]


def lateral_profiles(t: np.ndarray, d0: float, dd0: float, specs: Sequence[tuple]) -> LateralSet:
    """specs: (kind, d_target, t_start, duration, t_return, d_return[, return_duration])
    tuples. The profile
    blends from d0 to d_target with a quintic smoothstep over [t_start, t_start+duration]
    and, if t_return < horizon, back to d_return; the initial lateral velocity dd0 is
    carried by a term that decays to zero within 2 s."""
    n = len(specs)
    kind = [sp[0] for sp in specs]
    tgt = np.array([sp[1] for sp in specs], dtype=float)[:, None]
    ts = np.array([sp[2] for sp in specs], dtype=float)[:, None]
    du = np.array([sp[3] for sp in specs], dtype=float)[:, None]
    tr = np.array([sp[4] for sp in specs], dtype=float)[:, None]
    dr = np.array([sp[5] for sp in specs], dtype=float)[:, None]
    dub = np.array([sp[6] if len(sp) > 6 else sp[3] for sp in specs], dtype=float)[:, None]
    T = t[None, :]
    d = d0 + (tgt - d0) * smoothstep((T - ts) / du) + (dr - tgt) * smoothstep((T - tr) / dub)
    tc = 2.0
    carry = dd0 * T * np.clip(1.0 - T / tc, 0.0, None) ** 2
    d = d + carry
    dt = t[1] - t[0]
    dd = np.gradient(d, dt, axis=1)
    ddd = np.gradient(dd, dt, axis=1)
    # quintic smoothstep peak jerk = 60 * delta / duration^3
    pj = 60.0 * np.maximum(np.abs(tgt - d0), np.abs(dr - tgt)) / du ** 3
    return LateralSet(d, dd, ddd, kind, (tgt[:, 0] if n else np.zeros(0)), pj[:, 0] if n else np.zeros(0))


def longitudinal_profiles(t: np.ndarray, v0: float, a0: float, cruise: Sequence[tuple],
                          stops: Sequence[float], leads: Sequence[np.ndarray] = (),
                          v_max: float = 30.0, max_jerk: float = 4.0,
                          comfort_decel: float = 3.0, emergency_decel: float = 7.0,
                          follow_gap: float = 3.0, headway: float = 1.2,
                          stop_speed=None,
                          approach_decel: float = 0.8) -> LongitudinalSet:
    """Jerk-limited rollouts of simple speed controllers, all profiles at once.

    cruise: (target_speed, accel_magnitude) pairs; stops: distances (m) to stop at;
    leads: (T,) station trajectories (relative to now, at the rear of the lead) to follow
    with an IDM-like law. stop_speed: speed held by the stop profiles until they have to
    brake, one for all or one per stop (default: the current speed)."""
    dt = t[1] - t[0]
    T = len(t)
    nc, ns, nl = len(cruise), len(stops), len(leads)
    J = nc + ns + nl
    kind = ["cruise"] * nc + ["stop"] * ns + ["follow"] * nl
    vs_ = np.broadcast_to(max(v0, 0.0) if stop_speed is None else
                          np.asarray(stop_speed, dtype=float), (ns,))
    v_t = np.array([c[0] for c in cruise] + list(vs_) + [v_max] * nl, dtype=float)
    a_mag = np.array([c[1] for c in cruise] + [1.5] * ns + [1.5] * nl, dtype=float)
    stop_d = np.array([np.inf] * nc + list(stops) + [np.inf] * nl, dtype=float)
    lead = np.full((J, T), np.inf)
    for k, L in enumerate(leads):
        lead[nc + ns + k] = L
    s = np.zeros((J, T))
    v = np.zeros((J, T))
    a = np.zeros((J, T))
    v[:, 0] = max(v0, 0.0)
    a[:, 0] = a0
    a_cmd0 = np.zeros(J)
    st, ld = slice(nc, nc + ns), slice(nc + ns, J)
    sd = stop_d[st]
    lead_v = np.zeros((nl, T))
    if nl:
        lead_v[:, :-1] = np.diff(lead[ld], axis=1) / dt
        lead_v[:, -1] = lead_v[:, -2]
    kd = 1.0 / (2.0 * np.sqrt(2.0 * comfort_decel))
    jd = max_jerk * dt
    up_a, lo_a = a_mag, -1.5 * a_mag
    for k in range(T - 1):
        vk, sk, ak = v[:, k], s[:, k], a[:, k]
        # speed tracking (P law, bounded by the profile's accel magnitude)
        a_c = np.minimum(np.maximum(1.2 * (v_t - vk), lo_a), up_a)
        if ns:
            a_c[st] = _stop_law(vk[st], sd - sk[st], v_t[st], a_mag[st], comfort_decel,
                                emergency_decel, approach_decel)
        if nl:
            vl = vk[ld]
            s_star = follow_gap + vl * headway + vl * np.maximum(vl - lead_v[:, k], 0.0) * kd
            a_c[ld] = _follow_law(vl, lead[ld, k] - sk[ld], s_star, a_c[ld], v_max,
                                  emergency_decel)
        if k == 0:
            a_cmd0 = a_c.copy()
        da = a_c - ak
        an = ak + np.minimum(np.maximum(da, np.where(a_c < -comfort_decel, -3.0 * jd, -jd)), jd)
        vn = vk + 0.5 * (ak + an) * dt
        neg = vn < 0.0
        if neg.any():
            vn[neg] = 0.0
            an[neg] = 0.0
        a[:, k + 1] = an
        v[:, k + 1] = vn
        s[:, k + 1] = sk + 0.5 * (vk + vn) * dt
    emergency = np.min(a, axis=1) < -comfort_decel - 0.05
    # the intent of a stop profile is the constant deceleration that ends at its point
    with np.errstate(divide="ignore"):
        intent = -max(v0, 0.0) ** 2 / (2.0 * np.maximum(stop_d, 0.05))
    a_cmd0 = np.where(np.isfinite(stop_d), intent, a_cmd0)
    return LongitudinalSet(s, v, a, kind, a_cmd0, emergency, stop_d)


def _stop_law(vs, rem, v_target, a_max, comfort_decel: float, emergency_decel: float,
              approach_decel: float) -> np.ndarray:
    """Commanded acceleration of the stop profiles at one step: speed vs, `rem` metres
    left to the stop point, cruise target v_target, acceleration bound a_max."""
    far = rem > 0.05
    # approach speed that a gentle deceleration (`approach_decel`, leaving room
    # for the jerk limit) can still stop from, tracked with the P law (this also
    # creeps up to a far stop point without overshooting a near one)
    a_app = np.minimum(approach_decel + 0.01 * np.maximum(rem, 0.0), 1.5)
    v_cap = np.sqrt(2.0 * a_app * np.maximum(rem - 0.3, 0.0))
    ac = np.minimum(np.maximum(1.2 * (np.minimum(v_target, v_cap) - vs), -emergency_decel),
                    a_max)
    need = np.where(far, vs * vs / (2.0 * np.maximum(rem, 0.05)),
                    emergency_decel * (vs > 0.05))
    ac = np.where(need > 0.6 * comfort_decel,
                  np.minimum(ac, -np.minimum(need * 1.1, emergency_decel)), ac)
    return np.where(~far & (vs < 0.3), -3.0, ac)


def _follow_law(vl, gap, s_star, a_c, v_max: float, emergency_decel: float) -> np.ndarray:
    """IDM-like acceleration of the follow profiles at one step (speed vl, gap to the
    lead, desired gap s_star), never above the speed-tracking command a_c."""
    a_idm = 1.5 * (1.0 - (vl / max(v_max, 0.1)) ** 4 - (s_star / np.maximum(gap, 0.1)) ** 2)
    return np.maximum(np.minimum(a_c, a_idm), -emergency_decel)


def constant_accel_profiles(t: np.ndarray, v0: float, specs: Sequence[tuple]) -> LongitudinalSet:
    """Closed-form profiles (no rollout loop) for the cheap configuration used for other
    agents: ("cruise", v_target, accel) accelerates/brakes at `accel` to `v_target` and
    holds; ("stop", distance) brakes at the constant deceleration that ends there."""
    v0 = max(float(v0), 0.0)
    J = len(specs)
    acc = np.zeros(J)
    vt = np.zeros(J)
    stop_d = np.full(J, np.inf)
    kind = []
    for k, sp in enumerate(specs):
        if sp[0] == "stop":
            d = max(float(sp[1]), 0.1)
            acc[k] = -v0 * v0 / (2.0 * d)
            vt[k] = 0.0
            stop_d[k] = d
            kind.append("stop")
        else:
            vt[k] = max(float(sp[1]), 0.0)
            acc[k] = np.sign(vt[k] - v0) * abs(float(sp[2]))
            kind.append("cruise")
    T = t[None, :]
    dv = vt - v0
    with np.errstate(divide="ignore", invalid="ignore"):
        t_end = np.where(np.abs(acc) > 1e-6, dv / acc, 0.0)[:, None]
    t_end = np.maximum(t_end, 0.0)
    v = np.where(T < t_end, v0 + acc[:, None] * T, vt[:, None])
    a = np.where(T < t_end, acc[:, None], 0.0) * np.ones_like(v)
    dt = t[1] - t[0]
    s = np.concatenate([np.zeros((J, 1)), np.cumsum(0.5 * (v[:, 1:] + v[:, :-1]) * dt, axis=1)], axis=1)
    return LongitudinalSet(s, v, a, kind, acc.copy(), acc < -3.0, stop_d)
