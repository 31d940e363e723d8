"""Perception network figures: forward latency of the default CPU configuration (8 cameras
at its input resolution, video mode, batch 1, as the node runs it), parameter count, and
the evaluation figures of the committed checkpoint on held-out simulator sequences
(seeds never used in training), video vs single-frame.

    bench/run perception_model [--checkpoint models/perception_tiny.pt]
        [--data data/perception/eval] [--sequences 24] [--iters 40] [--threads 2]

If --data does not exist, held-out sequences are written first with the simulator's
dataset writer (base seed 1000; training used base seed 0). The last printed line is one
JSON object."""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _clean(x):
    if isinstance(x, float):
        return None if math.isnan(x) else round(x, 4)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    return x


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "perception_tiny.pt"))
    ap.add_argument("--data", default=str(ROOT / "data" / "perception" / "eval"))
    ap.add_argument("--sequences", type=int, default=24)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-eval", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    from autonomy_perception.inference_engine import InferenceEngine

    model = InferenceEngine.from_checkpoint(a.checkpoint, "cpu", video=True)
    H, W = model.input_hw
    N = len(model.camera_names)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (N, 3, H, W), dtype=np.uint8) for _ in range(4)]
    for i in range(5):
        model.step(imgs[i % 4], None, (8.0, 0.0, 0.0), 0.1)
    lat = []
    for i in range(a.iters):
        t = time.perf_counter()
        model.step(imgs[i % 4], None, (8.0, 0.2, 0.01), 0.1)
        lat.append((time.perf_counter() - t) * 1e3)
    params = model.num_parameters
    res = {"input_hw": [H, W], "cameras": N, "latency_ms_p50": float(np.percentile(lat, 50)),
           "latency_ms_p95": float(np.percentile(lat, 95)), "params": int(params),
           "threads": a.threads}
    print(f"latency over {a.iters} steps: p50 {res['latency_ms_p50']:.1f} ms, "
          f"p95 {res['latency_ms_p95']:.1f} ms; {params} parameters", file=sys.stderr)
    if not a.skip_eval:
        data = Path(a.data)
        if not (data / "manifest.json").exists():
            print(f"writing held-out sequences to {data} (seed 1000) ...", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "autonomy_simulator.dataset", "--out", str(data),
                            "--sequences", str(a.sequences), "--frames", "16", "--stride", "0.1",
                            "--width", str(W), "--height", str(H), "--bev-extent", "48",
                            "--bev-cell", "1.0", "--seed", "1000"], check=True, cwd=ROOT)
        from autonomy_perception.evaluation.evaluate import evaluate_dataset
        from autonomy_perception.training.data import SimDataset
        ds = SimDataset(data, model.config, rectify=True)
        seqs = list(range(min(a.sequences, len(ds))))
        r = {m: evaluate_dataset(model.net, ds, video=(m == "video"), sequences=seqs)
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
                    "occluded_objects": v["occluded_total"], "eval_sequences": len(seqs),
                    "eval_frames": v["frames"], "eval_data": str(data)})
    print(json.dumps(_clean(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
