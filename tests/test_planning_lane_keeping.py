"""Lane keeping (issue 16): the optimiser tracks the chosen lane's centre, bounded by
the corridor; the midpoint of the drivable area is not a target. Closed loop (planner +
tracking controller + kinematic bicycle), 10 s of keep/proceed at 20 m/s."""
import numpy as np
import pytest

from autonomy_planning.scene import Lane, PlanningScene
from autonomy_planning.trajectory_optimizer import clearance_target
from autonomy_stack.vector_space import EgoState

from bicycle_loop import drive

XS = np.linspace(-50.0, 700.0, 376)


def line(y, reverse=False):
    pts = np.column_stack([XS, np.full_like(XS, y)])
    return pts[::-1] if reverse else pts


def two_lanes(ego, t):
    """Two same-direction lanes at y = 0 (right, the ego's) and y = 4, edges at -2 / +6:
    the drivable area's midpoint (y = 2) is on the lane line."""
    return PlanningScene(t, ego, [], [Lane(1, line(0.0), 4.0, 20.0), Lane(2, line(4.0), 4.0, 20.0)],
                         [line(-2.0), line(6.0)])


def parallel_road(ego, t):
    """The ego's lane at y = 0 and an oncoming road 10.5 m to the left, no edges given."""
    return PlanningScene(t, ego, [], [Lane(1, line(0.0), 3.5, 20.0),
                                      Lane(2, line(10.5, reverse=True), 3.5, 20.0, oncoming=True)])


@pytest.mark.parametrize("make_scene", [two_lanes, parallel_road])
def test_keeps_lane_centre(make_scene):
    """Before the fix: 0.49 m (two lanes) and 2.30 m (parallel road) off after 10 s."""
    log = drive(make_scene, EgoState(0.0, 0.0, 0.0, 20.0), 10.0)
    assert set(log["maneuvers"]) == {"keep/proceed"}, set(log["maneuvers"])
    last = log["t"] > 8.0
    assert np.max(np.abs(log["y"][last])) <= 0.1, (make_scene.__name__, log["y"][-1])
    assert log["speed"][-1] > 18.0


def test_clearance_target_moves_away_from_close_bounds_only():
    d_ref = np.zeros(4)
    lo = np.array([-2.0, -0.1, -3.0, -0.2])
    hi = np.array([2.0, 2.0, 0.1, 0.2])
    tgt = clearance_target(d_ref, lo, hi, 0.3)
    # free: the maneuver's offset; a bound closer than 0.3 m: moved away from it; a
    # corridor narrower than 0.6 m: its midpoint
    assert np.allclose(tgt, [0.0, 0.2, -0.2, 0.0])
