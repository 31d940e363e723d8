"""Driving -> parking hand-over (issue 16, item 8): parking goals, the switch near the goal
and back, re-stamped parking trajectories, and the parking_lot scenario end to end."""
import math

import numpy as np
import pytest

from autonomy_stack.vector_space import EgoState, Trajectory
from autonomy_planning.parking.handover import (DriveParkPlanner, HandoverConfig,
                                                is_parking_goal, restamped)
from autonomy_planning.planner import Planner, PlannerConfig
from autonomy_planning.scene import Goal, Lane, PlanningScene

XS = np.linspace(0.0, 60.0, 61)
AISLE = [Lane(1, np.column_stack([XS, np.zeros_like(XS)]), 3.5, 5.0)]


class FakeParking:
    """Stands in for ParkingMode: records calls, plans a creep towards the goal."""

    def __init__(self):
        self.traj, self.goal_key, self.calls = None, None, 0

    def plan(self, scene):
        from autonomy_planning.planner import PlanResult
        self.calls += 1
        t = np.arange(11) * 0.1
        if self.traj is None:
            self.traj = Trajectory(t=t, x=scene.ego.x + 0.5 * t, y=np.full(11, scene.ego.y),
                                   yaw=np.zeros(11), speed=np.full(11, 0.5), accel=np.zeros(11),
                                   curvature=np.zeros(11), stamp=scene.stamp)
        return PlanResult(trajectory=self.traj, futures=[], corridor=None, maneuver="parking",
                          candidates_per_cycle=1, collision_probability=0.0, emergency=False,
                          status="ok", timings_ms={})


def scene(x, goal, speed=0.0, stamp=0.0):
    return PlanningScene(stamp, EgoState(x, 0.0, 0.0, speed, stamp=stamp), [], AISLE, [], goal)


def test_parking_goals_are_off_or_across_the_lanes():
    cfg = HandoverConfig()
    assert is_parking_goal(scene(0.0, Goal(30.0, 5.0, math.pi / 2)), cfg)      # in a bay
    assert is_parking_goal(scene(0.0, Goal(30.0, 0.5, math.pi / 2)), cfg)      # across
    assert not is_parking_goal(scene(0.0, Goal(30.0, 0.5, 0.0)), cfg)          # on the lane
    assert not is_parking_goal(scene(0.0, None), cfg)


def test_switches_near_a_parking_goal_and_back_with_hysteresis():
    made = []
    dp = DriveParkPlanner(Planner(PlannerConfig()), lambda: made.append(FakeParking()) or made[-1])
    bay = Goal(40.0, 5.0, math.pi / 2)
    assert dp.next_mode(scene(0.0, bay)) == "driving" and not made    # 40 m: drive, lazy
    r = dp.plan(scene(25.0, bay, speed=2.0, stamp=1.0))
    assert dp.mode == "parking" and r.maneuver == "parking_settle"    # stop first ...
    assert r.trajectory.speed[-1] == 0.0 and not made[0].calls
    r = dp.plan(scene(25.5, bay, speed=0.0, stamp=2.0))
    assert r.maneuver == "parking" and made[0].calls == 1            # ... then park
    # between the two distances it stays parking; beyond release it drives again
    assert dp.next_mode(scene(40.0 - 30.0, bay)) == "parking"
    dp.plan(scene(0.0, bay, stamp=3.0))
    assert dp.mode == "driving" and dp.switches == 2
    # a goal back on the lane: driving even close to it
    assert dp.next_mode(scene(35.0, Goal(40.0, 0.2, 0.0))) == "driving"
    with pytest.raises(ValueError, match="release_distance"):
        DriveParkPlanner(None, None, HandoverConfig(handover_distance=30.0, release_distance=20.0))


def test_restamped_keeps_the_rest_of_the_trajectory_with_the_new_stamp():
    t = np.arange(21) * 0.1
    tr = Trajectory(t=t, x=2.0 * t, y=np.zeros(21), yaw=np.zeros(21), speed=np.full(21, 2.0),
                    accel=np.zeros(21), curvature=np.zeros(21), stamp=10.0)
    r = restamped(tr, 10.55)
    assert r.stamp == 10.55 and r.t[0] == 0.0
    assert r.x[0] == pytest.approx(1.1) and r.x[-1] == pytest.approx(4.0)
    assert r.t[-1] == pytest.approx(2.0 - 0.55)
    assert restamped(tr, 10.0) is tr


def test_parking_lot_route_is_driven_into_the_bay():
    from autonomy_simulator import scenarios
    from autonomy_planning.parking.mode import ParkingMode
    from autonomy_tools.planning_closed_loop import run_scenario
    sc = scenarios.make("parking_lot", seed=0)
    dp = DriveParkPlanner(Planner(PlannerConfig()), ParkingMode(method="astar_route"))
    modes = []
    res = run_scenario(sc, 40.0, planner=dp, on_cycle=lambda sim, pr: modes.append(dp.mode),
                       stop_when=lambda sim, r: r.goal_reached and sim.ego.speed < 0.5)
    assert modes[0] == "driving" and "parking" in modes
    assert res.goal_reached and not res.collisions
    gx, gy, gyaw = sc.goal
    assert math.hypot(res.x[-1] - gx, res.y[-1] - gy) < 1.0
