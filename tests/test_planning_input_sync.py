"""PlanInputSync: a perception frame is planned with the odometry and road of its own stamp,
whatever order the three topics arrive in; late inputs time out into a flagged plan."""
from autonomy_planning.input_sync import PlanInputSync
from autonomy_stack.vector_space import EgoState


def _ego(t):
    return EgoState(x=10.0 * t, y=-1.0, stamp=t)


def test_objects_before_their_odometry_wait_for_it():
    s = PlanInputSync(wait_s=0.2)
    for t in (0.0, 0.02, 0.04):
        s.add_odom(_ego(t))
    s.add_objects(0.06, ["car"], wall_now=100.0)
    assert s.ready(100.01) is None          # the state at 0.06 is not there yet
    s.add_odom(_ego(0.06))
    f = s.ready(100.02)
    assert f.ego.stamp == 0.06 and f.ego.x == 0.6 and f.objects == ["car"] and not f.late
    assert s.ready(100.03) is None          # planned once


def test_odometry_ahead_of_the_frame_gives_the_state_at_the_frame():
    s = PlanInputSync()
    for t in (0.0, 0.02, 0.04, 0.06, 0.08):
        s.add_odom(_ego(t))
    s.add_objects(0.04, [], wall_now=0.0)
    assert s.ready(0.0).ego.stamp == 0.04
    s.add_objects(0.05, [], wall_now=0.0)    # between two odometry stamps: the one before
    assert s.ready(0.0).ego.stamp == 0.04


def test_road_of_the_same_stamp_when_synced_else_the_latest():
    s = PlanInputSync(sync_road=True)
    s.add_odom(_ego(0.1))
    s.add_road(0.0, ["old"])
    s.add_objects(0.1, [], wall_now=5.0)
    assert s.ready(5.05) is None             # road of 0.1 still on its way
    s.add_road(0.1, ["new"])
    assert s.ready(5.06).road == ["new"]
    u = PlanInputSync(sync_road=False)
    u.add_odom(_ego(0.1))
    u.add_road(0.0, ["only"])
    u.add_objects(0.1, [], wall_now=0.0)
    assert u.ready(0.0).road == ["only"]


def test_missing_input_times_out_into_a_late_plan_naming_it():
    s = PlanInputSync(wait_s=0.2, sync_road=True)
    s.add_odom(_ego(0.0))
    s.add_road(0.0, ["r"])
    s.add_objects(0.5, [], wall_now=10.0)
    assert s.ready(10.1) is None
    f = s.ready(10.25)
    assert f.late and f.ego.stamp == 0.0 and f.road == ["r"] and s.late == 1
    assert f.missing == ["odometry at the frame's stamp", "road of the frame's stamp"]


def test_a_newer_frame_supersedes_an_unplanned_one_and_time_going_back_resets():
    s = PlanInputSync()
    s.add_objects(1.0, ["a"], 0.0)
    s.add_objects(1.1, ["b"], 0.0)
    assert s.superseded == 1
    s.add_odom(_ego(1.1))
    assert s.ready(0.0).objects == ["b"]
    s.add_odom(_ego(0.2))                    # replay restarted
    assert [e.stamp for e in s.odoms] == [0.2]
