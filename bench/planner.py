"""Planner benchmark: cycle time with 20 agents and a 10 s horizon on this CPU, candidates
per cycle, and closed-loop results for every catalogue scenario (ground-truth perception,
the control developer's tracking controller, simulator ego model) against a simple
IDM + gap-acceptance driver on the same seeds.

    bench/run planner [--quick] [--seeds 0,1] [--timing-only] [--scenarios KEY,...]

Timing: `highway_cut_in` with exactly 20 agents (3 + 2 lane highway, a cut-in, traffic
both ways) driven closed loop for 20 s; every 10 Hz `Planner.plan` call is timed
(wall clock, single thread; the process CPU time per cycle and the 1-minute load average
of this shared machine are printed next to it, since other jobs inflate wall time).

Scenarios (old catalogue + the junction / merge scenarios of issue 16): each closed loop
until its goal is reached (and the ego stands) or its time budget ends, twice per seed:
- `stack`: Planner + TrackingController;
- `idm`: the simulator's own driver on the same route (`scenarios` autopilot: IDM car
  following, stop lines, junction gap acceptance with the agents' `gap_time`, give way /
  go around on narrow streets; its lane changes are scripted at fixed places).
Per run, from `closed_loop_metrics.episode_metrics` on the ground truth sampled at 10 Hz
(one implementation for every closed loop): collisions, goal reached within the budget,
time to goal, nuPlan comfort (max |lateral acceleration|, max |jerk|, longitudinal
acceleration range), and the count of emergency plans (the stack's `PlanResult.emergency`;
the IDM driver has none). The stack runs with the driving -> parking hand-over
(`parking.handover.DriveParkPlanner`, the planning node's `mode: auto`): in `parking_lot`
the driving planner takes the entrance and the aisle and the parking mode
(`--parking-method`, default MCTS + learned value) parks; the IDM driver only drives the
aisle. The last printed line is one JSON object: per scenario key {"stack": {...}, "idm":
{...}} summed / averaged over the seeds.
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

from autonomy_tools.closed_loop_metrics import EpisodeTrace, episode_metrics  # noqa: E402
from autonomy_tools.planning_closed_loop import lanes_from_world, run_scenario  # noqa: E402
from autonomy_planning.planner import Planner, PlannerConfig  # noqa: E402
from autonomy_planning.parking.handover import DriveParkPlanner  # noqa: E402
from autonomy_planning.parking.mode import ParkingMode  # noqa: E402
from autonomy_simulator import scenarios  # noqa: E402
from autonomy_simulator.junction_scenarios import TIME_BUDGET_S as JUNCTION_BUDGET_S  # noqa: E402

# (catalogue name, params, time budget s, key)
SCENARIOS = [
    ("narrow_street_oncoming", dict(oncoming="yield"), 40.0, "narrow_street_oncoming[yield]"),
    ("narrow_street_oncoming", dict(oncoming="proceed"), 40.0, "narrow_street_oncoming[proceed]"),
    ("double_lane_change_left_turn", dict(), 70.0, "double_lane_change_left_turn"),
    ("intersection_occlusion", dict(), 60.0, "intersection_occlusion"),
    ("parking_lot", dict(), 45.0, "parking_lot"),
    ("highway_cut_in", dict(), 50.0, "highway_cut_in"),
    ("pedestrian_crossing", dict(), 45.0, "pedestrian_crossing"),
    ("on_ramp_merge", dict(), JUNCTION_BUDGET_S["on_ramp_merge"], "on_ramp_merge"),
    ("roundabout", dict(), JUNCTION_BUDGET_S["roundabout"], "roundabout"),
    ("unsignalised_junction", dict(density=0.3), JUNCTION_BUDGET_S["unsignalised_junction"],
     "unsignalised_junction[0.3]"),
    ("unsignalised_junction", dict(density=0.6), JUNCTION_BUDGET_S["unsignalised_junction"],
     "unsignalised_junction[0.6]"),
    ("unsignalised_junction", dict(density=1.0), JUNCTION_BUDGET_S["unsignalised_junction"],
     "unsignalised_junction[1.0]"),
    ("unprotected_left_turn", dict(), JUNCTION_BUDGET_S["unprotected_left_turn"],
     "unprotected_left_turn"),
]
GOAL_TOLERANCE = 3.0


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


class _Sampler:
    """Ground truth at the planning rate (10 Hz) for an `EpisodeTrace`."""

    def __init__(self):
        self.rows, self.objects = [], []

    def __call__(self, sim, _plan=None):
        e = sim.ego
        self.rows.append((sim.t, e.x, e.y, e.yaw, e.speed, e.accel, e.yaw_rate))
        self.objects.append(sim.objects())

    def trace(self, sc, emergency_t=()) -> EpisodeTrace:
        a = np.asarray(self.rows, float).reshape(-1, 7)
        vp = sc.sim.vehicle
        return EpisodeTrace(t=a[:, 0], x=a[:, 1], y=a[:, 2], yaw=a[:, 3], speed=a[:, 4],
                            accel=a[:, 5], yaw_rate=a[:, 6], objects=self.objects,
                            lanes=lanes_from_world(sc.sim.world), route=sc.route_path,
                            goal=sc.goal, goal_tolerance=GOAL_TOLERANCE,
                            body=(vp.length - vp.rear_overhang, vp.rear_overhang, vp.width / 2.0),
                            emergency_t=tuple(emergency_t))


def _at_goal(sim, sc) -> bool:
    e = sim.ego
    return bool(np.hypot(e.x - sc.goal[0], e.y - sc.goal[1]) < GOAL_TOLERANCE and e.speed < 0.5)


def run_stack(name, params, seed, budget, parking_method="mcts"):
    """Metrics of the planner + controller on one seeded scenario (with the driving ->
    parking hand-over: the parking mode takes over near a parking goal)."""
    sc = scenarios.make(name, seed=seed, **params)
    smp = _Sampler()
    planner = DriveParkPlanner(Planner(PlannerConfig()),
                               lambda: ParkingMode(method=parking_method))
    res = run_scenario(sc, budget, planner=planner,
                       goal_tolerance=GOAL_TOLERANCE, on_cycle=smp,
                       stop_when=lambda sim, r: _at_goal(sim, sc))
    m = episode_metrics(smp.trace(sc, res.emergency_t))
    corr_in = max((x["obstacle_intrusion"] for x in res.corridor), default=float("nan"))
    corr_out = max((x["trajectory_excursion"] for x in res.corridor), default=float("nan"))
    m.update(emergency_plans=len(res.emergency_t), mode_switches=planner.switches,
             corridor_obstacle_intrusion_m=float(corr_in),
             trajectory_outside_corridor_m=float(corr_out),
             plan_ms_p50=float(np.percentile(res.plan_ms, 50)))
    return m


def run_idm(name, params, seed, budget):
    """Metrics of the simulator's IDM + gap-acceptance driver on the same scenario."""
    sc = scenarios.make(name, seed=seed, **params)
    sim, smp = sc.sim, _Sampler()
    every = max(1, int(round(0.1 / sim.dt)))
    for k in range(int(round(budget / sim.dt))):
        if k % every == 0:
            smp(sim)
            if _at_goal(sim, sc):
                break
        sim.step()
    m = episode_metrics(smp.trace(sc))
    m["emergency_plans"] = 0
    return m


REPORTED = ("collisions", "goal_reached", "time_to_goal_s", "max_abs_lat_acc", "max_abs_jerk",
            "min_lon_acc", "max_lon_acc", "comfort_ok", "emergency_plans", "off_road_s")


def summarise(ms, budget):
    """Sums (collisions, goals within the budget, emergency plans), mean time to goal over
    the runs that reached it, worst comfort figures."""
    col = lambda k: np.array([m[k] for m in ms], float)  # noqa: E731
    ttg = col("time_to_goal_s")
    ok = np.isfinite(ttg) & (ttg <= budget)
    out = {"runs": len(ms), "collisions": int(col("collisions").sum()),
           "goal_within_budget": int(ok.sum()),
           "time_to_goal_s": round(float(np.mean(ttg[ok])), 1) if ok.any() else None,
           "max_abs_lat_acc": round(float(col("max_abs_lat_acc").max()), 2),
           "max_abs_jerk": round(float(col("max_abs_jerk").max()), 2),
           "min_lon_acc": round(float(col("min_lon_acc").min()), 2),
           "max_lon_acc": round(float(col("max_lon_acc").max()), 2),
           "comfort_ok": int(col("comfort_ok").min()),
           "emergency_plans": int(col("emergency_plans").sum()),
           "off_road_s": round(float(col("off_road_s").sum()), 1)}
    if "mode_switches" in ms[0]:
        out["driving_parking_switches"] = int(col("mode_switches").sum())
    if "plan_ms_p50" in ms[0]:
        out["plan_ms_p50"] = round(float(np.median(col("plan_ms_p50"))), 1)
        out["corridor_obstacle_intrusion_m"] = round(float(np.nanmax(col("corridor_obstacle_intrusion_m"))), 3)
        out["trajectory_outside_corridor_m"] = round(float(np.nanmax(col("trajectory_outside_corridor_m"))), 3)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=None, help="one seed (same as --seeds N)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds")
    ap.add_argument("--quick", action="store_true", help="shorter runs (smoke)")
    ap.add_argument("--timing-only", action="store_true", help="only the 20-agent timing")
    ap.add_argument("--scenarios", default="", help="comma-separated keys (default: all)")
    ap.add_argument("--parking-method", default="mcts",
                    choices=("mcts", "astar_route", "astar_euclid"),
                    help="the parking mode's search after the hand-over (node default: mcts)")
    a = ap.parse_args(argv)
    seeds = [a.seed] if a.seed is not None else [int(x) for x in a.seeds.split(",") if x]
    keys = [k for k in a.scenarios.split(",") if k]
    scale = 0.4 if a.quick else 1.0
    load0 = os.getloadavg()[0]
    n_agents, ms, cpu, cand, stages = timing(seeds[0], 20.0 * scale)
    load1 = os.getloadavg()[0]
    print(f"timing: {n_agents} agents, {len(ms)} cycles, p50 {np.percentile(ms, 50):.1f} ms, "
          f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms, candidates {cand}, "
          f"stage medians (ms) {json.dumps({k: round(v, 1) for k, v in stages.items()})}, "
          f"load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} CPUs", flush=True)
    out = {}
    todo = [] if a.timing_only else [e for e in SCENARIOS if not keys or e[3] in keys]
    for name, params, budget, key in todo:
        t0 = time.time()
        runs = {"stack": [], "idm": []}
        for seed in seeds:
            runs["stack"].append(run_stack(name, params, seed, budget * scale, a.parking_method))
            runs["idm"].append(run_idm(name, params, seed, budget * scale))
            for who in ("stack", "idm"):
                r = runs[who][-1]
                print(f"  {key} seed {seed} {who}: " + json.dumps(
                    {k: (round(r[k], 2) if isinstance(r[k], float) else r[k]) for k in REPORTED}),
                    flush=True)
        out[key] = {who: summarise(v, budget * scale) for who, v in runs.items()}
        print(f"{key}: {json.dumps(out[key])} ({time.time() - t0:.0f} s wall, load average "
              f"{os.getloadavg()[0]:.1f})", flush=True)
    totals = {who: {"collisions": sum(v[who]["collisions"] for v in out.values()),
                    "goal_within_budget": sum(v[who]["goal_within_budget"] for v in out.values()),
                    "runs": sum(v[who]["runs"] for v in out.values()),
                    "emergency_plans": sum(v[who]["emergency_plans"] for v in out.values())}
              for who in ("stack", "idm")} if out else {}
    print(json.dumps({
        "cycle_ms_p50": round(float(np.percentile(ms, 50)), 1),
        "cycle_ms_p95": round(float(np.percentile(ms, 95)), 1),
        "cycle_cpu_ms_p50": round(float(np.percentile(cpu, 50)), 1),
        "cycle_cpu_ms_p95": round(float(np.percentile(cpu, 95)), 1),
        "agents": n_agents,
        "horizon_s": 10.0,
        "candidates_per_cycle": int(cand),
        "seeds": seeds,
        "load_average": round(os.getloadavg()[0], 1),
        "totals": totals,
        "scenarios": out,
    }))


if __name__ == "__main__":
    main()
