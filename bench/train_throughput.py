"""Training throughput of the perception network on this machine: supervised frames per
CPU-second (and per wall second), round 1's setting vs this round's, in the same run.

  before: one process, torch at 2 intra-op threads (round 1)
  after:  two data-parallel processes (torchrun, gloo), one intra-op thread each

Both train the committed configuration (config/perception_train_tiny.yaml: 8-frame clips
after 0-8 burn-in frames) for the same number of steps per process from the same seed,
into a scratch folder. Supervised frames exclude burn-in frames; CPU seconds are the
training processes' own (validation and start-up excluded, see training/train.py).

    bench/run train_throughput [--steps 12] [--config config/perception_train_tiny.yaml]

Never run it beside another heavy job (it measures CPU contention by design). The last
printed line is one JSON object."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _subset(data: Path, out: Path, n: int) -> Path:
    """A data set of the first `n` sequences (symlinks): every process loads its sequences
    once, in its first steps, so the figure is the training step's cost, as in a long run
    where the loader's cache holds the data set."""
    man = json.loads((data / "manifest.json").read_text())
    files = sorted(data.glob("shard_*/seq_*.npz"))[:n]
    (out / "shard_0000").mkdir(parents=True)
    for f in files:
        (out / "shard_0000" / f.name).symlink_to(f.resolve())
    man["sequences"] = len(files)
    (out / "manifest.json").write_text(json.dumps(man))
    return out


def _run(cfg: dict, out: Path, steps: int, procs: int, threads: int) -> dict:
    cfg = json.loads(json.dumps(cfg))
    cfg["train"].update({"threads": threads, "steps": steps, "time_budget_s": 0, "out": str(out),
                         "export": "", "val_every": 10 ** 9, "ckpt_every": 10 ** 9})
    cfg["data"]["val"] = ""
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    mod = ["-m", "autonomy_perception.training.train", "--config", str(path), "--no-progress"]
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={procs}"] + mod) if procs > 1 else [sys.executable] + mod
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return json.loads((out / "train_summary.json").read_text())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "config" / "perception_train_tiny.yaml"))
    ap.add_argument("--steps", type=int, default=12)
    a = ap.parse_args()
    raw = yaml.safe_load(Path(a.config).read_text())
    mc = raw.get("model_config")
    if mc and not Path(mc).is_absolute():
        raw["model_config"] = str(Path(a.config).parent / mc)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(raw["data"]["train"])
        raw["data"]["train"] = str(_subset(data if data.is_absolute() else ROOT / data,
                                           Path(tmp) / "data", 2))
        before = _run(raw, Path(tmp) / "before", a.steps, 1, 2)
        after = _run(raw, Path(tmp) / "after", a.steps, 2, 1)
    load1 = os.getloadavg()
    res = {"before_1proc_2threads": before, "after_2procs_1thread": after,
           "train_frames_per_cpu_s_before": before["train_frames_per_cpu_s"],
           "train_frames_per_cpu_s": after["train_frames_per_cpu_s"],
           "cpu_efficiency_ratio": round(after["train_frames_per_cpu_s"]
                                         / before["train_frames_per_cpu_s"], 3),
           "wall_throughput_ratio": round(after["train_frames_per_wall_s"]
                                          / before["train_frames_per_wall_s"], 3),
           "steps_per_process": a.steps, "loadavg_before": [round(x, 2) for x in load0],
           "loadavg_after": [round(x, 2) for x in load1]}
    print(f"frames per CPU-s: before {res['train_frames_per_cpu_s_before']}, after "
          f"{res['train_frames_per_cpu_s']} (x{res['cpu_efficiency_ratio']}); wall frames/s "
          f"x{res['wall_throughput_ratio']}; load average {res['loadavg_before']} -> "
          f"{res['loadavg_after']}", file=sys.stderr)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
