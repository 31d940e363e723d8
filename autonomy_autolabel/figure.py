"""The README figure: auto-labels vs the online perception output vs ground truth, bird's
eye view of a few frames of one recorded simulator clip.

    python -m autonomy_autolabel.figure BAG --out docs/images/autolabel_vs_online.png \
        [--frames 40,80,120]

Left to right per frame: the online output (the network + the node's tracker at its
operating point; arrows = reported velocity) and the auto-labels (tracks; parked = filled,
velocity exactly 0; bridged through an occlusion = dashed), both over the ground-truth
boxes (grey) and the fused road (drivable shaded, lanes/edges dark) in the ego frame.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from autonomy_autolabel.labeler import AutolabelConfig, autolabel_clip
from autonomy_perception.evaluation.protocol import EvaluationProtocol
from autonomy_perception.inference_engine import InferenceEngine
from autonomy_replay.bag_data import BagData, non_image
from autonomy_replay.perception_eval import bag_frames
from autonomy_stack.paths import share_dir


def _boxes(ax, objs, color, fill=False, dashed_if_occluded=False, arrows=True):
    # lazy: optional dependency (plotting)
    from matplotlib.patches import Polygon
    for o in objs:
        ls = "--" if dashed_if_occluded and o.occluded else "-"
        filled = fill and o.is_static
        ax.add_patch(Polygon(o.corners(), closed=True, fill=filled, alpha=0.5 if filled else 1.0,
                             ec=color, fc=color, ls=ls, lw=1.2))
        if arrows and abs(o.speed) > 0.3:
            ax.arrow(o.x, o.y, o.vx, o.vy, color=color, width=0.08, head_width=0.6, length_includes_head=True)


def draw(bag, labels, frames_wanted, out: Path, protocol: EvaluationProtocol) -> None:
    # lazy: optional dependency (plotting)
    import matplotlib
    matplotlib.use("Agg")
    # lazy: optional dependency (plotting), after choosing the non-interactive backend
    import matplotlib.pyplot as plt
    data = BagData(bag, non_image)
    gt = {f.stamp_ns: f.ground_truth for f in bag_frames(data, data, protocol, with_predictions=False)}
    grid = protocol.grid
    ext = [grid.y_range[1], grid.y_range[0], grid.x_range[0], grid.x_range[1]]
    fig, axes = plt.subplots(len(frames_wanted), 2, figsize=(9, 4.6 * len(frames_wanted)))
    axes = np.atleast_2d(axes)
    for row, k in enumerate(frames_wanted):
        f = labels.frames[k]
        road = labels.road_raster(k, grid)
        g = [o for o in gt.get(f.stamp_ns, []) if protocol.inside(o)]
        for col, (title, objs) in enumerate((("online output", f.online), ("auto-labels", labels.objects_in_ego(k)))):
            ax = axes[row, col]
            # network raster: rows = x (front first), cols = y (left first) -> plot y on the
            # horizontal axis reversed (left = left), x up
            ax.imshow(np.clip(road[0] * 0.25 + np.maximum(road[1], road[2]) * 0.6, 0, 1),
                      extent=ext, cmap="Greys", vmin=0, vmax=1, origin="upper")
            _boxes(ax, [_swap(o) for o in g], "0.45", arrows=True)
            _boxes(ax, [_swap(o) for o in objs if protocol.inside(o)],
                   "tab:red" if col == 0 else "tab:blue", fill=col == 1, dashed_if_occluded=col == 1)
            ax.plot(0, 0, marker="^", color="k")
            ax.set_xlim(grid.y_range[1], grid.y_range[0])
            ax.set_ylim(grid.x_range[0], grid.x_range[1])
            ax.set_title(f"{title}, t = {labels.stamps[k] - labels.stamps[0]:.1f} s", fontsize=9)
            ax.set_xlabel("y (m, left)")
            ax.set_ylabel("x (m, forward)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def _swap(o):
    """An object drawn with y on the horizontal axis and x on the vertical one."""
    return replace(o, x=o.y, y=o.x, yaw=math.pi / 2 - o.yaw)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonomy_autolabel.figure", description=__doc__.split("\n")[0])
    ap.add_argument("bag")
    ap.add_argument("--out", default=str(share_dir() / "docs" / "images" / "autolabel_vs_online.png"))
    ap.add_argument("--frames", default="60,140")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    engine = InferenceEngine.from_checkpoint(share_dir() / "models" / "perception_tiny.pt", "cpu")
    labels = autolabel_clip(a.bag, engine, AutolabelConfig())
    ks = [min(int(k), len(labels.frames) - 1) for k in a.frames.split(",")]
    draw(a.bag, labels, ks, Path(a.out), EvaluationProtocol.from_model_config(engine.config))
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
