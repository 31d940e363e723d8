"""Joint multi-agent planner: the public Python API of the planning core (no ROS).

    from autonomy_planning.planner import Planner, PlannerConfig
    from autonomy_planning.scene import PlanningScene, Lane, Goal

    planner = Planner(PlannerConfig())
    result = planner.plan(scene)          # call at 10 Hz with a fresh scene
    result.trajectory                     # vector_space.Trajectory, 0.1 s samples, 10 s
    result.futures                        # [vector_space.AgentFuture] with probabilities
    result.corridor                       # corridor.Corridor (lateral/speed/station bounds)
    result.maneuver                       # e.g. "nudge_left/proceed", "pull_over/stop"

One cycle:
1. `scene.build_road_frame`: reference path along the route, neighbouring lanes,
   drivable bounds, route deadline, goal station.
2. `futures.FuturePredictor.predict`: the same planner, cheaply configured, run for every
   agent -> labelled hypotheses with probabilities updated from the observed kinematics.
3. `maneuver_search.score`: thousands of (lateral x longitudinal) rollouts scored against
   every hypothesis (collision probability, time to collision, clearance), comfort,
   progress, route; the best one is the chosen maneuver.
4. `corridor.build_corridor`: convex bounds around the chosen maneuver.
5. `trajectory_optimizer.TrajectoryOptimizer.optimize`: OSQP path/speed QPs inside the
   corridor with the vehicle limits, output at 0.1 s.

Replanning is warm-started: the initial speed and acceleration come from the previous
plan at the elapsed time when the ego tracked it (so the executed speed matches the
plan), the previous maneuver biases the search (hysteresis), and OSQP starts from the
previous solution.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional

import numpy as np

from autonomy_stack.params import param
from autonomy_stack.vector_space import AgentFuture, EgoState, Trajectory
from autonomy_vehicle.vehicle_model import VehicleParams

from autonomy_planning.corridor import Corridor, CorridorConfig, build_corridor
from autonomy_planning.futures import FuturePredictor, FuturesConfig, futures_to_occupancy
from autonomy_planning.junction import (JunctionConfig, JunctionDecision, deadlock_agents,
                                        discount_agents, drop_followers, imminent_conflict)
from autonomy_planning.maneuver_search import (SearchConfig, SearchResult, ego_lateral_specs,
                                               ego_longitudinal_sets, lateral_profiles,
                                               longitudinal_profiles, score)
from autonomy_planning.path import PathCache
from autonomy_planning.scene import PlanningScene, RoadFrame, build_road_frame
from autonomy_planning.trajectory_optimizer import OptimizerConfig, TrajectoryOptimizer
from autonomy_planning.maneuver_search import Occupancy


@dataclass
class PlannerConfig:
    search: SearchConfig = field(default_factory=SearchConfig)
    futures: FuturesConfig = field(default_factory=FuturesConfig)
    corridor: CorridorConfig = field(default_factory=CorridorConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    junction: JunctionConfig = field(default_factory=JunctionConfig)
    # param(...): also a planning node parameter (planning_node.PARAMS)
    desired_speed: float = param(0.0, "m/s cruise speed (0: the lane's speed limit)",
                                 min=0.0, max=60.0)      # None also means the lane's limit
    safe_stop_decel: float = param(3.0, "m/s^2 of the safe stop trajectory", min=0.5, max=8.0)
    # the ego vehicle (config/vehicle.yaml): its body and steering limits set the search's
    # body, the optimiser's curvature bound and the initial curvature
    vehicle: VehicleParams = field(default_factory=VehicleParams)
    # warm start: reuse the previous plan's speed/accel if the ego is this close to it
    consistency_position: float = 1.5
    consistency_speed: float = 1.0
    # entries of the reference path cache (lane paths, route references, projections):
    # least recently used ones go; must hold one cycle's (lanes + 3)
    path_cache_size: int = 512


@dataclass
class PlanResult:
    trajectory: Trajectory
    futures: List[AgentFuture]
    corridor: Optional[Corridor]
    maneuver: str
    candidates_per_cycle: int
    collision_probability: float
    emergency: bool
    status: str
    timings_ms: Dict[str, float]
    frame: Optional[RoadFrame] = None
    search: Optional[SearchResult] = None
    chosen: Optional[dict] = None          # chosen maneuver rollout: t, s, d, v, x, y
    solves: list = field(default_factory=list)   # QP solves: (problem, status, iterations, ms)
    junction: Optional[JunctionDecision] = None  # followers, deadlock breaking, time to conflict


def safe_stop_trajectory(ego: EgoState, decel: float = PlannerConfig.safe_stop_decel,
                         dt: float = 0.1, horizon: float = 10.0, stamp: Optional[float] = None,
                         frame_id: str = "odom", maneuver: str = "safe_stop",
                         jerk: float = 4.0) -> Trajectory:
    """Straight-ahead stop with a jerk-limited ramp to `decel` (the fallback for stale
    or missing inputs and solver failures)."""
    t = np.arange(int(round(horizon / dt)) + 1) * dt
    # integrate finely (jerk-limited ramp in; a >= -sqrt(2 j v) ramps out smoothly so the
    # deceleration reaches 0 with the speed), then sample at dt
    h = 0.005
    n = int(round(horizon / h)) + 1
    vf = np.zeros(n)
    af = np.zeros(n)
    vf[0] = max(ego.speed, 0.0)
    af[0] = min(ego.accel, 0.0) if vf[0] > 0 else 0.0
    for k in range(n - 1):
        if vf[k] <= 0.0:
            break
        an = max(af[k] - jerk * h, -decel, -math.sqrt(2.0 * jerk * vf[k]))
        an = min(an, af[k] + jerk * h)
        vn = vf[k] + 0.5 * (af[k] + an) * h
        if vn <= 0.0:
            vn, an = 0.0, 0.0
        vf[k + 1], af[k + 1] = vn, an
    tf = np.arange(n) * h
    v = np.interp(t, tf, vf)
    a = np.interp(t, tf, af)
    s = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * dt)])
    x = ego.x + s * math.cos(ego.yaw)
    y = ego.y + s * math.sin(ego.yaw)
    return Trajectory(t=t, x=x, y=y, yaw=np.full_like(t, ego.yaw), speed=v, accel=a,
                      curvature=np.zeros_like(t), stamp=ego.stamp if stamp is None else stamp,
                      frame_id=frame_id, maneuver=maneuver)


class Planner:
    """Stateful planner (keeps the previous cycle for warm starts)."""

    def __init__(self, config: Optional[PlannerConfig] = None):
        cfg = config or PlannerConfig()
        v = cfg.vehicle
        # the search's ego body is the vehicle's; its curvature limit never above it
        self.cfg = replace(cfg, search=replace(
            cfg.search, front=v.front, rear=v.rear, half_width=v.half_width,
            max_curvature=min(cfg.search.max_curvature, v.max_curvature)))
        self.predictor = FuturePredictor(self.cfg.futures)
        self.optimizer = TrajectoryOptimizer(self.cfg.optimizer, v)
        self._paths = PathCache(self.cfg.path_cache_size)
        self._prev: Optional[dict] = None
        self._served_stops: set = set()
        self._standing_since: Optional[float] = None

    def reset(self):
        self.predictor.reset()
        self.optimizer.reset()
        self._prev = None
        self._served_stops = set()
        self._standing_since = None

    @property
    def body(self):
        c = self.cfg.search
        return (c.front, c.rear, c.half_width)

    # -------------------------------------------------------------- main API
    def plan(self, scene: PlanningScene) -> PlanResult:
        """Plan one cycle for `scene` (see the module docstring)."""
        cfg = self.cfg
        tm = {}
        t0 = time.perf_counter()
        ego = scene.ego
        frame = build_road_frame(scene, self._paths)
        tm["frame"] = (time.perf_counter() - t0) * 1e3

        t1 = time.perf_counter()
        futures = self.predictor.predict(scene)
        tg = cfg.search.t
        agents = {a.id: a for a in scene.agents}
        occ = futures_to_occupancy(futures, agents, frame.ref, tg)
        occ = self._add_stop_lines(occ, frame, ego, tg)
        occ, followers = drop_followers(occ, frame.ego_s, frame.ego_d, self.body, cfg.junction)
        tm["futures"] = (time.perf_counter() - t1) * 1e3

        t2 = time.perf_counter()
        v0, a0, elapsed = self._initial_state(scene)
        v_des = cfg.desired_speed if cfg.desired_speed else frame.speed_limit
        v_des = min(v_des, frame.speed_limit)
        wait_time = self._wait_time(scene, frame)
        jd = JunctionDecision(followers=followers)
        occ, v_des = self._break_deadlock(occ, futures, agents, frame, tg, v_des, wait_time, jd)
        res = self._search(scene, frame, occ, tg, v0, a0, v_des, elapsed, wait_time)
        lat, lon = res.lateral, res.longitudinal
        i, j = res.best
        s_e, d_e = frame.ego_s, frame.ego_d
        D, S, V = lat.d[i], s_e + lon.s[j], lon.v[j]
        tm["search"] = (time.perf_counter() - t2) * 1e3

        # ---- corridor + optimisation
        t3 = time.perf_counter()
        corr = build_corridor(frame, tg, D, S, V, occ, self.body, cfg.corridor,
                              speed_limit=v_des)
        tm["corridor"] = (time.perf_counter() - t3) * 1e3
        t4 = time.perf_counter()
        kappa_e = math.tan(ego.steering_angle) / cfg.vehicle.wheelbase if abs(ego.steering_angle) > 0 \
            else (ego.yaw_rate / ego.speed if ego.speed > 1.0 else 0.0)
        # an emergency-braking profile is only forced when a conflict is imminent (issue 16:
        # no emergency flag at a junction whose nearest car is 40 m away)
        imminent, jd.min_ttc = imminent_conflict(occ, tg, s_e, d_e, v0, self.body,
                                                 cfg.search.comfort_decel, cfg.junction)
        opt = self.optimizer.optimize(frame.ref, corr, s_e, d_e, frame.ego_rel_yaw, kappa_e,
                                      v0, a0, tg, S, D, V, self.body, stamp=scene.stamp,
                                      frame_id=scene.frame_id, maneuver=res.label,
                                      force_emergency=bool(lon.emergency[j]) and imminent)
        tm["optimize"] = (time.perf_counter() - t4) * 1e3
        # the flag says this plan brakes harder than the optimiser's comfortable limit (it
        # fell back to its emergency limits and used them); a standing ego cannot brake
        emergency = bool(opt.emergency) and \
            float(np.min(opt.trajectory.accel)) < -cfg.optimizer.max_decel - 0.05
        self.last_solves = opt.iterations.get("solves", [])
        tm["total"] = (time.perf_counter() - t0) * 1e3
        xs, ys, _ = frame.ref.to_xy(S, D)
        chosen = {"t": tg.copy(), "s": S, "d": D, "v": V, "x": xs, "y": ys, "kind": lat.kind[i]}
        self._prev = {"stamp": scene.stamp, "trajectory": opt.trajectory, "ref_key": frame.ref_key,
                      "chosen": chosen}
        return PlanResult(trajectory=opt.trajectory, futures=futures, corridor=corr,
                          maneuver=res.label, candidates_per_cycle=res.n_candidates,
                          collision_probability=float(res.collision_prob[i, j]),
                          emergency=emergency, status=opt.status, timings_ms=tm,
                          frame=frame, search=res, chosen=chosen,
                          solves=list(opt.iterations.get("solves", [])), junction=jd)

    # -------------------------------------------------------------- helpers
    def _initial_state(self, scene: PlanningScene):
        """(v0, a0, elapsed): the initial speed and acceleration, taken from the previous
        plan at the elapsed time when the ego tracked it (so the executed speed matches
        the plan); elapsed is None without a usable previous plan."""
        cfg, ego, prev = self.cfg, scene.ego, self._prev
        v0, a0 = max(ego.speed, 0.0), float(np.clip(ego.accel, -8.0, 3.0))
        elapsed = None
        if prev is not None:
            elapsed = scene.stamp - prev["stamp"]
            tr = prev["trajectory"]
            if 0.0 <= elapsed <= 0.5:
                px = np.interp(elapsed, tr.t, tr.x)
                py = np.interp(elapsed, tr.t, tr.y)
                pv = float(np.interp(elapsed, tr.t, tr.speed))
                pa = float(np.interp(elapsed, tr.t, tr.accel))
                if math.hypot(px - ego.x, py - ego.y) < cfg.consistency_position and \
                        abs(pv - ego.speed) < cfg.consistency_speed:
                    v0, a0 = pv, pa
            else:
                elapsed = None
        return v0, a0, elapsed

    def _wait_time(self, scene: PlanningScene, frame: RoadFrame) -> float:
        """How long the ego has been held up: time since it was last `wait_distance` away
        from where it is now (creeping up to an obstacle still counts as waiting); 0 at
        the goal."""
        ego = scene.ego
        at_goal = np.isfinite(frame.goal_station) and frame.goal_station - frame.ego_s < 3.0
        st = self._standing_since
        if at_goal or st is None or scene.stamp < st[0] or \
                math.hypot(ego.x - st[1], ego.y - st[2]) > self.cfg.search.wait_distance:
            self._standing_since = st = (scene.stamp, ego.x, ego.y)
        return 0.0 if at_goal else scene.stamp - st[0]

    def _break_deadlock(self, occ, futures, agents, frame: RoadFrame, tg, v_des: float,
                        wait_time: float, jd: JunctionDecision):
        """(occupancy, desired speed) for this cycle: unchanged, or -- after
        `deadlock_wait_s` of waiting on agents that stand and most probably keep standing
        -- with their moving hypotheses discounted and the speed capped at the creep
        speed (junction.py, item 3)."""
        jc = self.cfg.junction
        if wait_time < jc.deadlock_wait_s:
            return occ, v_des
        top = {f.agent_id: float(max(f.hypotheses, key=lambda h: h.probability).trajectory.speed[-1])
               for f in futures if f.hypotheses}
        creep = min(v_des, jc.deadlock_creep_speed)
        ids = deadlock_agents(occ, agents, top, tg, frame.ego_s, frame.ego_d, creep, self.body, jc)
        if not ids:
            return occ, v_des
        jd.blockers, jd.deadlock = ids, True
        return discount_agents(occ, ids, jc.deadlock_discount), creep

    def _search(self, scene: PlanningScene, frame: RoadFrame, occ, tg, v0: float, a0: float,
                v_des: float, elapsed, wait_time: float) -> SearchResult:
        """The ego's candidate sets (lateral x longitudinal) scored against `occ`."""
        sc = self.cfg.search
        s_e, d_e = frame.ego_s, frame.ego_d
        rl = float(np.interp(s_e + 5.0, frame.station_grid, frame.road_left))
        rr = float(np.interp(s_e + 5.0, frame.station_grid, frame.road_right))
        lat_specs = ego_lateral_specs(sc, d_e, frame.lane_offsets, frame.lane_width, rr, rl)
        dd0 = v0 * math.sin(frame.ego_rel_yaw)
        lat = lateral_profiles(tg, d_e, dd0, lat_specs)
        stops, leads = self._stops_and_leads(occ, frame, sc)
        goal_stop = None
        if np.isfinite(frame.goal_station):
            goal_stop = frame.goal_station - s_e
        cruise, stop_list, lead_list = ego_longitudinal_sets(sc, v0, v_des, stops, goal_stop, leads)
        # stops are approached at <= 6 m/s (stop lines, obstacles), the goal at the cruise
        # speed too (a free road to the goal is driven at its limit, issue 16)
        stop_speeds = [max(v0, min(v_des, 6.0))] * len(stop_list)
        if goal_stop is not None and goal_stop > 0.3:
            stop_list = stop_list + [goal_stop]
            stop_speeds = stop_speeds + [max(v0, v_des)]
        lon = longitudinal_profiles(tg, v0, a0, cruise, stop_list, lead_list, v_max=v_des,
                                    max_jerk=sc.max_jerk, comfort_decel=sc.comfort_decel,
                                    emergency_decel=sc.emergency_decel,
                                    stop_speed=stop_speeds)
        onc = None
        if len(frame.oncoming_offsets):
            left_onc = frame.oncoming_offsets[frame.oncoming_offsets > 0]
            if len(left_onc):
                onc = float(left_onc.min() - frame.lane_width / 2.0)
        return score(lat, lon, occ, sc, s0=s_e, v_des=v_des, station_grid=frame.station_grid,
                     road_left=frame.road_left, road_right=frame.road_right,
                     curvature_fn=frame.ref.curvature_at, lane_offsets=frame.lane_offsets,
                     oncoming_boundary=onc, route_deadline=frame.route_deadline,
                     goal_station=frame.goal_station,
                     prev=self._previous_profile(frame, tg, elapsed),
                     approach_stop=min(stops + ([goal_stop] if goal_stop else [])) if (stops or goal_stop) else None,
                     wait_time=wait_time)

    def _previous_profile(self, frame: RoadFrame, tg, elapsed):
        """(d(t), v(t), (kind, stopped)) of the previous choice on this cycle's time grid,
        for the search's consistency terms; None after a new reference path."""
        prev = self._prev
        if prev is None or elapsed is None or prev["ref_key"] != frame.ref_key:
            return None
        pt = prev["chosen"]
        return (np.interp(tg + elapsed, pt["t"], pt["d"]),
                np.interp(tg + elapsed, pt["t"], pt["v"]),
                (pt["kind"], bool(pt["v"][-1] < 0.3)))

    def _add_stop_lines(self, occ, frame: RoadFrame, ego: EgoState, tg):
        """Stop lines on the route act as a wall across the lanes until the ego has stopped
        in front of them (then the agents' futures decide when to go)."""
        sc = self.cfg.search
        walls = []
        for station, key in frame.stop_stations:
            if key in self._served_stops:
                continue
            gap = station - (frame.ego_s + sc.front)
            if gap < 0.0:       # the front is over the line: stopping there helps no one
                self._served_stops.add(key)
                continue
            if gap < 4.0 and ego.speed < 0.3:
                self._served_stops.add(key)
                continue
            walls.append(station)
        if not walls:
            return occ
        T = len(tg)
        lo = frame.lane_offsets
        dc = 0.5 * (lo.min() + lo.max())
        hd = 0.5 * (lo.max() - lo.min()) + frame.lane_width / 2.0
        n = len(walls)
        add = Occupancy(s=np.repeat(np.array(walls)[:, None] + 0.3, T, 1),
                        d=np.full((n, T), dc), hs=np.full((n, T), 0.3), hd=np.full((n, T), hd),
                        p=np.ones(n), agent=np.full(n, -1), static=np.ones(n, bool),
                        vs=np.zeros((n, T)))
        if not len(occ):
            return add
        return Occupancy(s=np.vstack([occ.s, add.s]), d=np.vstack([occ.d, add.d]),
                         hs=np.vstack([occ.hs, add.hs]), hd=np.vstack([occ.hd, add.hd]),
                         p=np.concatenate([occ.p, add.p]), agent=np.concatenate([occ.agent, add.agent]),
                         static=np.concatenate([occ.static, add.static]),
                         vs=np.vstack([occ.vs, add.vs]))

    def _stops_and_leads(self, occ, frame: RoadFrame, sc: SearchConfig):
        """Stop points behind obstacles in the ego lane and lead vehicles to follow."""
        stops, leads = [], []
        if not len(occ):
            return stops, leads
        s_e = frame.ego_s
        lane = float(frame.lane_offsets[np.argmin(np.abs(frame.lane_offsets - frame.ego_d))])
        in_lane = (np.abs(occ.d[:, 0] - lane) - occ.hd[:, 0]) < sc.half_width + 0.4
        ahead = occ.s[:, 0] - occ.hs[:, 0] > s_e + sc.front
        for k in np.where(in_lane & ahead)[0]:
            gap = occ.s[k, 0] - occ.hs[k, 0] - s_e - sc.front - 2.5
            if occ.static[k] or occ.vs[k, 0] < 0.5:
                if gap > 0.3:
                    stops.append(float(gap))
            elif occ.p[k] >= 0.2 and occ.vs[k, 0] > 0.5:
                leads.append((occ.p[k], occ.s[k] - occ.hs[k] - s_e - sc.front))
        leads.sort(key=lambda x: -x[0])
        stops = sorted(stops)[:3]
        return stops, [l[1] for l in leads[:3]]
