"""Junction / merge behaviour of the planner (issue 16, autonomy_planning/junction.py):
followers ignored, no emergency without an imminent conflict, deadlock breaking."""
import math

import numpy as np

from autonomy_stack.vector_space import EgoState, ObjectClass, ObjectState
from autonomy_planning.junction import (JunctionConfig, deadlock_agents, discount_agents,
                                        drop_followers, imminent_conflict)
from autonomy_planning.maneuver_search import Occupancy
from autonomy_planning.planner import Planner, PlannerConfig
from autonomy_planning.scene import Lane, PlanningScene

XS = np.linspace(-60.0, 300.0, 181)
BODY = (3.8, 0.9, 0.95)


def two_lanes_same_way():
    """Ego lane y = 0 and a left lane y = 3.5, both +x; edges at -1.75 / 5.25."""
    lanes = [Lane(1, np.column_stack([XS, np.zeros_like(XS)]), 3.5, 13.9),
             Lane(2, np.column_stack([XS, np.full_like(XS, 3.5)]), 3.5, 13.9)]
    bounds = [np.column_stack([XS, np.full_like(XS, -1.75)]),
              np.column_stack([XS, np.full_like(XS, 5.25)])]
    return lanes, bounds


def car(i, x, y, yaw, v, accel=0.0):
    return ObjectState(i, ObjectClass.CAR, x, y, yaw, 4.6, 1.9, 1.5, speed=v, accel=accel)


def occupancy(s, d, vs, p, agent, static=False, hs=2.3, hd=0.95):
    s, d, vs = (np.atleast_2d(np.asarray(a, float)) for a in (s, d, vs))
    K, T = s.shape
    return Occupancy(s=s, d=d, hs=np.full((K, T), hs), hd=np.full((K, T), hd),
                     p=np.asarray(p, float), agent=np.asarray(agent), static=np.full(K, static),
                     vs=vs)


def test_follower_in_the_ego_lane_is_dropped_a_car_in_the_next_lane_is_kept():
    t = np.arange(51) * 0.2
    occ = occupancy([-12.0 + 12.0 * t, -12.0 + 12.0 * t, 30.0 + 0 * t],
                    [0.1 + 0 * t, 3.5 + 0 * t, 0.0 + 0 * t],
                    [12.0 + 0 * t, 12.0 + 0 * t, 0 * t], [1.0, 1.0, 1.0], [5, 6, 7])
    kept, followers = drop_followers(occ, 0.0, 0.0, BODY, JunctionConfig())
    assert followers == [5]                          # behind, our lane, our way
    assert sorted(kept.agent.tolist()) == [6, 7]     # left lane / ahead: still scored


def test_planner_brakes_for_a_stopped_car_without_fleeing_the_faster_follower():
    lanes, bounds = two_lanes_same_way()
    ahead = ObjectState(9, ObjectClass.CAR, 45.0, 0.0, 0.0, 4.6, 1.9, 1.5, is_static=True)
    follower = car(5, -14.0, 0.0, 0.0, 12.0)
    scene = PlanningScene(0.0, EgoState(0.0, 0.0, 0.0, 10.0), [ahead, follower], lanes, bounds)
    res = Planner(PlannerConfig()).plan(scene)
    assert res.junction.followers == [5]
    assert not res.emergency
    assert res.trajectory.speed.max() <= 13.9 + 0.3        # not fleeing above the limit
    # stops behind the parked car (or goes around it), comfortably
    assert res.trajectory.accel.min() > -PlannerConfig().search.comfort_decel - 0.3


def test_no_emergency_without_an_imminent_conflict_and_one_with_it():
    cfg = JunctionConfig()
    t = np.arange(51) * 0.2
    crossing = occupancy(40.0 + 0 * t, -30.0 + 8.0 * t, 0 * t, [0.6], [3])   # 40 m ahead
    imminent, ttc = imminent_conflict(crossing, t, 0.0, 0.0, 10.0, BODY, 3.0, cfg)
    assert not imminent                      # braking comfortably never reaches it
    stopped = occupancy(14.0 + 0 * t, 0 * t, 0 * t, [1.0], [4])
    imminent, ttc = imminent_conflict(stopped, t, 0.0, 0.0, 15.0, BODY, 3.0, cfg)
    assert imminent and ttc < cfg.imminent_ttc_s
    # the planner: a stopped car 12 m ahead at 15 m/s is an emergency ...
    lanes, bounds = two_lanes_same_way()
    blocked = [car(4, 16.0, 0.0, 0.0, 0.0), car(8, 16.0, 3.5, 0.0, 0.0)]
    res = Planner().plan(PlanningScene(0.0, EgoState(0.0, 0.0, 0.0, 15.0), blocked, lanes, bounds))
    assert res.emergency
    # ... a crossing car 40 m away at 10 m/s is not
    cross = [car(3, 40.0, -35.0, math.pi / 2, 8.0)]
    res = Planner().plan(PlanningScene(0.0, EgoState(0.0, 0.0, 0.0, 10.0), cross, lanes, bounds))
    assert not res.emergency


def test_deadlock_agents_only_when_every_blocker_stands_and_keeps_standing():
    cfg = JunctionConfig()
    t = np.arange(51) * 0.2
    # agent 7 standing beside our path; its "start" hypothesis crosses it
    occ = occupancy([12.0 + 0 * t, 12.0 + 0 * t], [-3.8 + 0 * t, -3.8 + 1.0 * t],
                    [0 * t, 0 * t], [0.8, 0.2], [7, 7], hd=0.95)
    occ.vs[1] = 1.0                                  # the moving hypothesis
    standing = {7: car(7, 12.0, -3.8, math.pi / 2, 0.0)}
    assert deadlock_agents(occ, standing, {7: 0.0}, t, 0.0, 0.0, 2.5, BODY, cfg) == [7]
    # its most probable future moves: not a mutual wait
    assert deadlock_agents(occ, standing, {7: 3.0}, t, 0.0, 0.0, 2.5, BODY, cfg) is None
    # it moves now: not a mutual wait
    moving = {7: car(7, 12.0, -3.8, math.pi / 2, 1.5)}
    assert deadlock_agents(occ, moving, {7: 0.0}, t, 0.0, 0.0, 2.5, BODY, cfg) is None
    d = discount_agents(occ, [7], 0.1)
    assert np.allclose(d.p, [0.8, 0.02])             # only the moving hypothesis


def merge_end():
    """Main lane y = 0 (+x) and an acceleration lane y = -3.5 on its right ending at
    x = 20; edges at -5.25 / 1.75."""
    short = XS[XS <= 20.0]
    lanes = [Lane(1, np.column_stack([XS, np.zeros_like(XS)]), 3.5, 13.9),
             Lane(2, np.column_stack([short, np.full_like(short, -3.5)]), 3.5, 13.9)]
    bounds = [np.column_stack([XS, np.full_like(XS, -5.25)]),
              np.column_stack([XS, np.full_like(XS, 1.75)])]
    return lanes, bounds


def _crossing_wait(planner, stamps, other):
    lanes, bounds = merge_end()
    out = []
    for t in stamps:
        scene = PlanningScene(t, EgoState(0.0, 0.0, 0.0, 0.0, stamp=t), [other], lanes, bounds)
        out.append(planner.plan(scene))
    return out


def test_planner_breaks_a_mutual_wait_slowly_and_yields_again_when_the_other_moves():
    cfg = PlannerConfig()
    cfg.futures.priors = dict(cfg.futures.priors, start=1.0)   # its start is likely
    jc = cfg.junction
    planner = Planner(cfg)
    # a car standing at the right edge of our lane, nose towards it (stuck at a merge)
    other = car(7, 12.0, -3.8, math.pi / 2, 0.0)
    stamps = np.arange(0.0, jc.deadlock_wait_s + 1.0, 0.1)
    res = _crossing_wait(planner, stamps, other)
    early = [r for r, t in zip(res, stamps) if t < jc.deadlock_wait_s - 0.5]
    late = res[-1]
    assert not any(r.junction.deadlock for r in early)
    # (the search's patience term tries a go around 2.5 s, then it waits again)
    settled = [r for r, t in zip(res, stamps) if 3.5 <= t < jc.deadlock_wait_s - 0.5]
    assert max(r.trajectory.x[-1] for r in settled) < 12.0 - 0.95   # waits before it
    assert late.junction.deadlock and late.junction.blockers == [7]
    assert late.trajectory.x[-1] - 0.9 > 12.0 + 0.95                # its rear passes it ...
    assert late.trajectory.speed.max() <= jc.deadlock_creep_speed + 0.3   # ... slowly
    # the other starts to move: no deadlock any more, the ego waits again
    moving = car(7, 12.0, -3.6, math.pi / 2, 1.2, accel=1.0)
    t_next = float(stamps[-1]) + 0.1
    res2 = _crossing_wait(planner, [t_next], moving)[0]
    assert not res2.junction.deadlock
