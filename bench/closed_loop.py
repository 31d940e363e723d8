"""Closed-loop scenario suite on vision vs ground truth (issue 15, item 3).

    bench/run closed_loop [--quick] [--seeds 0,1,2] [--workers 2] [--out DIR]

Every catalogue scenario (narrow street yield / proceed, double lane change + left turn,
intersection with occlusion, pedestrian crossing, highway cut-in, on-ramp merge,
roundabout, unsignalised junction at three densities, unprotected left turn, random) for each seed,
twice: planning on ground truth (simulator objects and map lanes) and planning on
perception (8 cameras -> rectification -> network -> post-processing -> lanes from road
lines), in process (`autonomy_tools.vision_closed_loop.run_episode`, lockstep, supervisor
in the loop). Figures per scenario and mode (`closed_loop_metrics.episode_metrics`):
collisions, goal rate, off-road time, max deviation from the route, time to goal, max
|lateral acceleration|, max |jerk|, supervisor stops, silent failures, planner and
perception latency (in-process compute per cycle, 1 torch thread). Writes report.md (the
table + one diagnosis line per vision run), runs.jsonl and the worst vision run's video
into --out (default out/closed_loop-<time>). Episodes run in `--workers` processes with one
torch thread each. The last printed line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from autonomy_tools.closed_loop_metrics import episode_metrics  # noqa: E402
from autonomy_tools.closed_loop_report import diagnose, markdown_table, write_video  # noqa: E402
from autonomy_tools.vision_closed_loop import (MODES, TIME_BUDGET_S, EpisodeConfig,  # noqa: E402
                                               run_episode)

# (key, catalogue name, scenario params)
CATALOGUE = [
    ("narrow_street_oncoming[yield]", "narrow_street_oncoming", {"oncoming": "yield"}),
    ("narrow_street_oncoming[proceed]", "narrow_street_oncoming", {"oncoming": "proceed"}),
    ("double_lane_change_left_turn", "double_lane_change_left_turn", {}),
    ("intersection_occlusion", "intersection_occlusion", {}),
    ("pedestrian_crossing", "pedestrian_crossing", {}),
    ("highway_cut_in", "highway_cut_in", {}),
    # junctions and merges (issue 16)
    ("on_ramp_merge", "on_ramp_merge", {}),
    ("roundabout", "roundabout", {}),
    ("unsignalised_junction[0.3]", "unsignalised_junction", {"density": 0.3}),
    ("unsignalised_junction[0.6]", "unsignalised_junction", {"density": 0.6}),
    ("unsignalised_junction[1.0]", "unsignalised_junction", {"density": 1.0}),
    ("unprotected_left_turn", "unprotected_left_turn", {}),
    ("random", "random", {}),
]


def _init_worker():
    # lazy: torch only in the worker processes (one thread each: 2 workers on 2 cores)
    import torch
    torch.set_num_threads(1)


def _job(args):
    key, name, params, seed, mode, duration, cfg = args
    t0 = time.time()
    trace, extra = run_episode(name, seed, mode, duration, scenario_params=params, cfg=cfg)
    m = episode_metrics(trace)
    return {"scenario": key, "seed": seed, "mode": mode, "metrics": m,
            "diagnosis": diagnose(trace, extra, m), "wall_s": time.time() - t0,
            "render_ms_p50": float(np.median(extra["render_s"]) * 1e3) if extra["render_s"] else None}


def summarise(runs):
    """Per scenario and mode: sums / rates / maxima over the seeds."""
    out = {}
    for r in runs:
        out.setdefault(r["scenario"], {}).setdefault(r["mode"], []).append(r["metrics"])
    summary = {}
    for key, per_mode in out.items():
        summary[key] = {}
        for mode, ms in per_mode.items():
            col = lambda k: np.array([m[k] for m in ms], float)  # noqa: E731
            ttg = col("time_to_goal_s")
            summary[key][mode] = {
                "runs": len(ms), "collisions": int(col("collisions").sum()),
                "goal_rate": float(col("goal_reached").mean()),
                "off_road_s": float(col("off_road_s").sum()),
                "max_route_deviation_m": float(col("max_route_deviation_m").max()),
                "time_to_goal_s": float(np.nanmean(ttg)) if np.any(~np.isnan(ttg)) else float("nan"),
                "max_abs_lat_acc": float(col("max_abs_lat_acc").max()),
                "max_abs_jerk": float(col("max_abs_jerk").max()),
                "supervisor_stops": int(col("supervisor_stops").sum()),
                "silent_failures": int(col("silent_failure").sum()),
                "planner_latency_p50_ms": float(np.nanmedian(col("planner_latency_p50_s")) * 1e3),
                "perception_latency_p50_ms": float(np.nanmedian(col("perception_latency_p50_s")) * 1e3)
                if np.any(~np.isnan(col("perception_latency_p50_s"))) else float("nan"),
            }
    return summary


def totals(runs, mode):
    ms = [r["metrics"] for r in runs if r["mode"] == mode]
    if not ms:
        return {}
    return {"runs": len(ms), "collisions": int(sum(m["collisions"] for m in ms)),
            "goal_rate": round(float(np.mean([m["goal_reached"] for m in ms])), 3),
            "off_road_s": round(float(sum(m["off_road_s"] for m in ms)), 2),
            "silent_failures": int(sum(m["silent_failure"] for m in ms)),
            "supervisor_stops": int(sum(m["supervisor_stops"] for m in ms)),
            "comfort_ok_rate": round(float(np.mean([m["comfort_ok"] for m in ms])), 3)}


def _badness(r):
    m = r["metrics"]
    return (m["collisions"] * 100 + m["off_road_s"] * 10 + (1 - m["goal_reached"]) * 5
            + m["max_route_deviation_m"])


def _worst_video(runs, args, cfg, out: Path):
    """Re-run the worst vision episode (deterministic for its seed) with frames kept."""
    vis = [r for r in runs if r["mode"] == "vision"]
    if not vis:
        return None
    worst = max(vis, key=_badness)
    name, params = next((n, p) for k, n, p in CATALOGUE if k == worst["scenario"])
    _init_worker()
    rec_cfg = EpisodeConfig(**{**cfg.__dict__, "record_frames": True})
    trace, extra = run_episode(name, worst["seed"], "vision", args.duration_for(name),
                               scenario_params=params, cfg=rec_cfg)
    path = out / f"worst_vision_{worst['scenario']}_seed{worst['seed']}.mp4"
    n = write_video(extra["frames"], trace.lanes, trace.body, path)
    return {"scenario": worst["scenario"], "seed": worst["seed"], "video": str(path), "frames": n}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 15 s budget (smoke)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--scenarios", default="", help="comma-separated keys (default: all)")
    ap.add_argument("--score-threshold", type=float, default=EpisodeConfig.score_threshold)
    ap.add_argument("--no-video", action="store_true")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    seeds = [0] if a.quick else [int(s) for s in a.seeds.split(",") if s]
    modes = [m for m in a.modes.split(",") if m]
    keys = [k for k in a.scenarios.split(",") if k]
    a.duration_for = lambda name: 15.0 if a.quick else TIME_BUDGET_S.get(name, 60.0)
    cfg = EpisodeConfig(score_threshold=a.score_threshold)
    out = Path(a.out or f"out/closed_loop-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(k, n, p, s, m, a.duration_for(n), cfg) for k, n, p in CATALOGUE
            if not keys or k in keys for s in seeds for m in modes]
    # vision episodes first: they are the long ones, so the pool ends balanced
    jobs.sort(key=lambda j: j[4] != "vision")
    load0, t0 = os.getloadavg()[0], time.time()
    runs = []
    with mp.get_context("spawn").Pool(a.workers, initializer=_init_worker) as pool, \
            open(out / "runs.jsonl", "w") as f:
        for r in pool.imap_unordered(_job, jobs):
            runs.append(r)
            f.write(json.dumps(r) + "\n")
            m = r["metrics"]
            print(f"{r['scenario']} seed {r['seed']} {r['mode']}: collisions {m['collisions']}, "
                  f"goal {m['goal_reached']}, off-road {m['off_road_s']:.1f} s, route dev "
                  f"{m['max_route_deviation_m']:.2f} m, {r['diagnosis']} ({r['wall_s']:.0f} s wall)",
                  flush=True)
    wall = time.time() - t0
    load1 = os.getloadavg()[0]
    summary = summarise(runs)
    table = markdown_table(summary, modes)
    notes = "\n".join(f"- {r['scenario']} seed {r['seed']}: {r['diagnosis']}"
                      for r in sorted(runs, key=lambda r: (r["scenario"], r["seed"]))
                      if r["mode"] == "vision")
    video = None if a.no_video else _worst_video(runs, a, cfg, out)
    report = (f"# Closed loop: vision vs ground truth\n\nseeds {seeds}, {len(runs)} episodes, "
              f"{wall:.0f} s wall on {a.workers} workers, load average {load0:.1f} -> {load1:.1f} "
              f"on {os.cpu_count()} CPUs, score threshold {a.score_threshold}\n\n{table}\n\n"
              f"## Vision runs\n\n{notes}\n\nWorst vision run video: {video}\n")
    (out / "report.md").write_text(report)
    print(table)
    print(f"episodes {len(runs)}, wall {wall:.0f} s, load average {load0:.1f} -> {load1:.1f} on "
          f"{os.cpu_count()} CPUs; report {out / 'report.md'}; video {video}")

    def clean(d):
        return {k: (None if isinstance(v, float) and math.isnan(v) else
                    round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}
    print(json.dumps({"scenarios": {k: {m: clean(v) for m, v in pm.items()} for k, pm in summary.items()},
                      **{m: totals(runs, m) for m in modes},
                      "load_average": round(load1, 2), "wall_s": round(wall, 1), "out": str(out)}))


if __name__ == "__main__":
    main()
