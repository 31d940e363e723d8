"""Evaluate a perception checkpoint on held-out simulator sequences.

    python -m autonomy_perception.evaluation.evaluate --checkpoint models/perception_tiny.pt \
        --data DATA_DIR [--sequences N] [--out eval.json] [--modes video,single]
        [--rectification both|on|off] [--score-threshold 0.3]

Runs every sequence frame by frame (the video mode keeps the network's state over the
whole sequence, as the deployed node does; the single-frame mode resets it every frame)
and reports, per mode (video / single) and input (rectified / raw images, the latter
being the "without rectification" ablation: each vehicle's real cameras with their
mounting errors and lens distortion fed straight to the network):
IoU of drivable / lane / edge rasters (probability >= 0.5), detection AP at BEV centre
distances 0.5/1/2/4 m per class group and per range bin, velocity error on matched objects,
and occlusion persistence recall -- all under the one protocol of
`autonomy_perception.evaluation.protocol` (the replay report uses the same), with the
network's extent from the checkpoint's config. Prints tables and writes JSON."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import torch

from autonomy_perception.evaluation.protocol import (EvaluationProtocol, ProtocolEvaluator,
                                                     markdown, nan_to_none)
from autonomy_perception.postprocess import decode_objects
from autonomy_stack.bev_grid import BEVGrid

DECODE_SCORE = 0.05     # detections decoded down to this score (the whole precision-recall curve)


@torch.no_grad()
def evaluate_dataset(net, ds, video: bool = True, sequences: Optional[List[int]] = None,
                     score_threshold: float = 0.3, batch: int = 8, progress: bool = False) -> Dict:
    """net: PerceptionNet (eval mode is set here); ds: training.data.SimDataset.
    Detections are decoded at score >= DECODE_SCORE and evaluated with
    `EvaluationProtocol.from_model_config(net.cfg, score_threshold=score_threshold)`
    (ground truth of the dataset frames in the ego frame, visibility from its pixel counts).
    Returns the protocol's summary (+ eval_s)."""
    was_training = net.training
    net.eval()
    dev = next(net.parameters()).device
    grid = BEVGrid.from_config(net.cfg)
    det_classes = net.cfg["heads"]["detection"]["classes"]
    seg_classes = net.cfg["heads"]["segmentation"]["classes"]
    protocol = EvaluationProtocol.from_model_config(net.cfg, score_threshold=score_threshold)
    ev = ProtocolEvaluator(protocol, seg_classes)
    seqs = list(range(len(ds))) if sequences is None else list(sequences)
    t0 = time.perf_counter()
    for b0 in range(0, len(seqs), batch):
        group = [ds.sequence(i) for i in seqs[b0:b0 + batch]]
        T = min(s.images.shape[0] for s in group)
        state = None
        for t in range(T):
            x = torch.from_numpy(np.stack([s.images[t] for s in group])).to(dev).float().div_(255.0)
            kin = torch.from_numpy(np.stack([s.kin[t] for s in group])).to(dev)
            dt = torch.tensor([0.0 if t == 0 else float(s.dt[t]) for s in group], device=dev)
            out, state = net.forward_step(x, None, kin, dt, state if video else None, video=video)
            seg = torch.sigmoid(out["seg"]).cpu().numpy()
            o_np = {"obj": torch.sigmoid(out["obj"])[:, 0].cpu().numpy(),
                    "cls": torch.softmax(out["cls"], 1).cpu().numpy(),
                    "offset": out["offset"].cpu().numpy(), "size": out["size"].cpu().numpy(),
                    "heading": out["heading"].cpu().numpy(), "vel": out["vel"].cpu().numpy()}
            for k, s in enumerate(group):
                dets = decode_objects({kk: v[k] for kk, v in o_np.items()}, grid, det_classes,
                                      score_threshold=DECODE_SCORE)
                rasters = {c: (seg[k, ci], s.seg[t, ci]) for ci, c in enumerate(seg_classes)}
                stamp = float(np.sum(s.dt[:t + 1]))
                ev.add_frame(stamp, dets, s.objects[t], rasters, sequence=seqs[b0 + k])
        if progress:
            print(f"  {min(b0 + batch, len(seqs))}/{len(seqs)} sequences", file=sys.stderr, flush=True)
    if was_training:
        net.train()
    res = ev.summary()
    res["eval_s"] = time.perf_counter() - t0
    return res


def _fmt(x) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:5.3f}"


def table(results: Dict[str, Dict]) -> str:
    rows = ["| run | drivable IoU | lane IoU | edge IoU | vehicle AP (mean 0.5/1/2/4 m) | "
            "AP@0.5 | AP@1 | AP@2 | AP@4 | velocity err (m/s) | occluded recall |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        ap = r["ap"].get("vehicle", {})
        rows.append(f"| {name} | {_fmt(r['iou'].get('drivable'))} | {_fmt(r['iou'].get('lane'))} | "
                    f"{_fmt(r['iou'].get('edge'))} | {_fmt(r['vehicle_ap'])} | "
                    + " | ".join(_fmt(ap.get(str(t))) for t in (0.5, 1.0, 2.0, 4.0))
                    + f" | {_fmt(r['velocity_error'])} | {_fmt(r['occluded_recall'])} "
                    f"({r['occluded_total']}) |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonomy_perception.evaluation.evaluate",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="dataset dir (autonomy_simulator.dataset)")
    ap.add_argument("--sequences", type=int, default=0, help="first N sequences (0 = all)")
    ap.add_argument("--modes", default="video,single")
    ap.add_argument("--rectification", default="both", choices=["both", "on", "off"])
    ap.add_argument("--score-threshold", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from autonomy_perception.network.model import CheckpointError, load_checkpoint
    from autonomy_perception.training.data import DatasetError, SimDataset
    try:
        net, ck = load_checkpoint(a.checkpoint, a.device)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = {}
    rects = {"both": [True, False], "on": [True], "off": [False]}[a.rectification]
    for rect in rects:
        try:
            ds = SimDataset(a.data, net.cfg, rectify=rect)
        except DatasetError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        seqs = list(range(len(ds) if a.sequences <= 0 else min(a.sequences, len(ds))))
        for mode in a.modes.split(","):
            name = f"{mode}{'' if rect else '_raw'}"
            print(f"evaluating {name} on {len(seqs)} sequences ...", file=sys.stderr, flush=True)
            results[name] = evaluate_dataset(net, ds, video=(mode == "video"), sequences=seqs,
                                             score_threshold=a.score_threshold)
    print(table(results))
    for name, r in results.items():
        print()
        print(markdown(r, title=name))
    out = {"checkpoint": str(a.checkpoint), "data": str(a.data), "results": results}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(nan_to_none(out), f, indent=1)
    print(json.dumps(nan_to_none({k: {"vehicle_ap": r["vehicle_ap"],
                                      "vehicle_ap_by_range": r["vehicle_ap_by_range"],
                                      "iou": r["iou"], "velocity_error": r["velocity_error"],
                                      "occluded_recall": r["occluded_recall"]}
                                  for k, r in results.items()})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
