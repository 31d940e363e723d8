"""Seeded parking problems drawn from the simulator's `parking_lot` world (tools layer: the
planning core's parking package does not import the simulator).

A problem (`autonomy_planning.parking.lot.ParkingProblem`: lot, start pose, goal pose) comes
from `make_problem(seed)`: the world is `autonomy_simulator.worlds.parking_lot(seed,
<random parameters>)`, the start is the lot's entrance pose or `lot.sample_start` (another
bay or a random collision-free pose in the aisle), the goal is the target bay, nose-in or
reverse-in. Training seeds and held-out seeds are disjoint ranges (`lot.train_seeds`,
`lot.heldout_seeds`). Used by the parking training, the tests and bench/parking.py.
"""
from __future__ import annotations

import numpy as np

from autonomy_planning.parking.lot import (ParkingProblem, LotGrid, bay_goal_pose, lot_from_world,
                                           sample_start)
from autonomy_planning.parking.primitives import CSpace, SearchConfig
from autonomy_simulator.worlds import parking_lot
from autonomy_vehicle.vehicle_model import VehicleParams


def make_problem(seed: int, vp: VehicleParams = VehicleParams(),
                 start_kind: str = "mixed") -> ParkingProblem:
    """One seeded parking problem drawn from the simulator's `parking_lot` world. Worlds
    whose goal pose is not collision-free under the planner's (conservative) footprint
    check are redrawn from the same seed's generator.

    start_kind: "entrance" = the world's own scenario (the ego enters on the entrance road
    and parks in the target bay); "mixed" = `sample_start` (entrance, another bay or a
    random aisle pose; used for training)."""
    rng = np.random.default_rng(seed)
    cfg = SearchConfig()
    for _attempt in range(20):
        world = parking_lot(int(rng.integers(2 ** 31)),
                            bays_per_row=int(rng.integers(7, 14)),
                            bay_width=float(rng.uniform(2.7, 3.0)),
                            bay_depth=float(rng.uniform(5.3, 5.8)),
                            aisle=float(rng.uniform(6.5, 7.5)),
                            occupancy=float(rng.uniform(0.5, 0.95)),
                            n_cones=int(rng.integers(0, 5)))
        lot = lot_from_world(world)
        reverse_in = bool(rng.random() < 0.5)
        goal = bay_goal_pose(lot.bays[lot.target_bay], lot.bay_headings[lot.target_bay],
                             reverse_in, vp)
        grid = LotGrid(lot, res=cfg.grid_res)
        cspace = CSpace(grid, 0.0, cfg, vp)
        if cspace.free(*goal):
            break
    if start_kind == "entrance" and lot.entrance_pose is not None:
        start = tuple(float(v) for v in lot.entrance_pose)
    elif start_kind in ("mixed", "entrance"):
        start = sample_start(lot, goal, cspace, rng, vp)
    else:
        raise ValueError(f"unknown start_kind {start_kind!r}")
    pb = ParkingProblem(lot=lot, start=start, goal=goal, seed=seed, reverse_in=reverse_in)
    pb.cache = {"grid": grid, "cspace": cspace}
    return pb
