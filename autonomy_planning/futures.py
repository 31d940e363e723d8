"""Futures of the other agents: the ego's planner, configured cheaply, run for each of
them, giving several labelled hypotheses per agent, each a timed trajectory with a
probability.

For each moving agent the predictor finds its lane (or, without one, the path its
current yaw rate draws), its static obstacles (parked cars, cones ...) and its lane
neighbours, then runs `maneuver_search.score` with a handful of lateral profiles (keep,
go around left/right, lane change) and longitudinal profiles (keep speed, yield = stop
before its obstacle or brake, accelerate, follow its successor branches) and keeps the
best candidate of every behaviour as a hypothesis.

Weights: every hypothesis carries the kinematics it implies right now (commanded
acceleration, lateral velocity relative to the lane, yaw rate). Each cycle the observed
acceleration, lateral velocity and yaw rate of the agent give a Gaussian likelihood per
hypothesis; the posterior is `prior^(1-g) * previous^g * likelihood` (g = memory), so the
belief follows the evidence within a few cycles (the narrow-street car that starts to
brake for us switches from "go_around" to "yield").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.spatial import cKDTree

from autonomy_stack.params import param
from autonomy_stack.geometry import wrap_angle
from autonomy_stack.vector_space import (AgentFuture, ObjectClass, ObjectState, PredictedPath,
                                         Trajectory)

from autonomy_planning.maneuver_search import (Occupancy, SearchConfig, constant_accel_profiles,
                                               lateral_profiles, score)
from autonomy_planning.path import ReferencePath, box_frenet_extents
from autonomy_planning.scene import STATIC_CLASSES, Lane, PlanningScene, geometry_key, lane_path

# vehicles that can be parked along the road (futures_to_occupancy aligns them with it)
PARKED_CLASSES = (ObjectClass.CAR, ObjectClass.TRUCK)


@dataclass
class FuturesConfig:
    horizon: float = 10.0
    dt: float = 0.2
    relevance_radius: float = param(120.0, "m: agents farther away are ignored", min=10.0,
                                    max=500.0)
    static_relevance_radius: float = 300.0   # static objects cost nothing to predict
    max_agents: int = 40
    static_speed: float = 0.3          # below: parked if flagged static or a static class
    sigma_accel: float = 0.8           # m/s^2
    sigma_lat_vel: float = 0.35        # m/s
    sigma_yaw_rate: float = 0.12       # rad/s
    memory: float = 0.6                # weight of the previous posterior (log domain)
    min_probability: float = 0.03
    yield_decel_min: float = 0.6       # a yield hypothesis brakes at least this hard
    comfort_decel: float = 3.0
    go_around_offsets: Sequence[float] = (2.2, 2.8, 3.4)
    priors: Dict[str, float] = field(default_factory=lambda: {
        "keep_lane": 0.6, "yield": 0.45, "go_around": 0.45, "decelerate": 0.2,
        "accelerate": 0.15, "lane_change_left": 0.12, "lane_change_right": 0.12,
        "stationary": 0.7, "start": 0.3, "walk": 0.7, "stop": 0.3, "static": 1.0})


@dataclass
class _Hyp:
    label: str
    s: np.ndarray
    d: np.ndarray
    v: np.ndarray
    a: np.ndarray
    ref: ReferencePath
    a_cmd: float
    lat_vel: float
    yaw_rate: float
    lat_obs: float = 0.0       # observed lateral velocity relative to `ref`


class FuturePredictor:
    """Stateful (per-agent weights) multi-hypothesis predictor."""

    def __init__(self, config: Optional[FuturesConfig] = None):
        self.cfg = config or FuturesConfig()
        self.t = np.arange(int(round(self.cfg.horizon / self.cfg.dt)) + 1) * self.cfg.dt
        self.search_cfg = SearchConfig(horizon=self.cfg.horizon, dt=self.cfg.dt,
                                       w_progress=20.0, w_speed=5.0, w_consistency=0.0,
                                       w_oncoming=0.0, w_nudge=0.5)
        self._log_w: Dict[int, Dict[str, float]] = {}
        self._paths: Dict = {}
        self._lane_key = None
        self._neighbours: Dict[int, List[Tuple[int, float]]] = {}
        self._lane_tree = None
        self._lane_pts_id = np.zeros(0, int)
        self._lane_pts_h = np.zeros(0)
        self._lane_of: Dict[int, Lane] = {}
        self._rev_lane_of: Dict[int, Lane] = {}

    def reset(self):
        self._log_w.clear()

    # -------------------------------------------------------------- public
    def predict(self, scene: PlanningScene) -> List[AgentFuture]:
        cfg = self.cfg
        self._update_lane_cache(scene.lanes)
        ego = scene.ego
        agents = [a for a in scene.agents
                  if math.hypot(a.x - ego.x, a.y - ego.y) <=
                  (cfg.static_relevance_radius if self.is_static(a) else cfg.relevance_radius)]
        agents.sort(key=lambda a: math.hypot(a.x - ego.x, a.y - ego.y))
        moving = [a for a in agents if not self.is_static(a)][:cfg.max_agents]
        keep = {id(a) for a in moving}
        agents = [a for a in agents if self.is_static(a) or id(a) in keep]
        statics = [a for a in agents if self.is_static(a)]
        self._assign_lanes([a for a in agents if not self.is_static(a)], scene)
        out: List[AgentFuture] = []
        seen = set()
        for a in agents:
            seen.add(a.id)
            if self.is_static(a):
                out.append(AgentFuture(a.id, a.object_class, [
                    PredictedPath("static", 1.0, self._static_traj(a, scene.stamp))]))
                continue
            hyps = self._hypotheses(a, scene, statics)
            probs = self._update_weights(a, hyps)
            paths = [PredictedPath(h.label, float(p), self._to_traj(h, a, scene.stamp))
                     for h, p in zip(hyps, probs)]
            out.append(AgentFuture(a.id, a.object_class, paths))
        for k in list(self._log_w):
            if k not in seen:
                del self._log_w[k]
        return out

    def is_static(self, a: ObjectState) -> bool:
        if a.object_class in STATIC_CLASSES:
            return True
        return bool(a.is_static) and abs(a.speed) < self.cfg.static_speed

    # -------------------------------------------------------------- lanes
    def _update_lane_cache(self, lanes: Sequence[Lane]):
        key = tuple((l.id, geometry_key(l.centerline)) for l in lanes)
        if key == self._lane_key:
            return
        self._lane_key = key
        self._paths = {}
        self._neighbours = {}
        pts, ids, hs = [], [], []
        for ln in lanes:
            p = lane_path(ln, self._paths)
            m = (p.s >= 0) & (p.s <= p.original_length)
            pts.append(p.xy[m]); ids.append(np.full(int(m.sum()), ln.id)); hs.append(p.heading[m])
        self._lane_tree = cKDTree(np.vstack(pts)) if pts else None
        self._lane_pts_id = np.concatenate(ids) if ids else np.zeros(0, int)
        self._lane_pts_h = np.concatenate(hs) if hs else np.zeros(0)
        for ln in lanes:
            p = lane_path(ln, self._paths)
            mid = p.original_length / 2.0
            x, y, h = p.to_xy(mid, 0.0)
            nb = []
            for other in lanes:
                if other.id == ln.id:
                    continue
                q = lane_path(other, self._paths)
                s, d = q.project([[float(x), float(y)]])
                if 0 <= s[0] <= q.original_length and 2.0 < abs(d[0]) < 5.5 and \
                        math.cos(float(wrap_angle(q.heading_at(s[0]) - h))) > 0.9:
                    nb.append((other.id, -float(d[0])))
            self._neighbours[ln.id] = nb

    def _agent_refs(self, a: ObjectState, scene: PlanningScene):
        """[(suffix, ReferencePath)] for the agent: its lane (chained along successors,
        one path per branch within reach), reversed if it drives against the lane, else
        the arc of its current yaw rate."""
        lane = self._lane_of.get(a.id)
        reach = max(abs(a.speed), 3.0) * self.cfg.horizon + 20.0
        if lane is not None:
            branches = [[lane]]
            out = []
            total = {lane.id: lane_path(lane, self._paths).original_length}
            for _ in range(4):
                nxt = []
                for br in branches:
                    L = sum(lane_path(l, self._paths).original_length for l in br)
                    succ = [scene.lane(i) for i in br[-1].successors if scene.lane(i) is not None]
                    if L > reach or not succ:
                        nxt.append(br)
                    else:
                        nxt += [br + [s] for s in succ[:3]]
                branches = nxt
            for br in branches[:3]:
                key = ("agent",) + tuple(l.id for l in br)
                if key not in self._paths:
                    pts = [br[0].centerline] + [l.centerline[1:] for l in br[1:]]
                    self._paths[key] = ReferencePath(np.vstack(pts), ds=1.0, extend_before=20,
                                                     extend_after=200)
                ref = self._paths[key]
                turn = float(wrap_angle(ref.heading_at(ref.original_length) - ref.heading_at(0.0)))
                name = "" if len(branches) == 1 else (
                    "turn_left" if turn > 0.5 else "turn_right" if turn < -0.5 else "straight")
                out.append((name, ref, lane.id))
            return out
        # against the lane direction (oncoming on our side), or no lane: own heading
        lane = self._rev_lane_of.get(a.id)
        if lane is not None:
            key = ("agent_rev", lane.id)
            if key not in self._paths:
                self._paths[key] = ReferencePath(lane.centerline[::-1], ds=1.0,
                                                 extend_before=20, extend_after=200)
            return [("", self._paths[key], None)]
        L = reach
        if abs(a.yaw_rate) > 0.02 and abs(a.speed) > 0.5:
            r = a.speed / a.yaw_rate
            ang = np.linspace(0.0, min(L / abs(r), math.pi / 2), 40) * np.sign(r)
            px = a.x + r * (np.sin(a.yaw + ang) - math.sin(a.yaw))
            py = a.y - r * (np.cos(a.yaw + ang) - math.cos(a.yaw))
            pts = np.column_stack([px, py])
        else:
            pts = np.array([[a.x, a.y], [a.x + L * math.cos(a.yaw), a.y + L * math.sin(a.yaw)]])
        return [("", ReferencePath(pts, ds=1.0, extend_before=10, extend_after=100), None)]

    def _assign_lanes(self, agents, scene):
        """Lane (driving along it) and reverse lane (driving against it) of every agent,
        from one k-d tree query over all lane samples."""
        self._lane_of, self._rev_lane_of = {}, {}
        if self._lane_tree is None or not agents:
            return
        xy = np.array([[a.x, a.y] for a in agents])
        dist, idx = self._lane_tree.query(xy, k=12, distance_upper_bound=3.0)
        by_id = {l.id: l for l in scene.lanes}
        for n, a in enumerate(agents):
            best = best_r = None
            for dd, ii in zip(dist[n], idx[n]):
                if not np.isfinite(dd):
                    break
                lid, h = self._lane_pts_id[ii], self._lane_pts_h[ii]
                c = math.cos(a.yaw - h)
                if c > 0.7 and best is None:
                    best = lid
                elif c < -0.8 and best_r is None and dd < 2.5:
                    best_r = lid
            if best is not None:
                self._lane_of[a.id] = by_id[best]
            elif best_r is not None:
                self._rev_lane_of[a.id] = by_id[best_r]

    # -------------------------------------------------------------- hypotheses
    def _hypotheses(self, a: ObjectState, scene: PlanningScene, statics) -> List[_Hyp]:
        v0 = max(float(a.speed), 0.0)
        if a.object_class == ObjectClass.PEDESTRIAN:
            return self._pedestrian(a, v0)
        hyps: List[_Hyp] = []
        for name, ref, lane_id in self._agent_refs(a, scene):
            hyps += self._hypotheses_along(a, scene, statics, name, ref, lane_id, v0)
        return hyps

    def _hypotheses_along(self, a: ObjectState, scene: PlanningScene, statics, name: str,
                          ref: ReferencePath, lane_id, v0: float) -> List[_Hyp]:
        """The agent's hypotheses along one reference (branch `name`, "" for its lane):
        the planner's search run for the agent with a few lateral (keep, go around, lane
        change) and constant-acceleration longitudinal profiles."""
        t = self.t
        s0, d0 = (float(x[0]) for x in ref.project([[a.x, a.y]]))
        rel = float(ref.frenet_heading(s0, a.yaw))
        dd0 = v0 * math.sin(rel)
        v_lim = max(v0, scene.speed_limit_on(lane_id))
        # static obstacles of this agent in its frame
        occ, stops, span = self._static_occupancy(ref, statics, s0, a)
        hl = (0.5 * a.length, 0.5 * a.length, 0.5 * a.width)
        blocked = len(stops) > 0
        lat = lateral_profiles(t, d0, dd0, self._lateral_specs(a, name, lane_id, v0, d0, dd0,
                                                               span if blocked else None))
        # longitudinal: keep speed, accelerate, yield/brake, stop before obstacle
        yield_d = [st for st in stops if st > 0.5]
        brake_d = max(v0 * v0 / (2.0 * 2.0), 0.5)
        lon_specs = [("cruise", v0, 1.0), ("cruise", min(v_lim, v0 + 3.0), 1.0)]
        lon_specs += [("stop", yield_d[0])] if yield_d else []
        lon_specs += [("stop", brake_d)]
        lon = constant_accel_profiles(t, v0, lon_specs)
        if blocked:
            C = score(lat, lon, occ, self.search_cfg, s0=s0, v_des=max(v0, 1.0),
                      station_grid=np.array([s0 - 50.0, s0 + 500.0]),
                      road_left=np.array([50.0, 50.0]), road_right=np.array([-50.0, -50.0]),
                      lane_offsets=np.array([0.0]), body=hl).cost
        else:
            C = np.zeros((len(lat), len(lon)))
        j_keep, j_acc = 0, 1
        j_yield = 2 if yield_d else None
        j_brake = len(lon_specs) - 1
        kinds = np.array(lat.kind)
        hyps: List[_Hyp] = []

        def add(label, i, j):
            la = label if not name else (name if label == "keep_lane" else f"{name}_{label}")
            hyps.append(self._mk(la, ref, s0, lat, lon, i, j, v0, dd0))

        i_keep = 0
        if blocked and not name:
            add("yield", i_keep, j_yield if j_yield is not None else j_brake)
            ga = np.where(kinds == "go_around")[0]
            if len(ga):
                # a (nearly) stopped car that goes around has to start moving
                js = [j_acc] if v0 < 2.0 else [j_keep, j_acc]
                sub = C[ga][:, js]
                ii, jj = np.unravel_index(int(np.argmin(sub)), sub.shape)
                add("go_around", int(ga[ii]), js[jj])
        elif v0 < 0.5:
            add("stationary" if not name else "keep_lane", i_keep, j_keep)
            add("start", i_keep, j_acc)
        else:
            jb = j_keep if C[i_keep, j_keep] <= C[i_keep, j_acc] + 5.0 else j_acc
            add("keep_lane", i_keep, jb)
            if not name:
                add("decelerate", i_keep, j_brake)
        for lk in ("lane_change_left", "lane_change_right"):
            idx = np.where(kinds == lk)[0]
            if len(idx):
                add(lk, int(idx[0]), j_keep)
        return hyps

    def _lateral_specs(self, a: ObjectState, name: str, lane_id, v0: float, d0: float,
                       dd0: float, span) -> List[tuple]:
        """Lateral profiles of an agent: keep; go around the static cluster `span`
        (s_start, s_end, need_left, need_right) blocking its lane (None: not blocked);
        lane changes into the neighbouring lanes when moving."""
        H = self.cfg.horizon + 10.0
        specs = [("keep", 0.0, 0.0, 3.0, H, 0.0)]
        if span is not None and not name:
            # go around the blocking cluster: pull out ~12 m before it, back after it
            s_start, s_end, need_l, need_r = span
            vv = max(v0, 2.0)
            t_out = max(0.0, (s_start - 12.0) / vv)
            if abs(dd0) > 0.2 or abs(d0) > 0.3:
                t_out = 0.0          # already pulling out
            # a driver steers back only once its rear has cleared the cluster, and at
            # low speed needs ~12 m to do so
            du_out = max(2.5, 10.0 / vv)
            t_back = max(t_out + du_out, (s_end + 0.5 * a.length + 2.0) / vv + 0.5)
            du_back = max(3.0, 12.0 / vv)
            for off in (need_l,):
                specs.append(("go_around", off, t_out, du_out, t_back, 0.0, du_back))
            for off in (need_r,):
                specs.append(("go_around", off, t_out, du_out, t_back, 0.0, du_back))
        if lane_id is not None and not name and v0 > 2.0:
            for nb_id, off in self._neighbours.get(lane_id, []):
                specs.append(("lane_change_left" if off > 0 else "lane_change_right",
                              off, 0.0, 4.0, H, off))
        return specs

    def _pedestrian(self, a, v0) -> List[_Hyp]:
        t = self.t
        L = max(v0, 1.4) * self.cfg.horizon + 10.0
        pts = np.array([[a.x, a.y], [a.x + L * math.cos(a.yaw), a.y + L * math.sin(a.yaw)]])
        ref = ReferencePath(pts, ds=1.0, extend_before=5, extend_after=20)
        if v0 > 0.3:
            lon = constant_accel_profiles(t, v0, [("cruise", v0, 1.0), ("stop", max(v0 * v0 / 3.0, 0.3))])
            names = ("walk", "stop")
        else:
            lon = constant_accel_profiles(t, v0, [("cruise", 1.4, 1.0), ("cruise", 0.0, 1.0)])
            names = ("start", "stationary")
        lat = lateral_profiles(t, 0.0, 0.0, [("keep", 0.0, 0.0, 1.0, 99.0, 0.0)])
        return [self._mk(names[0], ref, 0.0, lat, lon, 0, 0, v0, 0.0),
                self._mk(names[1], ref, 0.0, lat, lon, 0, 1, v0, 0.0)]

    def _mk(self, label, ref, s0, lat, lon, i, j, v0, lat_obs) -> _Hyp:
        t = self.t
        d = lat.d[i]
        s = s0 + lon.s[j]
        k1 = int(round(1.0 / self.cfg.dt))
        lat_vel = 0.0
        if "go_around" in label or "lane_change" in label:
            # intended lateral speed: the mean over the manoeuvre's first 2 s
            k2 = int(round(2.0 / self.cfg.dt))
            lat_vel = float(np.mean(np.gradient(lat.d[i] - (lat.d[i, 0]), self.cfg.dt)[1:k2]))
        s1 = s[min(k1, len(s) - 1)]
        yr = float(max(v0, 0.5) * ref.curvature_at(0.5 * (s[0] + s1)))
        return _Hyp(label, s, d, lon.v[j], lon.a[j], ref, float(lon.a_cmd0[j]), lat_vel, yr,
                    float(lat_obs))

    def _static_occupancy(self, ref: ReferencePath, statics, s0, a):
        T = len(self.t)
        if not statics:
            return Occupancy.empty(T), [], None
        xy = np.array([[o.x, o.y] for o in statics])
        s, d = ref.project(xy)
        rel = ref.frenet_heading(s, np.array([o.yaw for o in statics]))
        hs, hd = box_frenet_extents(np.array([o.length for o in statics]),
                                    np.array([o.width for o in statics]), rel)
        m = (s > s0) & (s < s0 + max(a.speed, 3.0) * self.cfg.horizon + 30.0) & (np.abs(d) < 6.0)
        if not np.any(m):
            return Occupancy.empty(T), [], None
        K = int(m.sum())
        occ = Occupancy(s=np.repeat(s[m][:, None], T, 1), d=np.repeat(d[m][:, None], T, 1),
                        hs=np.repeat(hs[m][:, None], T, 1), hd=np.repeat(hd[m][:, None], T, 1),
                        p=np.ones(K), agent=np.arange(K), static=np.ones(K, bool),
                        vs=np.zeros((K, T)))
        # stop stations: behind the first obstacle that blocks the lane
        blocking = (np.abs(d[m]) - hd[m]) < 0.5 * a.width + 0.6
        stops = sorted(float(ss - h - 0.5 * a.length - 2.0 - s0)
                       for ss, h, b in zip(s[m], hs[m], blocking) if b)
        span = None
        if stops:
            # the cluster of obstacles starting with the first blocking one (gaps shorter
            # than a car length + 4 m belong to it) and the offsets that clear it
            sm, dm, hsm, hdm = s[m] - s0, d[m], hs[m], hd[m]
            order = np.argsort(sm)
            first = next(k for k in order if blocking[k])
            start = sm[first] - hsm[first]
            end = sm[first] + hsm[first]
            members = [first]
            for k in order:
                if sm[k] - hsm[k] > end + a.length + 4.0:
                    break
                if sm[k] + hsm[k] > start:
                    end = max(end, sm[k] + hsm[k])
                    members.append(k)
            need_l = max(dm[k] + hdm[k] for k in members) + 0.5 * a.width + 0.5
            need_r = min(dm[k] - hdm[k] for k in members) - 0.5 * a.width - 0.5
            span = (float(start), float(end), float(max(need_l, 0.8)), float(min(need_r, -0.8)))
        return occ, stops, span

    # -------------------------------------------------------------- weights
    def _update_weights(self, a: ObjectState, hyps: List[_Hyp]) -> np.ndarray:
        cfg = self.cfg
        prev = self._log_w.get(a.id, {})
        v0 = max(float(a.speed), 0.0)
        # observed lateral velocity relative to each hypothesis' reference
        logp = np.zeros(len(hyps))
        for k, h in enumerate(hyps):
            lat_obs = h.lat_obs
            acc_obs = float(a.accel)
            ll = -0.5 * ((acc_obs - h.a_cmd) / cfg.sigma_accel) ** 2
            ll += -0.5 * ((lat_obs - h.lat_vel) / cfg.sigma_lat_vel) ** 2
            ll += -0.5 * ((float(a.yaw_rate) - h.yaw_rate) / cfg.sigma_yaw_rate) ** 2
            prior = cfg.priors.get(h.label.split("_")[0] if h.label.startswith("turn") else h.label,
                                   cfg.priors.get(h.label, 0.3))
            lp = math.log(max(prior, 1e-3))
            if h.label in prev:
                lp = cfg.memory * prev[h.label] + (1.0 - cfg.memory) * lp
            logp[k] = lp + ll
        logp -= logp.max()
        p = np.exp(logp)
        p /= p.sum()
        p = np.maximum(p, cfg.min_probability)
        p /= p.sum()
        self._log_w[a.id] = {h.label: float(math.log(pk)) for h, pk in zip(hyps, p)}
        return p

    # -------------------------------------------------------------- output
    def _to_traj(self, h: _Hyp, a: ObjectState, stamp: float) -> Trajectory:
        x, y, hd = h.ref.to_xy(h.s, h.d)
        dt = self.cfg.dt
        dd = np.empty_like(h.d)
        dd[1:] = np.diff(h.d) / dt
        dd[0] = dd[1] if len(dd) > 1 else 0.0
        yaw = hd + np.arctan2(dd, np.maximum(h.v, 0.3))
        yaw[0] = hd[0] + float(wrap_angle(a.yaw - hd[0]))
        # keep the last heading while stopped
        moving = h.v > 0.3
        moving[0] = True
        idx = np.maximum.accumulate(np.where(moving, np.arange(len(yaw)), 0))
        yaw = yaw[idx]
        curv = np.empty_like(yaw)
        curv[1:] = np.diff(yaw) / dt
        curv[0] = curv[1] if len(curv) > 1 else 0.0
        curv /= np.maximum(h.v, 0.5)
        return Trajectory(t=self.t.copy(), x=x, y=y, yaw=wrap_angle(yaw), speed=h.v.copy(),
                          accel=h.a.copy(), curvature=curv, stamp=stamp, maneuver=h.label)

    def _static_traj(self, a: ObjectState, stamp: float) -> Trajectory:
        n = len(self.t)
        z = np.zeros(n)
        return Trajectory(t=self.t.copy(), x=np.full(n, a.x), y=np.full(n, a.y),
                          yaw=np.full(n, a.yaw), speed=z, accel=z.copy(), curvature=z.copy(),
                          stamp=stamp, maneuver="static")


def futures_to_occupancy(futures: List[AgentFuture], agents: Dict[int, ObjectState],
                         ref: ReferencePath, t: np.ndarray, min_probability: float = 0.02,
                         inflate_per_s: float = 0.08, inflate_lat_per_s: float = 0.02,
                         parked_align_rad: float = 0.35) -> Occupancy:
    """Project every hypothesis onto the ego reference path on the time grid `t` (the
    futures are sampled on the same grid). Uncertainty grows with time by inflating the
    extents by `inflate_per_s` (along) / `inflate_lat_per_s` (across) metres per second.
    A static car or truck within `parked_align_rad` of the reference's heading is taken
    as parked along the road (heading = the reference's): perceived headings of parked cars
    follow the ego's own heading (measured on vision: 0.19 rad for cars parked at 0 while
    the ego nudged out at 0.21 rad), which widened a 1.9 m car to 3.4 m across the road
    and closed the narrow street. Angled or perpendicular parking keeps its heading."""
    T = len(t)
    rows = []
    for k, f in enumerate(futures):
        a = agents.get(f.agent_id)
        if a is None:
            continue
        for h in f.hypotheses:
            if h.probability < min_probability:
                continue
            tr = h.trajectory
            rows.append((k, f, h, a, tr))
    if not rows:
        return Occupancy.empty(T)
    if all(len(r[4].t) == len(t) and abs(r[4].t[-1] - t[-1]) < 1e-9 for r in rows):
        xs = np.stack([r[4].x for r in rows])
        ys = np.stack([r[4].y for r in rows])
        vs = np.stack([r[4].speed for r in rows])
    else:
        xs = np.stack([np.interp(t, r[4].t, r[4].x) for r in rows])
        ys = np.stack([np.interp(t, r[4].t, r[4].y) for r in rows])
        vs = np.stack([np.interp(t, r[4].t, r[4].speed) for r in rows])
    same_t = all(len(r[4].t) == len(t) and abs(r[4].t[-1] - t[-1]) < 1e-9 for r in rows)
    if same_t:
        yaws = np.stack([r[4].yaw for r in rows])
    else:
        yaws = np.stack([np.interp(t, r[4].t, np.unwrap(r[4].yaw)) for r in rows])
    s, d = ref.project(np.column_stack([xs.ravel(), ys.ravel()]))
    s = s.reshape(xs.shape)
    d = d.reshape(xs.shape)
    rel = ref.frenet_heading(s, yaws)
    parked = np.array([r[2].label == "static" and r[3].object_class in PARKED_CLASSES
                       for r in rows])
    rel = np.where(parked[:, None] & (np.abs(wrap_angle(rel)) < parked_align_rad), 0.0, rel)
    L = np.array([r[3].length for r in rows])[:, None]
    W = np.array([r[3].width for r in rows])[:, None]
    hs, hd = box_frenet_extents(L, W, rel)
    static = np.array([r[2].label == "static" for r in rows])
    hs = hs + np.where(static[:, None], 0.0, inflate_per_s * t[None, :])
    hd = hd + np.where(static[:, None], 0.0, inflate_lat_per_s * t[None, :])
    return Occupancy(s=s, d=d, hs=hs, hd=hd, p=np.array([r[2].probability for r in rows]),
                     agent=np.array([r[3].id for r in rows]), static=static,
                     vs=vs * np.cos(rel))
