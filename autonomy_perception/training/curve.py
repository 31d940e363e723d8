"""Training curve of a perception run as a PNG: training loss (raw and a 50-step running
mean) and the validation figures written every `val_every` steps.

    python -m autonomy_perception.training.curve data/perception2/runs/tiny \\
        --out models/perception_tiny_curve.png
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def _rows(path: Path):
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def _col(rows, key):
    out = []
    for r in rows:
        try:
            out.append(float(r[key]))
        except (KeyError, TypeError, ValueError):
            out.append(float("nan"))
    return np.array(out)


def plot(run_dir, out) -> Path:
    import matplotlib  # lazy: matplotlib only for this command (start-up time)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after selecting the headless backend
    run = Path(run_dir)
    sc, val = _rows(run / "scalars.csv"), _rows(run / "val.csv")
    if not sc:
        raise FileNotFoundError(f"no training scalars in {run}/scalars.csv")
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    step, loss = _col(sc, "step"), _col(sc, "loss")
    a.plot(step, loss, color="0.75", lw=0.5, label="loss")
    k = min(50, len(loss))
    a.plot(step[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), color="C0",
           label=f"{k}-step mean")
    if "elapsed_s" in sc[0]:
        hours = _col(sc, "elapsed_s")[-1] / 3600.0
        a.set_title(f"training loss ({len(sc)} steps, {hours:.2f} h)", fontsize=10)
    a.set_xlabel("step")
    a.set_yscale("log")
    a.legend(fontsize=8)
    a.grid(True, lw=0.3)
    if val:
        vs = _col(val, "step")
        for key, c in (("vehicle_ap", "C3"), ("drivable_iou", "C2"), ("lane_iou", "C1"),
                       ("edge_iou", "C4"), ("occluded_recall", "C5")):
            if key in val[0]:
                b.plot(vs, _col(val, key), "o-", color=c, ms=3, label=key)
        b.set_ylim(0, 1)
        b.legend(fontsize=8)
    b.set_title("validation (held-out sequences)", fontsize=10)
    b.set_xlabel("step")
    b.grid(True, lw=0.3)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonomy_perception.training.curve")
    ap.add_argument("run_dir")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        print(plot(a.run_dir, a.out))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
