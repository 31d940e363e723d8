"""Junction / merge worlds and scenarios (issue 16): geometry, routes, seeded builds."""
import math

import numpy as np
import pytest

from autonomy_simulator import geometry as geo
from autonomy_simulator import junction_worlds, scenarios
from autonomy_simulator.junction_scenarios import CATALOGUE, TIME_BUDGET_S


def test_on_ramp_acceleration_lane_ends_beside_the_right_main_lane():
    w = junction_worlds.on_ramp(0)
    p = w.params
    acc, right = w.lanes[p["accel_lane"]], w.lanes[p["main_lanes"][-1]]
    assert acc.left == right.id and acc.successors == []          # it ends: must merge
    assert w.lanes[p["ramp_lane"]].successors == [acc.id]
    assert abs(acc.centerline[-1, 0] - p["merge_end"]) < 1.0
    # right of the main lane (right-hand traffic, y left-positive), one lane width away
    assert np.allclose(acc.centerline[:, 1] - right.centerline[0, 1], -p["lane_width"])
    poly = w.drivable_polygons[0]
    inside = geo.point_in_polygon(np.vstack([acc.centerline, w.lanes[p["ramp_lane"]].centerline[5:]]),
                                  poly)
    assert inside.all()
    assert not geo.point_in_polygon(np.array([[p["merge_end"] + 40.0, acc.centerline[0, 1]]]),
                                    poly)[0]


def test_roundabout_ring_runs_counter_clockwise_and_routes_exit_where_asked():
    w = junction_worlds.roundabout(0)
    ring = w.params["ring"]
    for lid in ring:                      # counter-clockwise: angle grows along each segment
        c = w.lanes[lid].centerline
        th = np.unwrap(np.arctan2(c[:, 1], c[:, 0]))
        assert th[-1] > th[0]
    route = junction_worlds.roundabout_route(w, "south", "west")
    assert route[0] == w.params["incoming"]["south"][0]
    assert route[-1] == w.params["outgoing"]["west"][0]
    for a, b in zip(route[:-1], route[1:]):
        assert b in w.lanes[a].successors
    end = w.lanes[route[-1]].centerline[-1]
    assert end[0] < -60.0 and abs(end[1]) < 5.0
    # three quarters round (a left turn): past the east and north arms to the west exit
    assert sum(1 for l in route if l in ring) == 5
    right_turn = junction_worlds.roundabout_route(w, "south", "east")
    assert sum(1 for l in right_turn if l in ring) == 1


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_junction_scenarios_are_in_the_catalogue_seeded_and_budgeted(name):
    assert name in scenarios.CATALOGUE and TIME_BUDGET_S[name] > 0
    a, b = scenarios.make(name, seed=3), scenarios.make(name, seed=3)
    for _ in range(50):
        a.sim.step()
        b.sim.step()
    oa = sorted((o.id, o.x, o.y) for o in a.sim.objects())
    ob = sorted((o.id, o.x, o.y) for o in b.sim.objects())
    assert oa == ob and len(a.sim.agents) >= 2
    assert math.isfinite(a.goal[0]) and a.route_path.shape[1] == 2


def test_unsignalised_junction_density_sets_the_crossing_traffic():
    few = scenarios.make("unsignalised_junction", seed=1, density=0.2)
    many = scenarios.make("unsignalised_junction", seed=1, density=1.0)
    assert len(many.sim.agents) > len(few.sim.agents)
