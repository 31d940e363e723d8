"""Seeded junction and merge scenarios of the catalogue (issue 16), registered in
`scenarios.CATALOGUE`:

- `on_ramp_merge`         ego on an on-ramp must merge from an ending acceleration lane
                          into main-road traffic (`density`)
- `roundabout`            ego enters a four-arm roundabout with circulating traffic
                          (`density`) and leaves three exits later at the west arm (a left turn)
- `unsignalised_junction` ego crosses a priority road from a stop-controlled minor road
                          (no signals) through crossing traffic of `density`
- `unprotected_left_turn` ego turns left from the priority road across `oncoming` cars

`TIME_BUDGET_S`: seconds within which each should reach its goal (the benches' budgets).
"""
from __future__ import annotations

import numpy as np

from autonomy_simulator import junction_worlds, worlds
from autonomy_simulator.agents import DriverParams, make_car
from autonomy_simulator.scenario_base import Scenario, _finish, _traffic

TIME_BUDGET_S = {"on_ramp_merge": 40.0, "roundabout": 45.0, "unsignalised_junction": 40.0,
                 "unprotected_left_turn": 40.0}


def on_ramp_merge(seed: int = 0, density: float = 0.5, ego_speed: float = 12.0,
                  autopilot: bool = True) -> Scenario:
    """Ego on an on-ramp, main-road traffic in both lanes (`density` 0..1 of about 14
    cars); it must find a gap and merge before the acceleration lane ends."""
    w = junction_worlds.on_ramp(seed)
    rng = np.random.default_rng(seed + 1)
    p = w.params
    main = p["main_lanes"]
    route = [p["ramp_lane"], p["accel_lane"], main[-1]]
    n = int(round(density * 14))
    # main-road traffic around where the ego will merge (it starts ~60 m before the ramp end)
    agents = _traffic(w, rng, n, main, 1, min_gap=22.0, speed_frac=(0.7, 0.9),
                      s_range=(20.0, 260.0), truck_prob=0.1, lane_changes=False)
    agents += _traffic(w, rng, 2, p["back_lanes"], 50, speed_frac=(0.7, 0.9))
    driver = DriverParams(v0=20.0, lane_changes=False)
    return _finish("on_ramp_merge", seed, dict(density=density, ego_speed=ego_speed), w, agents,
                   route, ego_s=50.0, ego_speed=ego_speed, autopilot=autopilot, driver=driver,
                   change_at=[30.0], description=on_ramp_merge.__doc__)


def roundabout(seed: int = 0, density: float = 0.5, autopilot: bool = True) -> Scenario:
    """Ego approaches a four-arm roundabout from the south, enters when the ring allows and
    leaves at the west arm (three quarters round: a left turn); traffic enters from every
    arm (`density` 0..1 of about 10 cars)."""
    w = junction_worlds.roundabout(seed)
    rng = np.random.default_rng(seed + 1)
    arms = junction_worlds.ROUNDABOUT_ARMS
    route = junction_worlds.roundabout_route(w, "south", "west")
    agents = []
    n = int(round(density * 10))
    taken = []
    for k in range(n * 4):
        if len(agents) >= n:
            break
        src = arms[int(rng.integers(4))]
        if src == "south" and rng.random() < 0.7:
            continue                                 # mostly from the other arms
        dst = arms[(arms.index(src) + int(rng.integers(1, 4))) % 4]
        lane = w.params["incoming"][src][0]
        s = float(rng.uniform(5.0, 55.0))
        if any(l == lane and abs(s - s2) < 15.0 for l, s2 in taken) or \
                (src == "south" and s > 40.0):
            continue
        taken.append((lane, s))
        agents.append(make_car(1 + len(agents), w, junction_worlds.roundabout_route(w, src, dst),
                               s, float(rng.uniform(5.0, 9.0)), rng, lane_changes=False,
                               v0=float(rng.uniform(9.0, 11.0)), gap_time=3.0))
    return _finish("roundabout", seed, dict(density=density), w, agents, route, ego_s=30.0,
                   ego_speed=6.0, autopilot=autopilot,
                   driver=DriverParams(v0=9.0, lane_changes=False, gap_time=3.0),
                   description=roundabout.__doc__)


def unsignalised_junction(seed: int = 0, density: float = 0.5, autopilot: bool = True) -> Scenario:
    """Four-way junction without signals: the ego comes from the minor (stop-controlled)
    south arm and goes straight across the priority road through crossing traffic
    (`density` 0..1 of about 10 cars) and some cars on the minor arms."""
    w = worlds.intersection(seed, lanes=1, stop="minor", crosswalks=False)
    rng = np.random.default_rng(seed + 1)
    inc = w.params["incoming"]
    ego_lane = inc["south"][0]
    route = w.route_lanes(ego_lane, ("straight",))
    n = int(round(density * 10))
    agents = _traffic(w, rng, n, inc["east"] + inc["west"], 1, truck_prob=0.15,
                      speed_frac=(0.7, 0.95), min_gap=20.0)
    agents += _traffic(w, rng, 1 + n // 4, inc["north"], 50, s_range=(20.0, 1e9),
                       speed_frac=(0.4, 0.7))
    return _finish("unsignalised_junction", seed, dict(density=density), w, agents, route,
                   ego_s=w.lanes[ego_lane].length - 35.0, ego_speed=6.0, autopilot=autopilot,
                   driver=DriverParams(v0=9.0, lane_changes=False),
                   description=unsignalised_junction.__doc__)


def unprotected_left_turn(seed: int = 0, oncoming: int = 6, autopilot: bool = True) -> Scenario:
    """Ego on the priority road (west arm, left-turn lane) turns left to the north across
    `oncoming` cars coming from the east (no signal, no protected phase)."""
    w = worlds.intersection(seed, lanes=2, stop="minor", crosswalks=False)
    rng = np.random.default_rng(seed + 1)
    inc = w.params["incoming"]
    ego_lane = inc["west"][0]
    route = w.route_lanes(ego_lane, ("left",))
    east = inc["east"]
    agents = []
    for k, lid in enumerate(east * ((oncoming + 1) // 2)):
        if len(agents) >= oncoming:
            break
        s = 5.0 + 26.0 * (k // 2) + float(rng.uniform(0.0, 8.0)) + 9.0 * (k % 2)
        if s > w.lanes[lid].length - 10.0:
            continue
        agents.append(make_car(1 + len(agents), w, w.route_lanes(lid, ("straight",)), s,
                               float(rng.uniform(8.0, 11.0)), rng, lane_changes=False,
                               v0=float(rng.uniform(11.0, 13.9))))
    agents += _traffic(w, rng, 2, inc["north"] + inc["south"], 50, s_range=(20.0, 1e9),
                       speed_frac=(0.4, 0.7))
    ego_s = w.lanes[ego_lane].length - 40.0
    return _finish("unprotected_left_turn", seed, dict(oncoming=oncoming), w, agents, route,
                   ego_s=ego_s, ego_speed=8.0, autopilot=autopilot,
                   driver=DriverParams(v0=10.0, lane_changes=False, gap_time=5.0),
                   description=unprotected_left_turn.__doc__)


CATALOGUE = {"on_ramp_merge": on_ramp_merge, "roundabout": roundabout,
             "unsignalised_junction": unsignalised_junction,
             "unprotected_left_turn": unprotected_left_turn}
