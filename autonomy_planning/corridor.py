"""Convex corridor around the chosen maneuver.

Lateral bounds per station (the region the ego's *body* may occupy at that station, as
offsets from the reference path, positive left) and, per time, speed bounds and an upper
bound on the station of the ego's reference point. Built from the drivable bounds, every
static obstacle (cut on the side away from the chosen maneuver along its whole extent)
and every likely agent occupancy (hypotheses with probability >= `min_probability`) at the
times the chosen maneuver's body overlaps it longitudinally. An agent ahead in the ego's
path that the maneuver stays behind caps the station bound; a station where the free
width is narrower than the ego caps the station bound before it.

Because the corridor is a box per station (lateral) and per time (speed / station), the
trajectory optimiser can use it as linear constraints (`BodyBounds`: the corridor as
bounds on the reference point's lateral offset for the ego's body).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from autonomy_planning.maneuver_search import Occupancy
from autonomy_planning.scene import RoadFrame


@dataclass
class CorridorConfig:
    station_step: float = 1.0
    lat_margin: float = 0.2          # m kept free between the body bounds and an obstacle
    lon_margin: float = 1.0          # m added to the body's longitudinal extent for cuts
    follow_gap: float = 2.5          # m kept behind a lead / blocking obstacle
    min_probability: float = 0.1
    lat_acc_max: float = 3.0         # for the curvature speed bound
    overspeed: float = 1.05          # speed bound = limit * overspeed, ...
    # ... but at most this much over the limit (measured: 5 % of a 30 m/s limit let the plan
    # run at 31.5 m/s, and the supervisor stopped the car for over_speed, margin 1.5 m/s)
    overspeed_max_mps: float = 0.5


@dataclass
class Corridor:
    stations: np.ndarray        # (M,) absolute stations on the reference
    left: np.ndarray            # (M,) left body bound (d)
    right: np.ndarray           # (M,) right body bound (d)
    ref_x: np.ndarray
    ref_y: np.ndarray
    ref_heading: np.ndarray
    times: np.ndarray           # (T,) s from now
    speed_min: np.ndarray       # (T,)
    speed_max: np.ndarray       # (T,)
    station_max: np.ndarray     # (T,) upper bound on the reference point's station
    blocked_station: float      # first station too narrow for the ego (inf if none)
    cuts: list                  # [(k, side, s_lo, s_hi, d_edge)] for diagnostics

    def bounds_at(self, s):
        return (np.interp(s, self.stations, self.right), np.interp(s, self.stations, self.left))

    def time_at_station(self, chosen_s: np.ndarray, chosen_t: np.ndarray) -> np.ndarray:
        """First time the chosen maneuver reaches each corridor station (inf if never)."""
        out = np.full(len(self.stations), np.inf)
        for i, st in enumerate(self.stations):
            k = np.searchsorted(chosen_s, st)
            if k < len(chosen_s) and chosen_s[k] >= st:
                out[i] = chosen_t[k]
        return out


def build_corridor(frame: RoadFrame, t: np.ndarray, D: np.ndarray, S: np.ndarray, V: np.ndarray,
                   occ: Occupancy, body: tuple, cfg: Optional[CorridorConfig] = None,
                   speed_limit: float = 13.9) -> Corridor:
    """D, S, V: the chosen maneuver's lateral offset, absolute station and speed on `t`.
    body: (front, rear, half_width) about the reference point. Speed bound per time: the
    lowest of `speed_limit` (the planner's desired speed), the limit of the route lane
    reached (`frame.speed_limit_at`) and the reference's curvature."""
    cfg = cfg or CorridorConfig()
    front, rear, hw = body
    s_end = max(S[-1] + front + 15.0, frame.ego_s + 25.0)
    st = np.arange(frame.ego_s - rear - 2.0, s_end + cfg.station_step, cfg.station_step)
    left = np.interp(st, frame.station_grid, frame.road_left)
    right = np.interp(st, frame.station_grid, frame.road_right)
    s_max = np.full(len(t), np.inf)
    cuts = []
    for k in range(len(occ)):
        if occ.p[k] < cfg.min_probability:
            continue
        if occ.static[k]:
            _cut_static(k, occ, st, left, right, D, S, cfg, cuts)
        else:
            s_max = _cut_moving(k, occ, st, left, right, D, S, body, cfg, cuts, s_max)
    # too narrow for the body -> the ego must stop before that station
    narrow = (left - right) < 2.0 * hw + 0.1
    ahead_st = st > frame.ego_s + front
    blocked = np.where(narrow & ahead_st)[0]
    blocked_station = float(st[blocked[0]]) if len(blocked) else np.inf
    if np.isfinite(blocked_station):
        s_max = np.minimum(s_max, blocked_station - front - 1.0)
    # never demand the impossible: the cap cannot be behind where braking hard can stop
    v0 = max(float(V[0]), 0.0)
    s_brake = S[0] + np.where(t < v0 / 6.0, v0 * t - 3.0 * t * t, v0 * v0 / 12.0)
    s_max = np.maximum(s_max, s_brake)
    kap = np.abs(frame.ref.curvature_at(S))
    v_curve = np.sqrt(cfg.lat_acc_max / np.maximum(kap, 1e-4))
    # the limit of the route lane the chosen maneuver's front reaches at each time (a
    # slower lane ahead is entered at its limit)
    v_lane = frame.speed_limit_at(S + front)
    limit = np.minimum(speed_limit, v_lane)
    vmax = np.minimum(np.minimum(limit * cfg.overspeed, limit + cfg.overspeed_max_mps), v_curve)
    vmax = np.maximum(vmax, 0.5)
    x, y, h = frame.ref.to_xy(st, np.zeros_like(st))
    return Corridor(stations=st, left=left, right=right, ref_x=x, ref_y=y, ref_heading=h,
                    times=t.copy(), speed_min=np.zeros(len(t)), speed_max=vmax,
                    station_max=s_max, blocked_station=blocked_station, cuts=cuts)


def _cut_static(k: int, occ: Occupancy, st, left, right, D, S, cfg: CorridorConfig,
                cuts: list) -> None:
    """Cut static obstacle k out of the bounds (in place) along its whole extent, on the
    side away from the maneuver's offset where it passes (or would pass) it."""
    sk, dk, hs, hd = occ.s[k], occ.d[k], occ.hs[k], occ.hd[k]
    lo_s, hi_s = sk[0] - hs[0] - cfg.lon_margin, sk[0] + hs[0] + cfg.lon_margin
    m = (st >= lo_s) & (st <= hi_s)
    if not np.any(m):
        return
    Sm = np.maximum.accumulate(S)
    d_ref = float(np.interp(sk[0], Sm + 1e-6 * np.arange(len(Sm)), D))
    if dk[0] > d_ref:
        edge = dk[0] - hd[0] - cfg.lat_margin
        left[m] = np.minimum(left[m], edge)
        cuts.append((k, "left", lo_s, hi_s, edge))
    else:
        edge = dk[0] + hd[0] + cfg.lat_margin
        right[m] = np.maximum(right[m], edge)
        cuts.append((k, "right", lo_s, hi_s, edge))


def _cut_moving(k: int, occ: Occupancy, st, left, right, D, S, body: tuple,
                cfg: CorridorConfig, cuts: list, s_max: np.ndarray) -> np.ndarray:
    """Cut moving occupancy k out of the bounds (in place) where the chosen body overlaps
    it in time; returns the station cap, lowered if it blocks the path ahead. (An agent
    entirely ahead of or behind the body is handled by the station cap, not by a lateral
    cut: a crossing pedestrian must not pinch the corridor around a waiting ego.)"""
    front, rear, hw = body
    sk, dk, hs, hd = occ.s[k], occ.d[k], occ.hs[k], occ.hd[k]
    b_lo, b_hi = S - rear, S + front
    o_lo, o_hi = sk - hs, sk + hs
    ov = (o_hi > b_lo) & (o_lo < b_hi)
    lat_clear = np.abs(D - dk) - (hw + hd)
    # blocking ahead in our path, same direction: station cap instead of a cut
    ahead = (o_lo > S + front) & (lat_clear < cfg.lat_margin) & (occ.vs[k] > -0.5)
    if np.any(ahead):
        cap = np.where(ahead, o_lo - front - cfg.follow_gap, np.inf)
        s_max = np.minimum(s_max, cap)
    for ti in np.where(ov)[0]:
        lo_s = max(o_lo[ti], b_lo[ti]) - cfg.lon_margin
        hi_s = min(o_hi[ti], b_hi[ti]) + cfg.lon_margin
        m = (st >= lo_s) & (st <= hi_s)
        if not np.any(m):
            continue
        if dk[ti] > D[ti]:
            edge = dk[ti] - hd[ti] - cfg.lat_margin
            left[m] = np.minimum(left[m], edge)
        else:
            edge = dk[ti] + hd[ti] + cfg.lat_margin
            right[m] = np.maximum(right[m], edge)
    if np.any(ov):
        cuts.append((k, "dynamic", float(sk[ov].min()), float(sk[ov].max()), 0.0))
    return s_max


class BodyBounds:
    """The corridor as bounds on the reference point's lateral offset d for a body
    (front, rear, half_width) about that point, keeping `margin` free: what the path QP
    of `trajectory_optimizer` constrains."""

    def __init__(self, corridor: Corridor, ref, body: tuple, margin: float):
        self.ref, self.body, self.margin = ref, body, margin
        front, rear, _ = body
        st = self.stations = corridor.stations
        step = float(st[1] - st[0]) if len(st) > 1 else 1.0
        # at knot sigma the body spans stations [sigma - rear, sigma + front]: the window
        # [sigma - rear, sigma + front] on the uniform station grid
        wb = int(np.ceil((rear + 0.5) / step))
        wf = int(np.ceil((front + 0.5) / step))
        size = wb + wf + 1
        self.right_w = maximum_filter1d(corridor.right, size=size, mode="nearest",
                                        origin=-((wf - wb) // 2))
        self.left_w = minimum_filter1d(corridor.left, size=size, mode="nearest",
                                       origin=-((wf - wb) // 2))
        self.right_1 = maximum_filter1d(corridor.right, size=3, mode="nearest")
        self.left_1 = minimum_filter1d(corridor.left, size=3, mode="nearest")

    def lateral(self, sig_abs):
        """(lo, hi) on d at stations sig_abs: the body's whole length inside."""
        hw = self.body[2]
        lo = np.interp(sig_abs, self.stations, self.right_w)
        hi = np.interp(sig_abs, self.stations, self.left_w)
        return lo + hw + self.margin, hi - hw - self.margin

    def corner_bounds(self, sig_abs, d_e: float, d1_0: float):
        """(flo, fhi, rlo, rhi): bounds of the front (d + front d') and rear (d - rear d')
        body corners; the current pose (offset d_e, heading d1_0) is always admissible."""
        front, rear, hw = self.body
        st = self.stations
        m = hw + self.margin
        # a body corner L ahead of / behind the reference point lies kappa L^2 / 2
        # towards the outside of a curved reference: shift its bounds accordingly
        k = self.ref.curvature_at(sig_abs)
        cf, cr = 0.5 * k * front ** 2, 0.5 * k * rear ** 2
        flo = np.interp(sig_abs + front, st, self.right_1) + m + cf
        fhi = np.interp(sig_abs + front, st, self.left_1) - m + cf
        rlo = np.interp(sig_abs - rear, st, self.right_1) + m + cr
        rhi = np.interp(sig_abs - rear, st, self.left_1) - m + cr
        # the current pose is always admissible
        near = sig_abs - sig_abs[0] < 3.0
        f0, r0 = d_e + front * d1_0, d_e - rear * d1_0
        flo = np.where(near, np.minimum(flo, f0 - 0.05), flo)
        fhi = np.where(near, np.maximum(fhi, f0 + 0.05), fhi)
        rlo = np.where(near, np.minimum(rlo, r0 - 0.05), rlo)
        rhi = np.where(near, np.maximum(rhi, r0 + 0.05), rhi)
        return flo, fhi, rlo, rhi

    def path_bounds(self, sig, sig_abs, d_e: float, d1_0: float):
        """(lo, hi, corners) at the path knots sig (absolute sig_abs). From the first knot
        where the free width is too small for the body (a blocked passage: the station
        cap stops the ego before it) the bounds of the last passable knot are held: the
        path beyond a stop is never driven and must not be bent by a wall it will not
        reach. Corner bounds that cannot hold (a wall across the road) are dropped the
        same way. The current position is always admissible."""
        lo, hi = self.lateral(sig_abs)
        bad = lo > hi
        corners = self.corner_bounds(sig_abs, d_e, d1_0)
        if np.any(bad):
            k0 = int(np.argmax(bad))
            if k0 == 0:
                c = 0.5 * (lo + hi)
                lo = np.where(bad, c - 0.01, lo)
                hi = np.where(bad, c + 0.01, hi)
            else:
                lo[k0:], hi[k0:] = lo[k0 - 1], hi[k0 - 1]
                corners = tuple(np.concatenate([b[:k0], np.full(len(b) - k0, b[k0 - 1])])
                                for b in corners)
        cb = list(corners)
        for a_, b_ in ((0, 1), (2, 3)):
            badc = cb[a_] > cb[b_]
            if np.any(badc):
                k0 = int(np.argmax(badc))
                if k0 > 0:
                    cb[a_][k0:], cb[b_][k0:] = cb[a_][k0 - 1], cb[b_][k0 - 1]
        near = sig < 3.0
        lo = np.where(near, np.minimum(lo, d_e - 0.05), lo)
        hi = np.where(near, np.maximum(hi, d_e + 0.05), hi)
        return lo, hi, tuple(cb)
