"""Control holds a stop (issue 15): after a rejected trajectory the command stays a stop
until `resume_after_valid` valid trajectories in a row (bad and good interleaved used to
flip the command between stop and resume, 37-44 % emergency); a supervisor stop brings the
car to the watchdog's bounded comfortable stop, names the reason at ERROR and holds until
cleared."""
import math
from dataclasses import replace

import numpy as np
import pytest

from autonomy_control.controller import ControllerConfig, TrackingController, \
    command_to_model_accel
from autonomy_control.longitudinal import StopConfig
from autonomy_control.watchdog import ERROR, WatchdogConfig
from autonomy_stack.vector_space import EgoState, Trajectory
from autonomy_vehicle.vehicle_model import VehicleParams, step as model_step

DT = 0.02           # control at 50 Hz
PLAN_PERIOD = 5     # a trajectory every 5 steps (10 Hz)
V = 8.0


def straight_trajectory(x0: float, stamp: float, bad: bool = False) -> Trajectory:
    n = 60
    t = np.arange(n) * 0.1
    tr = Trajectory(t=t, x=x0 - 2.0 + V * t, y=np.zeros(n), yaw=np.zeros(n),
                    speed=np.full(n, V), accel=np.zeros(n), curvature=np.zeros(n),
                    stamp=stamp, frame_id="odom")
    if bad:
        tr.speed = tr.speed.copy()
        tr.speed[7] = float("nan")          # rejected by the watchdog's static checks
    return tr


def drive(ctl: TrackingController, plan_kind, seconds: float, ego: EgoState, t0: float,
          supervisor_at=None):
    """Closed loop on the vehicle model; `plan_kind(k)` -> "good" | "bad" | None for the
    k-th planning tick. Returns (ego, t, rows of (t, speed, accel, emergency, level, mode,
    message))."""
    vp = ctl.cfg.vehicle
    rows = []
    n = int(round(seconds / DT))
    t = t0
    for i in range(n):
        if i % PLAN_PERIOD == 0:
            kind = plan_kind(i // PLAN_PERIOD)
            if kind is not None:
                ctl.set_trajectory(straight_trajectory(ego.x, t, kind == "bad"), t)
        if supervisor_at is not None and abs(t - supervisor_at) < DT / 2:
            ctl.set_supervisor_stop("off_road: footprint 0.52 m outside (limit 0.30 m)")
        ctl.set_odometry(replace(ego, stamp=t), t)
        cmd, st = ctl.step(t)
        rows.append((t, ego.speed, cmd.acceleration, cmd.emergency, st.level, st.mode,
                     st.message))
        ego = model_step(ego, cmd.steering_angle,
                         command_to_model_accel(cmd.acceleration, cmd.gear), DT, vp)
        t += DT
    return ego, t, rows


def warmed_up(cfg: ControllerConfig = ControllerConfig()):
    ctl = TrackingController(cfg)
    ego, t, rows = drive(ctl, lambda k: "good", 2.0, EgoState(speed=V), 100.0)
    assert rows[-1][5] == "tracking" and not rows[-1][3]
    return ctl, ego, t


def emergency_fraction(rows) -> float:
    return float(np.mean([r[3] for r in rows]))


def test_interleaved_bad_and_good_trajectories_hold_the_stop():
    ctl, ego, t = warmed_up()
    k = ctl.cfg.watchdog.resume_after_valid
    assert k >= 2
    ego, t, rows = drive(ctl, lambda i: "bad" if i % 2 == 0 else "good", 6.0, ego, t)
    # the command is a stop all along: flagged, ERROR, never tracking, speed never rises
    assert emergency_fraction(rows) == 1.0
    assert all(r[4] == ERROR for r in rows)
    assert not any(r[5] == "tracking" for r in rows)
    speeds = np.array([r[1] for r in rows])
    assert np.all(np.diff(speeds) <= 1e-9)
    assert speeds[-1] < 1e-3                        # 8 m/s at <= 3 m/s^2: stopped in 6 s
    assert "rejected trajectory" in rows[-1][6]
    # K valid trajectories in a row -> tracking resumes, the car drives off again
    ego, t, rows = drive(ctl, lambda i: "good", 4.0, ego, t)
    first_tracking = next(i for i, r in enumerate(rows) if r[5] == "tracking")
    # resumes at the K-th good trajectory (+ recovery_time), not before
    assert (k - 1) * PLAN_PERIOD <= first_tracking <= (k + 1) * PLAN_PERIOD + \
        int(ctl.cfg.watchdog.recovery_time / DT) + 1
    assert not rows[-1][3] and rows[-1][1] > 2.0


def test_fewer_than_k_good_trajectories_do_not_resume():
    cfg = replace(ControllerConfig(), watchdog=replace(WatchdogConfig(), resume_after_valid=4))
    ctl, ego, t = warmed_up(cfg)
    pattern = ["bad", "good", "good", "good"] * 5          # 3 good in a row < K = 4
    ego, t, rows = drive(ctl, lambda i: pattern[i % len(pattern)], 8.0, ego, t)
    assert emergency_fraction(rows) == 1.0
    assert not any(r[5] == "tracking" for r in rows)


def test_supervisor_stop_is_a_bounded_stop_held_until_cleared():
    ctl, ego, t = warmed_up()
    stop = StopConfig()
    ego, t, rows = drive(ctl, lambda i: "good", 8.0, ego, t, supervisor_at=t + 0.5)
    after = [r for r in rows if r[0] >= t - 8.0 + 0.5 - 1e-9]
    acc = np.array([r[2] for r in after])
    assert np.all(np.abs(acc) <= stop.decel + 1e-6)
    moving = np.array([r[1] for r in after])[1:] > 1e-3
    assert np.all(np.abs(np.diff(acc) / DT)[moving] <= stop.jerk + 1e-6)
    assert all(r[3] and r[4] == ERROR for r in after)
    assert "supervisor: off_road" in after[-1][6]
    assert after[-1][1] < 1e-3 and after[-1][5] == "stopped"
    # valid trajectories keep coming: the supervisor stop holds
    ego, t, rows = drive(ctl, lambda i: "good", 3.0, ego, t)
    assert all(r[3] for r in rows) and rows[-1][1] < 1e-3
    ctl.clear_supervisor_stop()
    ego, t, rows = drive(ctl, lambda i: "good", 3.0, ego, t)
    assert rows[-1][5] == "tracking" and rows[-1][1] > 2.0


def test_supervisor_stop_decel_is_the_smaller_bound():
    """The supervisor may ask for a gentler stop than the watchdog's bound, never harsher."""
    ctl, ego, t = warmed_up()
    ctl.set_supervisor_stop("over_speed", decel=1.5)
    ego, t, rows = drive(ctl, lambda i: "good", 8.0, ego, t)
    acc = np.array([r[2] for r in rows])
    assert np.abs(acc).max() <= 1.5 + 1e-6
    assert np.abs(acc).max() > 1.4
    assert rows[-1][1] < 1e-3
    ctl2, ego2, t2 = warmed_up()
    ctl2.set_supervisor_stop("over_speed", decel=9.0)
    ego2, t2, rows2 = drive(ctl2, lambda i: "good", 2.0, ego2, t2)
    assert np.abs([r[2] for r in rows2]).max() <= StopConfig().decel + 1e-6
    assert math.isfinite(rows2[-1][1])
