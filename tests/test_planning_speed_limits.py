"""Speed limits (issue 16): driving above the limit is a normal (comfortable)
deceleration, not an emergency; each lane's own limit is respected, a scene-wide limit
caps it only when given."""
import numpy as np

from autonomy_planning.planner import Planner
from autonomy_planning.scene import Lane, PlanningScene
from autonomy_planning.trajectory_optimizer import OptimizerConfig
from autonomy_stack.vector_space import EgoState

XS = np.linspace(-50.0, 900.0, 476)


def lane(limit, lane_id=1):
    return Lane(lane_id, np.column_stack([XS, np.zeros_like(XS)]), 3.5, limit)


def test_above_the_limit_is_a_comfortable_deceleration_not_an_emergency():
    planner = Planner()
    cfg = OptimizerConfig()
    for k in range(5):
        t = 0.1 * k
        ego = EgoState(30.0 * t, 0.0, 0.0, 30.0 - 2.0 * t, stamp=t)
        res = planner.plan(PlanningScene(t, ego, [], [lane(20.0)], []))
        tr = res.trajectory
        assert res.maneuver == "keep/proceed"
        assert not res.emergency, res.solves
        assert res.status == "ok"
        assert tr.accel.min() >= -cfg.max_decel - 0.05
        # down to the limit (and the corridor's 5 % tolerance) within the braking time
        assert np.all(tr.speed[tr.t >= 4.0] <= 20.0 * 1.05 + 0.1), tr.speed


def test_lane_limit_without_scene_limit_and_scene_limit_when_given():
    ego = EgoState(0.0, 0.0, 0.0, 15.0)
    free = Planner().plan(PlanningScene(0.0, ego, [], [lane(25.0)], [])).trajectory
    assert free.speed[-1] > 20.0          # the lane's 25 m/s, not a hidden 13.9 m/s cap
    capped = Planner().plan(PlanningScene(0.0, ego, [], [lane(25.0)], [], speed_limit=12.0))
    assert capped.trajectory.speed[-1] <= 12.0 * 1.05 + 0.05
    assert not capped.emergency


def test_a_slower_lane_ahead_on_the_route_is_entered_at_its_limit():
    """Lane 1 (20 m/s) leads into lane 2 (8 m/s) at x = 100: the ego slows down before
    its front enters lane 2, comfortably and without an emergency."""
    fast = Lane(1, np.column_stack([np.linspace(-50, 100, 76), np.zeros(76)]), 3.5, 20.0,
                successors=[2])
    slow = Lane(2, np.column_stack([np.linspace(100, 600, 251), np.zeros(251)]), 3.5, 8.0)
    planner = Planner()
    front = planner.body[0]
    res = planner.plan(PlanningScene(0.0, EgoState(0.0, 0.0, 0.0, 20.0), [], [fast, slow], []))
    tr = res.trajectory
    assert not res.emergency and tr.accel.min() >= -OptimizerConfig().max_decel - 0.05
    in_slow = tr.x + front > 100.0
    assert np.any(in_slow)
    assert np.all(tr.speed[in_slow] <= 8.0 * 1.05 + 0.2), tr.speed[in_slow]
    assert np.all(tr.speed[tr.x + front < 40.0] > 15.0)      # not slowed down long before
