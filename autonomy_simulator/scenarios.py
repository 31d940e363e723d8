"""Named, seeded, parameterised scenario catalogue (no ROS).

    from autonomy_simulator import scenarios
    sc = scenarios.make("narrow_street_oncoming", seed=3, oncoming="proceed")
    sc.sim.step(); sc.goal; sc.route; sc.route_path

`make(name, seed, **params)` -> `Scenario` with
- `sim`: a ready `Simulation` (world, agents, ego; `autopilot=True` (default) attaches the
  scripted `EgoAutopilot` that drives the route for data; closed loop passes commands);
- `goal`: (x, y, yaw) of base_link (rear axle) at the destination, world frame ("odom");
- `route`: lane ids of `sim.world.lanes` from the ego's lane to the goal (consecutive
  lanes are successors or, for lane changes, left/right neighbours);
- `route_path`: the route as an Nx2 polyline (1 m spacing), what the autopilot follows;
- `params`: the parameters actually used (defaults filled in).

Catalogue (`CATALOGUE`): narrow_street_oncoming, double_lane_change_left_turn,
intersection_occlusion, parking_lot, highway_cut_in, pedestrian_crossing, and the junction /
merge scenarios of `junction_scenarios` (on_ramp_merge, roundabout, unsignalised_junction,
unprotected_left_turn); `random` builds a
random world with random traffic for training data (`random_scenario(seed)`).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional

import numpy as np

from autonomy_vehicle.vehicle_model import VehicleParams
from autonomy_stack.geometry import resample_polyline
from autonomy_simulator import worlds
from autonomy_simulator.agents import DriverParams, PedestrianAgent, make_car
from autonomy_simulator import junction_scenarios
from autonomy_simulator.scenario_base import Scenario, _finish, _traffic  # noqa: F401


# ====================================================================== catalogue
def narrow_street_oncoming(seed: int = 0, oncoming: str = "yield", ego_speed: float = 6.0,
                           oncoming_speed: float = 6.0, autopilot: bool = True) -> Scenario:
    """Parked cars and cones on both sides; an oncoming car reaches its parked cars while the
    ego approaches: it either yields (waits behind them) or goes around (parameter
    `oncoming`); the ego must pull over / wait or proceed."""
    if oncoming not in ("yield", "proceed"):
        raise ValueError("oncoming must be 'yield' or 'proceed'")
    w = worlds.narrow_street(seed)
    rng = np.random.default_rng(seed + 1)
    onc = w.params["oncoming_lane"]
    car = make_car(1, w, [onc], s=float(rng.uniform(6.0, 10.0)), speed=oncoming_speed, rng=rng,
                   params=DriverParams(v0=oncoming_speed + 1.0, narrow_mode=oncoming,
                                       lane_changes=False))
    driver = DriverParams(v0=ego_speed, lane_changes=False, narrow_mode="yield")
    return _finish("narrow_street_oncoming", seed, dict(oncoming=oncoming, ego_speed=ego_speed,
                                                        oncoming_speed=oncoming_speed),
                   w, [car], [w.params["ego_lane"]], ego_s=6.0, ego_speed=ego_speed,
                   autopilot=autopilot, driver=driver, description=narrow_street_oncoming.__doc__)


def double_lane_change_left_turn(seed: int = 0, density: float = 0.5, autopilot: bool = True,
                                 ego_speed: float = 10.0) -> Scenario:
    """Ego on the rightmost of three incoming lanes of the priority road must make two
    back-to-back lane changes to reach the left-turn lane before the intersection, in dense
    traffic, then turn left across oncoming traffic (the crossing road has stop lines)."""
    w = worlds.intersection(seed, lanes=3, arm_length=160.0, stop="minor")
    rng = np.random.default_rng(seed + 1)
    inc = w.params["incoming"]["west"]           # travelling +x; inc[0] is the left-turn lane
    route_in = [inc[2], inc[1], inc[0]]
    route = w.route_lanes(inc[0], ("left",))
    route = route_in + route[1:]
    n = int(round(density * 14))
    agents = _traffic(w, rng, n, inc, 1, avoid=[(inc[2], 10.0)], s_range=(0.0, 120.0),
                      speed_frac=(0.6, 0.9))
    others = [l for arm in ("north", "east", "south") for l in w.params["incoming"][arm]]
    agents += _traffic(w, rng, n // 2, others, 100, speed_frac=(0.5, 0.9))
    return _finish("double_lane_change_left_turn", seed, dict(density=density, ego_speed=ego_speed),
                   w, agents, route, ego_s=10.0, ego_speed=ego_speed, autopilot=autopilot,
                   driver=DriverParams(v0=12.0, lane_changes=False), change_at=[40.0, 80.0],
                   description=double_lane_change_left_turn.__doc__)


def intersection_occlusion(seed: int = 0, crossing_cars: int = 6, pedestrians: int = 2,
                           autopilot: bool = True) -> Scenario:
    """Ego waits at the stop line of the minor road while crossing traffic on the priority
    road (trucks included) temporarily occludes cars and pedestrians on the far side."""
    w = worlds.intersection(seed, lanes=2, stop="minor")
    rng = np.random.default_rng(seed + 1)
    inc = w.params["incoming"]
    ego_lane = inc["south"][-1]
    route = w.route_lanes(ego_lane, ("straight",))
    ego_s = w.lanes[ego_lane].length - 18.0
    agents = _traffic(w, rng, crossing_cars, inc["east"] + inc["west"], 1, truck_prob=0.4,
                      speed_frac=(0.7, 0.95), min_gap=25.0)
    agents += _traffic(w, rng, 2, inc["north"], 50, s_range=(30.0, 1e9), speed_frac=(0.3, 0.6))
    H, sd = w.params["half_width"], w.params["stop_distance"]
    for k in range(pedestrians):     # crossing the north arm on its crosswalk
        y = 0.5 * (H + sd) + (0.6 if k % 2 == 0 else -0.6) + float(rng.uniform(-0.2, 0.2))
        x0 = -(H + 2.0) if k % 2 == 0 else H + 2.0
        agents.append(PedestrianAgent(200 + k, np.array([[x0, y], [-x0, y]]),
                                      speed=float(rng.uniform(1.1, 1.6)),
                                      start_time=float(rng.uniform(0.0, 4.0)),
                                      wait_for_gap=True, road_span=(2.0, 2.0 + 2 * H)))
    return _finish("intersection_occlusion", seed, dict(crossing_cars=crossing_cars,
                                                        pedestrians=pedestrians),
                   w, agents, route, ego_s=ego_s, ego_speed=0.0, autopilot=autopilot,
                   driver=DriverParams(v0=8.0, lane_changes=False, gap_time=6.0),
                   description=intersection_occlusion.__doc__)


def parking_lot(seed: int = 0, occupancy: float = 0.75, target_bay: Optional[int] = None,
                autopilot: bool = True) -> Scenario:
    """Ego enters a parking lot and must park in the given free bay (`goal`) among parked
    cars, curbs and cones; the autopilot only drives the entrance/aisle (data)."""
    w = worlds.parking_lot(seed, occupancy=occupancy, target_bay=target_bay)
    lot = w.parking
    rng = np.random.default_rng(seed + 1)
    route = [w.params["entrance_lane"], w.params["aisle_lane"]]
    y = w.params["aisle_y"]
    x0, x1 = lot.bounds[0] + 3.0, lot.bounds[2] - 3.0
    agents = [PedestrianAgent(1, np.array([[x1, y + 2.5], [x0 + 8.0, y + 2.5]]), speed=1.2,
                              start_time=float(rng.uniform(0, 3)), wait_for_gap=False)]
    return _finish("parking_lot", seed, dict(occupancy=occupancy, target_bay=lot.target_bay), w,
                   agents, route, ego_s=5.0, ego_speed=2.0, autopilot=autopilot,
                   driver=DriverParams(v0=3.0, lane_changes=False), goal=lot.goal_pose,
                   description=parking_lot.__doc__)


def highway_cut_in(seed: int = 0, cut_in_time: float = 3.0, cut_in_gap: float = 15.0,
                   relative_speed: float = -3.0, traffic: int = 6, autopilot: bool = True) -> Scenario:
    """Three-lane highway; a car in the left lane, `relative_speed` faster/slower than the
    ego, cuts into the ego's lane at `cut_in_time`, `cut_in_gap` m (centre to centre) ahead."""
    w = worlds.road(seed, length=700.0, lanes_forward=3, lanes_backward=2, curved=True,
                    max_curvature=1 / 600, speed_limit=30.0, curbs=False)
    rng = np.random.default_rng(seed + 1)
    fwd = [lid for lid, ln in w.lanes.items() if ln.centerline[0, 0] < ln.centerline[-1, 0]]
    fwd.sort(key=lambda lid: -w.lanes[lid].centerline[0, 1])     # left (y high) to right
    ego_lane, left_lane = fwd[1], fwd[0]
    v_ego = 25.0
    ego_s = 20.0
    vehicle = VehicleParams()
    # placed so that the centre-to-centre gap is `cut_in_gap` when the cut-in starts
    cutter = make_car(1, w, [left_lane], s=ego_s + vehicle.center_offset + cut_in_gap
                      - relative_speed * cut_in_time,
                      speed=v_ego + relative_speed, rng=rng,
                      params=DriverParams(v0=v_ego + relative_speed, lane_changes=False, T=0.8),
                      cut_in_time=cut_in_time, cut_in_direction="right")
    agents = [cutter] + _traffic(w, rng, traffic, fwd, 10, avoid=[(ego_lane, ego_s), (left_lane, ego_s + cut_in_gap)],
                                 min_gap=30.0, speed_frac=(0.75, 0.95), s_range=(60.0, 600.0))
    bwd = [lid for lid in w.lanes if lid not in fwd]
    agents += _traffic(w, rng, traffic // 2, bwd, 50, speed_frac=(0.75, 0.95))
    return _finish("highway_cut_in", seed, dict(cut_in_time=cut_in_time, cut_in_gap=cut_in_gap,
                                                relative_speed=relative_speed, traffic=traffic),
                   w, agents, [ego_lane], ego_s=ego_s, ego_speed=v_ego, autopilot=autopilot,
                   driver=DriverParams(v0=v_ego, lane_changes=False, T=1.5),
                   description=highway_cut_in.__doc__)


def pedestrian_crossing(seed: int = 0, pedestrians: int = 3, crossing_x: float = 70.0,
                        jaywalker: bool = False, autopilot: bool = True) -> Scenario:
    """Two-lane road with a crossing at `crossing_x`; pedestrians step onto it while the
    ego is still far away (later ones wait for a gap, or not: `jaywalker`); the ego has to
    stop for them."""
    w = worlds.road(seed, length=200.0, lanes_forward=1, lanes_backward=1, curved=False,
                    speed_limit=13.9, n_cones=0)
    rng = np.random.default_rng(seed + 1)
    fwd = [lid for lid, ln in w.lanes.items() if ln.centerline[0, 0] < ln.centerline[-1, 0]][0]
    lw = w.params["lane_width"]
    half = lw + 0.6
    agents = []
    for k in range(pedestrians):
        x = crossing_x - 1.5 + 3.0 * k / max(pedestrians - 1, 1) + float(rng.uniform(-0.2, 0.2))
        side = -1 if k % 2 == 0 else 1
        y0 = side * (half + 2.0)
        agents.append(PedestrianAgent(1 + k, np.array([[x, y0], [x, -y0]]),
                                      speed=float(rng.uniform(1.0, 1.6)),
                                      start_time=0.4 * k + float(rng.uniform(0.0, 0.4)),
                                      wait_for_gap=not jaywalker, road_span=(2.0, 2.0 + 2 * half)))
    bwd = [lid for lid in w.lanes if lid != fwd]
    agents += _traffic(w, rng, 2, bwd, 20, speed_frac=(0.6, 0.9))
    w.crosswalks = [np.array([[crossing_x - 2, -half], [crossing_x + 2, -half],
                              [crossing_x + 2, half], [crossing_x - 2, half]])]
    return _finish("pedestrian_crossing", seed, dict(pedestrians=pedestrians, crossing_x=crossing_x,
                                                     jaywalker=jaywalker),
                   w, agents, [fwd], ego_s=10.0, ego_speed=10.0, autopilot=autopilot,
                   driver=DriverParams(v0=12.0, lane_changes=False),
                   description=pedestrian_crossing.__doc__)


def random_scenario(seed: int = 0, traffic: Optional[int] = None, autopilot: bool = True) -> Scenario:
    """Random world (any kind, random parameters), random traffic and pedestrians, ego on a
    random lane following a random route (training data)."""
    rng = np.random.default_rng(seed)
    w = worlds.random_world(int(rng.integers(2 ** 31)))
    candidates = [lid for lid, ln in w.lanes.items() if not ln.in_junction and ln.length > 30 and
                  ln.predecessors == []]
    if not candidates:
        candidates = [lid for lid, ln in w.lanes.items() if not ln.in_junction]
    ego_lane = int(candidates[int(rng.integers(len(candidates)))])
    route = w.route_lanes(ego_lane, rng=rng)
    ego_s = float(rng.uniform(3.0, max(4.0, min(30.0, w.lanes[ego_lane].length * 0.3))))
    n = int(rng.integers(3, 15)) if traffic is None else traffic
    lanes = [lid for lid, ln in w.lanes.items() if not ln.in_junction]
    agents = _traffic(w, rng, n, lanes, 1, avoid=[(ego_lane, ego_s)], min_gap=15.0)
    statics = np.array([[o.x, o.y] for o in w.static_objects]).reshape(-1, 2)
    peds = []
    for k in range(int(rng.integers(0, 4))):          # pedestrians walking across the road
        x, y, h = w.lanes[lanes[int(rng.integers(len(lanes)))]].pose_at(float(rng.uniform(5, 40)))
        a = h + math.pi / 2 * (1 if rng.random() < 0.5 else -1)
        p0 = np.array([x - 8 * math.cos(a), y - 8 * math.sin(a)])
        line = resample_polyline(np.stack([p0, p0 + 16 * np.array([math.cos(a), math.sin(a)])]), 0.5)
        if len(statics) and np.min(np.hypot(*(line[:, None, :] - statics[None]).transpose(2, 0, 1))) < 3.5:
            continue                                   # would walk through a parked car / pole
        if any(np.min(np.hypot(*(line[:, None, :] - q[None]).transpose(2, 0, 1))) < 1.5 for q in peds):
            continue
        peds.append(line)
        agents.append(PedestrianAgent(500 + k, line[[0, -1]],
                                      speed=float(rng.uniform(0.9, 1.7)),
                                      start_time=float(rng.uniform(0, 6)), road_span=(4.0, 12.0)))
    speed = w.lanes[ego_lane].speed_limit * float(rng.uniform(0.3, 0.8))
    return _finish("random", seed, dict(world=w.name, traffic=n), w, agents, route, ego_s=ego_s,
                   ego_speed=speed, autopilot=autopilot,
                   driver=DriverParams(v0=w.lanes[ego_lane].speed_limit * float(rng.uniform(0.6, 1.0)),
                                       lane_changes=False), description=random_scenario.__doc__)



CATALOGUE: Dict[str, Callable[..., Scenario]] = {
    "narrow_street_oncoming": narrow_street_oncoming,
    "double_lane_change_left_turn": double_lane_change_left_turn,
    "intersection_occlusion": intersection_occlusion,
    "parking_lot": parking_lot,
    "highway_cut_in": highway_cut_in,
    "pedestrian_crossing": pedestrian_crossing,
    **junction_scenarios.CATALOGUE,
    "random": random_scenario,
}


def make(name: str, seed: int = 0, **params) -> Scenario:
    """Build the named scenario; unknown names / parameters raise ValueError / TypeError."""
    if name not in CATALOGUE:
        raise ValueError(f"unknown scenario {name!r}; one of {sorted(CATALOGUE)}")
    return CATALOGUE[name](seed=seed, **params)


def parse_params(items) -> dict:
    """['key=value', ...] -> {key: int/float/bool/str}."""
    out = {}
    for it in items or []:
        k, _, v = it.partition("=")
        if v.lower() in ("true", "false"):
            out[k] = v.lower() == "true"
            continue
        for cast in (int, float):
            try:
                out[k] = cast(v)
                break
            except ValueError:
                continue
        else:
            out[k] = v
    return out
