"""Coarse maneuver search: thousands of physics-based candidate rollouts per cycle,
vectorised in numpy, scored against the other agents' futures.

A candidate is a pair (lateral profile i, longitudinal profile j) in the Frenet frame of
the reference path: d_i(t) (lane keep, lane change left/right with start time and
duration, nudge out-and-back, pull over) and s_j(t), v_j(t), a_j(t) (jerk-limited speed
profiles: cruise at several target speeds, stop at several stations / before obstacles /
at the goal, follow a lead vehicle). Because the Frenet occupancy test separates into a
lateral and a longitudinal factor, the collision and clearance terms of all I x J
candidates against K predicted occupancies are batched matrix products
(K, I, T) @ (K, T, J) instead of an I*J*K*T loop.

The same search, configured with a few profiles, is what `futures.py` runs for every
other agent ("run the planner for the others"). The profiles themselves are rolled out in
`maneuver_profiles.py`; `score` adds its cost terms with one `_add_*` helper per concern.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from autonomy_stack.params import param
from autonomy_vehicle.vehicle_model import VehicleParams

# the candidate rollouts (also used from here by `futures` and `planner`)
from autonomy_planning.maneuver_profiles import (LateralSet, LongitudinalSet,  # noqa: F401
                                                 constant_accel_profiles, lateral_profiles,
                                                 longitudinal_profiles, smoothstep)


# ---------------------------------------------------------------- configuration
@dataclass
class SearchConfig:
    # param(...): also a planning node parameter (planning_node.PARAMS)
    horizon: float = param(10.0, "s, planning horizon", min=2.0, max=20.0)
    dt: float = 0.2
    # ego body about its reference point (rear axle): forward / backward extent, half width
    # (the vehicle description's; the Planner sets its PlannerConfig.vehicle's)
    front: float = VehicleParams().front
    rear: float = VehicleParams().rear
    half_width: float = VehicleParams().half_width
    # profile sets
    lc_start_times: Sequence[float] = param((0.0, 1.0, 2.0, 3.0, 4.5),
                                            "s, candidate lane-change start times")
    lc_durations: Sequence[float] = param((3.0, 4.5, 6.0), "s, candidate lane-change durations")
    nudge_offsets: Sequence[float] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
    nudge_starts: Sequence[float] = (0.0, 1.5)
    nudge_returns: Sequence[float] = (4.0, 7.0, 99.0)   # 99 = stay out
    nudge_duration: float = 3.5
    pull_over_starts: Sequence[float] = (0.0, 1.0)
    pull_over_durations: Sequence[float] = (2.5, 4.0)
    pull_over_margin: float = 0.25      # m between the body and the road edge
    cruise_fractions: Sequence[float] = (1.0, 0.8, 0.6, 0.4, 0.2)
    cruise_accels: Sequence[float] = (1.0, 1.8)
    stop_distances: Sequence[float] = (0.5, 2.0, 4.0, 7.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
    comfort_accel: float = 2.0
    comfort_decel: float = 3.0
    emergency_decel: float = 7.0
    max_jerk: float = 4.0
    lat_acc_comfort: float = 2.0
    lat_acc_limit: float = 4.0
    max_curvature: float = 0.15
    max_rel_heading: float = 0.4      # rad: |d'| limit (lateral speed <= 0.4 * speed)
    w_kinematic: float = 300.0
    # clearance
    lat_margin_hard: float = 0.25
    lon_margin_hard: float = 0.5
    lat_soft: float = 1.2
    lat_soft_oncoming: float = 2.0
    lat_margin_oncoming_fast: float = 0.8   # m of clearance to pass an oncoming vehicle ...
    oncoming_fast: float = 2.0              # ... faster than this (m/s)
    oncoming_speed_scale: float = 3.0   # m/s: risk x (1 + v_ego / scale) next to oncoming
    lon_soft: float = 3.0
    headway: float = 1.2
    # weights
    w_collision: float = 5000.0     # x time-discounted collision probability
    w_collision_any: float = 200.0  # x collision probability anywhere in the horizon
    w_switch: float = 4.0           # changing the lateral kind / stop-vs-go decision
    w_risk: float = 40.0
    w_offroad: float = 3000.0
    w_oncoming: float = 3.0
    w_lat_acc: float = 4.0
    w_lat_jerk: float = 0.5
    w_lon_acc: float = 1.0
    w_lon_jerk: float = 0.2
    w_hard_brake: float = 60.0
    w_progress: float = 30.0
    w_speed: float = 10.0
    w_route: float = 400.0
    w_lane: float = 2.0
    w_route_lane: float = 2.0
    w_nudge: float = 1.5
    w_goal: float = 4.0
    goal_blend: float = 10.0        # m short of the goal over which w_goal takes over
    w_wait: float = 8.0             # per s standing (short of the goal), ...
    wait_cap: float = 30.0          # ... counted up to this many seconds (at 12 s = 96 it
                                    # stayed below the cost of pulling out around a parked
                                    # car from a standstill, ~100-250: waited for ever)
    wait_distance: float = 3.0      # m: moving less than this (now / over the horizon) is waiting
    w_approach: float = 1.0
    # stopping behind a static obstacle that overlaps the ego's lane: at least `standoff`
    # m between the fronts, else w_standoff per m short (room to pull out around it later)
    standoff: float = 2.5
    w_standoff: float = 1000.0
    w_consistency: float = 3.0
    ttc_tau: float = 3.0
    min_probability: float = 0.02

    @property
    def t(self) -> np.ndarray:
        return np.arange(int(round(self.horizon / self.dt)) + 1) * self.dt


# ---------------------------------------------------------------- occupancy
@dataclass
class Occupancy:
    """K predicted occupancies in the ego's Frenet frame (static obstacles and every
    hypothesis of every agent), each over the search time grid."""
    s: np.ndarray          # (K, T) centre station
    d: np.ndarray          # (K, T) centre lateral offset
    hs: np.ndarray         # (K, T) half extent along s
    hd: np.ndarray         # (K, T) half extent along d
    p: np.ndarray          # (K,) probability of the hypothesis
    agent: np.ndarray      # (K,) index of the agent
    static: np.ndarray     # (K,) bool
    vs: np.ndarray = None  # (K, T) speed along s (for leads)

    @staticmethod
    def empty(T: int) -> "Occupancy":
        z = np.zeros((0, T))
        return Occupancy(z, z, z, z, np.zeros(0), np.zeros(0, int), np.zeros(0, bool), z)

    def __len__(self):
        return self.s.shape[0]


# ---------------------------------------------------------------- scoring
@dataclass
class SearchResult:
    cost: np.ndarray                  # (I, J)
    best: tuple                       # (i, j)
    lateral: LateralSet
    longitudinal: LongitudinalSet
    collision_prob: np.ndarray        # (I, J)
    label: str
    n_candidates: int
    components: dict = field(default_factory=dict)

    def profile(self, i=None, j=None):
        i = self.best[0] if i is None else i
        j = self.best[1] if j is None else j
        L, G = self.lateral, self.longitudinal
        return L.d[i], G.s[j], G.v[j], G.a[j]


def maneuver_label(lat_kind: str, lon_kind: str, lon: LongitudinalSet, j: int) -> str:
    stopped = lon.v[j, -1] < 0.3
    lonl = "stop" if (lon_kind == "stop" or stopped) else ("follow" if lon_kind == "follow" else "proceed")
    return f"{lat_kind}/{lonl}"


def score(lat: LateralSet, lon: LongitudinalSet, occ: Occupancy, cfg: SearchConfig, *,
          s0: float, v_des: float, station_grid: np.ndarray, road_left: np.ndarray,
          road_right: np.ndarray, curvature_fn=None, lane_offsets=np.zeros(1),
          oncoming_boundary: Optional[float] = None, route_deadline: float = np.inf,
          goal_station: float = np.inf, prev: Optional[tuple] = None,
          body=None, approach_stop: Optional[float] = None,
          wait_time: float = 0.0) -> SearchResult:
    """Cost of every (lateral, longitudinal) pair; returns the best one.

    s0: station of the reference point now; the lateral profiles are absolute offsets.
    prev: (d_prev(t), v_prev(t)) of the previous choice on this grid, for consistency.
    body: (front, rear, half_width) of the planned vehicle (default: the ego's).
    wait_time: s the ego has been held up (within `wait_distance`); a candidate that
    stays within `wait_distance` costs w_wait per second of it (capped), so a stop that
    only static obstacles hold up does not last for ever.

    The cost terms are added to one (I, J) array by the `_add_*_cost(s)` helpers below,
    in this order: collision / clearance, drivable area, comfort and kinematic
    feasibility, progress / speed / goal / waiting, lanes, route, consistency."""
    body = body if body is not None else (cfg.front, cfg.rear, cfg.half_width)
    hw = body[2]
    T = len(cfg.t)
    I, J = len(lat), len(lon)
    f32 = np.float32
    D = lat.d.astype(f32)                         # (I, T)
    S = lon.s + s0                                # (J, T) absolute stations (float64)
    V = lon.v.astype(f32)
    cost = np.zeros((I, J))
    comp = {"collision": _add_collision_costs(cost, occ, cfg, D, S, V, lon.s.astype(f32),
                                              s0, body)}
    comp["offroad"] = _add_offroad_cost(cost, cfg, D, S, hw, station_grid, road_left,
                                        road_right)
    _add_comfort_costs(cost, cfg, lat, lon, V, S, curvature_fn)
    _add_progress_costs(cost, cfg, lon, S, V, s0, v_des, goal_station, approach_stop,
                        wait_time)
    _add_lane_costs(cost, cfg, D, V, hw, lane_offsets, oncoming_boundary)
    _add_standoff_cost(cost, occ, cfg, lat.d, lon, s0, body)
    # ---- route: in the route lane (d ~ 0) by the deadline
    if np.isfinite(route_deadline) and route_deadline > s0:
        D = lat.d                                 # float64 offsets from here on
        cost += _route_cost(cfg, D, S, route_deadline, T)
    # ---- the route lane (d = 0) is preferred over the neighbouring lanes
    cost += cfg.w_route_lane * np.abs(D[:, -1])[:, None]
    if prev is not None:
        _add_consistency_costs(cost, cfg, lat, lon, D, V, prev)
    i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
    label = maneuver_label(lat.kind[i], lon.kind[j], lon, j)
    return SearchResult(cost=cost, best=(int(i), int(j)), lateral=lat, longitudinal=lon,
                        collision_prob=comp["collision"], label=label, n_candidates=I * J,
                        components=comp)


def _add_collision_costs(cost, occ: Occupancy, cfg: SearchConfig, D, S, V, Sr, s0: float,
                         body) -> np.ndarray:
    """Collision / clearance against the occupancies (batched matmul over K), added to
    `cost`; returns the collision probability (I, J). D (I, T), V and Sr (J, T, relative
    stations) are float32, S (J, T) the absolute stations."""
    front, rear, hw = body
    f32 = np.float32
    t, dt = cfg.t, cfg.dt
    wt = np.exp(-t / cfg.ttc_tau)                 # early conflicts weigh more
    coll = np.zeros((len(D), len(V)))
    if not len(occ):
        return coll
    keep = occ.p >= cfg.min_probability
    # prune occupancies that never come laterally / longitudinally near any candidate
    dmin, dmax = D.min() - hw - cfg.lat_soft, D.max() + hw + cfg.lat_soft
    smin, smax = S.min() - rear - cfg.lon_soft, S.max() + front + cfg.lon_soft + cfg.headway * V.max()
    near_d = ((occ.d + occ.hd) > dmin) & ((occ.d - occ.hd) < dmax)
    near_s = ((occ.s + occ.hs) > smin) & ((occ.s - occ.hs) < smax)
    keep &= np.any(near_d & near_s, axis=1)
    if not np.any(keep):
        return coll
    os_ = (occ.s[keep] - s0).astype(f32)          # relative stations
    od, ohs, ohd = occ.d[keep].astype(f32), occ.hs[keep].astype(f32), occ.hd[keep].astype(f32)
    op = occ.p[keep]
    # lateral gap (K, I, T)
    glat = np.abs(D[None] - od[:, None]) - (hw + ohd[:, None])
    # longitudinal gap (K, J, T): ego body [S-rear, S+front] vs [os-hs, os+hs]
    glon = np.maximum((os_ - ohs)[:, None] - (Sr[None] + front), (Sr[None] - rear) - (os_ + ohs)[:, None])
    # a static obstacle already closer than the hard margin now (the car stopped next to
    # a cone) is a collision only for candidates that get closer still: else every
    # candidate, standing included, would collide and the search could tell none apart
    g0 = glat[:, 0, 0]
    st = occ.static[keep] & (g0 > 0.0) & (g0 < cfg.lat_margin_hard)
    margin = np.where(st, g0 - 0.02, cfg.lat_margin_hard).astype(f32)[:, None, None]
    hl = (glat < margin).astype(f32)
    hn = (glon < cfg.lon_margin_hard).astype(f32) * wt[None, None].astype(f32)
    # hit[k, i, j] = sum_t w_t * overlap: a conflict at time t weighs exp(-t/tau)
    # (imminent conflicts cost most; far ones can still be re-planned away)
    hit = np.matmul(hl, np.swapaxes(hn, 1, 2))          # (K, I, J)
    # oncoming movers (moving against the reference): meeting one faster than
    # `oncoming_fast` needs `lat_margin_oncoming_fast` of lateral clearance
    onc = (occ.vs[keep].min(axis=1) < -1.0) if occ.vs is not None else np.zeros(len(op), bool)
    if np.any(onc):
        hl2 = ((glat[onc] >= cfg.lat_margin_hard) &
               (glat[onc] < cfg.lat_margin_oncoming_fast)).astype(f32)
        fast = (V > cfg.oncoming_fast).astype(f32)[None]
        hit[onc] += np.matmul(hl2, np.swapaxes(hn[onc] * fast, 1, 2))
    opf = op.astype(np.float32)
    coll = np.minimum(1.0, np.tensordot(opf, (hit > 0).astype(np.float32), axes=1))
    soon = np.tensordot(opf, np.minimum(hit * (dt / 0.6), 3.0), axes=1)
    # soft clearance; longitudinal soft distance grows with the ego speed when
    # the other is ahead (headway); oncoming movers are given more room
    lsoft_lat = np.where(onc, cfg.lat_soft_oncoming, cfg.lat_soft).astype(f32)[:, None, None]
    pl = np.clip(1.0 - glat / lsoft_lat, 0.0, 1.0).astype(np.float32)
    ahead = (os_[:, None] > Sr[None])
    lsoft = cfg.lon_soft + np.where(ahead, cfg.headway * V[None], 0.0)
    pn = (np.clip(1.0 - glon / lsoft, 0.0, 1.0) * wt[None, None]).astype(np.float32)
    # meeting an oncoming vehicle closely costs more the faster we pass it
    pn = pn * np.where(onc[:, None, None], 1.0 + V[None] / cfg.oncoming_speed_scale, 1.0).astype(f32)
    # stop-line walls (agent -1) are rules, not bodies: no soft clearance to them (it held
    # the ego ~5 m short of the line, where the line never counted as served)
    op_soft = np.where(occ.agent[keep] == -1, 0.0, op).astype(np.float32)
    risk = np.tensordot(op_soft, np.matmul(pl, np.swapaxes(pn, 1, 2)), axes=1) * dt
    cost += cfg.w_collision * soon + cfg.w_collision_any * coll + cfg.w_risk * risk
    return coll


def _add_offroad_cost(cost, cfg: SearchConfig, D, S, hw: float, station_grid, road_left,
                      road_right) -> np.ndarray:
    """Drivable area, added to `cost`: (I, J, T), or (I, T) only where the bounds do not
    vary with station; returns the largest excursion (I, J)."""
    f32 = np.float32
    J = len(S)
    left = np.interp(S, station_grid, road_left).astype(f32)   # (J, T)
    right = np.interp(S, station_grid, road_right).astype(f32)
    if np.ptp(left) < 0.05 and np.ptp(right) < 0.05:
        over = np.maximum(D + hw - left.min(), right.max() - (D - hw)).max(axis=1)
        off = np.repeat(np.clip(over, 0.0, None)[:, None], J, axis=1)
    else:
        over = np.maximum(D[:, None] + hw - left[None], right[None] - (D[:, None] - hw))
        off = np.clip(over.max(axis=2), 0.0, None)
    cost += cfg.w_offroad * np.minimum(off, 1.0) + cfg.w_offroad * (off > 0.05)
    return off


def _add_comfort_costs(cost, cfg: SearchConfig, lat: LateralSet, lon: LongitudinalSet, V, S,
                       curvature_fn) -> None:
    """Lateral comfort (acceleration incl. path curvature at speed, jerk), kinematic
    feasibility and longitudinal comfort, added to `cost`."""
    f32 = np.float32
    dt = cfg.dt
    # ---- comfort: lateral accel incl. path curvature at speed (I, J, T)
    kap = (curvature_fn(S) if curvature_fn is not None else np.zeros_like(S)).astype(f32)
    ay = V * V * kap                                             # (J, T)
    ax = lat.ddd.astype(f32)                                     # (I, T)
    if np.abs(ay).max() < 0.2:
        amax = np.abs(ax).max(axis=1)[:, None] + np.abs(ay).max(axis=1)[None, :]
    else:
        amax = np.abs(ax[:, None] + ay[None]).max(axis=2)
    cost += cfg.w_lat_acc * np.maximum(amax - cfg.lat_acc_comfort, 0.0) ** 2
    cost += 1000.0 * (amax > cfg.lat_acc_limit)
    cost += cfg.w_lat_jerk * lat.peak_jerk[:, None] ** 2
    # ---- kinematic feasibility: a car cannot move sideways faster than its heading
    # allows, nor turn tighter than its steering allows (matters at low speed)
    # (on every other sample: the profiles are smooth at the 0.2 s grid)
    ady = np.abs(lat.dd[:, ::2]).astype(f32)                     # (I, T/2)
    V2 = V[:, ::2]
    viol_v = (ady[:, None] - (cfg.max_rel_heading * V2[None] + 0.15)).max(axis=2)
    viol_k = (np.abs(ax[:, ::2])[:, None] - (cfg.max_curvature * V2[None] ** 2 + 0.1)).max(axis=2)
    cost += cfg.w_kinematic * (np.maximum(viol_v, 0.0) + np.maximum(viol_k, 0.0))
    # ---- longitudinal comfort (J,)
    jerk = np.abs(np.diff(lon.a, axis=1)) / dt
    lon_c = (cfg.w_lon_acc * np.mean(lon.a ** 2, axis=1) + cfg.w_lon_jerk * np.mean(jerk ** 2, axis=1)
             + cfg.w_hard_brake * np.maximum(-lon.a.min(axis=1) - cfg.comfort_decel, 0.0) ** 2
             + 200.0 * lon.emergency)
    cost += lon_c[None, :]


def _add_progress_costs(cost, cfg: SearchConfig, lon: LongitudinalSet, S, V, s0: float,
                        v_des: float, goal_station: float, approach_stop: Optional[float],
                        wait_time: float) -> None:
    """Progress along the route (up to the goal), speed, stopping at the goal, pulling up
    to a stop point and patience, added to `cost`."""
    # ---- progress and speed (J,)
    vd = max(v_des, 0.5)
    reach = S[:, -1] - s0
    goal_rel = goal_station - s0
    # progress along the route, counted up to the goal; beyond it is overshoot
    prog = cfg.w_progress * np.minimum(reach, max(goal_rel, 0.0)) / (vd * cfg.horizon)
    extra = cfg.w_goal * np.maximum(reach - max(goal_rel, 0.0), 0.0)
    speed_term = cfg.w_speed * np.mean(((V - vd) / vd) ** 2, axis=1)
    if np.isfinite(goal_rel) and goal_rel < vd * cfg.horizon:
        # the goal is within reach: a candidate that gets there ends there, stopped; one
        # that ends short of it (blended over `goal_blend` m) is still judged by its speed
        # (else creeping, which ends slowest, would beat driving on to the goal)
        g = np.clip(1.0 - (goal_rel - reach) / cfg.goal_blend, 0.0, 1.0)
        extra = extra + g * cfg.w_goal * lon.v[:, -1] + (1.0 - g) * speed_term
    else:
        extra = extra + speed_term
    cost += (extra - prog)[None, :]
    # waiting: pull up to the required stop point (stop line, obstacle) instead of
    # stopping short of it
    if approach_stop is not None and approach_stop > 0.5:
        short = np.maximum(approach_stop - reach, 0.0) * (lon.v[:, -1] < 0.3)
        cost += cfg.w_approach * short[None, :]
    # patience: standing still behind obstacles that will never move gains nothing; the
    # longer the ego has waited the more staying put costs (moving agents' collision
    # costs are orders of magnitude larger, so this never pushes into traffic)
    if wait_time > 0.0:
        still = (reach < cfg.wait_distance).astype(float)
        cost += cfg.w_wait * min(wait_time, cfg.wait_cap) * still[None, :]


def _add_standoff_cost(cost, occ: Occupancy, cfg: SearchConfig, D, lon: LongitudinalSet,
                       s0: float, body) -> None:
    """Candidates that end stopped less than `standoff` behind a static obstacle their body
    overlaps laterally (then) cost w_standoff per metre short, added to `cost`: a car that
    waits nose to tail behind a parked car cannot steer around it afterwards (no
    candidate is both kinematically feasible and clear of it), so it would wait for ever.
    Stop-line walls (agent -1) are exempt."""
    if not len(occ):
        return
    front, _, hw = body
    k = occ.static & (occ.agent != -1)
    stopped = lon.v[:, -1] < 0.3
    if not np.any(k) or not np.any(stopped):
        return
    os_, ohs, od, ohd = occ.s[k, -1] - s0, occ.hs[k, -1], occ.d[k, -1], occ.hd[k, -1]
    nose = lon.s[:, -1] + front                                           # (J,) relative
    gap = (os_ - ohs)[:, None] - nose[None, :]                            # (K, J)
    ahead = (os_ + ohs)[:, None] > nose[None, :]                          # not passed yet
    short = np.where(stopped[None, :] & ahead, np.clip(cfg.standoff - gap, 0.0, cfg.standoff),
                     0.0)
    overlap = (np.abs(D[:, -1][None, :] - od[:, None]) - (hw + ohd[:, None])) < cfg.lat_margin_hard
    near = short.any(axis=1) & overlap.any(axis=1)         # usually none or one obstacle
    if np.any(near):
        cost += cfg.w_standoff * np.max(overlap[near][:, :, None] * short[near][:, None, :],
                                        axis=0)


def _add_lane_costs(cost, cfg: SearchConfig, D, V, hw: float, lane_offsets,
                    oncoming_boundary: Optional[float]) -> None:
    """Stay near a lane centre (I,), avoid the oncoming lane; added to `cost`."""
    lo = np.asarray(lane_offsets, dtype=float)
    dist_lane = np.min(np.abs(D[:, :, None] - lo[None, None, :]), axis=2)    # (I, T)
    cost += (cfg.w_lane * dist_lane[:, -1] + cfg.w_nudge * np.mean(dist_lane, axis=1))[:, None]
    if oncoming_boundary is not None:
        inside = np.clip((D + hw - oncoming_boundary) / (2.0 * hw), 0.0, 1.0)  # (I, T)
        # time spent in the oncoming lane, counted while moving
        moving = (V > 0.5).astype(float)
        cost += cfg.w_oncoming * (inside @ moving.T) * cfg.dt


def _route_cost(cfg: SearchConfig, D, S, route_deadline: float, T: int) -> np.ndarray:
    """(I, J) cost of not being in the route lane (d ~ 0) by the deadline station."""
    passed = S >= route_deadline                        # (J, T)
    k_dead = np.where(passed.any(axis=1), passed.argmax(axis=1), T - 1)
    d_at = D[:, k_dead]                                 # (I, J)
    miss = np.maximum(np.abs(d_at) - 0.6, 0.0)
    rem = route_deadline - S[:, -1]
    # not reaching the deadline within the horizon is fine if still far from it
    reached = passed.any(axis=1)
    return cfg.w_route * np.where(reached[None, :], miss, 0.1 * miss * (rem < 40.0)[None, :])


def _add_consistency_costs(cost, cfg: SearchConfig, lat: LateralSet, lon: LongitudinalSet, D,
                           V, prev: tuple) -> None:
    """Consistency with the previous choice `prev` = (d_prev(t), v_prev(t)[, (kind,
    stopped)]): switching the lateral kind or the stop-vs-go decision, and deviating
    from the previous profiles; added to `cost`."""
    dt = cfg.dt
    dprev, vprev = prev[0], prev[1]
    if len(prev) > 2 and prev[2] is not None:
        prev_kind, prev_stop = prev[2]
        kinds = np.array(lat.kind)
        cost += cfg.w_switch * (kinds != prev_kind)[:, None]
        stops_j = lon.v[:, -1] < 0.3
        cost += cfg.w_switch * (stops_j != prev_stop)[None, :]
    n = int(3.0 / dt)
    cost += cfg.w_consistency * np.mean(np.abs(D[:, :n] - dprev[None, :n]), axis=1)[:, None]
    m = int(2.0 / dt)
    cost += cfg.w_consistency * np.mean(np.abs(V[:, :m] - vprev[None, :m]), axis=1)[None, :]


# ---------------------------------------------------------------- ego candidate sets
def ego_lateral_specs(cfg: SearchConfig, d0: float, lane_offsets: np.ndarray, lane_width: float,
                      road_right_now: float, road_left_now: float) -> List[tuple]:
    H = cfg.horizon + 10.0
    lanes = np.asarray(lane_offsets, dtype=float)
    cur = float(lanes[np.argmin(np.abs(lanes - d0))])
    specs = [("keep", cur, 0.0, 2.5 if abs(cur - d0) < 0.8 else 4.0, H, cur)]
    for tgt in lanes:
        if abs(tgt - cur) < 0.5:
            continue
        kind = "lane_change_left" if tgt > cur else "lane_change_right"
        n_lanes = max(1, int(round(abs(tgt - cur) / max(lane_width, 2.5))))
        for ts in cfg.lc_start_times:
            for du in cfg.lc_durations:
                specs.append((kind, float(tgt), ts, du * (1.0 + 0.35 * (n_lanes - 1)), H, float(tgt)))
    for off in cfg.nudge_offsets:
        for sgn, name in ((1.0, "nudge_left"), (-1.0, "nudge_right")):
            tgt = cur + sgn * off
            if tgt + cfg.half_width > road_left_now + 4.0 or tgt - cfg.half_width < road_right_now - 4.0:
                continue
            for ts in cfg.nudge_starts:
                for tr in cfg.nudge_returns:
                    if tr < 90 and tr <= ts + cfg.nudge_duration:
                        continue
                    specs.append((name, tgt, ts, cfg.nudge_duration, ts + tr if tr < 90 else H, cur))
    po = road_right_now + cfg.half_width + cfg.pull_over_margin
    if po < cur - 0.3:
        for ts in cfg.pull_over_starts:
            for du in cfg.pull_over_durations:
                specs.append(("pull_over", po, ts, du, H, po))
    return specs


def ego_longitudinal_sets(cfg: SearchConfig, v0: float, v_des: float, obstacle_stops: Sequence[float],
                          goal_stop: Optional[float], leads: Sequence[np.ndarray]):
    cruise = []
    for f in cfg.cruise_fractions:
        for a in cfg.cruise_accels:
            cruise.append((f * v_des, a))
    cruise += [(v0, 1.0), (v0 + 2.0, 1.0), (max(v0 - 2.0, 0.0), 1.5), (max(v0 - 5.0, 0.0), 2.5)]
    stops = list(cfg.stop_distances) + [d for d in obstacle_stops if d > 0.3]
    if goal_stop is not None and goal_stop > 0.3:
        stops += [goal_stop, goal_stop - 1.0]
    return cruise, stops, list(leads)
