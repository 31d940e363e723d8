"""The planner fed as the planning node feeds it over DDS (no ROS here): lanes from the
road lines only, objects without the is_static flag (the ObjectArray message has none),
the ego from odometry.

- an unmarked two-way street (two curbs, no painted line) gives two lanes, the left one
  oncoming, matching the simulator's lanes;
- StaticObjectTracker flags cars never seen moving as parked, not cars that have moved,
  nor pedestrians;
- the path QP keeps |curvature| within the steering limit even when the corridor cannot
  be met from a stopped, angled pose;
- with the goal within v_des * horizon, a candidate that ends short of the goal is still
  judged by its speed (no creeping at a constant walking speed).
"""
import dataclasses

import numpy as np

from autonomy_planning.planner import Planner, PlannerConfig
from autonomy_planning.scene import Goal, PlanningScene, StaticObjectTracker, lanes_from_road_lines
from autonomy_simulator import scenarios
from autonomy_stack.vector_space import EgoState, LineType, ObjectClass, ObjectState


def _narrow():
    sc = scenarios.make("narrow_street_oncoming", seed=0)
    return sc, sc.sim.world.vector_space(0.0).lines


def test_unmarked_two_way_street_gives_two_lanes():
    sc, lines = _narrow()
    e = sc.sim.ego
    lanes = lanes_from_road_lines(lines, EgoState(x=e.x, y=e.y, yaw=e.yaw, speed=0.0))
    assert len(lanes) == 2
    own = [l for l in lanes if not l.oncoming]
    onc = [l for l in lanes if l.oncoming]
    assert len(own) == 1 and len(onc) == 1
    world = sc.sim.world.lanes
    for ln, wid in ((own[0], sc.sim.world.params["ego_lane"]),
                    (onc[0], sc.sim.world.params["oncoming_lane"])):
        wl = np.asarray(world[wid].centerline)[:, :2]
        assert abs(ln.width - world[wid].width) < 0.1
        # same direction and the same centre line (within 0.1 m)
        h = ln.centerline[-1] - ln.centerline[0]
        hw = wl[-1] - wl[0]
        assert np.dot(h, hw) > 0
        assert np.max(np.abs(ln.centerline[:, 1] - np.interp(ln.centerline[:, 0], *(
            wl[np.argsort(wl[:, 0])].T)))) < 0.1


def test_marked_lanes_are_not_split():
    # a 3.5 m lane between a curb and a white line stays one lane; a 7 m gap between a
    # curb and a painted line (parking strip, shoulder) is not taken as two lanes
    x = np.linspace(0.0, 100.0, 101)
    from autonomy_stack.vector_space import RoadLine

    def line(i, y, t):
        return RoadLine(id=i, line_type=t, points=np.column_stack([x, np.full_like(x, y)]))

    lines = [line(1, -1.75, LineType.CURB), line(2, 1.75, LineType.LANE_SOLID_WHITE),
             line(3, 8.75, LineType.CURB)]
    lanes = lanes_from_road_lines(lines, EgoState(x=5.0, y=0.0, yaw=0.0, speed=0.0))
    assert len(lanes) == 1 and abs(lanes[0].width - 3.5) < 0.05


def _car(i, x, speed=0.0, cls=ObjectClass.CAR, y=-2.4):
    return ObjectState(id=i, object_class=cls, x=x, y=y, yaw=0.0, length=4.5, width=1.9,
                       height=1.5, speed=speed)


def test_static_tracker_flags_parked_cars_only():
    trk = StaticObjectTracker(min_observed=0.5, warmup_s=0.0)
    moving = [_car(1, 10.0, speed=6.0)]
    out = {}
    for k in range(16):
        t = 0.1 * k
        objs = [_car(2, 30.0), _car(3, 40.0, cls=ObjectClass.PEDESTRIAN),
                _car(1, 10.0 + 6.0 * min(t, 1.0), speed=6.0 if t < 1.0 else 0.0)]
        out = {o.id: o for o in trk.update(objs, t)}
        if k == 0:
            assert not any(o.is_static for o in out.values())   # not yet observed long enough
    assert out[2].is_static                       # parked car
    assert not out[3].is_static                   # pedestrians may start walking
    assert not out[1].is_static                   # a car that has driven stays an agent
    assert moving[0].is_static is False           # inputs are not modified


def test_path_curvature_within_steering_limit_from_an_angled_standstill():
    # the situation in which the DDS run used to emit 0.4 1/m: stopped, 15 deg to the
    # left, next to the cones, the oncoming car ahead in its lane
    sc, lines = _narrow()
    ego = EgoState(x=15.5, y=-0.1, yaw=0.27, speed=0.0, stamp=0.0)
    lanes = lanes_from_road_lines(lines, ego)
    bounds = [np.asarray(l.points)[:, :2] for l in lines if l.line_type in (LineType.CURB,)]
    objs = [dataclasses.replace(o, x=40.0, y=1.8) if o.id < 10000 else o
            for o in sc.sim.objects()]
    cfg = PlannerConfig()
    cfg.optimizer.time_limit = 1e10
    pl = Planner(cfg)
    # the vehicle's steering limit (one vehicle description) and the optimiser's bound
    k_lim = min(cfg.vehicle.max_curvature, cfg.optimizer.curvature_margin * cfg.vehicle.max_curvature)
    for k in range(5):
        scene = PlanningScene(stamp=0.1 * k, ego=EgoState(**{**ego.__dict__, "stamp": 0.1 * k}),
                              agents=objs, lanes=lanes, boundaries=bounds,
                              goal=Goal(*sc.goal), speed_limit=13.9)
        tr = pl.plan(scene).trajectory
        assert np.max(np.abs(tr.curvature)) <= k_lim + 0.01


def test_no_creeping_when_the_goal_is_within_the_horizon():
    # pulled over, 0.4 m/s, the goal ~105 m ahead (< 13.9 m/s * 10 s): the plan must
    # drive on to the goal, not hold a walking pace
    sc, lines = _narrow()
    sc.sim.agents = []
    lanes = lanes_from_road_lines(lines, None)
    for ln in lanes:
        ln.speed_limit = 13.9
    bounds = [np.asarray(l.points)[:, :2] for l in lines if l.line_type == LineType.CURB]
    objs = [dataclasses.replace(o, is_static=o.object_class == ObjectClass.CAR)
            for o in sc.sim.objects()]
    cfg = PlannerConfig()
    cfg.optimizer.time_limit = 1e10
    pl = Planner(cfg)
    x, v = 59.0, 0.4
    for k in range(3):
        ego = EgoState(x=x, y=-2.39, yaw=0.0, speed=v, stamp=0.1 * k)
        r = pl.plan(PlanningScene(stamp=0.1 * k, ego=ego, agents=objs, lanes=lanes,
                                  boundaries=bounds, goal=Goal(*sc.goal), speed_limit=13.9))
    assert float(np.max(r.trajectory.speed)) > 4.0, r.maneuver


def test_gets_going_from_standstill_behind_static_obstacles():
    # over DDS the ego is standing when the stack comes up; standing behind the cones
    # must not be an equilibrium (before: keep/stop for ever): after a few seconds of
    # waiting the planner goes around them, without touching anything
    from autonomy_tools.planning_closed_loop import run_scenario
    sc = scenarios.make("narrow_street_oncoming", seed=0, ego_speed=0.0)
    x0 = sc.sim.ego.x
    cfg = PlannerConfig()
    cfg.optimizer.time_limit = 1e10
    res = run_scenario(sc, 12.0, planner=Planner(cfg), check_corridor=False)
    assert not res.collisions
    assert res.x[-1] - x0 > 5.0, res.maneuvers[-1]


def test_static_tracker_is_not_fooled_by_perception_jitter():
    """A perceived parked car: a first-frame velocity of 6.4 m/s (no video history yet), a
    position drifting 2.5 m toward the ego in 1 s, +-0.6 m of jitter and 0.4 m/s of velocity
    noise (what the tiny network gives at 20-30 m) -> parked. A car pulling out
    (first slowly creeping, then driving at 3 m/s) -> an agent."""
    rng = np.random.default_rng(0)
    trk = StaticObjectTracker(warmup_s=0.0)
    out = {}
    for k in range(40):
        t = 0.1 * k
        jitter = rng.uniform(-0.6, 0.6, 2)
        drift = 2.5 * min(t, 1.0)
        parked = _car(7, 27.5 - drift + jitter[0], y=-2.5 + jitter[1],
                      speed=6.4 if k == 0 else rng.uniform(-0.4, 0.4))
        creeping = _car(8, 15.0 + (0.2 * t if t < 2.0 else 0.4 + 3.0 * (t - 2.0)),
                        y=-2.5, speed=0.2 if t < 2.0 else 3.0)
        out = {o.id: o for o in trk.update([parked, creeping], t)}
        if k == 19:
            assert out[7].is_static and out[8].is_static   # neither has moved yet
    assert out[7].is_static
    assert not out[8].is_static


def test_static_tracker_parked_car_with_the_ego_speed_from_the_network_stays_parked():
    """The velocity head gives a parked car ahead about the ego's own speed while its
    perceived position stays put: parked. A lead car at that speed whose position moves
    with it: an agent."""
    trk = StaticObjectTracker(warmup_s=0.0)
    out = {}
    for k in range(20):
        t = 0.1 * k
        parked = _car(5, 24.0 + 0.05 * np.sin(k), speed=3.4)
        lead = _car(6, 40.0 + 3.4 * t, speed=3.4)
        out = {o.id: o for o in trk.update([parked, lead], t)}
    assert out[5].is_static and not out[6].is_static


def test_static_tracker_ignores_the_perception_warm_up():
    """For its first 1.5 s perception gives parked cars 6-9 m/s and positions running ahead
    at 4-5 m/s (video queues filling): not evidence of motion. Afterwards the car sits still."""
    trk = StaticObjectTracker()                     # warmup_s 1.5
    out = {}
    for k in range(35):
        t = 0.1 * k
        x = 30.0 + 4.5 * min(t, 1.5)
        out = {o.id: o for o in trk.update([_car(4, x, speed=8.0 if t < 1.5 else 0.1)], t)}
    assert out[4].is_static
    trk2 = StaticObjectTracker(warmup_s=0.0)        # the same without the warm-up: "moved"
    for k in range(35):
        t = 0.1 * k
        out = {o.id: o for o in trk2.update([_car(4, 30.0 + 4.5 * min(t, 1.5),
                                                  speed=8.0 if t < 1.5 else 0.1)], t)}
    assert not out[4].is_static


def test_road_memory_holds_the_last_lanes_for_a_while():
    from autonomy_planning.scene import Lane, RoadMemory
    mem = RoadMemory(hold_s=3.0)
    left_bend = Lane(1, np.array([[0.0, 0.0], [20.0, 1.0], [40.0, 4.0]]), 3.5)
    edge = [np.array([[0.0, -1.75], [40.0, 2.25]])]
    assert mem.update([left_bend], edge, 10.0) == ([left_bend], edge, False)
    lanes, bounds, held = mem.update([], [], 12.5)            # a frame without a lane
    assert held and lanes == [left_bend] and bounds == edge
    assert mem.update([], [], 13.5) == ([], [], False)        # older than hold_s: gone
    assert mem.update([], [], 9.0) == ([], [], False)         # time went back: not held
