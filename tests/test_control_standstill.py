"""Control at standstill (issue 16): braking never commands reverse motion, also in a
plant that does not clamp the speed at zero (an outside simulator integrating
v += a dt): the deceleration asked for in one control period never exceeds the speed
left."""
import numpy as np
import pytest

from autonomy_control.controller import ControllerConfig, TrackingController
from autonomy_control.longitudinal import no_wrong_way
from autonomy_stack.vector_space import EgoState, Trajectory

DT = 0.02


def stopping_trajectory(stamp, v0=3.0, decel=2.0):
    """Straight along +x: v0 braking at `decel` to a standstill, then standing."""
    t = np.arange(101) * 0.1
    v = np.maximum(v0 - decel * t, 0.0)
    a = np.where(v > 0.0, -decel, 0.0)
    s = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * 0.1)])
    return Trajectory(t=t, x=s, y=np.zeros_like(t), yaw=np.zeros_like(t), speed=v, accel=a,
                      curvature=np.zeros_like(t), stamp=stamp)


def drive_unclamped(ctl, v0, seconds, replan=True):
    """Unclamped point-mass plant along x; returns the speeds (one per control step)."""
    x, v, speeds = 0.0, v0, []
    for k in range(int(seconds / DT)):
        now = k * DT
        if replan and k % 5 == 0 and now < 1.0:
            ctl.set_trajectory(stopping_trajectory(now, v0=v), now)
            x0 = x
        ctl.set_odometry(EgoState(x - x0 if replan else x, 0.0, 0.0, v, stamp=now), now)
        cmd, _ = ctl.step(now)
        assert cmd.gear == 1
        v += cmd.acceleration * DT          # no clamp at zero
        x += v * DT
        speeds.append(v)
    return np.array(speeds)


@pytest.mark.parametrize("lateral", ["pure_pursuit", "mpc"])
def test_tracking_a_stop_never_reverses(lateral):
    ctl = TrackingController(ControllerConfig(lateral=lateral))
    speeds = drive_unclamped(ctl, 3.0, 6.0)
    assert speeds.min() >= -1e-9, speeds.min()
    assert abs(speeds[-1]) < 0.05


def test_watchdog_stop_never_reverses():
    """The trajectory goes stale after 1 s: the comfortable stop brings the car to rest
    without rolling backwards."""
    ctl = TrackingController(ControllerConfig(lateral="pure_pursuit"))
    ctl.set_trajectory(stopping_trajectory(0.0, v0=2.0, decel=0.0), 0.0)
    speeds = drive_unclamped(ctl, 2.0, 8.0, replan=False)
    assert speeds.min() >= -1e-9, speeds.min()
    assert abs(speeds[-1]) < 1e-6


def test_no_wrong_way_limits_braking_to_the_speed_left():
    assert no_wrong_way(-3.0, 0.01, 1, DT) == pytest.approx(-0.5)
    assert no_wrong_way(-3.0, 2.0, 1, DT) == -3.0
    assert no_wrong_way(-3.0, 0.0, 1, DT) == 0.0
    # reverse gear: negative speed, a positive acceleration brakes it
    assert no_wrong_way(3.0, -0.01, -1, DT) == pytest.approx(0.5)
    assert no_wrong_way(3.0, 0.0, -1, DT) == 0.0
