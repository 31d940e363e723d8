"""The planning node's parking mode hook: PlanningScene -> PlanResult (no ROS)."""
import math

import pytest

from autonomy_planning.parking.mode import make_mode
from autonomy_planning.scene import Goal, PlanningScene
from autonomy_stack.vector_space import EgoState, ObjectClass, ObjectState
from parking_helpers import apply_primitives, small_lot

START = (3.0, 4.5, 0.0)
SEQ = [(1, 2), (1, 2), (1, 0), (1, -2), (1, -2), (1, 0)]


def _scene(goal=True, extra=()):
    lot = small_lot("open")
    agents = [ObjectState(id=i, object_class=ObjectClass.CAR, x=b.x, y=b.y, yaw=b.yaw,
                          length=b.length, width=b.width, height=1.5, is_static=True)
              for i, b in enumerate(lot.boxes)] + list(extra)
    g = apply_primitives(START, SEQ)
    return PlanningScene(stamp=10.0, ego=EgoState(x=START[0], y=START[1], yaw=START[2], stamp=10.0),
                         agents=agents, boundaries=[c for c in lot.curbs],
                         goal=Goal(g[0], g[1], g[2]) if goal else None)


@pytest.mark.timeout(60)
def test_parking_mode_plans_keeps_plan_and_replans_on_new_obstacle():
    mode = make_mode({"mode": "parking", "safe_stop_decel": 3.0, "parking_method": "astar_route"})
    sc = _scene()
    r1 = mode.plan(sc)
    assert r1.status == "ok" and r1.maneuver == "parking" and len(r1.trajectory) > 10
    assert r1.trajectory.stamp == 10.0 and r1.candidates_per_cycle > 0
    g = sc.goal
    assert math.hypot(r1.trajectory.x[-1] - g.x, r1.trajectory.y[-1] - g.y) < 0.6
    r2 = mode.plan(_scene())
    assert r2.trajectory is r1.trajectory            # no replanning while on the plan
    # a box dropped onto the planned path forces a replan (or a stop if blocked)
    i = len(r1.trajectory) // 2
    blocker = ObjectState(id=99, object_class=ObjectClass.BARRIER, x=float(r1.trajectory.x[i]),
                          y=float(r1.trajectory.y[i]), yaw=0.0, length=0.5, width=0.5, height=1.0)
    r3 = mode.plan(_scene(extra=[blocker]))
    assert r3.trajectory is not r1.trajectory


def test_parking_mode_without_goal_stops():
    r = make_mode({}).plan(_scene(goal=False))
    assert r.status == "no_goal" and r.maneuver == "parking_stop"
    assert abs(r.trajectory.speed[-1]) < 1e-9
