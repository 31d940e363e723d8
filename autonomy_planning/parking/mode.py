"""The planning node's `parking` mode (hook: `make_mode(node_params)` -> object with
`plan(scene) -> planner.PlanResult`). No ROS here.

Each cycle the scene (ego, static objects, curbs / road edges, goal pose) is turned into a
`Lot` around ego and goal; the parking search runs when there is no current plan, the goal
moved, an obstacle appeared on the planned path, or the ego left the path; otherwise the
current trajectory (with its original stamp, so the controller keeps its time base) is
returned. Without a goal, or when no path is found, the result is a stop trajectory with
status "no_goal" / "no_path".
"""
from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np

from autonomy_planning.parking.lot import Box, Lot, LotGrid, footprint_clearance
from autonomy_planning.parking.planner import ParkingPlanner


class ParkingMode:
    def __init__(self, params: Optional[dict] = None, method: str = "mcts",
                 margin: float = 15.0, replan_deviation: float = 1.0):
        p = dict(params or {})
        self.method = str(p.get("parking_method", method))
        self.planner = ParkingPlanner(method=self.method)
        self.margin = float(p.get("parking_margin", margin))
        self.replan_deviation = replan_deviation
        # None: the planner's default (PlannerConfig.safe_stop_decel)
        self.stop_decel = float(p["safe_stop_decel"]) if "safe_stop_decel" in p else None
        self.traj = None
        self.goal_key = None
        self.lot = None
        self.nodes = 0

    def lot_from_scene(self, scene) -> Lot:
        ex, ey = scene.ego.x, scene.ego.y
        gx, gy = scene.goal.x, scene.goal.y
        m = self.margin
        bounds = (min(ex, gx) - m, min(ey, gy) - m, max(ex, gx) + m, max(ey, gy) + m)
        boxes = [Box(o.x, o.y, o.yaw, o.length, o.width) for o in scene.agents
                 if abs(o.speed) < 0.5]
        curbs = [np.asarray(b, float)[:, :2] for b in scene.boundaries if len(b) >= 2]
        return Lot(bounds=bounds, curbs=curbs, boxes=boxes)

    def _needs_replan(self, scene, lot, goal_key) -> bool:
        if self.traj is None or len(self.traj) == 0 or goal_key != self.goal_key:
            return True
        d = np.hypot(self.traj.x - scene.ego.x, self.traj.y - scene.ego.y)
        if float(d.min()) > self.replan_deviation:
            return True
        # a new obstacle on the rest of the path
        i0 = int(np.argmin(d))
        for i in range(i0, len(self.traj), 10):
            if footprint_clearance(lot, (self.traj.x[i], self.traj.y[i], self.traj.yaw[i]),
                                   self.planner.vp) <= 0.0:
                return True
        return False

    def plan(self, scene):
        # lazy: autonomy_planning.planner pulls in osqp (start-up time)
        from autonomy_planning.planner import PlannerConfig, PlanResult, safe_stop_trajectory
        t0 = time.perf_counter()
        decel = PlannerConfig.safe_stop_decel if self.stop_decel is None else self.stop_decel
        status = "ok"
        if scene.goal is None:
            self.traj, self.goal_key = None, None
            traj = safe_stop_trajectory(scene.ego, decel=decel, stamp=scene.stamp,
                                        frame_id=scene.frame_id)
            status = "no_goal"
        else:
            goal = (float(scene.goal.x), float(scene.goal.y), float(scene.goal.yaw))
            goal_key = tuple(round(v, 2) for v in goal)
            lot = self.lot_from_scene(scene)
            if self._needs_replan(scene, lot, goal_key):
                start = (scene.ego.x, scene.ego.y, scene.ego.yaw)
                plan = self.planner.plan_detailed(lot, start, goal, stamp=scene.stamp,
                                                  grid=LotGrid(lot, self.planner.cfg.grid_res))
                self.nodes = plan.result.expanded
                if plan.success:
                    plan.trajectory.frame_id = scene.frame_id
                    self.traj, self.goal_key = plan.trajectory, goal_key
                else:
                    self.traj, self.goal_key = None, None
            if self.traj is None:
                traj = safe_stop_trajectory(scene.ego, decel=decel, stamp=scene.stamp,
                                            frame_id=scene.frame_id)
                status = "no_path"
            else:
                traj = self.traj
        ms = (time.perf_counter() - t0) * 1e3
        return PlanResult(trajectory=traj, futures=[], corridor=None,
                          maneuver="parking" if status == "ok" else "parking_stop",
                          candidates_per_cycle=int(self.nodes), collision_probability=0.0,
                          emergency=False, status=status, timings_ms={"parking": ms})


def make_mode(node_params: Optional[dict] = None) -> ParkingMode:
    return ParkingMode(node_params)
