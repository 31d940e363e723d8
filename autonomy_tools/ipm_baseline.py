"""Evaluate the IPM baseline (autonomy_perception.ipm_baseline) on simulator sequences with
per-pixel semantic images, with the labels and metrics of the network's offline evaluation.

    python -m autonomy_tools.ipm_baseline --data data/perception2/eval_sem --out ipm.json \
        [--config config/perception_model_tiny.yaml] [--sequences N] [--fusion closest]

The data set must be written with `--semantic` (python -m autonomy_simulator.dataset ...
--semantic); with the held-out seeds (`--seed 1000`, same scenarios and sizes as
data/perception2/eval) its RGB images, labels and objects are the held-out set's.

Per frame: the semantic images of the model's 8 cameras are rectified into the virtual
cameras exactly as the network's input (`rectify_image`, each vehicle's own calibration,
nearest-neighbour so class ids stay class ids), lifted and fused by `IPMBaseline`; the
rasters are compared at >= 0.5 with the same targets (`training.data.SimDataset`) through
`evaluation.metrics.IoUAccumulator`, the detections with the one evaluation protocol
(`evaluation.protocol`: crop, visibility, class groups, AP, per-range table) exactly as
`evaluation.evaluate.evaluate_dataset` and the replay report.

Lives in the tools layer (it reads the simulator's data set through the training reader);
the lifting itself is the core module.

Data (same seeds as the held-out data/perception2/eval: images, labels and objects are
byte-identical, checked for all 14 sequences; only `semantic` is added):
    python -m autonomy_simulator.dataset --out data/perception2/eval_sem --sequences 14 \
        --frames 64 --stride 0.1 --width 128 --height 96 --bev-extent 48 --bev-cell 1.0 \
        --scenarios random,narrow_street_oncoming,intersection_occlusion,pedestrian_crossing,random,highway_cut_in,double_lane_change_left_turn \
        --seed 1000 --semantic
Calibration set for the fusion / thresholds (`--calibrate`): the same with --out
data/perception2/calib_sem --sequences 7 --frames 32 --seed 2000.

Figures (14 held-out sequences, 896 frames, 20 s on this CPU): drivable IoU 0.823 (0-10 /
10-20 / 20-30+ m: 0.917 / 0.813 / 0.745), lane 0.322 (0.471 / 0.296 / 0.206), edge 0.300
(0.573 / 0.285 / 0.169); vehicle AP 0.227 (AP@0.5/1/2/4 m 0.02 / 0.11 / 0.32 / 0.45; by
range 0.29 / 0.20 / 0.17), pedestrian 0.728, static 0.403; occluded recall 0.03 (211).
Where it fails: ~2/3 of the missed drivable cells are seen by no camera (behind or under
objects); 3/4 of the false edge cells lie within 2 cells of a true edge (kerb tops lifted
as if on the ground land too far out); at 20+ m one pixel spans several cells."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

import numpy as np

from autonomy_perception.evaluation.metrics import IoUAccumulator
from autonomy_perception.evaluation.protocol import EvaluationProtocol, ProtocolEvaluator
from autonomy_perception.ipm_baseline import FUSIONS, SEG_LAYERS, IPMBaseline
from autonomy_perception.network.config import load_model_config
from autonomy_perception.rectification import rectify_image
from autonomy_perception.training.data import DatasetError, SimDataset, calibrations
from autonomy_perception.virtual_camera import load_virtual_cameras
from autonomy_simulator.dataset import load_sequence
from autonomy_stack.paths import config_file

# radial range bins from the rear axle (the last one runs to the raster's corner, 34 m)
RANGE_BANDS = ((0.0, 10.0), (10.0, 20.0), (20.0, math.inf))


def band_name(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}" if math.isfinite(hi) else f"{lo:g}-{lo + 10:g}+"


def default_config_path() -> Path:
    return config_file("perception_model_tiny.yaml")


def rectified_semantic(d: Dict, cam_index: Sequence[int], virtual: Sequence) -> np.ndarray:
    """[T, N, H, W] uint8: the sequence's semantic images of the model's cameras, rectified
    (nearest neighbour) into the virtual cameras at the network input size."""
    if "semantic" not in d:
        raise DatasetError("the data set has no semantic images (write it with --semantic)")
    cals = calibrations(d)
    sem = d["semantic"]
    T = sem.shape[0]
    out = np.empty((T, len(cam_index), virtual[0].height, virtual[0].width), np.uint8)
    for n, ci in enumerate(cam_index):
        for t in range(T):
            rectify_image(np.ascontiguousarray(sem[t, ci]), cals[ci], virtual[n],
                          interpolation="nearest", out=out[t, n])
    return out


def iter_ipm_predictions(dataset_dir, model_cfg: Dict, sequences: Optional[Sequence[int]] = None,
                         ipm: Optional[IPMBaseline] = None, objects: bool = True,
                         frames: Optional[Sequence[int]] = None,
                         semantic_out: bool = False) -> Iterator[Dict]:
    """Per frame of the held-out set: {"sequence", "t", "stamp" (s), "seg" [3, H, W]
    (drivable, lane, edge; >= 0.5), "objects" (detections, ObjectState with .score),
    "ground_truth" (every labelled object of the frame, with visible_pixels / occluded),
    "labels" (training.data.Sequence_: seg targets [T, 3, H, W], visibility lists)} -- the
    IPM baseline's outputs in the network's formats, for any evaluation protocol.
    `semantic_out`: yield the rectified semantic images ("semantic" [N, H, W]) instead."""
    ds = SimDataset(dataset_dir, model_cfg, rectify=False)
    if not ds.manifest.get("semantic"):
        raise DatasetError(f"{dataset_dir}: written without --semantic (no semantic images)")
    if ipm is None:
        ipm = IPMBaseline.from_config(model_cfg)
    H, W = model_cfg["input_hw"]
    vcs = load_virtual_cameras(width=W, height=H)
    virtual = [vcs[c] for c in model_cfg["cameras"]]
    for v, cam in zip(virtual, ipm.cameras):   # the lookup's geometry is the rectifier's
        if abs(v.K[0, 0] - cam.fx) > 1e-6 or abs(v.K[0, 2] + 0.5 - cam.cx) > 1e-6:
            raise ValueError(f"camera {cam.name}: IPM geometry differs from the virtual camera")
    seqs = range(len(ds)) if sequences is None else sequences
    for i in seqs:
        s = ds.sequence(i)
        d = load_sequence(ds.files[i])
        sem = rectified_semantic(d, ds.cam_index, virtual)
        ts = range(sem.shape[0]) if frames is None else [t for t in frames if t < sem.shape[0]]
        for t in ts:
            p = {"sequence": i, "t": t, "stamp": float(d["stamps"][t]), "labels": s,
                 "ground_truth": s.objects[t]}
            if semantic_out:
                p["semantic"] = sem[t]
            else:
                p["seg"] = ipm.segment(sem[t])
                p["objects"] = ipm.objects(sem[t]) if objects else []
            yield p


def evaluate_ipm(dataset_dir, model_cfg: Dict, sequences: Optional[Sequence[int]] = None,
                 fusion=None, samples: int = 4, objects: bool = True,
                 frames: Optional[Sequence[int]] = None, progress: bool = False,
                 min_fraction: Optional[Dict[str, float]] = None) -> Dict:
    """IoU of the IPM baseline's drivable / lane / edge rasters (and, with `objects`, its
    detections' AP) over the held-out frames. Keys: drivable_iou, lane_iou, edge_iou,
    iou_by_range {layer: {band: IoU}} (cells by distance from base_link), vehicle_ap (mean
    of AP at 0.5/1/2/4 m), vehicle_ap_by_range, ap / mean_ap per group,
    occluded_recall (0 by construction: IPM sees only visible pixels), velocity_err_single
    (None: IPM gives no velocity), frames, eval_s, and the settings. `fusion` (a mode or
    {layer: mode}) and `min_fraction` default to the module's calibrated defaults."""
    ipm = IPMBaseline.from_config(model_cfg, fusion=fusion, samples=samples,
                                  min_fraction=min_fraction)
    grid = ipm.grid
    dist = np.hypot(*np.moveaxis(grid.cell_centres(), -1, 0))
    band_mask = {band_name(lo, hi): (dist >= lo) & (dist < hi) for lo, hi in RANGE_BANDS}
    ious = {c: IoUAccumulator() for c in SEG_LAYERS}
    ious_r = {c: {b: IoUAccumulator() for b in band_mask} for c in SEG_LAYERS}
    ev = ProtocolEvaluator(EvaluationProtocol.from_model_config(model_cfg))
    n = 0
    t0 = time.perf_counter()
    last_seq = None
    for p in iter_ipm_predictions(dataset_dir, model_cfg, sequences, ipm, objects, frames):
        s, t = p["labels"], p["t"]
        if progress and p["sequence"] != last_seq:
            last_seq = p["sequence"]
            print(f"  sequence {last_seq} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                  flush=True)
        for ci, c in enumerate(SEG_LAYERS):
            pr, gt = p["seg"][ci] >= 0.5, s.seg[t, ci] >= 0.5
            ious[c].add(pr, gt)
            for b, m in band_mask.items():
                ious_r[c][b].add(pr[m], gt[m])
        if objects:
            ev.add_frame(p["stamp"], p["objects"], p["ground_truth"], sequence=p["sequence"])
        n += 1
    res = {"method": "oracle semantic segmentation (simulator) + per-camera IPM, late fusion",
           "fusion": ipm.fusion, "min_fraction": ipm.min_fraction,
           "samples_per_cell": samples * samples, "frames": n,
           "drivable_iou": ious["drivable"].value, "lane_iou": ious["lane"].value,
           "edge_iou": ious["edge"].value,
           "iou_by_range": {c: {b: a.value for b, a in r.items()} for c, r in ious_r.items()}}
    if objects:
        s = ev.summary()
        res.update({"vehicle_ap": s["vehicle_ap"],
                    "mean_ap": s["mean_ap"], "ap": s["ap"], "n_gt": s["n_gt"],
                    "vehicle_ap_by_range": s["vehicle_ap_by_range"],
                    "occluded_recall": s["occluded_recall"],
                    "occluded_total": s["occluded_total"],
                    "velocity_err_single": None, "velocity_err_video": None})
    res["eval_s"] = time.perf_counter() - t0
    return res


CALIBRATION_FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def calibrate_ipm(dataset_dir, model_cfg: Dict, sequences: Optional[Sequence[int]] = None,
                  samples: int = 4, frames: Optional[Sequence[int]] = None,
                  fractions: Sequence[float] = CALIBRATION_FRACTIONS) -> Dict:
    """Sweep the late fusion (closest / mean / max) and the share of a cell's observed
    ground pixels that sets it, per layer, on a *calibration* data set (not the held-out
    one). Returns {"iou": {layer: {fusion: {fraction: IoU}}}, "best": {layer: {"fusion",
    "min_fraction", "iou"}}}."""
    ipm = IPMBaseline.from_config(model_cfg, samples=samples)
    acc = {c: {f: {m: IoUAccumulator() for m in fractions} for f in FUSIONS} for c in SEG_LAYERS}
    for p in iter_ipm_predictions(dataset_dir, model_cfg, sequences, ipm, objects=False,
                                  frames=frames, semantic_out=True):
        s, t = p["labels"], p["t"]
        per_cam, obs = ipm.fractions(p["semantic"])
        for li, c in enumerate(SEG_LAYERS):
            gt = (s.seg[t, li] >= 0.5).reshape(-1)
            for f in FUSIONS:
                v = ipm.fuse(per_cam[li], obs, f)
                for m in fractions:
                    acc[c][f][m].add((v > 0) & (v >= m), gt)
    iou = {c: {f: {m: a.value for m, a in d.items()} for f, d in r.items()} for c, r in acc.items()}
    best = {}
    for c, r in iou.items():
        f, m = max(((f, m) for f in r for m in r[f]), key=lambda k: r[k[0]][k[1]])
        best[c] = {"fusion": f, "min_fraction": m, "iou": r[f][m]}
    return {"iou": iou, "best": best}


def _nan_to_none(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_nan_to_none(v) for v in o]
    return o


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonomy_tools.ipm_baseline",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="data set with --semantic images")
    ap.add_argument("--out", default="", help="JSON file for the results")
    ap.add_argument("--config", default=str(default_config_path()),
                    help="perception model config (cameras, input size, BEV raster)")
    ap.add_argument("--sequences", type=int, default=0, help="first N sequences (0 = all)")
    ap.add_argument("--frame-stride", type=int, default=1, help="every k-th frame")
    ap.add_argument("--fusion", default="", choices=["", *FUSIONS],
                    help="one late fusion for all layers (default: the calibrated per-layer one)")
    ap.add_argument("--calibrate", action="store_true",
                    help="sweep fusion x min_fraction per layer on --data (a calibration set)")
    ap.add_argument("--samples", type=int, default=4, help="samples per cell side")
    ap.add_argument("--no-objects", action="store_true")
    a = ap.parse_args(argv)
    cfg = load_model_config(a.config)
    try:
        n_seq = len(SimDataset(a.data, cfg, rectify=False))
        seqs = list(range(n_seq if a.sequences <= 0 else min(a.sequences, n_seq)))
        frames = None if a.frame_stride <= 1 else range(0, 10 ** 6, a.frame_stride)
        if a.calibrate:
            res = calibrate_ipm(a.data, cfg, seqs, a.samples, frames)
            if a.out:
                Path(a.out).write_text(json.dumps(_nan_to_none(res), indent=1))
            print(json.dumps(res["best"]))
            return 0
        res = evaluate_ipm(a.data, cfg, seqs, a.fusion or None, a.samples, not a.no_objects,
                           frames, progress=True)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res = _nan_to_none({"data": str(a.data), "config": str(a.config), **res})
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps({k: res.get(k) for k in ("frames", "drivable_iou", "lane_iou", "edge_iou",
                                               "vehicle_ap", "eval_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
