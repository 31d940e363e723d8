"""Control core (no ROS): vehicle model with delay, closed-loop tracking figures on a curvy
road, MPC vs Pure Pursuit, reverse parking with a cusp, longitudinal PID."""
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from autonomy_tools.control_closed_loop import (curvy_road, parking_trajectory, run_closed_loop)
from autonomy_control.controller import (ControllerConfig, TrackingController,
                                         command_to_model_accel)
from autonomy_control.longitudinal import LongitudinalConfig, LongitudinalPID
from autonomy_control.reference import TrackingReference, split_segments
from autonomy_vehicle.vehicle_model import VehicleParams, VehiclePlant, step
from autonomy_stack.vector_space import EgoState

ROOT = Path(__file__).resolve().parent.parent


def test_core_modules_do_not_import_rclpy():
    for f in (ROOT / "autonomy_control").glob("*.py"):
        if f.name.endswith("_node.py"):
            continue
        src = f.read_text()
        assert not re.search(r"^\s*(import|from)\s+rclpy", src, re.M), f.name


def test_vehicle_plant_without_delay_is_step_and_delay_shifts_steering():
    s0 = EgoState(speed=5.0)
    p = VehiclePlant(s0, VehicleParams(), 0.02)
    assert p.step(0.2, 1.0) == step(s0, 0.2, 1.0, 0.02)
    pd = VehiclePlant(s0, VehicleParams(steer_delay=0.1), 0.02)
    assert pd.delay_steps == 5
    angles = [pd.step(0.2, 0.0).steering_angle for _ in range(8)]
    assert angles[:5] == [0.0] * 5 and angles[5] > 0.0


@pytest.fixture(scope="module")
def road15():
    return curvy_road(length=700.0, v_max=15.0, seed=0, v_start=15.0)


@pytest.fixture(scope="module")
def mpc15(road15):
    return run_closed_loop(road15, ControllerConfig(lateral="mpc"), duration=60.0).metrics()


def test_mpc_tracks_curvy_road_at_15mps(mpc15):
    m = mpc15
    assert m["max_speed_mps"] > 14.0
    assert m["rms_lateral_m"] <= 0.05, m
    assert m["max_lateral_m"] <= 0.15, m
    assert m["rms_heading_rad"] <= 0.01, m
    assert m["rms_speed_error_mps"] <= 0.3, m
    assert m["max_lateral_jerk_mps3"] <= 15.0, m


def test_mpc_beats_pure_pursuit_and_stanley_on_the_same_run(road15, mpc15):
    pp = run_closed_loop(road15, ControllerConfig(lateral="pure_pursuit"), 60.0).metrics()
    st = run_closed_loop(road15, ControllerConfig(lateral="stanley"), 60.0).metrics()
    assert mpc15["rms_lateral_m"] < 0.5 * pp["rms_lateral_m"], (mpc15, pp)
    assert mpc15["rms_lateral_m"] < 0.5 * st["rms_lateral_m"], (mpc15, st)
    assert pp["max_lateral_m"] < 1.0 and st["max_lateral_m"] < 1.5   # baselines still work


def test_mpc_at_20mps_with_steering_delay_compensated():
    road = curvy_road(length=800.0, v_max=20.0, a_lat=4.0, seed=1, v_start=20.0)
    vp = VehicleParams(steer_delay=0.1)
    m = run_closed_loop(road, ControllerConfig(vehicle=vp), 45.0, plant_params=vp).metrics()
    assert m["max_speed_mps"] > 19.0
    assert m["rms_lateral_m"] <= 0.05 and m["max_lateral_m"] <= 0.15, m


def run_parking(lateral="mpc", duration=32.0):
    tr = parking_trajectory()
    ctl = TrackingController(ControllerConfig(lateral=lateral))
    plant = VehiclePlant(EgoState(), VehicleParams(), 0.02)
    gears, lat, now = [], [], 0.0
    for _ in range(int(duration / 0.02)):
        e = plant.state
        ctl.set_trajectory(replace(tr, stamp=now), now)       # re-published every step
        ctl.set_odometry(EgoState(x=e.x, y=e.y, yaw=e.yaw, speed=e.speed,
                                  yaw_rate=e.yaw_rate, stamp=now), now)
        cmd, st = ctl.step(now)
        assert not cmd.emergency or now < 0.25
        gears.append(cmd.gear)
        if st.mode == "tracking":
            lat.append(abs(st.lateral_error))
        plant.step(cmd.steering_angle, command_to_model_accel(cmd.acceleration, cmd.gear))
        now += 0.02
    return tr, plant.state, gears, max(lat)


def test_reverse_parking_with_a_cusp():
    tr, e, gears, max_lat = run_parking()
    assert -1 in gears and 1 in gears
    assert e.speed == 0.0
    assert math.hypot(e.x - tr.x[-1], e.y - tr.y[-1]) < 0.15
    assert abs(e.yaw - tr.yaw[-1]) < 0.03
    assert max_lat < 0.1


def test_split_segments_at_the_cusp():
    tr = parking_trajectory()
    segs = split_segments(tr)
    assert [s.direction for s in segs] == [1, -1]
    assert segs[0].x[-1] == pytest.approx(segs[1].x[0])
    # reverse curvature is dyaw/d(signed s): backing into a right-hand bay turns the heading
    # counter-clockwise, so it is negative while the yaw grows
    assert np.all(segs[1].curvature <= 0.0) and segs[1].yaw_u[-1] > segs[1].yaw_u[0] + 1.5
    r = TrackingReference(tr)
    pr = r.project(4.0, 0.5, 0.1)
    assert pr.lateral == pytest.approx(0.5, abs=1e-6) and pr.heading == pytest.approx(0.1)


def test_longitudinal_feedforward_and_pid_track_a_speed_ramp():
    pid = LongitudinalPID(LongitudinalConfig())
    v, a_prev, dt = 0.0, 0.0, 0.02
    errs = []
    for i in range(500):
        t = i * dt
        v_ref = min(1.5 * t, 10.0)
        a_ref = 1.5 if t < 10.0 / 1.5 else 0.0
        a = pid.compute(v, v_ref, a_ref, 1, dt, a_prev)
        a_prev = a
        v = max(v + a * dt, 0.0)
        if t > 1.0:
            errs.append(abs(v_ref - v))
    assert max(errs) < 0.3 and errs[-1] < 0.05
    # reverse: negative reference, negative acceleration command
    pid = LongitudinalPID(LongitudinalConfig())
    a = pid.compute(0.0, -1.0, -0.5, -1, dt, 0.0)
    assert a < 0 and pid.gear == -1


@pytest.mark.parametrize("lateral,heading,steer", [(0.05, 0.01, 0.0), (-0.2, 0.02, 0.05),
                                                   (1.5, -0.1, 0.0)])
def test_condensed_mpc_matches_the_sparse_osqp_formulation(lateral, heading, steer):
    """The fast path (unconstrained Cholesky solve, OSQP only when a constraint binds) gives
    the same command as the full sparse QP solved by OSQP; the last case binds the
    steering-rate constraint."""
    from autonomy_control.lateral import (LateralContext, LateralMPC, LateralMPCSparse,
                                          MPCConfig)
    from autonomy_control.reference import PathSegment, Projection
    road = curvy_road(length=200.0, v_max=15.0, seed=4, v_start=15.0)
    seg = road.segment()
    s0 = 120.0
    x, y, yaw = seg.point_at(s0)
    ctx = LateralContext(seg=seg, proj=Projection(s0, lateral, heading, 0, 0, 0, abs(lateral)),
                         x=x, y=y, yaw=yaw, speed=12.0, steer=steer, steer_cmd_prev=steer,
                         dt=0.02)
    fast = LateralMPC(VehicleParams(), MPCConfig())
    ref = LateralMPCSparse(VehicleParams(), MPCConfig(eps=1e-7, max_iter=100000))
    u_fast, u_ref = fast.compute(ctx), ref.compute(ctx)
    assert u_fast == pytest.approx(u_ref, abs=2e-4)
    assert np.allclose(fast.predicted_lateral, ref.predicted_lateral, atol=2e-3)
    if abs(lateral) > 1.0:
        assert fast.last_status != "unconstrained"
        assert abs(u_fast - steer) <= fast.du_max + 1e-6
