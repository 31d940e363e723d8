"""Planning core on hand-made scenes (no ROS, no simulator): corridor containment,
optimiser limits, futures re-weighting, warm-started replanning, safe stop."""
import math
import re
from pathlib import Path

import numpy as np
import pytest

from autonomy_stack.geometry import box_corners, boxes_overlap
from autonomy_stack.vector_space import EgoState, LineType, ObjectClass, ObjectState, RoadLine

from autonomy_tools.planning_closed_loop import corridor_checks
from autonomy_planning.futures import FuturePredictor
from autonomy_planning.planner import Planner, PlannerConfig, safe_stop_trajectory
from autonomy_planning.scene import Lane, PlanningScene, lanes_from_road_lines

ROOT = Path(__file__).resolve().parent.parent
CORE = ["path.py", "scene.py", "futures.py", "maneuver_search.py", "maneuver_profiles.py", "corridor.py",
        "trajectory_optimizer.py", "planner.py", "../autonomy_tools/planning_closed_loop.py"]
XS = np.linspace(-60.0, 400.0, 231)


def two_way_road(width=3.5):
    """Ego lane y = 0 (+x), oncoming lane y = width (-x), curbs at the outer edges."""
    lanes = [Lane(1, np.column_stack([XS, np.zeros_like(XS)]), width, 13.9),
             Lane(2, np.column_stack([XS[::-1], np.full_like(XS, width)]), width, 13.9)]
    bounds = [np.column_stack([XS, np.full_like(XS, -width / 2)]),
              np.column_stack([XS, np.full_like(XS, 1.5 * width)])]
    return lanes, bounds


def parked(i, x, y, yaw=0.0):
    return ObjectState(i, ObjectClass.CAR, x, y, yaw, 4.5, 1.9, 1.5, is_static=True)


def car(i, x, y, yaw, v, accel=0.0, yaw_rate=0.0):
    return ObjectState(i, ObjectClass.CAR, x, y, yaw, 4.6, 1.9, 1.5, speed=v, accel=accel,
                       yaw_rate=yaw_rate)


def test_core_modules_do_not_import_rclpy():
    for name in CORE:
        src = (ROOT / "autonomy_planning" / name).read_text()
        assert not re.search(r"^\s*(import|from)\s+rclpy", src, re.M), name


def test_corridor_excludes_parked_car_and_trajectory_stays_inside():
    lanes, bounds = two_way_road()
    obstacle = parked(10, 35.0, -0.6)
    scene = PlanningScene(0.0, EgoState(0.0, 0.0, 0.0, 8.0), [obstacle], lanes, bounds)
    planner = Planner()
    res = planner.plan(scene)
    assert res.candidates_per_cycle >= 1000
    assert res.maneuver.startswith("nudge_left") or res.maneuver.startswith("lane")
    chk = corridor_checks(res, [obstacle], planner.body)
    assert chk["obstacle_intrusion"] <= 0.0, chk
    assert chk["trajectory_excursion"] <= 0.05, chk
    # the corridor is cut on the right along the car, and the plan passes it
    corr = res.corridor
    m = (corr.stations >= 33.0) & (corr.stations <= 37.0)
    assert np.all(corr.right[m] >= -0.6 + 0.95 - 1e-6)
    tr = res.trajectory
    assert tr.x[-1] > 45.0
    ob = obstacle.corners()
    for k in range(len(tr)):
        body = box_corners(tr.x[k], tr.y[k], tr.yaw[k], 4.7, 1.9, 1.45)
        assert not boxes_overlap(body, ob), f"plan hits the parked car at t={tr.t[k]:.1f}"


def test_blocked_road_stops_before_obstacle():
    lanes, bounds = two_way_road()
    # both lanes blocked: a parked car in each
    obstacles = [parked(10, 30.0, 0.0), parked(11, 30.0, 3.5, math.pi)]
    scene = PlanningScene(0.0, EgoState(0.0, 0.0, 0.0, 8.0), obstacles, lanes, bounds)
    planner = Planner()
    res = planner.plan(scene)
    tr = res.trajectory
    assert tr.speed[-1] < 0.3
    front = tr.x + 3.8 * np.cos(tr.yaw)
    assert front.max() < 30.0 - 2.25, front.max()
    assert np.isfinite(res.corridor.blocked_station)
    chk = corridor_checks(res, obstacles, planner.body)
    assert chk["obstacle_intrusion"] <= 0.0


def test_optimiser_respects_vehicle_limits_and_samples_at_10hz():
    lanes, bounds = two_way_road()
    cfg = PlannerConfig()
    oc = cfg.optimizer
    # start fast towards a slow lead: forces braking; parked car forces a swerve
    agents = [car(20, 60.0, 0.0, 0.0, 2.0), parked(21, 25.0, -0.7)]
    scene = PlanningScene(0.0, EgoState(0.0, 0.0, 0.0, 12.0), agents, lanes, bounds)
    planner = Planner(cfg)
    res = planner.plan(scene)
    tr = res.trajectory
    assert len(tr) == 101 and np.allclose(np.diff(tr.t), 0.1)
    assert tr.t[-1] == pytest.approx(10.0)
    assert not res.emergency
    assert tr.accel.min() >= -oc.max_decel - 1e-3 and tr.accel.max() <= oc.max_accel + 1e-3
    jerk = np.diff(tr.accel) / 0.1
    assert np.abs(jerk).max() <= oc.max_jerk + 1e-2
    # the vehicle description's steering limit, with the optimiser's margin
    assert planner.optimizer.max_curvature == pytest.approx(
        oc.curvature_margin * math.tan(cfg.vehicle.max_steer) / cfg.vehicle.wheelbase)
    assert np.abs(tr.curvature).max() <= planner.optimizer.max_curvature + 0.01
    lat = tr.speed ** 2 * np.abs(tr.curvature)
    assert lat.max() <= oc.lat_acc_max + 0.3
    # consistent kinematics: positions integrate the speeds
    ds = np.hypot(np.diff(tr.x), np.diff(tr.y))
    assert np.allclose(ds, 0.5 * (tr.speed[1:] + tr.speed[:-1]) * 0.1, atol=0.05)


def test_futures_reweight_when_oncoming_car_starts_to_brake():
    """Oncoming car with parked cars in its lane: 'yield' vs 'go_around'. While it keeps
    its speed the belief is split; once it brakes, 'yield' wins within 0.5 s; when it
    instead steers out, 'go_around' wins."""
    lanes, bounds = two_way_road()
    statics = [parked(100 + k, 60.0 - 6.0 * k, 3.5 + 1.0, math.pi) for k in range(3)]
    ego = EgoState(0.0, 0.0, 0.0, 6.0)

    def run(kind):
        pred = FuturePredictor()
        x, v = 110.0, 7.0
        probs = []
        for k in range(25):
            t = 0.1 * k
            a, yaw, y, yr = 0.0, math.pi, 3.5, 0.0
            if k >= 10 and kind == "brake":
                a = -1.8
            if k >= 10 and kind == "steer":
                yaw, yr = -math.pi + 0.15, 0.1
                y = 3.5 - 0.08 * (k - 10)
            v = max(v + a * 0.1, 0.0)
            x -= v * 0.1
            agent = car(1, x, y, yaw, v, a, yr)
            sc = PlanningScene(t, EgoState(ego.x, ego.y, 0.0, 6.0, stamp=t), statics + [agent],
                               lanes, bounds)
            fut = {f.agent_id: f for f in pred.predict(sc)}[1]
            probs.append({h.label: h.probability for h in fut.hypotheses})
        return probs

    brake = run("brake")
    assert set(brake[0]) == {"yield", "go_around"}
    assert abs(sum(brake[5].values()) - 1.0) < 1e-6
    assert brake[9]["yield"] < 0.75          # undecided while it keeps its speed
    assert max(b["yield"] for b in brake[10:16]) > 0.8
    steer = run("steer")
    assert max(s["go_around"] for s in steer[10:16]) > 0.8
    # the hypotheses are timed trajectories on the 0.2 s grid over 10 s
    fut = FuturePredictor().predict(PlanningScene(0.0, ego, statics + [car(1, 110.0, 3.5, math.pi, 7.0)],
                                                  lanes, bounds))
    tr = [f for f in fut if f.agent_id == 1][0].hypotheses[0].trajectory
    assert len(tr) == 51 and tr.t[-1] == pytest.approx(10.0)


def test_futures_highway_agent_keep_vs_decelerate():
    xs = XS
    lanes = [Lane(1, np.column_stack([xs, np.zeros_like(xs)]), 3.5, 30.0),
             Lane(2, np.column_stack([xs, np.full_like(xs, 3.5)]), 3.5, 30.0)]
    pred = FuturePredictor()
    scene = lambda t, a: PlanningScene(t, EgoState(0, 0, 0, 20.0, stamp=t),
                                       [car(5, 60.0, 0.0, 0.0, 20.0, a)], lanes, [])
    p0 = {h.label: h.probability for h in [f for f in pred.predict(scene(0.0, 0.0))][0].hypotheses}
    assert {"keep_lane", "decelerate", "lane_change_left"} <= set(p0)
    assert p0["keep_lane"] == max(p0.values())
    for k in range(1, 6):
        p = {h.label: h.probability for h in pred.predict(scene(0.1 * k, -2.5))[0].hypotheses}
    assert p["decelerate"] == max(p.values())


def test_replanning_is_warm_started_and_consistent():
    lanes, bounds = two_way_road()
    agents = [car(20, 50.0, 0.0, 0.0, 4.0)]
    planner = Planner()
    ego = EgoState(0.0, 0.0, 0.0, 9.0)
    r1 = planner.plan(PlanningScene(0.0, ego, agents, lanes, bounds))
    tr = r1.trajectory
    # the ego followed the plan exactly for 0.1 s
    k = 1
    ego2 = EgoState(tr.x[k], tr.y[k], tr.yaw[k], tr.speed[k] + 0.05, tr.accel[k], stamp=0.1)
    agents2 = [car(20, 50.0 + 0.4, 0.0, 0.0, 4.0)]
    r2 = planner.plan(PlanningScene(0.1, ego2, agents2, lanes, bounds))
    t2 = r2.trajectory
    # the initial speed comes from the previous plan, not the (noisy) measurement
    assert t2.speed[0] == pytest.approx(tr.speed[k], abs=1e-3)
    assert r2.maneuver == r1.maneuver
    # the two plans agree over the next 3 s
    n = 30
    dev = np.hypot(t2.x[:n] - tr.x[k:k + n], t2.y[:n] - tr.y[k:k + n])
    assert dev.max() < 0.3, dev.max()


def test_safe_stop_trajectory():
    tr = safe_stop_trajectory(EgoState(1.0, 2.0, 0.5, 10.0, stamp=3.0), decel=3.0)
    assert len(tr) == 101 and tr.stamp == 3.0 and tr.maneuver == "safe_stop"
    assert tr.speed[-1] == 0.0 and np.all(np.diff(tr.speed) <= 1e-9)
    assert tr.accel.min() >= -3.0 - 1e-9
    assert np.abs(np.diff(tr.accel) / 0.1).max() <= 4.0 + 1e-6
    assert np.allclose(np.arctan2(np.diff(tr.y), np.diff(tr.x))[tr.speed[1:] > 0.1], 0.5)


def test_lanes_from_painted_lines():
    def line(i, t, y):
        return RoadLine(i, t, np.column_stack([XS[:100], np.full(100, y)]))
    lines = [line(1, LineType.CURB, -1.75), line(2, LineType.LANE_DASHED_YELLOW, 1.75),
             line(3, LineType.CURB, 5.25)]
    lanes = lanes_from_road_lines(lines, EgoState(0.0, 0.0, 0.0, 5.0))
    assert len(lanes) == 2
    own = [l for l in lanes if not l.oncoming]
    onc = [l for l in lanes if l.oncoming]
    assert len(own) == 1 and len(onc) == 1
    assert np.allclose(own[0].centerline[:, 1], 0.0, atol=1e-6)
    assert own[0].centerline[-1, 0] > own[0].centerline[0, 0]
    assert onc[0].centerline[-1, 0] < onc[0].centerline[0, 0]
    assert own[0].width == pytest.approx(3.5)


def test_parked_car_is_aligned_with_the_road_but_angled_parking_is_not():
    """A static car parked along the road with a perceived heading 0.2 rad to the LEFT
    (perception follows the ego's heading) occupies its width across the road, not
    L sin + W cos; a car parked at 0.6 rad and a moving car at 0.2 rad keep their heading."""
    from autonomy_planning.futures import futures_to_occupancy
    from autonomy_planning.path import ReferencePath
    xs = XS
    lanes = [Lane(1, np.column_stack([xs, np.zeros_like(xs)]), 3.5, 13.9)]
    ego = EgoState(x=0.0, y=0.0, yaw=0.0, speed=5.0)
    parked = ObjectState(1, ObjectClass.CAR, 25.0, -2.4, 0.2, 4.4, 1.8, 1.5, is_static=True)
    angled = ObjectState(2, ObjectClass.CAR, 40.0, -4.0, 0.6, 4.4, 1.8, 1.5, is_static=True)
    moving = ObjectState(3, ObjectClass.CAR, 60.0, 0.0, 0.2, 4.4, 1.8, 1.5, speed=5.0)
    agents = [parked, angled, moving]
    fut = FuturePredictor().predict(PlanningScene(0.0, ego, agents, lanes, []))
    ref = ReferencePath(lanes[0].centerline)
    t = np.arange(51) * 0.2
    occ = futures_to_occupancy(fut, {a.id: a for a in agents}, ref, t)
    hd = {int(a): float(h) for a, h in zip(occ.agent, occ.hd[:, 0])}
    assert hd[1] == pytest.approx(0.9, abs=1e-6)
    assert hd[2] == pytest.approx(2.2 * math.sin(0.6) + 0.9 * math.cos(0.6), abs=1e-3)
    assert hd[3] == pytest.approx(2.2 * math.sin(0.2) + 0.9 * math.cos(0.2), abs=1e-3)
