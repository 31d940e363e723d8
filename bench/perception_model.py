"""Perception network figures (issue 14), one run:

* latency: forward pass of the committed configuration as the node runs it (8 cameras at
  its input resolution, video mode, batch 1, one intra-op thread), p50/p95 over `--iters`;
* quality on the held-out simulator sequences (seeds never used in training) with the
  evaluation protocol (autonomy_perception.evaluation.protocol): video and single-frame,
  vehicle AP (mean of AP at 0.5/1/2/4 m centre distance), AP per range band, BEV IoU,
  velocity error, occluded recall;
* the geometric baseline on the same frames: per-camera IPM of the (oracle) image-space
  segmentation fused late (autonomy_perception.ipm_baseline), with `network_ahead_of_ipm`;
* training throughput of the run that made the checkpoint (supervised frames per CPU-second
  of one training process, from the checkpoint's training summary).

    bench/run perception_model [--checkpoint models/perception_tiny.pt]
        [--data data/perception2/eval] [--ipm-data data/perception2/eval_sem]
        [--sequences 14] [--iters 40] [--threads 1]

Missing held-out data are written first with the exact commands of models/README.md. The
load average is printed beside the figures; the last printed line is one JSON object."""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autonomy_perception.evaluation.evaluate import evaluate_dataset  # noqa: E402
from autonomy_perception.inference_engine import InferenceEngine  # noqa: E402
from autonomy_perception.training.data import SimDataset  # noqa: E402
from autonomy_tools.ipm_baseline import evaluate_ipm  # noqa: E402

SCENARIOS = ("random,narrow_street_oncoming,intersection_occlusion,pedestrian_crossing,random,"
             "highway_cut_in,double_lane_change_left_turn")
# figure -> True when larger is better (for the network-vs-IPM comparison)
COMPARED = {"vehicle_ap": True, "drivable_iou": True, "lane_iou": True, "edge_iou": True,
            "occluded_recall_video": True}


def _clean(x):
    if isinstance(x, float):
        return None if math.isnan(x) else round(x, 4)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _ensure_data(path: Path, hw, semantic: bool) -> None:
    if (path / "manifest.json").exists():
        return
    print(f"writing held-out sequences to {path} (seed 1000) ...", file=sys.stderr)
    cmd = [sys.executable, "-m", "autonomy_simulator.dataset", "--out", str(path),
           "--sequences", "14", "--frames", "64", "--stride", "0.1", "--width", str(hw[1]),
           "--height", str(hw[0]), "--bev-extent", "48", "--bev-cell", "1.0",
           "--scenarios", SCENARIOS, "--seed", "1000"] + (["--semantic"] if semantic else [])
    subprocess.run(cmd, check=True, cwd=ROOT)


def latency(engine: InferenceEngine, iters: int) -> dict:
    H, W = engine.input_hw
    N = len(engine.camera_names)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (N, 3, H, W), dtype=np.uint8) for _ in range(4)]
    for i in range(5):                                  # warm-up, video state filled
        engine.step(imgs[i % 4], None, (8.0, 0.0, 0.0), 0.1)
    lat, cpu = [], []
    for i in range(iters):
        t, c = time.perf_counter(), time.process_time()
        engine.step(imgs[i % 4], None, (8.0, 0.2, 0.01), 0.1)
        lat.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    return {"latency_ms_p50": float(np.percentile(lat, 50)),
            "latency_ms_p95": float(np.percentile(lat, 95)),
            "latency_cpu_ms_p50": float(np.percentile(cpu, 50))}


def train_summary(ckpt: Path) -> dict:
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    return dict((ck.get("train") or {}).get("summary") or {})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "perception_tiny.pt"))
    ap.add_argument("--data", default=str(ROOT / "data" / "perception2" / "eval"))
    ap.add_argument("--ipm-data", default=str(ROOT / "data" / "perception2" / "eval_sem"))
    ap.add_argument("--sequences", type=int, default=14)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-eval", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    engine = InferenceEngine.from_checkpoint(a.checkpoint, "cpu", video=True)
    load0 = os.getloadavg()
    res = {"input_hw": list(engine.input_hw), "cameras": len(engine.camera_names),
           "bev_cell_m": engine.grid.res, "threads": a.threads,
           "params": int(engine.num_parameters), **latency(engine, a.iters)}
    print(f"latency over {a.iters} steps ({a.threads} thread): p50 {res['latency_ms_p50']:.1f} ms, "
          f"p95 {res['latency_ms_p95']:.1f} ms (load average {load0[0]:.2f})", file=sys.stderr)
    summ = train_summary(Path(a.checkpoint))
    res["train_frames_per_cpu_s"] = summ.get("train_frames_per_cpu_s")
    res["train_summary"] = summ or None
    if not a.skip_eval:
        data, ipm_data = Path(a.data), Path(a.ipm_data)
        _ensure_data(data, engine.input_hw, semantic=False)
        ds = SimDataset(data, engine.config, rectify=True)
        seqs = list(range(min(a.sequences, len(ds))))
        r = {m: evaluate_dataset(engine.net, ds, video=(m == "video"), sequences=seqs)
             for m in ("video", "single")}
        v, s = r["video"], r["single"]
        res.update({"vehicle_ap": v["vehicle_ap"], "drivable_iou": v["iou"]["drivable"],
                    "lane_iou": v["iou"]["lane"], "edge_iou": v["iou"]["edge"],
                    "velocity_err_video": v["velocity_error"], "velocity_err_single": s["velocity_error"],
                    "occluded_recall_video": v["occluded_recall"],
                    "occluded_recall_single": s["occluded_recall"],
                    "vehicle_ap_single": s["vehicle_ap"], "drivable_iou_single": s["iou"]["drivable"],
                    "vehicle_ap_at_m": v["ap"].get("vehicle"),
                    "vehicle_ap_by_range": v["vehicle_ap_by_range"],
                    "mean_ap_by_group": v.get("mean_ap"),
                    "occluded_objects": v["occluded_total"], "eval_sequences": len(seqs),
                    "eval_frames": v["frames"], "eval_data": str(data)})
        if v["velocity_error"] and s["velocity_error"]:
            res["velocity_err_ratio_video_single"] = v["velocity_error"] / s["velocity_error"]
        _ensure_data(ipm_data, engine.input_hw, semantic=True)
        ipm = evaluate_ipm(ipm_data, engine.config, sequences=seqs)
        res["ipm_baseline"] = {k: ipm.get(k) for k in (
            "vehicle_ap", "drivable_iou", "lane_iou", "edge_iou", "velocity_err_video",
            "velocity_err_single", "occluded_recall_video", "vehicle_ap_by_range")}
        res["ipm_baseline"]["occluded_recall_video"] = ipm.get("occluded_recall")
        ahead = {}
        for k, higher in COMPARED.items():
            n, b = res.get(k), res["ipm_baseline"].get(k)
            if n is not None and b is not None and not (isinstance(n, float) and math.isnan(n)):
                ahead[k] = bool(n > b) if higher else bool(n < b)
        res["network_ahead_of_ipm"] = ahead
    load1 = os.getloadavg()
    res["loadavg"] = [round(load0[0], 2), round(load1[0], 2)]
    print(f"load average {load0[0]:.2f} -> {load1[0]:.2f}", file=sys.stderr)
    print(json.dumps(_clean(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
