"""Parking search space and A*: optimality against exhaustive Dijkstra on hand-made lots,
admissible heuristics, feasible collision-free paths, seeded problems."""
import math

import numpy as np
import pytest

from autonomy_planning.parking.astar import astar, make_heuristic
from autonomy_planning.parking.lot import (HELDOUT_SEED_BASE, footprint_clearance,
                                           heldout_seeds, train_seeds)
from autonomy_planning.parking.primitives import SearchConfig, SearchSpace, path_samples
from autonomy_tools.parking_problems import make_problem
from parking_helpers import VP, apply_primitives, check_path, small_lot

EXACT = SearchConfig(steer_bins=(-2, 0, 2), xy_res=None)

CASES = [
    # lot, start, primitive sequence that reaches the goal (an upper bound on the optimum)
    ("open", (3.0, 4.5, 0.0), [(1, 2), (1, 2), (1, 0), (1, -2), (1, -2)]),
    ("open", (12.0, 6.0, 0.0), [(-1, 2), (-1, 0), (-1, -2)]),
    ("bay", (11.6, 7.0, math.pi / 2 - math.radians(20)), [(-1, -2), (-1, 0)]),
]


def sequence_cost(space, seq):
    """Cost of driving the primitive sequence from the start (asserting it is valid)."""
    x, y, h, d = space.start[0], space.start[1], space.h0, 0
    total = 0.0
    for dd, k in seq:
        p = [i for i, pp in enumerate(space.prims) if pp[0] == dd and pp[1] == k][0]
        valid, goal_k, ex, ey, eh, cost = space.expand(x, y, h, d)
        assert valid[p]
        total += float(cost[p])
        x, y, h, d = float(ex[p]), float(ey[p]), int(eh[p]), dd
    return total


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_astar_matches_exhaustive_dijkstra(case):
    kind, start, seq = CASES[case]
    lot = small_lot(kind)
    goal = apply_primitives(start, seq)
    space = SearchSpace(lot, start, goal, EXACT)
    assert space.pose_free(*start) and space.pose_free(*goal)
    dij = astar(space, "zero", max_nodes=60_000)
    assert dij.success and not dij.capped
    for h in ("euclid", "route"):
        r = astar(space, h, max_nodes=60_000)
        assert r.success
        assert r.cost == pytest.approx(dij.cost, abs=1e-9), h
        assert r.expanded <= dij.expanded
    # the known sequence is a feasible solution: the optimum cannot cost more
    assert dij.cost <= sequence_cost(space, seq) + 1e-9
    # the pruned (hybrid-A*) search explores a subgraph: never cheaper than the optimum
    pruned = astar(SearchSpace(lot, start, goal, SearchConfig(steer_bins=(-2, 0, 2))), "euclid")
    assert pruned.success and pruned.cost >= dij.cost - 1e-9
    check_path(lot, path_samples(space, r.path))


def test_heuristics_admissible_and_route_dominates():
    lot = small_lot("bay")
    start = CASES[2][1]
    goal = apply_primitives(start, CASES[2][2])
    space = SearchSpace(lot, start, goal, EXACT)
    he, hr = make_heuristic(space, "euclid"), make_heuristic(space, "route")
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(1, 19, 500), rng.uniform(4, 11, 500)
    assert np.all(hr(xs, ys) >= he(xs, ys) - 1e-12)
    opt = astar(space, "zero").cost
    assert float(hr(np.array([start[0]]), np.array([start[1]]))[0]) <= opt
    assert float(he(np.array([start[0]]), np.array([start[1]]))[0]) <= opt


def test_primitives_kinematically_feasible():
    space = SearchSpace(small_lot("open"), (3.0, 6.0, 0.3), (15.0, 6.0, 0.0))
    r_min = VP.wheelbase / math.tan(VP.max_steer)
    assert np.all(np.abs(space.prim_kappa) <= 1.0 / r_min + 1e-12)
    # arbitrary start yaw: headings stay on phi0 + k * dtheta
    assert space.phi0 == pytest.approx(0.3 - math.radians(20.0))
    for p in range(space.n_prims):
        X, Y, Yaw, C, D = space.primitive_samples(3.0, 6.0, space.h0, p)
        end_yaw = space.yaw_of((space.h0 + space.prim_dh[p]) % space.cfg.n_headings)
        assert abs(math.remainder(Yaw[-1] - end_yaw, 2 * math.pi)) < 1e-9
        assert abs(X[-1] - (3.0 + space.tab_x[space.h0, p, -1])) < 1e-9


def test_collision_check_is_conservative():
    """Every pose the C-space calls free is free under the exact footprint check."""
    lot = small_lot("bay")
    space = SearchSpace(lot, (6.0, 8.0, 0.0), (11.2, 3.0, math.pi / 2))
    rng = np.random.default_rng(1)
    n_free = 0
    for _ in range(300):
        pose = (rng.uniform(1, 19), rng.uniform(1, 11), rng.uniform(-math.pi, math.pi))
        if space.pose_free(*pose):
            n_free += 1
            assert footprint_clearance(lot, pose, VP) > 0.0
    assert n_free > 30


def test_seeds_disjoint_and_problems_deterministic():
    tr, ho = set(train_seeds(1000)), set(heldout_seeds(1000))
    assert not tr & ho and max(tr) < HELDOUT_SEED_BASE <= min(ho)
    with pytest.raises(ValueError):
        train_seeds(HELDOUT_SEED_BASE + 1)
    a, b = make_problem(HELDOUT_SEED_BASE + 3), make_problem(HELDOUT_SEED_BASE + 3)
    assert a.start == b.start and a.goal == b.goal
    assert len(a.lot.boxes) == len(b.lot.boxes)
    c = make_problem(HELDOUT_SEED_BASE + 4)
    assert (c.start, c.goal) != (a.start, a.goal)


@pytest.mark.timeout(120)
def test_generated_problem_astar_path_feasible_and_reaches_goal():
    pb = make_problem(HELDOUT_SEED_BASE + 6)
    space = SearchSpace(pb.lot, pb.start, pb.goal, grid=pb.cache["grid"], cspace=pb.cache["cspace"])
    r = astar(space, "route", max_nodes=200_000)
    assert r.success
    samples = path_samples(space, r.path)
    check_path(pb.lot, samples, every=3)
    x, y, yaw = samples[0][-1], samples[1][-1], samples[2][-1]
    assert bool(space.in_goal(np.array([x]), np.array([y]), np.array([yaw]))[0])
