"""Simulator behaviours: IDM keeps a safe gap, MOBIL changes lanes behind a slow car, the
narrow-street oncoming car yields or proceeds according to its parameter, stop lines."""
import math

import numpy as np
import pytest

from autonomy_simulator import scenarios, worlds
from autonomy_stack.geometry import boxes_overlap
from autonomy_simulator.agents import DriverParams, VehicleAgent
from autonomy_simulator.simulation import Simulation


def _straight(lanes_forward=1):
    return worlds.road(0, length=600.0, lanes_forward=lanes_forward, lanes_backward=0,
                       curved=False, n_cones=0, n_poles=0, speed_limit=30.0)


def _bumper_gap(lead, fol):
    return (lead.s - fol.s) - 0.5 * (lead.length + fol.length)


def test_idm_keeps_a_safe_gap_even_when_the_leader_brakes_hard():
    w = _straight()
    lane = next(iter(w.lanes))
    lead = VehicleAgent(1, w, [lane], s=80.0, speed=10.0,
                        params=DriverParams(v0=10.0, lane_changes=False))
    fol = VehicleAgent(2, w, [lane], s=10.0, speed=25.0,
                       params=DriverParams(v0=28.0, T=1.4, s0=2.0, lane_changes=False))
    sim = Simulation(w, [lead, fol], ego_start=(-200.0, 50.0, 0.0, 0.0))
    gaps, speeds = [], []
    for i in range(int(30.0 / sim.dt)):
        if abs(sim.t - 15.0) < 1e-9:
            lead.p.v0 = 0.01          # emergency stop of the leader (clipped at b_max)
        sim.step()
        gaps.append(_bumper_gap(lead, fol))
        speeds.append(fol.speed)
    gaps = np.array(gaps)
    assert gaps.min() > 1.0, f"follower came within {gaps.min():.2f} m"
    # settled behind the 10 m/s leader before the stop: gap near s0 + v T (IDM equilibrium)
    g_follow = gaps[int(14.0 / sim.dt)]
    assert 10.0 < g_follow < 30.0, g_follow
    assert fol.speed < 0.3 and lead.speed < 0.3       # leader crawls at IDM's minimum v0
    assert 1.0 < gaps[-1] < 4.0           # about s0 behind


def test_mobil_overtakes_a_slow_car():
    w = _straight(lanes_forward=2)
    lanes = sorted(w.lanes, key=lambda l: -w.lanes[l].centerline[0, 1])   # left, right
    slow = VehicleAgent(1, w, [lanes[1]], s=60.0, speed=8.0, params=DriverParams(v0=8.0, lane_changes=False))
    fast = VehicleAgent(2, w, [lanes[1]], s=10.0, speed=20.0, params=DriverParams(v0=25.0))
    sim = Simulation(w, [slow, fast], ego_start=(-200.0, 50.0, 0.0, 0.0))
    changed = False
    for _ in range(int(20.0 / sim.dt)):
        sim.step()
        changed |= fast.path.lane_at(fast.s) == lanes[0]
    assert changed, "the fast car never changed to the free left lane"
    assert fast.x > slow.x, "the fast car did not overtake"


def _run_narrow(mode, seed, duration=27.0):
    sc = scenarios.make("narrow_street_oncoming", seed=seed, oncoming=mode)
    sim = sc.sim
    car = sim.agents[0]
    onc_ids = sim.world.params["clusters"]["oncoming_side"]
    cluster_x0 = min(o.x - o.length / 2 for o in sim.world.static_objects if o.id in onc_ids)
    log = []
    for _ in range(int(duration / sim.dt)):
        sim.step()
        log.append((sim.t, sim.ego.x, car.x, car.y, car.speed, car.nudging))
    return np.array(log, dtype=float), cluster_x0, sim.world.params


@pytest.mark.parametrize("seed", [0])
def test_narrow_street_oncoming_car_yields(seed):
    log, cluster_x0, params = _run_narrow("yield", seed)
    t, ego_x, car_x, car_y, car_v, nudging = log.T
    before = ego_x < car_x - 3.0                       # the ego has not passed the car yet
    assert car_v[before].min() < 0.3, "the yielding car never stopped"
    assert not nudging[before].any(), "the yielding car moved out before the ego passed"
    lane_y = 0.5 * params["width"] / 2
    assert np.all(car_y[before] > lane_y - 0.3), "left its lane while the ego approached"
    assert car_x[-1] < cluster_x0 - 5.0, "never went around its parked cars after the ego passed"


@pytest.mark.parametrize("seed", [1])
def test_narrow_street_oncoming_car_proceeds(seed):
    log, cluster_x0, params = _run_narrow("proceed", seed)
    t, ego_x, car_x, car_y, car_v, nudging = log.T
    before = ego_x < car_x - 3.0
    assert nudging[before].any(), "the proceeding car did not go around before meeting the ego"
    lane_y = 0.5 * params["width"] / 2
    assert car_y[before].min() < lane_y - 1.2, "it did not move out into the ego's half"
    reach = car_x > cluster_x0 + 20.0            # approaching / passing its parked cars
    assert car_v[before & ~reach].min() > 2.0, "the proceeding car stopped"
    assert car_x[-1] < cluster_x0 - 5.0


def test_stop_line_all_way_stop():
    w = worlds.intersection(0, lanes=2, stop="all_way")
    lane = w.params["incoming"]["west"][-1]
    route = w.route_lanes(lane, ("straight",))
    car = VehicleAgent(1, w, route, s=20.0, speed=10.0, params=DriverParams(v0=12.0, lane_changes=False))
    sim = Simulation(w, [car], ego_start=(0.0, -300.0, 0.0, 0.0))
    stop_s = car.path.stops[0][1]
    stopped_at = None
    for _ in range(int(20.0 / sim.dt)):
        sim.step()
        if stopped_at is None and car.speed < 0.05 and car.s < stop_s:
            stopped_at = car.s
    assert stopped_at is not None, "did not stop at the stop line"
    assert stop_s - 0.5 * car.length - 3.0 < stopped_at < stop_s, (stopped_at, stop_s)
    assert car.s > stop_s + 10.0 or not car.active, "never went on after stopping"


def test_highway_cut_in_happens_and_the_autopilot_keeps_clear():
    sc = scenarios.make("highway_cut_in", seed=0, cut_in_time=2.0, cut_in_gap=15.0)
    sim = sc.sim
    cutter, brain = sim.agents[0], sim.autopilot.brain
    ego_lane = brain.path.lanes[0]
    assert cutter.path.lane_at(cutter.s) != ego_lane
    min_decel, hit = 0.0, False
    for _ in range(int(7.0 / sim.dt)):
        sim.step()
        min_decel = min(min_decel, sim.ego.accel)
        hit |= boxes_overlap(sim.ego_object().corners(), cutter.to_object().corners())
    assert cutter.path.lane_at(cutter.s) == ego_lane, "the car did not cut in"
    assert cutter.x > sim.ego.x and not hit
    assert min_decel < -2.0, "the ego did not react to the cut-in"


def test_pedestrian_crossing_jaywalkers_stop_the_ego():
    sc = scenarios.make("pedestrian_crossing", seed=2, jaywalker=True)
    sim = sc.sim
    peds = [a for a in sim.agents if a.object_class.name == "PEDESTRIAN"]
    min_v, hit = 1e9, False
    for _ in range(int(12.0 / sim.dt)):
        sim.step()
        min_v = min(min_v, sim.ego.speed)
        eo = sim.ego_object()
        hit |= any(boxes_overlap(eo.corners(), p.to_object().corners()) for p in peds)
    assert min_v < 0.5 and not hit
    assert any(p.s > 1.0 for p in peds)
