"""Planner benchmark: cycle time with 20 agents and a 10 s horizon on this CPU, candidates
per cycle, and closed-loop results for every catalogue scenario (ground-truth perception,
the control developer's tracking controller, simulator ego model).

    bench/run planner [--quick] [--seed N]

Timing: `highway_cut_in` with exactly 20 agents (3 + 2 lane highway, a cut-in, traffic
both ways) driven closed loop for 20 s; every 10 Hz `Planner.plan` call is timed
(wall clock, single thread; the process CPU time per cycle and the 1-minute load average
of this shared machine are printed next to it, since other jobs inflate wall time). Scenarios: each catalogue scenario closed loop until its goal is reached or
its time budget ends; collisions (ego body overlapping any object), goal reached, nuPlan
comfort of the executed motion (max |lateral acceleration|, max |jerk|, longitudinal
acceleration range), emergency-plan time. `parking_lot` is driven by the driving planner
(entrance and aisle): parking into the bay is the parking mode's job, so its goal is not
expected to be reached here. The last printed line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from autonomy_tools.planning_closed_loop import NUPLAN_LIMITS, run_scenario  # noqa: E402
from autonomy_planning.planner import Planner, PlannerConfig  # noqa: E402
from autonomy_simulator import scenarios  # noqa: E402

SCENARIOS = [
    ("narrow_street_oncoming", dict(oncoming="yield"), 40.0, "narrow_street_oncoming[yield]"),
    ("narrow_street_oncoming", dict(oncoming="proceed"), 40.0, "narrow_street_oncoming[proceed]"),
    ("double_lane_change_left_turn", dict(), 70.0, "double_lane_change_left_turn"),
    ("intersection_occlusion", dict(), 60.0, "intersection_occlusion"),
    ("parking_lot", dict(), 25.0, "parking_lot"),
    ("highway_cut_in", dict(), 50.0, "highway_cut_in"),
    ("pedestrian_crossing", dict(), 45.0, "pedestrian_crossing"),
]


def timing(seed: int, duration: float):
    sc = scenarios.make("highway_cut_in", seed=seed, traffic=13)
    n_agents = len(sc.sim.agents)
    planner = Planner(PlannerConfig())
    res = run_scenario(sc, duration, planner=planner, check_corridor=False)
    ms = np.asarray(res.plan_ms[3:])       # skip the first cycles (caches, OSQP set-up)
    cpu = np.asarray(res.plan_cpu_ms[3:])
    stages = {k: float(np.median([t[k] for t in res.timings[3:]]))
              for k in ("frame", "futures", "search", "corridor", "optimize")}
    return n_agents, ms, cpu, res.candidates_per_cycle, stages


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="shorter runs (smoke)")
    ap.add_argument("--timing-only", action="store_true", help="only the 20-agent timing")
    a = ap.parse_args(argv)
    scale = 0.4 if a.quick else 1.0
    load0 = os.getloadavg()[0]
    n_agents, ms, cpu, cand, stages = timing(a.seed, 20.0 * scale)
    load1 = os.getloadavg()[0]
    print(f"timing: {n_agents} agents, {len(ms)} cycles, p50 {np.percentile(ms, 50):.1f} ms, "
          f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms, candidates {cand}, "
          f"stage medians (ms) {json.dumps({k: round(v, 1) for k, v in stages.items()})}, "
          f"load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} CPUs", flush=True)
    out = {}
    for name, params, dur, key in ([] if a.timing_only else SCENARIOS):
        sc = scenarios.make(name, seed=a.seed, **params)
        t0 = time.time()
        res = run_scenario(sc, dur * scale, planner=Planner(PlannerConfig()),
                           stop_when=lambda sim, r: r.goal_reached and sim.ego.speed < 0.5)
        c = res.comfort()
        corr_in = max((x["obstacle_intrusion"] for x in res.corridor), default=float("nan"))
        corr_out = max((x["trajectory_excursion"] for x in res.corridor), default=float("nan"))
        out[key] = {
            "collisions": len({oid for _, oid in res.collisions}),
            "goal_reached": bool(res.goal_reached),
            "max_lat_acc": round(c["max_lat_acc"], 3),
            "max_jerk": round(c["max_jerk"], 3),
            "min_lon_acc": round(c["min_lon_acc"], 3),
            "max_lon_acc": round(c["max_lon_acc"], 3),
            "comfort_ok": bool(c["max_lat_acc"] <= NUPLAN_LIMITS["max_lat_acc"]
                               and c["max_jerk"] <= NUPLAN_LIMITS["max_jerk"]
                               and c["min_lon_acc"] >= NUPLAN_LIMITS["min_lon_acc"]
                               and c["max_lon_acc"] <= NUPLAN_LIMITS["max_lon_acc"]),
            "emergency_s": round(0.1 * len(res.emergency_t), 1),
            "sim_s": round(float(res.t[-1]), 1),
            "corridor_obstacle_intrusion_m": round(float(corr_in), 3),
            "trajectory_outside_corridor_m": round(float(corr_out), 3),
            "plan_ms_p50": round(float(np.percentile(res.plan_ms, 50)), 1),
        }
        print(f"{key}: {json.dumps(out[key])} ({time.time() - t0:.0f} s wall)", flush=True)
    print(json.dumps({
        "cycle_ms_p50": round(float(np.percentile(ms, 50)), 1),
        "cycle_ms_p95": round(float(np.percentile(ms, 95)), 1),
        "cycle_cpu_ms_p50": round(float(np.percentile(cpu, 50)), 1),
        "cycle_cpu_ms_p95": round(float(np.percentile(cpu, 95)), 1),
        "agents": n_agents,
        "horizon_s": 10.0,
        "candidates_per_cycle": int(cand),
        "load_average": round(load1, 1),
        "scenarios": out,
    }))


if __name__ == "__main__":
    main()
