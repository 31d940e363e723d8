"""Closed loop on the simulator (autonomy_simulator.Simulation: bicycle ego driven by
ControlCommands, agents included): its curved road at 20 m/s, the scenario catalogue, and a
reverse parking manoeuvre through the simulator's gear handling."""
import math
from dataclasses import replace

import pytest

pytest.importorskip("autonomy_simulator.simulation")

from autonomy_tools.control_closed_loop import parking_trajectory          # noqa: E402
from autonomy_control.controller import ControllerConfig, TrackingController  # noqa: E402
from autonomy_tools.control_sim_eval import catalogue_runs, curvy_sim_road  # noqa: E402
from autonomy_stack.geometry import wrap_angle                       # noqa: E402
from autonomy_stack.vector_space import EgoState                      # noqa: E402


def test_simulator_curvy_road_at_20mps_mpc_beats_pure_pursuit():
    kw = dict(seed=2, v_max=20.0, length=600.0, max_curvature=1.0 / 60.0)
    res, _ = curvy_sim_road(cfg=ControllerConfig(lateral="mpc"), **kw)
    m = res.metrics()
    pp = curvy_sim_road(cfg=ControllerConfig(lateral="pure_pursuit"), **kw)[0].metrics()
    assert m["max_speed_mps"] > 19.0
    assert m["rms_lateral_m"] <= 0.05 and m["max_lateral_m"] <= 0.15, m
    assert m["rms_speed_error_mps"] <= 0.3, m
    assert m["rms_lateral_m"] < 0.5 * pp["rms_lateral_m"], (m, pp)
    assert not res.emergency.any()


def test_scenario_catalogue_closed_loop():
    runs = catalogue_runs(ControllerConfig(), v_cap=20.0, seed=0, max_duration=12.0,
                          with_agents=False)         # bench/control.py runs them with traffic
    assert len(runs) >= 6
    for name, m in runs.items():
        assert m["rms_lateral_m"] <= 0.05 and m["max_lateral_m"] <= 0.2, (name, m)
        assert m["rms_speed_error_mps"] <= 0.5, (name, m)
        assert m["emergency_steps"] == 0, (name, m)


def test_reverse_parking_through_the_simulator_gears():
    from autonomy_simulator import worlds
    from autonomy_simulator.simulation import Simulation
    sim = Simulation(worlds.road(0, length=100.0, curved=False), [], ego_start=(0.0, 0.0, 0.0, 0.0))
    tr = parking_trajectory()
    ctl = TrackingController(ControllerConfig())
    gears, now, v_min = set(), 0.0, 0.0
    for _ in range(int(30.0 / sim.dt)):
        e = sim.ego
        ctl.set_trajectory(replace(tr, stamp=now), now)
        ctl.set_odometry(EgoState(x=e.x, y=e.y, yaw=e.yaw, speed=e.speed,
                                  yaw_rate=e.yaw_rate, stamp=now), now)
        cmd, st = ctl.step(now)
        gears.add(cmd.gear)
        v_min = min(v_min, e.speed)
        sim.step(cmd)
        now += sim.dt
    e = sim.ego
    assert gears == {1, -1} and v_min < -1.0     # really reversed (sim applies -accel)
    assert math.hypot(e.x - tr.x[-1], e.y - tr.y[-1]) < 0.15
    assert abs(e.yaw - tr.yaw[-1]) < 0.03 and abs(e.speed) < 1e-3


def test_tracks_the_parking_planners_trajectory_with_a_cusp():
    """Integration with autonomy_planning.parking: its A* trajectory (signed speed, steering
    curvature, a dwell at the cusp) is driven into the bay within centimetres."""
    lot_mod = pytest.importorskip("autonomy_tools.parking_problems")
    planner_mod = pytest.importorskip("autonomy_planning.parking.planner")
    from autonomy_tools.control_closed_loop import ModelPlant
    from autonomy_vehicle.vehicle_model import VehicleParams
    pb = lot_mod.make_problem(2)
    plan = planner_mod.ParkingPlanner(method="astar_route").plan_detailed(
        pb.lot, pb.start, pb.goal, grid=pb.cache["grid"])
    assert plan.success
    tr = plan.trajectory
    assert tr.speed.min() < -0.5 and tr.speed.max() > 0.5        # forward and reverse
    ctl = TrackingController(ControllerConfig())
    x, y, yaw = pb.start
    plant = ModelPlant(EgoState(x=x, y=y, yaw=yaw), VehicleParams(), 0.02)
    now, max_lat, gears = 0.0, 0.0, set()
    for _ in range(int((tr.t[-1] + 8.0) / 0.02)):
        e = plant.state
        ctl.set_trajectory(replace(tr, stamp=now), now)
        ctl.set_odometry(EgoState(x=e.x, y=e.y, yaw=e.yaw, speed=e.speed,
                                  yaw_rate=e.yaw_rate, stamp=now), now)
        cmd, st = ctl.step(now)
        assert not cmd.emergency or now < 0.25
        gears.add(cmd.gear)
        if st.mode == "tracking":
            max_lat = max(max_lat, abs(st.lateral_error))
        plant.apply(cmd)
        now += 0.02
    e = plant.state
    assert gears == {1, -1}
    assert math.hypot(e.x - tr.x[-1], e.y - tr.y[-1]) < 0.05
    assert abs(wrap_angle(e.yaw - tr.yaw[-1])) < 0.02
    assert max_lat < 0.06 and abs(e.speed) < 1e-3
