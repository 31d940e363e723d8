"""Supervisor core (autonomy_control.supervisor): off_road from lanes and from a BEV raster,
off_route (distance and heading error, with its sign), over_speed only after it persists,
no_progress only while the path is free, goal_passed, the stop latched until reset, each
reason in the message with its value and limit. Asymmetric fixtures: everything happens in
a frame at (100, -40) turned by 2.0 rad, the ego leaves to the LEFT, the raster is
drivable only in its front-left quadrant."""
import math

import numpy as np
import pytest

from autonomy_control.supervisor import (DrivableArea, Supervisor, SupervisorConfig,
                                         SupervisorInputs, footprint_points, path_is_free)
from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.geometry import from_frame
from autonomy_stack.vector_space import EgoState, ObjectClass, ObjectState

FRAME = (100.0, -40.0, 2.0)          # the road's frame in odom
BODY = (3.8, 0.9, 0.95)              # front, rear, half width from the rear axle
LANE_W = 3.5


def odom(x, y):
    return from_frame(np.array([[x, y]], float), *FRAME)[0]


def ego_at(x, y, dyaw=0.0, speed=5.0, stamp=0.0):
    px, py = odom(x, y)
    return EgoState(x=float(px), y=float(py), yaw=FRAME[2] + dyaw, speed=speed, stamp=stamp)


def road_lanes():
    """Two lanes along the road frame's x: the ego's (centre y = 0) and one to its right
    (centre y = -3.5). Its left edge is at y = +1.75, nothing beyond."""
    xs = np.linspace(0.0, 200.0, 41)
    return [(from_frame(np.stack([xs, np.full_like(xs, y)], 1), *FRAME), LANE_W)
            for y in (0.0, -LANE_W)]


def route_line():
    xs = np.linspace(0.0, 200.0, 41)
    return from_frame(np.stack([xs, np.zeros_like(xs)], 1), *FRAME)


def inputs(ego, **kw):
    return SupervisorInputs(stamp=kw.pop("stamp", ego.stamp), ego=ego, body=BODY, **kw)


# ----------------------------------------------------------------------- geometry pieces
def test_footprint_points_on_the_body_outline():
    ego = ego_at(10.0, 0.0)
    pts = footprint_points(ego, *BODY, n=3)
    assert pts.shape == (12, 2)
    local = from_frame(pts - np.array(odom(10.0, 0.0)), 0.0, 0.0, -FRAME[2])
    assert np.allclose(local[0], [3.8, 0.95])                # first: the front-left corner
    assert local[:, 0].max() == pytest.approx(3.8) and local[:, 0].min() == pytest.approx(-0.9)
    assert np.abs(local[:, 1]).max() == pytest.approx(0.95)


def test_off_road_from_lanes_left_by_half_a_metre():
    area = DrivableArea.from_lanes(road_lanes())
    sup = Supervisor()
    # footprint's left side at y = 1.3 + 0.95 = 2.25: 0.5 m beyond the left edge (1.75)
    st = sup.update(inputs(ego_at(20.0, 1.3), drivable=area))
    assert st.values["off_road_m"] == pytest.approx(0.5, abs=1e-6)
    assert st.level == "ERROR" and st.reasons == ["off_road"] and st.stop
    assert "off_road" in st.message and "0.50 m" in st.message and "0.30 m" in st.message
    # the same 0.5 m to the RIGHT lies in the right lane: inside
    st = Supervisor().update(inputs(ego_at(20.0, -1.3), drivable=area))
    assert st.values["off_road_m"] == 0.0 and st.level == "OK" and not st.stop
    # inside the lane, and 0.25 m out (within the 0.3 m allowance)
    assert Supervisor().update(inputs(ego_at(20.0, 0.5), drivable=area)).level == "OK"
    st = Supervisor().update(inputs(ego_at(20.0, 1.05), drivable=area))
    assert st.values["off_road_m"] == pytest.approx(0.25) and st.level == "OK"
    # beyond the end of the lanes: outside along the road too
    d = area.outside_distance(np.array([odom(205.0, 0.0)]))
    assert d[0] == pytest.approx(5.0)


def test_lanes_with_a_road_outline_polygon():
    """An L-shaped outline (a side street off to the LEFT at x in [40, 50]) adds to the
    lanes: inside it is on the road, beyond its corner the distance is to the corner."""
    outline = from_frame(np.array([[40.0, 0.0], [50.0, 0.0], [50.0, 30.0], [40.0, 30.0]]),
                         *FRAME)
    area = DrivableArea.from_lanes(road_lanes(), polygons=[outline])
    d = area.outside_distance(np.array([odom(45.0, 20.0), odom(45.0, -20.0), odom(53.0, 34.0),
                                        odom(45.0, 31.0), odom(20.0, 4.0)]))
    assert d[0] == 0.0                                   # in the side street
    assert d[1] == pytest.approx(20.0 - 3.5 - 1.75)      # right of the right lane
    assert d[2] == pytest.approx(5.0)                    # diagonal from its far corner
    assert d[3] == pytest.approx(1.0)
    assert d[4] == pytest.approx(4.0 - 1.75)             # left of the lanes, before it


def test_raster_convention_hot_front_left_quadrant():
    grid = BEVGrid((-20.0, 20.0), (-20.0, 20.0), 0.5)
    mask = np.zeros(grid.shape, bool)
    mask[: grid.H // 2, : grid.W // 2] = True          # row 0 = front, col 0 = left
    area = DrivableArea.from_raster(mask, grid, FRAME)
    d = area.outside_distance(np.array([odom(10, 10), odom(10, -10), odom(-10, 10),
                                        odom(-10, -10), odom(30, 30)]))
    res = grid.res
    assert d[0] == 0.0                                  # front-left: drivable
    assert d[1] == pytest.approx(10.0, abs=res)         # front-right: 10 m right of it
    assert d[2] == pytest.approx(10.0, abs=res)         # rear-left
    assert d[3] == pytest.approx(math.hypot(10, 10), abs=res)
    assert d[4] == 0.0                                  # beyond the raster: no evidence
    sup = Supervisor()
    assert sup.update(inputs(ego_at(5.0, 5.0), drivable=area)).level == "OK"
    st = sup.update(inputs(ego_at(5.0, -2.0), drivable=area))   # right side at y = -2.95
    assert st.values["off_road_m"] == pytest.approx(2.95, abs=res)
    assert st.reasons == ["off_road"]


def test_empty_raster_is_off_road_everywhere_and_bad_shape_raises():
    grid = BEVGrid((-10.0, 10.0), (-10.0, 10.0), 1.0)
    area = DrivableArea.from_raster(np.zeros(grid.shape, bool), grid, FRAME)
    assert np.isinf(area.outside_distance(np.array([odom(0, 0)]))[0])
    with pytest.raises(ValueError, match="does not match"):
        DrivableArea.from_raster(np.zeros((3, 4), bool), grid, FRAME)


def test_path_is_free_front_left_object():
    ego = ego_at(10.0, 0.0)
    route = route_line()

    def car(x, y):
        px, py = odom(x, y)
        return ObjectState(id=1, object_class=ObjectClass.CAR, x=float(px), y=float(py),
                           yaw=FRAME[2], length=4.5, width=1.8, height=1.5)

    assert path_is_free(ego, route, [])
    assert not path_is_free(ego, route, [car(25.0, 1.5)])      # front-left, reaches in
    assert path_is_free(ego, route, [car(25.0, 3.0)])          # front-left, clear of it
    assert path_is_free(ego, route, [car(0.0, 0.0)])           # behind
    assert path_is_free(ego, route, [car(45.0, 0.0)])          # beyond 30 m
    assert not path_is_free(ego, None, [car(25.0, 1.5)])       # no route: straight ahead


# ----------------------------------------------------------------------- checks
def test_off_route_distance_and_heading_error_sign():
    route = route_line()
    st = Supervisor().update(inputs(ego_at(30.0, 0.5, dyaw=0.3), route=route))
    assert st.level == "OK"
    assert st.values["heading_error_rad"] == pytest.approx(0.3)
    assert st.values["route_deviation_m"] == pytest.approx(0.5)
    st = Supervisor().update(inputs(ego_at(30.0, 0.0, dyaw=0.9), route=route))
    assert st.values["heading_error_rad"] == pytest.approx(0.9)        # pointing left: +
    assert st.reasons == ["off_route"] and "+0.90 rad" in st.message and "0.70 rad" in st.message
    st = Supervisor().update(inputs(ego_at(30.0, 0.0, dyaw=-0.9), route=route))
    assert st.values["heading_error_rad"] == pytest.approx(-0.9)
    assert "-0.90 rad" in st.message
    # slow: heading not checked; reversing along the route: direction of travel counts
    assert Supervisor().update(inputs(ego_at(30.0, 0.0, dyaw=0.9, speed=0.5),
                                      route=route)).level == "OK"
    st = Supervisor().update(inputs(ego_at(30.0, 0.0, dyaw=math.pi, speed=-2.0), route=route))
    assert st.values["heading_error_rad"] == pytest.approx(0.0, abs=1e-9)
    # 4 m to the left of the route (the next lane) is fine, 6.5 m is not
    assert Supervisor().update(inputs(ego_at(30.0, 4.0), route=route)).level == "OK"
    st = Supervisor().update(inputs(ego_at(30.0, 6.5), route=route))
    assert st.reasons == ["off_route"]
    assert "6.50 m from the route" in st.message and "limit 6.00 m" in st.message


def test_over_speed_only_after_it_persists():
    sup = Supervisor()
    limit = 10.0
    for k in range(10):                            # 0.0 .. 0.9 s at 12 m/s
        st = sup.update(inputs(ego_at(30.0, 0.0, speed=12.0, stamp=k * 0.1),
                               speed_limit=limit))
        assert st.level == "OK", k
    st = sup.update(inputs(ego_at(30.0, 0.0, speed=12.0, stamp=1.0), speed_limit=limit))
    assert st.reasons == ["over_speed"]
    assert "2.00 m/s over the limit 10.00 m/s" in st.message and "limit 1.50 m/s" in st.message
    # within the margin for long, or over it in bursts shorter than the persistence: OK
    sup = Supervisor()
    for k in range(100):
        v = 11.4 if k % 10 < 5 else 13.0
        st = sup.update(inputs(ego_at(30.0, 0.0, speed=v, stamp=k * 0.1), speed_limit=limit))
        assert st.level == "OK", k


def test_no_progress_only_while_path_free():
    cfg = SupervisorConfig()
    route = route_line()
    goal = (*odom(150.0, 0.0), FRAME[2])
    sup = Supervisor(cfg)
    t = 0.0
    for _ in range(200):                           # 20 s standing behind a blocked path
        st = sup.update(inputs(ego_at(30.0, 0.0, speed=0.0, stamp=t), route=route, goal=goal,
                               path_free=False))
        assert st.level == "OK"
        t += 0.1
    t0 = t
    while t - t0 < cfg.no_progress_s - 0.05:       # path free: the clock starts now
        st = sup.update(inputs(ego_at(30.0, 0.0, speed=0.0, stamp=t), route=route, goal=goal))
        assert st.level == "OK", t - t0
        t += 0.1
    st = sup.update(inputs(ego_at(30.0, 0.0, speed=0.0, stamp=t0 + cfg.no_progress_s),
                           route=route, goal=goal))
    assert st.reasons == ["no_progress"] and "limit 15.0 s" in st.message
    # a car that crawls on, and one standing at its goal: no lack of progress
    sup = Supervisor(cfg)
    for k in range(400):
        st = sup.update(inputs(ego_at(30.0 + 0.02 * k, 0.0, speed=0.2, stamp=k * 0.1),
                               route=route, goal=goal))
        assert st.level == "OK", k
    sup = Supervisor(cfg)
    for k in range(400):
        st = sup.update(inputs(ego_at(149.0, 0.0, speed=0.0, stamp=k * 0.1), route=route,
                               goal=goal))
        assert st.level == "OK"


def test_goal_passed_along_route_and_goal_heading():
    route = route_line()
    goal = (*odom(50.0, 0.0), FRAME[2])
    assert Supervisor().update(inputs(ego_at(53.0, 0.0), route=route, goal=goal)).level == "OK"
    st = Supervisor().update(inputs(ego_at(54.5, 0.0), route=route, goal=goal))
    assert st.reasons == ["goal_passed"] and "4.50 m beyond the goal" in st.message
    assert "limit 4.00 m" in st.message
    # no route: along the goal's heading; a car before the goal is fine
    assert Supervisor().update(inputs(ego_at(20.0, 3.0), goal=goal)).level == "OK"
    st = Supervisor().update(inputs(ego_at(60.0, 1.0), goal=goal))
    assert st.values["beyond_goal_m"] == pytest.approx(10.0)
    assert st.reasons == ["goal_passed"]


def test_stop_latched_until_reset_and_one_event_per_reason():
    area = DrivableArea.from_lanes(road_lanes())
    route = route_line()
    sup = Supervisor()
    for k in range(20):                                 # off the road for 2 s
        st = sup.update(inputs(ego_at(20.0 + k * 0.5, 1.3, stamp=k * 0.1), drivable=area,
                               route=route))
    assert [e.reasons for e in sup.events] == [["off_road"]]
    assert sup.events[0].stamp == 0.0
    # back on the road: still stopped, reason still named
    st = sup.update(inputs(ego_at(40.0, 0.0, stamp=2.0), drivable=area, route=route))
    assert st.stop and st.level == "ERROR" and st.reasons == ["off_road"]
    assert st.values["off_road_m"] == 0.0
    # a second reason adds a second event; both named
    st = sup.update(inputs(ego_at(40.0, 6.5, stamp=2.1), drivable=area, route=route))
    assert st.reasons == ["off_road", "off_route"]
    assert "off_road" in st.message and "off_route" in st.message
    assert [e.reasons for e in sup.events] == [["off_road"], ["off_route"]]
    sup.reset()
    st = sup.update(inputs(ego_at(40.0, 0.0, stamp=2.2), drivable=area, route=route))
    assert st.level == "OK" and not st.stop and st.reasons == [] and len(sup.events) == 2


def test_missing_inputs_skip_their_checks():
    sup = Supervisor()
    st = sup.update(inputs(ego_at(1e4, 1e4, dyaw=3.0, speed=50.0), drivable=None, route=None,
                           speed_limit=None, goal=None))
    assert st.level == "OK" and st.values == {}
    st = sup.update(inputs(ego_at(0, 0), route=np.array([[1.0, 2.0]])))    # one-point route
    assert st.level == "OK"
