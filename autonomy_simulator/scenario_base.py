"""What every catalogue scenario is built from (no ROS): the `Scenario` record, `_finish`
(autopilot, ego pose, goal at the route's end, the `Simulation`) and `_traffic` (seeded
vehicles on given lanes without overlaps). Used by `scenarios` and `junction_scenarios`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from autonomy_vehicle.vehicle_model import VehicleParams
from autonomy_simulator.agents import DriverParams, VehicleAgent, make_car
from autonomy_simulator.simulation import EgoAutopilot, Simulation


@dataclass
class Scenario:
    name: str
    seed: int
    params: dict
    sim: Simulation
    goal: Tuple[float, float, float]
    route: List[int]
    route_path: np.ndarray
    description: str = ""


def _finish(name, seed, params, world, agents, route, ego_s=5.0, ego_speed=0.0, autopilot=True,
            driver: Optional[DriverParams] = None, change_at=None, goal=None, dt=0.02,
            description="", ego_pose=None) -> Scenario:
    vehicle = VehicleParams()
    ap = EgoAutopilot(world, route, vehicle, params=driver, change_at=change_at)
    path = ap.path
    if ego_pose is None:
        x, y, h = path.pose(ego_s)
        ego_pose = (x - vehicle.center_offset * math.cos(h), y - vehicle.center_offset * math.sin(h), h)
    if goal is None:
        gx, gy, gh = path.pose(path.length - 0.5 * vehicle.length - 2.0)
        goal = (gx - vehicle.center_offset * math.cos(gh), gy - vehicle.center_offset * math.sin(gh), gh)
    sim = Simulation(world, agents, ego_start=(*ego_pose, ego_speed), vehicle=vehicle, dt=dt,
                     seed=seed, autopilot=ap if autopilot else None, goal=goal, route=route,
                     name=name)
    return Scenario(name, seed, params, sim, tuple(float(v) for v in goal), list(route),
                    path.points.copy(), description)


def _traffic(world, rng, n, lanes, start_id, avoid=(), min_gap=18.0, speed_frac=(0.5, 0.9),
             truck_prob=0.15, s_range=(0.0, 1e9), **kw) -> List[VehicleAgent]:
    """Spawn up to `n` vehicles on `lanes` (random lane, random s) without overlaps.
    `avoid`: [(lane_id, s)] slots already taken (e.g. the ego's)."""
    taken = list(avoid)
    out = []
    tries = 0
    while len(out) < n and tries < 50 * max(n, 1):
        tries += 1
        lid = int(lanes[int(rng.integers(len(lanes)))])
        ln = world.lanes[lid]
        lo, hi = max(s_range[0], 3.0), min(s_range[1], ln.length - 8.0)
        if hi <= lo:
            continue
        s = float(rng.uniform(lo, hi))
        if any(l2 == lid and abs(s - s2) < min_gap for l2, s2 in taken):
            continue
        taken.append((lid, s))
        route = world.route_lanes(lid, rng=rng)
        v = ln.speed_limit * float(rng.uniform(*speed_frac))
        out.append(make_car(start_id + len(out), world, route, s, v, rng,
                            truck=bool(rng.random() < truck_prob), **kw))
    return out
