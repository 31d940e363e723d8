"""Closed-loop evaluation on the simulator (`autonomy_simulator.simulation.Simulation`, whose
ego is `vehicle_model` driven by ControlCommands, agents included): its curved road and
its scenario catalogue. No rclpy. Used by bench/control.py and tests/test_control_sim.py.

Each run: the scenario's route (lane centre lines) becomes a reference with a speed profile
(speed cap, lateral-acceleration limit, stop at the goal); `PlannerEmulator` publishes
trajectories from it; the controller's commands step the Simulation; errors are measured
against the route.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from autonomy_tools.control_closed_loop import (PlannerEmulator, Route, route_from_curvature,
                                          run_closed_loop, speed_profile)
from autonomy_control.controller import ControllerConfig
from autonomy_stack.geometry import arc_length, polyline_headings, remove_duplicate_points
from autonomy_stack.vector_space import EgoState
from autonomy_simulator import scenarios, worlds
from autonomy_simulator.simulation import Simulation


def route_from_polyline(points: np.ndarray, v_max: float, a_lat: float = 3.0,
                        v_start: Optional[float] = None, ds: float = 0.5,
                        smooth_m: float = 2.0, x0=None, y0=None) -> Route:
    """Dense route along a polyline: heading and curvature from the (lightly smoothed)
    geometry, speed limited by v_max and a_lat, ending at standstill."""
    p = remove_duplicate_points(points, 1e-6)
    s0 = arc_length(p)
    s = np.arange(0.0, s0[-1], ds)
    x, y = np.interp(s, s0, p[:, 0]), np.interp(s, s0, p[:, 1])
    yaw = np.unwrap(polyline_headings(np.column_stack([x, y])))
    k = np.gradient(yaw, s)
    n = max(1, int(round(smooth_m / ds)))
    if n > 1:
        k = np.convolve(np.pad(k, (n // 2, n - 1 - n // 2), mode="edge"), np.ones(n) / n,
                        mode="valid")
    v = speed_profile(s, k, v_max, a_lat, 1.5, 2.5, v_start=v_start, v_end=0.0)
    v = np.maximum(v, 0.0)
    # integrate the smoothed curvature from the polyline's start pose so that heading,
    # curvature and positions are consistent; then pin it to the polyline positions
    r = route_from_curvature(s, k, np.maximum(v, 1e-3), x0=float(x[0]), y0=float(y[0]),
                             yaw0=float(yaw[0]))
    r.x, r.y, r.yaw = x, y, yaw
    r.speed = v
    return r


def trim_to(points: np.ndarray, x: float, y: float, back: float = 2.0) -> np.ndarray:
    """The polyline from `back` metres before the point nearest to (x, y) to its end."""
    p = np.asarray(points, float)[:, :2]
    s = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(p, axis=0).T))))
    i = int(np.argmin(np.hypot(p[:, 0] - x, p[:, 1] - y)))
    s0 = max(s[i] - back, 0.0)
    j = int(np.searchsorted(s, s0, side="right") - 1)
    head = np.array([[np.interp(s0, s, p[:, 0]), np.interp(s0, s, p[:, 1])]])
    return np.concatenate((head, p[j + 1:]))


class SimPlant:
    """Adapter: the Simulation as the plant of `run_closed_loop`."""

    def __init__(self, sim):
        self.sim = sim

    @property
    def state(self) -> EgoState:
        return self.sim.ego

    def apply(self, cmd) -> None:
        self.sim.step(cmd)


def run_on_sim(sim, route: Route, cfg: ControllerConfig, duration: float):
    e = sim.ego
    start = EgoState(x=e.x, y=e.y, yaw=e.yaw, speed=e.speed)
    planner = PlannerEmulator(route)
    return run_closed_loop(route, cfg, duration, dt=sim.dt, start=start, planner=planner,
                           plant=SimPlant(sim))


def curvy_sim_road(seed: int = 0, v_max: float = 20.0, length: float = 1000.0,
                   max_curvature: float = 1.0 / 150.0, cfg: Optional[ControllerConfig] = None):
    """The simulator's curved multi-lane road (piecewise-constant curvature); the ego drives
    the rightmost forward lane end to end."""
    w = worlds.road(seed, length=length, curved=True, max_curvature=max_curvature)
    lanes = [ln for ln in w.lanes.values()]
    fwd = [ln for ln in lanes if ln.right is None and abs(ln.centerline[0, 0]) < 1.0]
    lane = fwd[0] if fwd else lanes[0]
    pts = lane.centerline
    route = route_from_polyline(pts, v_max, v_start=v_max)
    sim = Simulation(w, [], ego_start=(float(route.x[0]), float(route.y[0]),
                                       float(route.yaw[0]), float(route.speed[0])),
                     dt=0.02, seed=seed)
    res = run_on_sim(sim, route, cfg or ControllerConfig(), float(route.t[-1]) + 5.0)
    return res, route


def catalogue_runs(cfg: Optional[ControllerConfig] = None, v_cap: float = 20.0,
                   seed: int = 0, names=None, max_duration: Optional[float] = None,
                   with_agents: bool = True) -> Dict[str, dict]:
    """Every catalogue scenario (with its traffic) driven by the controller along its route at
    min(v_cap, the route's speed limit) (for at most `max_duration` s each). The ego does
    not react to the agents (tracking only); `with_agents=False` drops them (faster)."""
    out = {}
    for name in names or [n for n in scenarios.CATALOGUE]:
        sc = scenarios.make(name, seed=seed, autopilot=False)
        if not with_agents:
            sc.sim.agents = []
        limit = max(sc.sim.world.lanes[l].speed_limit for l in sc.route)
        v_max = min(v_cap, limit)
        e = sc.sim.ego
        # the route polyline starts at the lane start; the ego stands further along it:
        # the reference (and its speed profile from the ego's speed) starts at the ego
        pts = trim_to(sc.route_path, e.x, e.y, back=2.0)
        route = route_from_polyline(pts, v_max, v_start=max(e.speed, 0.0))
        duration = float(route.t[-1]) + 5.0
        if max_duration is not None:
            duration = min(duration, max_duration)
        res = run_on_sim(sc.sim, route, cfg or ControllerConfig(), duration)
        m = res.metrics(skip=2.0)
        m["v_max_mps"] = v_max
        m["emergency_steps"] = int(np.sum(res.emergency))
        out[name] = m
    return out
