"""Auto-label quality and throughput on held-out recorded clips (issue 17).

    bench/run autolabel [--duration 20] [--clips N] [--threads 1] [--work build/bench_autolabel]

1. Clips: simulator scenarios recorded with autonomy_simulator.record at the network's
   128x96 (seeds from 7000 up: never used to write the perception training/eval sets,
   which start at 0 and 1000), cached under --work.
2. Each clip is auto-labeled (autonomy_autolabel.labeler; ground truth never read) and
   evaluated against its ground truth (autonomy_autolabel.quality): the auto-labels and
   the online perception output (the network + the node's tracker at its operating
   point, same frames) side by side. Figures are pooled over the clips: AP and IoU from
   one ProtocolEvaluator per clip averaged weighted by frames; the error figures weighted
   by their matches; occluded persistence by episodes.
3. clip_s_per_cpu_h: clip seconds labeled per CPU-hour of this process (process time of
   the labeling only, one torch thread).
4. multi_trip: two trips through the same world seed (narrow_street_oncoming, other ego
   speed and oncoming behaviour): road IoU of the second trip's labels from its own road
   grid vs from both trips fused.
semi_supervised is not measured (see the README): training on CPU here takes longer
than this session had.
Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIPS = [  # (scenario, seed, params): held-out seeds
    ("intersection_occlusion", 7001, {"crossing_cars": 10, "pedestrians": 4}),
    ("intersection_occlusion", 7012, {"crossing_cars": 10, "pedestrians": 4}),
    ("parking_lot", 7002, {}),
    ("highway_cut_in", 7003, {}),
    ("pedestrian_crossing", 7004, {}),
    ("random", 7005, {}),
    ("narrow_street_oncoming", 7006, {}),
]
TRIPS = [("narrow_street_oncoming", 7010, {"oncoming": "yield", "ego_speed": 6.0}),
         ("narrow_street_oncoming", 7010, {"oncoming": "proceed", "ego_speed": 4.0})]
KEYS = ("vehicle_ap", "position_err_m", "velocity_err", "accel_err", "occluded_persistence",
        "parked_accuracy", "road_iou")
WEIGHT = {"vehicle_ap": "frames", "road_iou": "frames", "position_err_m": "matches",
          "velocity_err": "matches", "accel_err": "matches", "parked_accuracy": "matches",
          "occluded_persistence": "occlusion_episodes"}


def record_clip(work: Path, scenario: str, seed: int, params: dict, duration: float) -> Path:
    from autonomy_simulator.record import record  # lazy: the simulator only when recording
    name = f"{scenario}_{seed}_" + "_".join(f"{k}-{v}" for k, v in sorted(params.items()))
    bag = work / f"{name.rstrip('_')}_{duration:g}s"
    if not (bag / "metadata.yaml").exists():
        record(scenario, seed, duration, bag, params, camera_rate=10.0, width=128, height=96)
    return bag


def pooled(results, variant: str) -> dict:
    out = {}
    for k in KEYS:
        num = den = 0.0
        for r in results:
            v, w = r[variant].get(k), r[variant].get(WEIGHT[k]) if WEIGHT[k] != "frames" else r["frames"]
            if v is None or not w:
                continue
            num += v * w
            den += w
        out[k] = num / den if den else None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--clips", type=int, default=len(CLIPS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default=str(ROOT / "build" / "bench_autolabel"))
    a = ap.parse_args(argv)
    import torch  # lazy: after argument parsing (start-up time)
    from autonomy_autolabel.labeler import AutolabelConfig, autolabel_clip
    from autonomy_autolabel.quality import evaluate_clip
    from autonomy_autolabel.road import fuse_trips
    from autonomy_perception.evaluation.protocol import EvaluationProtocol
    from autonomy_perception.inference_engine import InferenceEngine
    torch.set_num_threads(a.threads)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    engine = InferenceEngine.from_checkpoint(ROOT / "models" / "perception_tiny.pt", "cpu")
    protocol = EvaluationProtocol.from_model_config(engine.config)
    cfg = AutolabelConfig(keep_online_rasters=True)
    results, clip_s, cpu_s, t0 = [], 0.0, 0.0, time.time()
    for scenario, seed, params in CLIPS[:a.clips]:
        bag = record_clip(work, scenario, seed, params, a.duration)
        c0 = time.process_time()
        labels = autolabel_clip(bag, engine, cfg)
        cpu = time.process_time() - c0
        clip_s += labels.duration_s
        cpu_s += cpu
        r = evaluate_clip(bag, labels, protocol)
        r["scenario"], r["cpu_s"], r["tracks"] = scenario, cpu, len(labels.tracks)
        results.append(r)
        print(f"{scenario} seed {seed}: {labels.duration_s:.1f} s clip, {cpu:.1f} CPU s, "
              f"{len(labels.tracks)} tracks; online " + json.dumps({k: r['online'][k] for k in KEYS})
              + "; autolabel " + json.dumps({k: r['autolabel'][k] for k in KEYS}), flush=True)
    trips = []
    for scenario, seed, params in TRIPS:
        bag = record_clip(work, scenario, seed, params, a.duration)
        trips.append((bag, autolabel_clip(bag, engine, cfg)))
    single = evaluate_clip(trips[1][0], trips[1][1], protocol)["autolabel"]["road_iou"]
    fused, shifts = fuse_trips([lb.road for _, lb in trips])
    trips[1][1].road = fused
    multi = evaluate_clip(trips[1][0], trips[1][1], protocol)["autolabel"]["road_iou"]
    online, auto = pooled(results, "online"), pooled(results, "autolabel")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {len(results)} clips, "
          f"{time.time() - t0:.0f} s wall")
    res = {"online": online, "autolabel": auto,
           "clip_s_per_cpu_h": clip_s / cpu_s * 3600.0 if cpu_s else None,
           "velocity_err_ratio": (auto["velocity_err"] / online["velocity_err"]
                                  if auto["velocity_err"] and online["velocity_err"] else None),
           "multi_trip": {"road_iou_own_trip": single, "road_iou_two_trips_fused": multi,
                          "alignment": [{"dx_m": s[0], "dy_m": s[1], "response": s[2]} for s in shifts]},
           "semi_supervised": None,
           "semi_supervised_reason": "not run: CPU training of the perception network takes hours here",
           "per_clip": [{"scenario": r["scenario"], "frames": r["frames"], "tracks": r["tracks"],
                         "cpu_s": r["cpu_s"], "online": {k: r["online"][k] for k in KEYS},
                         "autolabel": {k: r["autolabel"][k] for k in KEYS}} for r in results],
           "clips": len(results), "clip_duration_s": a.duration, "threads": a.threads,
           "load_average": list(load)}
    print(json.dumps(res, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x))
    return 0


if __name__ == "__main__":
    sys.exit(main())
