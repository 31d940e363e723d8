"""Watchdog: stale trajectory, odometry that stops or is NaN, trajectory behind the car,
huge curvature, NaN trajectory -> comfortable stop within the deceleration and jerk bounds,
ERROR status, no exception; recovery when good inputs return."""
import math
from dataclasses import replace

import numpy as np
import pytest

from autonomy_tools.control_closed_loop import PlannerEmulator, curvy_road, run_closed_loop
from autonomy_control.controller import ControllerConfig, TrackingController
from autonomy_control.longitudinal import StopConfig, comfortable_stop_accel
from autonomy_control.watchdog import ERROR, OK, WatchdogConfig, check_trajectory
from autonomy_stack.vector_space import EgoState, Trajectory

DT = 0.02
FAULT_AT, FAULT_END = 4.0, 14.0
STOP = StopConfig()


@pytest.fixture(scope="module")
def road():
    return curvy_road(length=500.0, v_max=12.0, seed=3, v_start=12.0)


def assert_comfortable_stop(res, t0=FAULT_AT, t1=FAULT_END):
    m = (res.t >= t0) & (res.t < t1)
    a = res.accel_cmd[m]
    v = res.speed[m]
    moving = np.abs(v[1:]) > 1e-3          # commands issued while the car moves
    jerk = np.diff(a) / DT
    assert np.all(np.abs(a) <= STOP.decel + 1e-6), np.abs(a).max()
    assert np.all(np.abs(jerk[moving]) <= STOP.jerk + 1e-6), np.abs(jerk[moving]).max()
    assert np.all(res.emergency[m][int(0.4 / DT):])          # flagged once faulted (stale: > 0.3 s)
    assert np.all(res.levels[m][int(0.4 / DT):] == ERROR)
    # 12 m/s at 3 m/s^2 with a 4 m/s^3 jerk ramp: standstill well before t1
    stopped = np.nonzero(np.abs(v) < 1e-3)[0]
    assert len(stopped) and res.t[m][stopped[0]] - t0 < 7.0
    assert np.all(np.abs(v[stopped[0]:]) < 1e-3)              # stays stopped
    return res.t[m][stopped[0]] - t0


def assert_recovers(res, t1=FAULT_END):
    after = res.t > t1 + 1.0
    modes = [md for md, keep in zip(res.modes, after) if keep]
    assert "tracking" in modes
    assert res.speed[-1] > 3.0                                 # driving again
    assert not res.emergency[-1] and res.levels[-1] == OK


def fault_window(t):
    return FAULT_AT <= t < FAULT_END


def run(road, perturb, duration=22.0):
    return run_closed_loop(road, ControllerConfig(), duration, perturb=perturb,
                           stop_at_end=False)


def test_stale_trajectory(road):
    res = run(road, lambda t, tr, od: (None if fault_window(t) else tr, od))
    assert_comfortable_stop(res)
    assert_recovers(res)


def test_odometry_stops(road):
    res = run(road, lambda t, tr, od: (tr, None if fault_window(t) else od))
    t_stop = assert_comfortable_stop(res)
    assert t_stop > 0.5           # dead-reckoned speed: it brakes, it does not just cut off
    assert_recovers(res)


def test_nan_odometry(road):
    def perturb(t, tr, od):
        if fault_window(t):
            od = replace(od, x=float("nan"), speed=float("nan"))
        return tr, od
    res = run(road, perturb)
    assert_comfortable_stop(res)
    assert_recovers(res)


def test_trajectory_behind_the_car(road):
    def perturb(t, tr, od):
        if tr is not None and fault_window(t):
            tr = replace(tr, x=tr.x - 60.0 * np.cos(tr.yaw[0]), y=tr.y - 60.0 * np.sin(tr.yaw[0]))
            tr = replace(tr, t=tr.t[:20], x=tr.x[:20], y=tr.y[:20], yaw=tr.yaw[:20],
                         speed=tr.speed[:20], accel=tr.accel[:20], curvature=tr.curvature[:20])
        return tr, od
    res = run(road, perturb)
    assert_comfortable_stop(res)
    assert_recovers(res)
    # steered along the last good path while stopping: stayed close to the road
    m = (res.t >= FAULT_AT) & (res.t < FAULT_END)
    assert np.max(np.abs(res.lateral[m])) < 0.3


def test_huge_curvature_and_nan_trajectory(road):
    def perturb(t, tr, od):
        if tr is not None and fault_window(t):
            k = tr.curvature.copy()
            if t < 9.0:
                k[5] = 5.0
            else:
                k[3] = float("nan")
            tr = replace(tr, curvature=k)
        return tr, od
    res = run(road, perturb)
    assert_comfortable_stop(res)
    assert_recovers(res)


def test_check_trajectory_reasons():
    n = 10
    good = Trajectory(t=np.arange(n) * 0.1, x=np.arange(n) * 1.0, y=np.zeros(n), yaw=np.zeros(n),
                      speed=np.full(n, 10.0), accel=np.zeros(n), curvature=np.zeros(n))
    cfg = WatchdogConfig()
    assert check_trajectory(good, cfg) is None
    assert "point" in check_trajectory(replace(good, t=good.t[:1], x=good.x[:1], y=good.y[:1],
                                               yaw=good.yaw[:1], speed=good.speed[:1],
                                               accel=good.accel[:1],
                                               curvature=good.curvature[:1]), cfg)
    assert "increasing" in check_trajectory(replace(good, t=good.t[::-1].copy()), cfg)
    assert "frame" in check_trajectory(replace(good, frame_id="base_link"), cfg)
    assert "speed" in check_trajectory(replace(good, speed=np.full(n, 80.0)), cfg)
    y = good.y.copy()
    y[2] = np.inf
    assert "'y'" in check_trajectory(replace(good, y=y), cfg)


def test_comfortable_stop_profile_bounds_from_full_throttle():
    v, a, t = 20.0, 3.0, 0.0        # accelerating hard when the fault hits
    prev = a
    while v > 0 and t < 30:
        a = comfortable_stop_accel(v, a, DT, STOP)
        assert abs(a) <= STOP.decel + 1e-9
        if v > 1e-3:                # the hold command at rest (a = 0) is no jerk of the car
            assert abs(a - prev) <= STOP.jerk * DT + 1e-9
        prev = a
        v = max(v + a * DT, 0.0)
        t += DT
    assert v == 0.0 and t < 10.0


def test_controller_without_inputs_commands_a_stop_and_reports_error():
    ctl = TrackingController(ControllerConfig())
    cmd, st = ctl.step(0.0)
    assert cmd.emergency and cmd.acceleration == 0.0 and st.level == ERROR
    assert "no trajectory" in st.message and "no odometry" in st.message


def test_time_jump_back_keeps_commanding_a_stop_then_resumes():
    """The clock jumps back 5 s while tracking: every step still returns a command, a safe
    stop while the trajectory / odometry are stamped on the old clock (now the future),
    the jump is counted once and the time-dependent state starts afresh; inputs stamped on
    the new clock bring tracking back after recovery_time."""
    ctl = TrackingController(ControllerConfig(lateral="pure_pursuit"))
    n = 60
    t = np.arange(n) * 0.1

    def feed(now, x):
        ctl.set_trajectory(Trajectory(t=t, x=x + 8.0 * t, y=np.zeros(n), yaw=np.zeros(n),
                                      speed=np.full(n, 8.0), accel=np.zeros(n),
                                      curvature=np.zeros(n), stamp=now, frame_id="odom"), now)
        ctl.set_odometry(EgoState(x=x, y=0.0, yaw=0.0, speed=8.0, stamp=now), now)

    now, x = 100.0, 0.0
    for k in range(100):                           # 2 s of tracking
        if k % 5 == 0:
            feed(now, x)
        cmd, st = ctl.step(now)
        now, x = now + DT, x + 8.0 * DT
    assert st.mode == "tracking" and not cmd.emergency
    ctl.longitudinal.integral = 1.0                # some PID state timed on the old clock
    now -= 5.0                                     # the clock jumps back 5 s
    cmd, st = ctl.step(now)
    assert cmd is not None and cmd.emergency and st.level == ERROR, st.message
    assert cmd.acceleration <= 0.0
    assert any("future" in f for f in st.faults), st.faults
    assert st.counters["time_jumps_back"] == 1
    assert ctl.last_time_jump == pytest.approx((now + 5.0 - DT, now))
    assert ctl.longitudinal.integral == 0.0 and ctl.watchdog.good_since is None
    resumed = None
    for k in range(1, 100):                        # inputs on the new clock
        now, x = now + DT, x + 8.0 * DT
        if k % 5 == 0:
            feed(now, x)
        cmd, st = ctl.step(now)
        assert cmd is not None
        if not cmd.emergency and resumed is None:
            resumed = k * DT
    assert resumed is not None and resumed < 0.5, resumed
    assert st.mode == "tracking" and st.counters["time_jumps_back"] == 1
