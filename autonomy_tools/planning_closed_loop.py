"""Closed-loop evaluation of the planner in the simulator with ground-truth perception
(no ROS): `autonomy_simulator` scenario -> PlanningScene every 0.1 s -> Planner.plan ->
`autonomy_control.controller.TrackingController` at the simulator rate -> ego model.

Used by the tests (tests/test_planning_closed_loop.py) and bench/planner.py. Metrics:
collisions (oriented-box overlap of the ego body with any object, every step), goal
reached, comfort of the *executed* motion on the nuPlan definitions (signals sampled at
10 Hz and smoothed with a Savitzky-Golay filter, as nuPlan does: |lateral acceleration|,
|jerk| (magnitude of the time derivative of the acceleration vector), longitudinal
acceleration), and per planning cycle the corridor checks (static obstacles outside the
corridor, optimised trajectory's body inside it).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
from scipy.signal import savgol_filter

from autonomy_stack.geometry import box_corners, boxes_overlap
from autonomy_stack.vector_space import EgoState, ObjectClass, ObjectState

from autonomy_planning.planner import PlanResult, Planner, PlannerConfig
from autonomy_planning.scene import Goal, Lane, PlanningScene
from autonomy_control.controller import ControllerConfig, TrackingController

NUPLAN_LIMITS = {"max_lat_acc": 4.89, "max_jerk": 8.37, "min_lon_acc": -4.05, "max_lon_acc": 2.40}


def lanes_from_world(world) -> List[Lane]:
    """Simulator lanes -> planning lanes (same ids, successors, stop lines)."""
    return [Lane(id=int(lid), centerline=np.asarray(ln.centerline, dtype=float)[:, :2],
                 width=float(ln.width), speed_limit=float(ln.speed_limit),
                 successors=[int(s) for s in ln.successors],
                 stop_line_s=None if ln.stop_line_s is None else float(ln.stop_line_s))
            for lid, ln in world.lanes.items()]


def boundaries_from_world(world) -> List[np.ndarray]:
    return [np.asarray(l.points, dtype=float)[:, :2] for l in list(world.curbs) + list(world.road_edges)
            if len(l.points) >= 2]


def scene_from_simulation(sim, lanes: List[Lane], boundaries: List[np.ndarray],
                          route: List[int], goal: Optional[Goal]) -> PlanningScene:
    """Ground-truth perception: every active agent and static object, the ego state."""
    e = sim.ego
    ego = EgoState(x=e.x, y=e.y, yaw=e.yaw, speed=e.speed, accel=e.accel, yaw_rate=e.yaw_rate,
                   steering_angle=e.steering_angle, stamp=sim.t)
    return PlanningScene(stamp=sim.t, ego=ego, agents=sim.objects(), lanes=lanes,
                         boundaries=boundaries, goal=goal, route_lane_ids=list(route),
                         speed_limit=max(l.speed_limit for l in lanes) if lanes else 13.9)


def corridor_checks(result: PlanResult, objects: List[ObjectState], body: tuple,
                    tol: float = 0.1) -> Dict[str, float]:
    """Independent geometric checks of one cycle:
    - obstacle_intrusion: max depth (m) by which a static obstacle's footprint enters the
      corridor at any station it covers (<= 0 means excluded),
    - trajectory_excursion: max distance (m) by which a corner of the ego body along the
      optimised trajectory leaves the corridor (<= 0 means inside)."""
    corr = result.corridor
    frame = result.frame
    front, rear, hw = body
    ref = frame.ref
    worst_obs = -np.inf
    s_lo_c, s_hi_c = corr.stations[0], corr.stations[-1]
    for o in objects:
        if not (o.is_static or o.object_class in (ObjectClass.CONE, ObjectClass.POLE, ObjectClass.BARRIER)):
            continue
        cs, cd = ref.project(o.corners())
        if cs.max() < s_lo_c or cs.min() > s_hi_c:
            continue
        m = (corr.stations >= cs.min()) & (corr.stations <= cs.max())
        if not np.any(m):
            continue
        lo, hi = corr.right[m], corr.left[m]
        # intrusion = overlap of [cd.min, cd.max] with [lo, hi]
        ov = np.minimum(hi, cd.max()) - np.maximum(lo, cd.min())
        worst_obs = max(worst_obs, float(ov.max()))
    tr = result.trajectory
    # body corners (rear axle reference) along the trajectory where the ego moves
    worst_traj = -np.inf
    sel = np.arange(0, len(tr), 2)
    pts = []
    for k in sel:
        c, s = math.cos(tr.yaw[k]), math.sin(tr.yaw[k])
        for lx, ly in ((front, hw), (front, -hw), (-rear, -hw), (-rear, hw), (0.0, hw), (0.0, -hw)):
            pts.append((tr.x[k] + lx * c - ly * s, tr.y[k] + lx * s + ly * c))
    ps, pd = ref.project(np.array(pts))
    lo, hi = corr.bounds_at(ps)
    inside_range = (ps >= corr.stations[0]) & (ps <= corr.stations[-1])
    exc = np.maximum(lo - pd, pd - hi)[inside_range]
    if len(exc):
        worst_traj = float(exc.max())
    return {"obstacle_intrusion": worst_obs, "trajectory_excursion": worst_traj}


@dataclass
class ClosedLoopResult:
    name: str
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    accel: np.ndarray
    yaw_rate: np.ndarray
    collisions: List[tuple]
    maneuvers: List[tuple]                     # (t, label)
    plan_ms: List[float]
    emergency_t: List[float]
    corridor: List[dict]                       # per cycle checks
    plans: List[tuple] = field(default_factory=list)    # (t, planned t, speed) subsample
    timings: List[dict] = field(default_factory=list)
    plan_cpu_ms: List[float] = field(default_factory=list)   # process CPU time per cycle
    decisions: List[tuple] = field(default_factory=list)  # (t, label, min v over 4 s, v at 10 s)
    agents: Dict[int, dict] = field(default_factory=dict)
    goal_reached: bool = False
    candidates_per_cycle: int = 0
    stopped_early: bool = False

    def comfort(self) -> Dict[str, float]:
        return comfort_metrics(self.t, self.speed, self.yaw_rate, self.accel, self.emergency_t)


def comfort_metrics(t, speed, yaw_rate, accel, emergency_t=(), rate_hz: float = 10.0,
                    window: int = 7, order: int = 2) -> Dict[str, float]:
    """nuPlan-style comfort of an executed run: resample at `rate_hz`, Savitzky-Golay
    smoothed derivatives. Longitudinal acceleration while the plan was an emergency stop
    (and 1 s after) is exempt from the lower bound."""
    t = np.asarray(t)
    if len(t) < 3:
        return {"max_lat_acc": 0.0, "max_jerk": 0.0, "min_lon_acc": 0.0, "max_lon_acc": 0.0}
    tg = np.arange(t[0], t[-1], 1.0 / rate_hz)
    v = np.interp(tg, t, speed)
    yr = np.interp(tg, t, yaw_rate)
    dt = 1.0 / rate_hz
    w = min(window, len(tg) - (1 - len(tg) % 2))
    if w < order + 2:
        return {"max_lat_acc": 0.0, "max_jerk": 0.0, "min_lon_acc": 0.0, "max_lon_acc": 0.0}
    a_lon = savgol_filter(v, w, order, deriv=1, delta=dt)
    a_lat = savgol_filter(v * yr, w, order)
    j_lon = savgol_filter(v, w, order, deriv=2, delta=dt)
    j_lat = savgol_filter(v * yr, w, order, deriv=1, delta=dt)
    jerk = np.hypot(j_lon, j_lat)
    exempt = np.zeros(len(tg), bool)
    for te in emergency_t:
        exempt |= (tg >= te - 0.1) & (tg <= te + 1.0)
    lon_ok = a_lon[~exempt] if np.any(~exempt) else np.zeros(1)
    return {"max_lat_acc": float(np.abs(a_lat).max()), "max_jerk": float(jerk[~exempt].max() if np.any(~exempt) else 0.0),
            "min_lon_acc": float(lon_ok.min()), "max_lon_acc": float(lon_ok.max())}


def make_tracker():
    """The control developer's tracking controller (pure pursuit lateral: cheap enough for
    tests; feed-forward + PID longitudinal)."""
    return TrackingController(ControllerConfig(lateral="pure_pursuit"))


def run_scenario(scenario, duration: float, planner: Optional[Planner] = None,
                 plan_dt: float = 0.1, stop_when: Optional[Callable] = None,
                 check_corridor: bool = True, goal_tolerance: float = 3.0,
                 agent_ids: tuple = (), record_plans_every: int = 0,
                 on_cycle: Optional[Callable] = None) -> ClosedLoopResult:
    """Drive `scenario.sim` with the planner + controller for `duration` s (sim time).
    stop_when(sim, result_so_far) -> bool ends the run early; on_cycle(sim, plan_result)
    is called every planning cycle (e.g. to sample the ground truth at 10 Hz)."""
    sim = scenario.sim
    sim.autopilot = None
    planner = planner or Planner(PlannerConfig())
    lanes = lanes_from_world(sim.world)
    bounds = boundaries_from_world(sim.world)
    gx, gy, gyaw = scenario.goal
    goal = Goal(gx, gy, gyaw, tolerance=goal_tolerance)
    ctl = make_tracker()
    vp = sim.vehicle
    body = (vp.length - vp.rear_overhang, vp.rear_overhang, vp.width / 2.0)
    n = int(round(duration / sim.dt))
    every = max(1, int(round(plan_dt / sim.dt)))
    log = {k: [] for k in ("t", "x", "y", "yaw", "speed", "accel", "yaw_rate")}
    res = ClosedLoopResult(scenario.name, *([None] * 7), collisions=[], maneuvers=[], plan_ms=[],
                           emergency_t=[], corridor=[])
    agent_log = {i: {k: [] for k in ("t", "x", "y", "speed", "accel", "d", "nudging")} for i in agent_ids}
    statics = list(sim.world.static_objects)
    for step in range(n):
        if step % every == 0:
            scene = scene_from_simulation(sim, lanes, bounds, scenario.route, goal)
            t0, c0 = time.perf_counter(), time.process_time()
            pr = planner.plan(scene)
            res.plan_ms.append((time.perf_counter() - t0) * 1e3)
            res.plan_cpu_ms.append((time.process_time() - c0) * 1e3)
            res.timings.append(dict(pr.timings_ms, solves=getattr(planner, "last_solves", [])))
            res.candidates_per_cycle = max(res.candidates_per_cycle, pr.candidates_per_cycle)
            res.maneuvers.append((sim.t, pr.maneuver))
            tr = pr.trajectory
            res.decisions.append((sim.t, pr.maneuver, float(tr.speed[tr.t <= 4.0].min()),
                                  float(tr.speed[-1])))
            if pr.emergency:
                res.emergency_t.append(sim.t)
            if check_corridor and pr.corridor is not None:    # (parking plans have none)
                chk = corridor_checks(pr, statics, planner.body)
                chk["t"] = sim.t
                res.corridor.append(chk)
            if record_plans_every and (step // every) % record_plans_every == 0:
                res.plans.append((sim.t, pr.trajectory.t.copy(), pr.trajectory.speed.copy()))
            ctl.set_trajectory(pr.trajectory, sim.t)
            if on_cycle is not None:
                on_cycle(sim, pr)
        e = sim.ego
        ctl.set_odometry(EgoState(x=e.x, y=e.y, yaw=e.yaw, speed=e.speed, accel=e.accel,
                                  yaw_rate=e.yaw_rate, steering_angle=e.steering_angle,
                                  stamp=sim.t), sim.t)
        cmd, _ = ctl.step(sim.t)
        sim.step(cmd)
        e = sim.ego
        for k, v in (("t", sim.t), ("x", e.x), ("y", e.y), ("yaw", e.yaw), ("speed", e.speed),
                     ("accel", e.accel), ("yaw_rate", e.yaw_rate)):
            log[k].append(v)
        ego_box = box_corners(e.x, e.y, e.yaw, vp.length, vp.width, vp.center_offset)
        for o in sim.objects():
            if math.hypot(o.x - e.x, o.y - e.y) > 12.0:
                continue
            if boxes_overlap(ego_box, o.corners()):
                res.collisions.append((sim.t, o.id))
        for ag in sim.agents:
            if ag.id in agent_log:
                L = agent_log[ag.id]
                L["t"].append(sim.t); L["x"].append(ag.x); L["y"].append(ag.y)
                L["speed"].append(ag.speed); L["accel"].append(getattr(ag, "accel", 0.0))
                L["d"].append(getattr(ag, "d", 0.0)); L["nudging"].append(bool(getattr(ag, "nudging", False)))
        if math.hypot(e.x - gx, e.y - gy) < goal_tolerance:
            res.goal_reached = True
        if stop_when is not None and step % every == 0 and stop_when(sim, res):
            res.stopped_early = True
            break
    for k in log:
        setattr(res, k, np.asarray(log[k]))
    res.agents = {i: {k: np.asarray(v) for k, v in L.items()} for i, L in agent_log.items()}
    return res
