"""PUCT MCTS: finds feasible paths with an untrained network (more nodes) and with the
trained network; the planner API returns a trackable trajectory."""
import math
import os

import numpy as np
import pytest

from autonomy_planning.parking.lot import HELDOUT_SEED_BASE
from autonomy_planning.parking.mcts import MCTS
from autonomy_planning.parking.network import load_model, random_model
from autonomy_planning.parking.planner import DEFAULT_MODEL, ParkingPlanner
from autonomy_tools.parking_problems import make_problem
from autonomy_planning.parking.primitives import SearchSpace, path_samples
from parking_helpers import apply_primitives, check_path, small_lot

START = (3.0, 4.5, 0.0)
SEQ = [(1, 2), (1, 2), (1, 0), (1, -2), (1, -2), (1, 0)]


def _goal_reached(space, samples):
    x, y, yaw = samples[0][-1], samples[1][-1], samples[2][-1]
    return bool(space.in_goal(np.array([x]), np.array([y]), np.array([yaw]))[0])


@pytest.mark.timeout(120)
def test_random_network_finds_path_on_hand_made_lot():
    lot = small_lot("open")
    goal = apply_primitives(START, SEQ)
    space = SearchSpace(lot, START, goal)
    rnd = MCTS(random_model(0)).search(space, max_nodes=4000)
    assert rnd.success, "untrained MCTS must still find a path"
    s = path_samples(space, rnd.path)
    check_path(lot, s)
    assert _goal_reached(space, s)
    assert rnd.expanded >= len(rnd.path) - 1      # one expansion per step at least


@pytest.mark.timeout(120)
def test_random_network_needs_more_nodes_than_trained_on_heldout_lot():
    pb = make_problem(HELDOUT_SEED_BASE + 6)
    space = SearchSpace(pb.lot, pb.start, pb.goal, grid=pb.cache["grid"], cspace=pb.cache["cspace"])
    rnd = MCTS(random_model(0)).search(space, max_nodes=3000)
    trained = MCTS(load_model(DEFAULT_MODEL)).search(space, max_nodes=3000)
    assert rnd.success and trained.success
    check_path(pb.lot, path_samples(space, rnd.path), every=4)
    assert trained.expanded * 3 < rnd.expanded


@pytest.mark.timeout(120)
def test_trained_mcts_on_heldout_lot_feasible():
    pb = make_problem(HELDOUT_SEED_BASE + 6)
    space = SearchSpace(pb.lot, pb.start, pb.goal, grid=pb.cache["grid"], cspace=pb.cache["cspace"])
    r = MCTS(load_model(DEFAULT_MODEL)).search(space, max_nodes=2000)
    assert r.success
    s = path_samples(space, r.path)
    check_path(pb.lot, s, every=3)
    assert _goal_reached(space, s)
    # the reported cost is the sum of the explicit edge costs along the path
    assert r.cost > space.cfg.min_cost_per_m * math.hypot(pb.goal[0] - pb.start[0],
                                                          pb.goal[1] - pb.start[1]) - 1.0


def test_model_is_small():
    assert os.path.getsize(DEFAULT_MODEL) < 2_000_000


@pytest.mark.timeout(60)
def test_planner_api_returns_trajectory_and_fails_cleanly():
    lot = small_lot("open")
    goal = apply_primitives(START, SEQ)
    for method in ("mcts", "astar_route"):
        traj = ParkingPlanner(method=method).plan(lot, START, goal)
        assert len(traj) > 10 and traj.maneuver == "parking"
        assert math.hypot(traj.x[-1] - goal[0], traj.y[-1] - goal[1]) < 0.6
        assert traj.speed[0] == 0.0 and traj.speed[-1] == 0.0
    # goal inside a parked car: no path, empty trajectory, no exception
    bad = ParkingPlanner(method="astar_route", astar_max_nodes=3000).plan(lot, START, (15.0, 2.0, 0.0))
    assert len(bad) == 0 and bad.maneuver == "parking_failed"
