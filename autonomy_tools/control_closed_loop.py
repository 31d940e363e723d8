"""Closed-loop evaluation of the tracking controller on the vehicle model (no rclpy).

`curvy_road` builds a reference route (sum-of-sines curvature, speed profile limited by
lateral acceleration and by accel/decel limits); `PlannerEmulator` cuts timed
trajectories out of a route the way a planner would publish them (every
`replan_period`, starting at the car, `horizon` seconds long); `run_closed_loop` drives
`vehicle_model.VehiclePlant` with a `TrackingController` and returns the error metrics
measured against the route itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from autonomy_control.controller import (ControllerConfig, TrackingController,
                                         command_to_model_accel)
from autonomy_control.reference import PathSegment
from autonomy_vehicle.vehicle_model import VehicleParams, VehiclePlant
from autonomy_stack.vector_space import EgoState, Trajectory


@dataclass
class Route:
    """A dense reference route with a time parameterisation (one direction)."""
    s: np.ndarray
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    curvature: np.ndarray
    speed: np.ndarray      # signed
    accel: np.ndarray      # d(signed speed)/dt
    t: np.ndarray

    def segment(self) -> PathSegment:
        d = 1 if np.mean(self.speed) >= 0 else -1
        return PathSegment(self.t, self.x, self.y, self.yaw, self.speed, self.accel,
                           self.curvature, d)


def speed_profile(s: np.ndarray, curvature: np.ndarray, v_max: float, a_lat: float,
                  a_acc: float, a_dec: float, v_start: Optional[float] = None,
                  v_end: Optional[float] = None) -> np.ndarray:
    v = np.minimum(v_max, np.sqrt(a_lat / np.maximum(np.abs(curvature), 1e-6)))
    if v_start is not None:
        v[0] = min(v[0], v_start)
    if v_end is not None:
        v[-1] = min(v[-1], v_end)
    ds = np.diff(s)
    for i in range(1, len(v)):
        v[i] = min(v[i], math.sqrt(v[i - 1] ** 2 + 2 * a_acc * ds[i - 1]))
    for i in range(len(v) - 2, -1, -1):
        v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + 2 * a_dec * ds[i]))
    return v


def route_from_curvature(s: np.ndarray, curvature: np.ndarray, speed: np.ndarray,
                         x0: float = 0.0, y0: float = 0.0, yaw0: float = 0.0,
                         direction: int = 1) -> Route:
    """Integrate heading/position along travelled arc length s. For direction = -1 the car
    drives backwards: position moves against the heading, curvature = dyaw/d(signed s)."""
    ds = np.diff(s)
    k_mid = 0.5 * (curvature[1:] + curvature[:-1])
    yaw = yaw0 + np.concatenate(([0.0], np.cumsum(direction * k_mid * ds)))
    ym = 0.5 * (yaw[1:] + yaw[:-1])
    x = x0 + np.concatenate(([0.0], np.cumsum(direction * np.cos(ym) * ds)))
    y = y0 + np.concatenate(([0.0], np.cumsum(direction * np.sin(ym) * ds)))
    vabs = np.abs(speed)
    vm = np.maximum(0.5 * (vabs[1:] + vabs[:-1]), 1e-3)
    t = np.concatenate(([0.0], np.cumsum(ds / vm)))
    dv = np.gradient(vabs, t) if len(t) > 1 else np.zeros_like(vabs)   # d|v|/dt
    sp = direction * vabs
    return Route(s, x, y, yaw, curvature, sp, direction * dv, t)


def curvy_road(length: float = 1200.0, v_max: float = 15.0, a_lat: float = 3.0,
               seed: int = 0, ds: float = 0.5, amplitude: float = 0.025,
               v_start: Optional[float] = None) -> Route:
    """A winding road: curvature = sum of three sines with random phases (|k| <= ~amplitude,
    radii down to ~40 m), speed limited by `a_lat`."""
    rng = np.random.default_rng(seed)
    s = np.arange(0.0, length + ds, ds)
    wl = np.array([180.0, 95.0, 55.0])
    amp = amplitude * np.array([0.5, 0.35, 0.25])
    ph = rng.uniform(0, 2 * np.pi, 3)
    k = sum(a * np.sin(2 * np.pi * s / w + p) for a, w, p in zip(amp, wl, ph))
    k *= np.clip(s / 60.0, 0.0, 1.0)                     # straight run-in
    v = speed_profile(s, k, v_max, a_lat, 1.5, 2.5, v_start=v_start)
    return route_from_curvature(s, k, v)


class PlannerEmulator:
    """Publishes trajectories cut from a route, starting at the car's projection."""

    def __init__(self, route: Route, horizon: float = 6.0, step: float = 0.1,
                 replan_period: float = 0.1, frame_id: str = "odom"):
        self.route, self.horizon, self.step_t = route, horizon, step
        self.replan_period = replan_period
        self.frame_id = frame_id
        self.seg = route.segment()
        self.hint = None
        self.next_time = -1e9

    def due(self, now: float) -> bool:
        return now >= self.next_time - 1e-9

    def plan(self, ego: EgoState, now: float) -> Trajectory:
        self.next_time = now + self.replan_period
        r = self.route
        pr = self.seg.project(ego.x, ego.y, ego.yaw, self.hint)
        self.hint = pr.index
        t0 = float(np.interp(pr.s, r.s, r.t))
        tt = t0 + np.arange(0.0, self.horizon + 1e-9, self.step_t)
        tt = tt[tt <= r.t[-1]] if np.any(tt <= r.t[-1]) else np.array([r.t[-1]])
        if len(tt) < 2:
            tt = np.array([r.t[-2], r.t[-1]])
        ss = np.interp(tt, r.t, r.s)
        f = lambda a: np.interp(ss, r.s, a)
        return Trajectory(t=tt - tt[0], x=f(r.x), y=f(r.y), yaw=f(r.yaw), speed=f(r.speed),
                          accel=f(r.accel), curvature=f(r.curvature), stamp=now,
                          frame_id=self.frame_id)


@dataclass
class ClosedLoopResult:
    t: np.ndarray
    lateral: np.ndarray
    heading: np.ndarray
    speed_error: np.ndarray
    speed: np.ndarray
    accel_cmd: np.ndarray
    steer_cmd: np.ndarray
    lat_accel: np.ndarray
    step_ms: np.ndarray
    modes: List[str]
    levels: np.ndarray
    emergency: np.ndarray
    states: List[EgoState] = field(default_factory=list)
    step_cpu_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def metrics(self, skip: float = 2.0) -> Dict[str, float]:
        m = self.t >= skip
        lat, hd, ve = self.lateral[m], self.heading[m], self.speed_error[m]
        dt = np.diff(self.t).mean() if len(self.t) > 1 else 0.02
        jerk = np.diff(self.lat_accel) / dt
        jm = jerk[m[1:]] if len(jerk) else np.zeros(1)
        return {
            "rms_lateral_m": float(np.sqrt(np.mean(lat ** 2))),
            "max_lateral_m": float(np.max(np.abs(lat))),
            "rms_heading_rad": float(np.sqrt(np.mean(hd ** 2))),
            "max_heading_rad": float(np.max(np.abs(hd))),
            "rms_speed_error_mps": float(np.sqrt(np.mean(ve ** 2))),
            "max_speed_error_mps": float(np.max(np.abs(ve))),
            "rms_lateral_jerk_mps3": float(np.sqrt(np.mean(jm ** 2))),
            "max_lateral_jerk_mps3": float(np.max(np.abs(jm))),
            "max_speed_mps": float(np.max(np.abs(self.speed))),
        }


class ModelPlant:
    """`VehiclePlant` driven by ControlCommands (gear-aware acceleration)."""

    def __init__(self, start: EgoState, params: VehicleParams, dt: float):
        self.plant = VehiclePlant(start, params, dt)

    @property
    def state(self) -> EgoState:
        return self.plant.state

    def apply(self, cmd) -> None:
        self.plant.step(cmd.steering_angle, command_to_model_accel(cmd.acceleration, cmd.gear))


def run_closed_loop(route: Route, cfg: ControllerConfig, duration: float,
                    plant_params: Optional[VehicleParams] = None, dt: float = 0.02,
                    start: Optional[EgoState] = None,
                    planner: Optional[PlannerEmulator] = None,
                    perturb: Optional[Callable] = None, keep_states: bool = False,
                    stop_at_end: bool = True, plant=None) -> ClosedLoopResult:
    """Simulate `duration` seconds at the control period `dt`. `perturb(now, traj, ego)`
    may return a modified (traj, ego) pair to inject faults (either may be None = not
    delivered this step). `plant`: anything with `.state` (EgoState) and `.apply(cmd)`
    stepping `dt` (default: the vehicle model, `ModelPlant`)."""
    plant_params = plant_params or cfg.vehicle
    if start is None:
        start = EgoState(x=float(route.x[0]), y=float(route.y[0]), yaw=float(route.yaw[0]),
                         speed=float(route.speed[0]))
    if plant is None:
        plant = ModelPlant(start, plant_params, dt)
    ctl = TrackingController(cfg)
    planner = planner or PlannerEmulator(route)
    seg = route.segment()
    hint = None
    n = int(round(duration / dt))
    out = {k: np.zeros(n) for k in ("t", "lat", "hd", "ve", "v", "a", "d", "ay", "ms", "lvl",
                                    "em", "cpu")}
    modes, states = [], []
    now = 0.0
    for i in range(n):
        ego = plant.state
        traj = planner.plan(ego, now) if planner.due(now) else None
        odom = EgoState(x=ego.x, y=ego.y, yaw=ego.yaw, speed=ego.speed,
                        yaw_rate=ego.yaw_rate, stamp=now)   # what /odom carries
        if perturb is not None:
            traj, odom = perturb(now, traj, odom)
        if traj is not None:
            ctl.set_trajectory(traj, now)
        if odom is not None:
            ctl.set_odometry(odom, now)
        cmd, st = ctl.step(now)
        pr = seg.project(ego.x, ego.y, ego.yaw, hint)
        hint = pr.index
        out["t"][i] = now
        out["lat"][i], out["hd"][i] = pr.lateral, pr.heading
        out["ve"][i] = float(seg.speed_at(pr.s)) - ego.speed
        a_model = command_to_model_accel(cmd.acceleration, cmd.gear)
        out["v"][i], out["a"][i], out["d"][i] = ego.speed, a_model, cmd.steering_angle
        out["ay"][i] = ego.speed * ego.yaw_rate
        out["ms"][i], out["lvl"][i], out["em"][i] = st.step_ms, st.level, cmd.emergency
        out["cpu"][i] = st.step_cpu_ms
        modes.append(st.mode)
        if keep_states:
            states.append(ego)
        plant.apply(cmd)
        now = (i + 1) * dt
        # end of the run: the route's end; for a route that does not end at standstill,
        # as soon as the planner's trajectories get cut short by it (the road "ends")
        open_end = abs(route.speed[-1]) > 0.5
        t_left = route.t[-1] - float(np.interp(pr.s, route.s, route.t))
        if stop_at_end and (pr.s >= seg.length - 1.0 or open_end and t_left < planner.horizon):
            n = i + 1
            break
    o = {k: v[:n] for k, v in out.items()}
    return ClosedLoopResult(o["t"], o["lat"], o["hd"], o["ve"], o["v"], o["a"], o["d"],
                            o["ay"], o["ms"], modes[:n], o["lvl"], o["em"].astype(bool), states,
                            o["cpu"])


def parking_trajectory(stamp: float = 0.0, forward: float = 8.0, radius: float = 6.0,
                       straight_in: float = 3.0, v_fwd: float = 2.0, v_rev: float = 1.5,
                       ds: float = 0.1, frame_id: str = "odom") -> Trajectory:
    """Forward pull-up, stop (cusp), then reverse through a 90-degree right-hand arc into a
    bay: a parking trajectory with a gear change and signed (negative) speeds."""
    s1 = np.arange(0.0, forward + 1e-9, ds)
    k1 = np.zeros_like(s1)
    f = route_from_curvature(s1, k1, speed_profile(s1, k1, v_fwd, 100.0, 0.8, 0.8, 0.0, 0.0))
    arc = 0.5 * math.pi * radius
    s2 = np.arange(0.0, arc + straight_in + 1e-9, ds)
    # reversing while turning the heading counter-clockwise: the car backs into a bay on
    # its right; curvature = dyaw/d(signed s) = -(dyaw/d travelled s)
    k2 = np.where(s2 <= arc, -1.0 / radius, 0.0)
    v2 = speed_profile(s2, k2, v_rev, 100.0, 0.6, 0.6, 0.0, 0.0)
    r = route_from_curvature(s2, k2, v2, x0=float(f.x[-1]), y0=float(f.y[-1]),
                             yaw0=float(f.yaw[-1]), direction=-1)
    t = np.concatenate((f.t, f.t[-1] + 0.5 + r.t))
    cat = lambda a, b: np.concatenate((a, b))
    return Trajectory(t=t, x=cat(f.x, r.x), y=cat(f.y, r.y), yaw=cat(f.yaw, r.yaw),
                      speed=cat(f.speed, r.speed), accel=cat(f.accel, r.accel),
                      curvature=cat(f.curvature, r.curvature), stamp=stamp, frame_id=frame_id)
