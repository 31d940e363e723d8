"""The navigation route (PlanningScene.nav_route, /planning/route): perceived lanes carry no
ids or successors, so without it the reference went straight on where they ended, past a
turn (vision closed loop: unprotected left turn, 'goal_passed' 40-50 m off the route).
Asymmetric fixtures: the route turns left at x = 40 while the perceived lane goes straight."""
import math

import numpy as np
import pytest

from autonomy_planning.planner import Planner
from autonomy_planning.scene import Goal, Lane, PlanningScene, build_road_frame, nav_reference
from autonomy_stack.vector_space import EgoState


def left_turn_route(r=12.0):
    """Straight along y = -1.75 to x = 40, a quarter circle left, then north."""
    a = np.arange(0.0, 40.0, 1.0)
    straight = np.column_stack([a, np.full_like(a, -1.75)])
    th = np.linspace(-math.pi / 2, 0.0, 20)[1:]
    arc = np.column_stack([40.0 + r * np.cos(th), -1.75 + r + r * np.sin(th)])
    n = np.arange(1.0, 60.0, 1.0)
    north = np.column_stack([np.full_like(n, 40.0 + r), -1.75 + r + n])
    return np.vstack([straight, arc, north])


EGO = EgoState(5.0, -1.6, 0.0, 6.0)


def test_reference_follows_the_lane_then_turns_with_the_route():
    lane = np.column_stack([np.arange(0.0, 70.0, 1.0), np.full(70, -1.6)])  # perceived, straight on
    ref = nav_reference(left_turn_route(), EGO, lane)
    near = ref[(ref[:, 0] > 5.0) & (ref[:, 0] < 30.0)]
    assert np.allclose(near[:, 1], -1.6, atol=0.05)         # the perceived lane where it agrees
    assert ref[-1, 1] > 40.0 and abs(ref[-1, 0] - 52.0) < 0.5   # then north: turned left
    steps = np.hypot(*np.diff(ref, axis=0).T)
    assert steps.max() < 1.3                                 # no jump at the join


def test_without_lanes_the_route_is_the_reference():
    ref = nav_reference(left_turn_route(), EGO)
    assert ref[0, 0] < EGO.x and ref[-1, 1] > 40.0


def test_planner_turns_left_at_the_end_of_the_perceived_lane():
    lane = Lane(1, np.column_stack([np.arange(0.0, 45.0, 1.0), np.full(45, -1.75)]))
    goal = Goal(52.0, 40.0, math.pi / 2)
    ego = EgoState(30.0, -1.75, 0.0, 6.0)
    without = build_road_frame(PlanningScene(0.0, ego, [], [lane], [], goal=goal))
    with_nav = build_road_frame(PlanningScene(0.0, ego, [], [lane], [], goal=goal,
                                              nav_route=left_turn_route()))
    s = np.array([30.0, 50.0])
    assert without.ref.to_xy(s + without.ego_s, np.zeros(2))[1][-1] == pytest.approx(-1.75, abs=0.1)
    assert with_nav.ref.to_xy(s + with_nav.ego_s, np.zeros(2))[1][-1] > 20.0
    assert math.isfinite(with_nav.goal_station) and not math.isfinite(without.goal_station)
    res = Planner().plan(PlanningScene(0.0, ego, [], [lane], [], goal=goal,
                                       nav_route=left_turn_route()))
    assert res.trajectory.y[-1] > res.trajectory.y[0] + 1.0    # heading into the left turn


def test_lane_offset_from_the_route_fades_out_without_a_kink():
    """A road-level route 1.5 m to the RIGHT of the perceived lane (y = 0 vs 1.5): after the
    lane's end the reference keeps the lane's offset and fades to the route over 40 m; a
    direct join bent it 1.5 m within 6 m (curvature ~0.1 1/m: 4.5 m/s at 2 m/s^2)."""
    from autonomy_planning.path import ReferencePath
    route = np.column_stack([np.arange(0.0, 200.0, 1.0), np.zeros(200)])
    lane = np.column_stack([np.arange(0.0, 40.0, 1.0), np.full(40, 1.5)])
    ref = nav_reference(route, EgoState(5.0, 1.5, 0.0, 20.0), lane)
    assert abs(np.interp(41.0, ref[:, 0], ref[:, 1]) - 1.5) < 0.1      # offset kept at the join
    assert abs(np.interp(120.0, ref[:, 0], ref[:, 1])) < 0.05          # back on the route
    kappa = ReferencePath(ref, extend_before=0.0, extend_after=0.0).curvature
    assert np.abs(kappa).max() < 0.01


def test_a_row_of_parked_cars_past_the_end_of_the_perceived_lane_is_passed():
    """Perceived road (two edges 7 m apart, seen to x = 30) with parked cars on the RIGHT
    at x = 22, 28 and 34: the perceived lane ends at 30 m, but only because perception
    sees no further (Lane.open_end), so its end is no deadline to be back in it; the ego
    nudges LEFT and drives on. With the end taken as a deadline (the old behaviour) the
    nudge had to end before the row did, and the ego stopped behind it."""
    import dataclasses

    from autonomy_planning.scene import road_from_lines
    from autonomy_stack.vector_space import LineType, ObjectClass, ObjectState, RoadLine
    x = np.arange(0.0, 31.0, 1.0)
    lines = [RoadLine(1, LineType.ROAD_EDGE, np.column_stack([x, np.full_like(x, 3.5)])),
             RoadLine(2, LineType.ROAD_EDGE, np.column_stack([x, np.full_like(x, -3.5)]))]
    ego = EgoState(5.0, -1.75, 0.0, 5.0)
    lanes, bounds = road_from_lines(lines, ego, 8.3)
    assert all(l.open_end for l in lanes)
    parked = [ObjectState(i, ObjectClass.CAR, px, -2.4, 0.0, 4.5, 1.8, 1.5, is_static=True)
              for i, px in enumerate((22.0, 28.0, 34.0))]
    route = np.column_stack([np.arange(0.0, 200.0, 1.0), np.full(200, -1.75)])
    scene = PlanningScene(0.0, ego, parked, lanes, bounds, goal=Goal(150.0, -1.75),
                          speed_limit=8.3, nav_route=route)
    res = Planner().plan(scene)
    tr = res.trajectory
    assert tr.speed[-1] > 2.0 and tr.x[-1] > 40.0, res.maneuver
    beside = (tr.x > 22.0) & (tr.x < 36.0)
    assert np.all(tr.y[beside] > -1.0)                          # passed on the left
    closed = [dataclasses.replace(l, open_end=False) for l in lanes]
    stuck = Planner().plan(dataclasses.replace(scene, lanes=closed)).trajectory
    assert stuck.x[-1] < 25.0
