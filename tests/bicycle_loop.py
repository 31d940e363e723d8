"""A minimal closed loop for planning tests: the planner at 10 Hz, the tracking
controller (pure pursuit) and the kinematic bicycle plant at 50 Hz, no simulator."""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from autonomy_control.controller import ControllerConfig, TrackingController
from autonomy_planning.planner import Planner
from autonomy_planning.scene import PlanningScene
from autonomy_stack.vector_space import EgoState
from autonomy_vehicle.vehicle_model import VehiclePlant

PLANT_DT = 0.02
PLAN_EVERY = 5          # plant steps per planning cycle (10 Hz)


def drive(make_scene: Callable[[EgoState, float], PlanningScene], ego: EgoState,
          duration: float, planner: Optional[Planner] = None) -> dict:
    """Closed loop for `duration` s from `ego`; make_scene(ego, t) builds each cycle's
    scene. Returns arrays t, x, y, yaw, speed (plant, 50 Hz), the plans' trajectories,
    maneuvers, emergency flags, statuses and wall times (ms)."""
    planner = planner or Planner()
    ctl = TrackingController(ControllerConfig(lateral="pure_pursuit"))
    plant = VehiclePlant(ego, dt=PLANT_DT)
    log = {k: [] for k in ("t", "x", "y", "yaw", "speed", "plans", "maneuvers", "emergency",
                           "status", "plan_ms")}
    for k in range(int(round(duration / PLANT_DT))):
        t = k * PLANT_DT
        e = plant.state
        odom = EgoState(e.x, e.y, e.yaw, e.speed, e.accel, e.yaw_rate, e.steering_angle, stamp=t)
        if k % PLAN_EVERY == 0:
            t0 = time.perf_counter()
            res = planner.plan(make_scene(odom, t))
            log["plan_ms"].append((time.perf_counter() - t0) * 1e3)
            log["plans"].append(res.trajectory)
            log["maneuvers"].append(res.maneuver)
            log["emergency"].append(res.emergency)
            log["status"].append(res.status)
            ctl.set_trajectory(res.trajectory, t)
        ctl.set_odometry(odom, t)
        cmd, _ = ctl.step(t)
        plant.step(cmd.steering_angle, cmd.acceleration)
        for key, v in (("t", t + PLANT_DT), ("x", plant.state.x), ("y", plant.state.y),
                       ("yaw", plant.state.yaw), ("speed", plant.state.speed)):
            log[key].append(v)
    for key in ("t", "x", "y", "yaw", "speed", "plan_ms"):
        log[key] = np.asarray(log[key])
    return log
