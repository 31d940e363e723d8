"""`autonomy-stack autolabel BAG... --out DIR`: label recorded clips offline.

    autonomy-stack autolabel clip1 clip2 --out out/autolabel [--fuse-trips]
        [--checkpoint models/perception_tiny.pt] [--threads 1] [--no-dataset] [--no-mcap]
        [--sequence-frames 64]

Per clip (a rosbag2 with camera images + camera_info, /tf_static, /odom; ground truth is
never read): perception over the whole clip, the offline tracker and the road fusion
(autonomy_autolabel.labeler). Writes
  DIR/mcap/<clip>/          the /autolabel/* bag (output.write_mcap)
  DIR/dataset/              the training data set of all clips (format autonomy_sim_dataset/1)
  DIR/summary.json          per clip: frames, tracks, parked tracks, timings, and the
                            throughput in clip-seconds per CPU-hour
`--fuse-trips`: the clips are trips through the same place (same world seed): their road
grids are aligned by road features and fused, and every clip is written with the fused
road. Exit 0; 2 on a clip that cannot be labeled (the reason is printed) or bad arguments.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Optional

from autonomy_autolabel.clip import ClipError
from autonomy_autolabel.labeler import AutolabelConfig, ClipLabels, autolabel_clip
from autonomy_autolabel.output import write_dataset, write_mcap
from autonomy_autolabel.road import fuse_trips
from autonomy_perception.inference_engine import InferenceEngine
from autonomy_stack.paths import share_dir


def clip_summary(labels: ClipLabels, cpu_s: float) -> dict:
    d = labels.duration_s
    return {"bag": labels.perception.bag, "frames": len(labels.frames), "clip_s": d,
            "tracks": len(labels.tracks), "parked_tracks": sum(tr.static for tr in labels.tracks),
            "road_frames": labels.road.frames, "road_memory_mb": labels.road.memory_bytes / 1e6,
            "timings_s": labels.timings_s, "cpu_s": cpu_s,
            "clip_s_per_cpu_h": d / cpu_s * 3600.0 if cpu_s > 0 else None,
            "problems": labels.perception.problems}


def label_clips(bags: List[Path], engine, cfg: AutolabelConfig):
    """[(labels, cpu seconds)] per clip (process CPU time: the throughput figure)."""
    out = []
    for bag in bags:
        c0 = time.process_time()
        labels = autolabel_clip(bag, engine, cfg)
        out.append((labels, time.process_time() - c0))
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="autonomy-stack autolabel", description=__doc__.split("\n")[0])
    ap.add_argument("bags", nargs="+", help="rosbag2 directories (or .mcap files) of recorded clips")
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint", default=None, help="default: models/perception_tiny.pt")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--fuse-trips", action="store_true", help="clips of the same place: one fused road")
    ap.add_argument("--no-dataset", action="store_true")
    ap.add_argument("--no-mcap", action="store_true")
    ap.add_argument("--sequence-frames", type=int, default=64)
    a = ap.parse_args(argv)
    import torch  # lazy: heavy dependency, only when labeling
    torch.set_num_threads(max(1, a.threads))
    bags = [Path(b) for b in a.bags]
    missing = [str(b) for b in bags if not b.exists()]
    if missing:
        print(f"error: no such bag: {', '.join(missing)}", file=sys.stderr)
        return 2
    ck = Path(a.checkpoint) if a.checkpoint else share_dir() / "models" / "perception_tiny.pt"
    engine = InferenceEngine.from_checkpoint(ck, "cpu")
    try:
        labeled = label_clips(bags, engine, AutolabelConfig())
    except ClipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"checkpoint": str(ck), "clips": [clip_summary(lb, c) for lb, c in labeled]}
    if a.fuse_trips and len(labeled) > 1:
        fused, shifts = fuse_trips([lb.road for lb, _ in labeled])
        for lb, _ in labeled:
            lb.road = fused
        summary["trip_alignment"] = [{"dx_m": s[0], "dy_m": s[1], "response": s[2]} for s in shifts]
    n_seq = 0
    for i, (lb, _) in enumerate(labeled):
        if not a.no_mcap:
            write_mcap(lb, out / "mcap" / f"{i:02d}_{Path(lb.perception.bag).name}")
        if not a.no_dataset:
            n_seq += len(write_dataset(lb, out / "dataset", a.sequence_frames, start_index=n_seq))
    summary["dataset_sequences"] = n_seq
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    for c in summary["clips"]:
        print(f"{c['bag']}: {c['frames']} frames, {c['tracks']} tracks ({c['parked_tracks']} parked), "
              f"{c['clip_s_per_cpu_h']:.0f} clip-s per CPU-hour")
    print(f"written: {out} ({n_seq} data set sequences)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
