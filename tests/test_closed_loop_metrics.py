"""Closed-loop episode metrics (autonomy_tools.closed_loop_metrics) on hand-made traces with
asymmetric fixtures: a drift to the LEFT of the lane (and its mirror to the right), a
front-left object hit, a goal reached at a known time."""
import math

import numpy as np
import pytest

from autonomy_stack.vector_space import ObjectClass, ObjectState

from autonomy_planning.scene import Lane
from autonomy_tools.closed_loop_metrics import EpisodeTrace, episode_metrics

BODY = (3.8, 1.0, 0.9)          # front, rear, half width from the rear axle
LANE = Lane(id=1, centerline=np.column_stack([np.linspace(-20, 100, 121), np.zeros(121)]),
            width=3.5)


def trace(y, objects=None, goal=None, events=(), planner=(), perception=()):
    t = np.arange(0.0, 10.0 + 1e-9, 0.1)
    x = 5.0 * t
    n = len(t)
    return EpisodeTrace(t=t, x=x, y=np.asarray(y, float), yaw=np.zeros(n), speed=np.full(n, 5.0),
                        accel=np.zeros(n), yaw_rate=np.zeros(n),
                        objects=objects or [[] for _ in range(n)], lanes=[LANE],
                        route=LANE.centerline.copy(), goal=goal, goal_tolerance=2.0, body=BODY,
                        supervisor_events=list(events), planner_latency_s=list(planner),
                        perception_latency_s=list(perception))


def drift(sign):
    """On the centreline until t = 4 s, then drifting sideways 1.5 m/s to 3 m at t = 6 s."""
    t = np.arange(0.0, 10.0 + 1e-9, 0.1)
    return sign * np.clip(1.5 * (t - 4.0), 0.0, 3.0)


def test_left_drift_counts_off_road_time_and_a_positive_route_deviation():
    m = episode_metrics(trace(drift(+1)))
    # the body's left edge (y + 0.9) leaves the lane edge (1.75) by more than the 0.3 m
    # tolerance once y > 1.15 m, i.e. from t = 4.77 s to the end (10 s + the last sample)
    assert m["off_road_s"] == pytest.approx(10.1 - 4.8, abs=0.11)
    assert m["max_off_road_m"] == pytest.approx(3.0 + 0.9 - 1.75, abs=0.02)
    assert m["max_route_deviation_m"] == pytest.approx(3.0, abs=1e-6)
    assert m["route_deviation_at_max_m"] == pytest.approx(+3.0, abs=1e-6)    # left = positive
    assert m["silent_failure"] == 1 and m["supervisor_stops"] == 0
    assert m["collisions"] == 0 and m["goal_reached"] == 0 and math.isnan(m["time_to_goal_s"])


def test_right_drift_mirrors_the_sign_and_on_lane_counts_nothing():
    right = episode_metrics(trace(drift(-1)))
    assert right["route_deviation_at_max_m"] == pytest.approx(-3.0, abs=1e-6)
    assert right["off_road_s"] == pytest.approx(10.1 - 4.8, abs=0.11)
    # inside the lane with 0.55 m to spare on the left: nothing off road
    ok = episode_metrics(trace(np.full(101, 0.5)))
    assert ok["off_road_s"] == 0.0 and ok["max_off_road_m"] == 0.0
    assert ok["silent_failure"] == 0


def test_front_left_object_is_a_collision_and_right_one_is_not():
    front_left = ObjectState(7, ObjectClass.CAR, 25.0, 1.6, 0.0, 4.0, 1.8, 1.5, is_static=True)
    right_clear = ObjectState(8, ObjectClass.CAR, 25.0, -2.8, 0.0, 4.0, 1.8, 1.5, is_static=True)
    objs = [[front_left, right_clear] for _ in range(101)]
    m = episode_metrics(trace(np.zeros(101), objects=objs))
    assert m["collisions"] == 1                     # object 7 once, object 8 never
    # the ego's front (x + 3.8) reaches the car's rear (23 m) at x = 19.2 m: t = 3.84 s
    assert m["first_collision_t"] == pytest.approx(3.9, abs=1e-6)
    assert m["silent_failure"] == 1
    stopped = episode_metrics(trace(np.zeros(101), objects=objs, events=[(3.9, "off_route")]))
    assert stopped["silent_failure"] == 0 and stopped["supervisor_stops"] == 1
    # without the front-left car nothing is hit
    m2 = episode_metrics(trace(np.zeros(101), objects=[[right_clear]] * 101))
    assert m2["collisions"] == 0


def test_goal_time_comfort_and_latency_percentiles():
    m = episode_metrics(trace(np.zeros(101), goal=(40.0, 0.0, 0.0),
                              planner=[0.01, 0.02, 0.03, 0.04], perception=[0.05] * 5))
    # within 2 m of x = 40 from x = 38.5 (t = 7.7 s): first sample with distance < 2 m
    assert m["goal_reached"] == 1 and m["time_to_goal_s"] == pytest.approx(7.7, abs=1e-6)
    assert m["max_abs_lat_acc"] == pytest.approx(0.0, abs=1e-9)
    assert m["comfort_ok"] == 1
    assert m["planner_latency_p50_s"] == pytest.approx(0.025)
    assert m["perception_latency_p95_s"] == pytest.approx(0.05)
    assert m["duration_s"] == pytest.approx(10.0)


def test_asphalt_beyond_the_lanes_is_on_the_road():
    """The map's road outline (a junction corner, here a widened left side up to y = 5)
    counts as drivable: the left drift stays on the road; the right drift still does not."""
    from dataclasses import replace
    widened = np.array([[-20.0, -1.75], [100.0, -1.75], [100.0, 5.0], [-20.0, 5.0]])
    left = episode_metrics(replace(trace(drift(+1)), road_polygons=[widened]))
    assert left["off_road_s"] == 0.0 and left["max_off_road_m"] == 0.0
    right = episode_metrics(replace(trace(drift(-1)), road_polygons=[widened]))
    assert right["max_off_road_m"] == pytest.approx(3.0 + 0.9 - 1.75, abs=0.02)
