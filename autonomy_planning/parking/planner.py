"""`ParkingPlanner`: the entry point for the planning node's `parking` mode (no ROS).

    planner = ParkingPlanner(method="mcts")               # or "astar_route", "astar_euclid"
    traj = planner.plan(lot, start_pose, goal_pose)       # autonomy_stack Trajectory
    plan = planner.plan_detailed(lot, start_pose, goal_pose)   # + search result, samples

`lot` is a `lot.Lot` (plain data: bounds, curbs, boxes, optional drivable polygon); build
it from a `VectorSpace` with `lot.lot_from_vector_space(vs, bounds)`. Poses are rear-axle
(x, y, yaw) in the lot's frame (odom). On failure `plan` returns an empty trajectory
(len 0) with maneuver "parking_failed"; with `fallback=True` (default) a failed MCTS is
followed by A* with the route heuristic.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np

from autonomy_vehicle.vehicle_model import VehicleParams
from autonomy_stack.vector_space import Trajectory
from autonomy_planning.parking.astar import SearchResult, astar
from autonomy_planning.parking.lot import Lot, LotGrid, Pose
from autonomy_planning.parking.primitives import SearchConfig, SearchSpace, path_samples
from autonomy_planning.parking.trajectory import path_to_trajectory

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "models", "parking_policy.pt")
METHODS = ("mcts", "astar_route", "astar_euclid")


@dataclass
class ParkingPlan:
    success: bool
    trajectory: Trajectory
    result: SearchResult
    samples: Tuple[np.ndarray, ...] = field(default_factory=tuple)  # x, y, yaw, curv, dir
    method: str = ""


class ParkingPlanner:
    def __init__(self, method: str = "mcts", model_path: Optional[str] = None,
                 cfg: SearchConfig = SearchConfig(), vp: VehicleParams = VehicleParams(),
                 max_nodes: int = 3000, astar_max_nodes: int = 400_000,
                 max_seconds: float = 20.0, fallback: bool = True,
                 v_forward: float = 1.5, v_reverse: float = 1.0, accel: float = 0.8,
                 net=None):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}")
        self.method, self.cfg, self.vp = method, cfg, vp
        self.max_nodes, self.astar_max_nodes = max_nodes, astar_max_nodes
        self.max_seconds, self.fallback = max_seconds, fallback
        self.v_forward, self.v_reverse, self.accel = v_forward, v_reverse, accel
        self._mcts = None
        if method == "mcts":
            # lazy: autonomy_planning.parking.mcts pulls in torch, tqdm (start-up time)
            from autonomy_planning.parking.mcts import MCTS
            # lazy: autonomy_planning.parking.network pulls in torch, tqdm (start-up time)
            from autonomy_planning.parking.network import load_model
            if net is None:
                net = load_model(model_path or DEFAULT_MODEL)
            self._mcts = MCTS(net)

    def plan(self, lot: Lot, start_pose: Pose, goal_pose: Pose, stamp: float = 0.0) -> Trajectory:
        return self.plan_detailed(lot, start_pose, goal_pose, stamp).trajectory

    def plan_detailed(self, lot: Lot, start_pose: Pose, goal_pose: Pose, stamp: float = 0.0,
                      grid: Optional[LotGrid] = None) -> ParkingPlan:
        space = SearchSpace(lot, start_pose, goal_pose, self.cfg, self.vp, grid=grid)
        method = self.method
        if method == "mcts":
            res = self._mcts.search(space, max_nodes=self.max_nodes, max_seconds=self.max_seconds)
            if not res.success and self.fallback:
                method = "astar_route"
        if method.startswith("astar"):
            res = astar(space, method.split("_")[1], max_nodes=self.astar_max_nodes,
                        max_seconds=self.max_seconds)
        if not res.success:
            empty = np.zeros(0)
            traj = Trajectory(empty, empty, empty, empty, empty, empty, empty, stamp=stamp,
                              maneuver="parking_failed")
            return ParkingPlan(False, traj, res, (), method)
        samples = path_samples(space, res.path)
        traj = path_to_trajectory(*samples, v_forward=self.v_forward, v_reverse=self.v_reverse,
                                  accel=self.accel, stamp=stamp, vp=self.vp)
        return ParkingPlan(True, traj, res, samples, method)
