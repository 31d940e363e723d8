"""Driving -> parking hand-over (issue 16, item 8; no ROS): one planner object for a route
that ends in a parking bay. It drives with the driving planner (`planner.Planner`) and
switches on its own to the parking mode (`parking.mode.ParkingMode`: MCTS with the learned
policy / value network, or A*) when the goal is a parking goal and the ego has come within
`handover_distance` of it (the lot entrance / aisle), and back to driving when the goal
changes to one on a lane, disappears, or the ego is farther than `release_distance` from
it (hysteresis: the two distances differ).

A goal is a parking goal when it lies off every lane (farther than half the lane width
plus `off_lane_margin` from the nearest centreline) or across it (heading more than
`max_lane_heading_error` from the nearest lane's). The planning node uses this for
`mode: auto`; `autonomy_tools.planning_closed_loop.run_scenario` takes it as a planner.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from autonomy_stack.params import param
from autonomy_stack.geometry import wrap_angle
from autonomy_stack.vector_space import Trajectory

from autonomy_planning.planner import PlanResult, safe_stop_trajectory


@dataclass
class HandoverConfig:
    handover_distance: float = param(22.0, "m: parking mode within this distance of a "
                                     "parking goal", min=2.0, max=200.0)
    release_distance: float = param(35.0, "m: back to driving farther than this from the "
                                    "goal (> handover_distance)", min=3.0, max=300.0)
    settle_speed: float = 0.3                # m/s: the parking search starts below this ...
    settle_decel: float = 1.5                # ... after a stop at this deceleration
    off_lane_margin: float = 0.5             # m beyond half a lane width: off the lane
    max_lane_heading_error: float = math.radians(45.0)


def is_parking_goal(scene, cfg: HandoverConfig) -> bool:
    """Is the scene's goal off (or across) every lane?"""
    g = scene.goal
    if g is None:
        return False
    best = None
    for ln in scene.lanes:
        c = np.asarray(ln.centerline, float)[:, :2]
        if len(c) < 2:
            continue
        d = np.hypot(c[:, 0] - g.x, c[:, 1] - g.y)
        k = int(np.argmin(d))
        if best is None or d[k] < best[0]:
            k2 = min(k + 1, len(c) - 1)
            k1 = k2 - 1
            heading = math.atan2(c[k2, 1] - c[k1, 1], c[k2, 0] - c[k1, 0])
            best = (float(d[k]), float(ln.width), heading)
    if best is None:
        return True
    dist, width, heading = best
    across = abs(wrap_angle(g.yaw - heading)) > cfg.max_lane_heading_error and \
        abs(wrap_angle(g.yaw - heading - math.pi)) > cfg.max_lane_heading_error
    return dist > 0.5 * width + cfg.off_lane_margin or across


class DriveParkPlanner:
    """`plan(scene) -> PlanResult` from the driving planner or the parking mode; `mode`
    says which planned the last cycle ("driving" | "parking"), `switches` counts changes."""

    def __init__(self, driving, parking, config: Optional[HandoverConfig] = None):
        """parking: a ParkingMode, or a callable making one on the first hand-over (its
        network loads only then)."""
        self.driving = driving
        self._parking, self._make_parking = (None, parking) if callable(parking) and \
            not hasattr(parking, "plan") else (parking, None)
        self.cfg = config or HandoverConfig()
        if self.cfg.release_distance <= self.cfg.handover_distance:
            raise ValueError(f"release_distance ({self.cfg.release_distance} m) must exceed "
                             f"handover_distance ({self.cfg.handover_distance} m)")
        self.mode = "driving"
        self.switches = 0

    @property
    def parking(self):
        if self._parking is None:
            self._parking = self._make_parking()
        return self._parking

    @property
    def body(self):
        return self.driving.body

    @property
    def last_solves(self):
        return getattr(self.driving, "last_solves", []) if self.mode == "driving" else []

    def reset(self):
        self.driving.reset()
        if self._parking is not None:
            self._parking.traj, self._parking.goal_key = None, None
        self.mode = "driving"

    def next_mode(self, scene) -> str:
        """The mode for this cycle (see the module docstring)."""
        g = scene.goal
        if g is None or not is_parking_goal(scene, self.cfg):
            return "driving"
        dist = math.hypot(g.x - scene.ego.x, g.y - scene.ego.y)
        if self.mode == "parking":
            return "parking" if dist <= self.cfg.release_distance else "driving"
        return "parking" if dist <= self.cfg.handover_distance else "driving"

    def plan(self, scene):
        mode = self.next_mode(scene)
        if mode != self.mode:
            self.switches += 1
            if mode == "driving":
                self.driving.reset()          # no warm start from a parking trajectory
            else:
                self.parking.traj, self.parking.goal_key = None, None
            self.mode = mode
        if mode == "driving":
            return self.driving.plan(scene)
        if scene.ego.speed > self.cfg.settle_speed and self.parking.traj is None:
            return self._settle(scene)
        res = self.parking.plan(scene)
        res.trajectory = restamped(res.trajectory, scene.stamp)
        return res

    def _settle(self, scene):
        """A comfortable stop where the parking mode took over (its searches start from
        standstill)."""
        tr = safe_stop_trajectory(scene.ego, decel=self.cfg.settle_decel, stamp=scene.stamp,
                                  frame_id=scene.frame_id, maneuver="parking_settle")
        return PlanResult(trajectory=tr, futures=[], corridor=None, maneuver="parking_settle",
                          candidates_per_cycle=0, collision_probability=0.0, emergency=False,
                          status="ok", timings_ms={})


def restamped(tr, stamp: float):
    """The part of trajectory `tr` from `stamp` on, re-timed from 0 with that stamp (a
    parking plan is kept over many cycles; the controller takes a trajectory's stamp as
    its age, so an unchanged one went stale after 0.3 s and the car stopped)."""
    elapsed = float(stamp) - float(tr.stamp)
    if elapsed <= 1e-9 or len(tr.t) < 2:
        return tr
    keep = tr.t >= elapsed
    if not np.any(keep):
        keep[-1] = True
    t = np.concatenate([[elapsed], tr.t[keep]])
    cols = {k: np.interp(t, tr.t, getattr(tr, k)) for k in ("x", "y", "speed", "accel",
                                                             "curvature")}
    yaw = np.interp(t, tr.t, np.unwrap(tr.yaw))
    t = t - elapsed
    u = np.concatenate([[True], np.diff(t) > 1e-9])
    return Trajectory(t=t[u], x=cols["x"][u], y=cols["y"][u], yaw=yaw[u],
                      speed=cols["speed"][u], accel=cols["accel"][u],
                      curvature=cols["curvature"][u], stamp=float(stamp),
                      frame_id=tr.frame_id, maneuver=tr.maneuver)
