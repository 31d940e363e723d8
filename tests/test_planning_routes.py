"""Routes (issue 16): a gap between consecutive route lanes is bridged (or a ValueError
names it), a lane change in the route still starts the reference at the target lane, and
after the route's end the reference follows the successor lanes (here a left turn)."""
import math

import numpy as np
import pytest

from autonomy_planning.planner import Planner
from autonomy_planning.scene import Lane, PlanningScene, build_road_frame
from autonomy_stack.vector_space import EgoState


def straight(x0, x1, y=0.0, n=40):
    x = np.linspace(x0, x1, n)
    return np.column_stack([x, np.full_like(x, y)])


def left_turn(x0=100.0, r=15.0, n=30):
    """Quarter circle turning left from (x0, 0) heading +x to (x0 + r, r) heading +y."""
    a = np.linspace(-math.pi / 2, 0.0, n)
    return np.column_stack([x0 + r * np.cos(a), r + r * np.sin(a)])


def scene(lanes, route, ego=None):
    return PlanningScene(0.0, ego or EgoState(5.0, 0.0, 0.0, 8.0), [], lanes, [],
                         route_lane_ids=route)


def test_gap_between_route_lanes_is_bridged():
    lanes = [Lane(1, straight(0, 50)), Lane(2, straight(58, 150))]    # 8 m gap, no link
    frame = build_road_frame(scene(lanes, [1, 2]))
    assert frame.ref_key[:2] == (1, 2)          # the route before the gap is kept
    s = np.arange(0.0, 140.0, 1.0)
    x, y, _ = frame.ref.to_xy(s, np.zeros_like(s))
    assert np.max(np.abs(y)) < 1e-6 and x[-1] > 135.0
    res = Planner().plan(scene(lanes, [1, 2]))
    assert not res.emergency and res.trajectory.speed[-1] > 5.0


def test_unconnectable_gap_is_an_error_naming_it():
    far = Lane(2, straight(120, 200, y=30.0))
    with pytest.raises(ValueError, match=r"lane 2 does not follow lane 1.*[0-9.]+ m"):
        build_road_frame(scene([Lane(1, straight(0, 50)), far], [1, 2]))


def test_lane_change_in_route_starts_at_the_target_lane():
    lanes = [Lane(1, straight(0, 150)), Lane(2, straight(0, 150, y=3.5))]
    frame = build_road_frame(scene(lanes, [1, 2]))
    assert frame.ref_key[0] == 2 and frame.ego_d == pytest.approx(-3.5, abs=0.05)


def test_successor_lanes_are_followed_after_the_route_end():
    """The route names only lane 1; its successor turns left: the reference turns with
    it instead of going straight on past x = 100."""
    turn = Lane(2, left_turn(), successors=[3])
    north = Lane(3, np.column_stack([np.full(20, 115.0), np.linspace(15.0, 120.0, 20)]))
    lanes = [Lane(1, straight(0, 100), successors=[2]), turn, north]
    frame = build_road_frame(scene(lanes, [1]))
    assert frame.ref_key[:3] == (1, 2, 3)
    x, y, _ = frame.ref.to_xy(np.array([150.0]), np.zeros(1))
    assert x[0] == pytest.approx(115.0, abs=0.3) and y[0] > 20.0


def test_lane_change_at_the_end_of_an_acceleration_lane_is_due_by_its_end():
    """Route: acceleration lane 1 (y = -3.5, ends at x = 120), then the main lane 2 beside
    it: the reference is the main lane and the change is due by the end of lane 1, not by
    the end of the main lane."""
    accel = Lane(1, straight(0, 120, y=-3.5))
    main = Lane(2, straight(-20, 400))
    frame = build_road_frame(scene([accel, main], [1, 2], ego=EgoState(5.0, -3.5, 0.0, 15.0)))
    assert frame.ref_key[0] == 2
    # stations start at the reference's first point (the main lane's, x = -20): x = 120
    assert frame.route_deadline == pytest.approx(140.0, abs=0.5)


def test_lane_change_later_in_the_route_waits_for_its_lane():
    """An on-ramp: ramp (1) -> acceleration lane (2) -> main road (3, beside lane 2 and
    to its left). On the ramp the reference is the ramp and the acceleration lane, not the
    main road 7 m to the left (the ego cut across the verge towards it); on the
    acceleration lane it is the main road, with the change due by the lane's end."""
    ramp = Lane(1, np.column_stack([np.linspace(0, 60, 30), np.linspace(-20, -7, 30)]),
                successors=[2])
    accel = Lane(2, straight(60, 160, y=-7.0))
    main = Lane(3, straight(0, 300, y=-3.5))
    lanes = [ramp, accel, main]
    on_ramp = EgoState(10.0, -17.83, math.atan2(13, 60), 12.0)
    frame = build_road_frame(scene(lanes, [1, 2, 3], ego=on_ramp))
    assert frame.ref_key[:2] == (1, 2) and abs(frame.ego_d) < 0.2
    on_accel = EgoState(80.0, -7.0, 0.0, 12.0)
    frame = build_road_frame(scene(lanes, [1, 2, 3], ego=on_accel))
    assert frame.ref_key[0] == 3 and frame.ego_d == pytest.approx(-3.5, abs=0.05)
    assert frame.route_deadline == pytest.approx(160.0, abs=1.0)
