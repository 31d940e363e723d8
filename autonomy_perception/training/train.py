"""Train the BEV/video perception network on simulator sequences.

    python -m autonomy_perception.training.train --config config/perception_train_tiny.yaml
        [--resume] [--steps N] [--out DIR] [--export models/perception_tiny.pt]
    torchrun --nproc_per_node 4 -m autonomy_perception.training.train --config ...   # DDP

Config (YAML): `model:` (network config, see network/config.py), `data:` (train/val dataset
directories, clip length, burn-in, rectification), `train:` (seed, steps, batch, lr, ...).
One step = a batch of clips: a random number of burn-in frames (no gradient) builds the
video state, then `clip_len` frames are trained with backpropagation through time. With
probability `single_frame_prob` a batch is trained in single-frame mode (state reset every
frame, single-frame targets), so the same weights serve both modes.

Outputs in `out`: scalars.csv (per step losses, lr, s/step), val.csv (validation metrics
every `val_every` steps), last.pt (model + optimiser + RNG state: `--resume` continues
bit-for-bit where it stopped), and the exported inference checkpoint (`export`).
Under torchrun (WORLD_SIZE > 1) it wraps the model in DistributedDataParallel (NCCL on
CUDA, gloo on CPU), each rank drawing clips from its own shard of sequences; rank 0 logs,
validates and saves. Nothing in the command changes.

Data loading: by default (`train.loader_workers: 0`) clips are sampled and prepared inline
on the training process. With `loader_workers: N` > 0 a torch DataLoader prefetches whole
batches from N worker processes (`ClipStream`: worker k samples from every N-th sequence of
this rank's shard, with its own RNG; pinned memory on CUDA), so a GPU is not starved by
rectification and target preparation. The batches then differ from the inline ones, and a
`--resume` restarts the workers' RNGs from the step reached (not bit-for-bit)."""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from autonomy_perception.evaluation.evaluate import evaluate_dataset
from autonomy_perception.network.config import ConfigError, arch_diff, load_yaml, model_config
from autonomy_perception.network.model import PerceptionNet, load_checkpoint
from autonomy_perception.training.cache_features import FeatureCache
from autonomy_perception.training.data import DatasetError, SimDataset, collate

TRAIN_DEFAULTS = {"seed": 0, "steps": 500, "batch": 2, "lr": 2e-3, "weight_decay": 1e-4,
                  "warmup": 30, "grad_clip": 5.0, "single_frame_prob": 0.3, "val_every": 100,
                  "val_sequences": 4, "ckpt_every": 25, "threads": 2, "out": "runs/perception",
                  "export": "", "device": "auto", "train_modules": "all",
                  "init_checkpoint": "", "time_budget_s": 0.0, "loader_workers": 0}
DATA_DEFAULTS = {"train": "", "val": "", "rectify": True, "clip_len": 3, "burn_in_max": 6,
                 "memory_s": 2.0, "min_visible_px": 4, "feature_cache": ""}


def load_train_config(path) -> Dict:
    raw = load_yaml(path)
    if "model_config" in raw:
        mc = load_yaml(Path(path).parent / raw["model_config"] if not Path(raw["model_config"]).is_absolute()
                       else raw["model_config"])
        base = mc.get("model", mc)
        base.update(raw.get("model", {}))
        raw["model"] = base
    unknown = set(raw) - {"model", "model_config", "data", "train"}
    if unknown:
        raise ConfigError(f"unknown training config sections {sorted(unknown)}")
    for sec, d in (("train", TRAIN_DEFAULTS), ("data", DATA_DEFAULTS)):
        bad = set(raw.get(sec, {})) - set(d)
        if bad:
            raise ConfigError(f"unknown keys in '{sec}': {sorted(bad)}")
    return {"model": model_config(raw.get("model", {})),
            "data": {**DATA_DEFAULTS, **raw.get("data", {})},
            "train": {**TRAIN_DEFAULTS, **raw.get("train", {})}}


def progress(step: int, elapsed_s: float, cfg: Dict) -> float:
    """Fraction of the schedule done: by steps, or by wall time when `time_budget_s` > 0
    (whichever is further), so a time-boxed run still ends its cosine schedule."""
    p = step / max(1, cfg["steps"])
    if cfg.get("time_budget_s", 0) > 0:
        p = max(p, elapsed_s / cfg["time_budget_s"])
    return min(1.0, p)


def lr_at(step: int, cfg: Dict, elapsed_s: float = 0.0) -> float:
    w, lr = cfg["warmup"], cfg["lr"]
    if step < w:
        return lr * (step + 1) / w
    p = progress(step, elapsed_s, cfg)
    p0 = w / max(1, cfg["steps"])
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, p - p0) / max(1e-9, 1 - p0))))


def sample_batch(ds, rng: np.random.Generator, seq_ids: List[int], B: int, clip_len: int,
                 burn_max: int, video: bool):
    clips, burns = [], []
    burn = int(rng.integers(0, burn_max + 1)) if video else 0
    for _ in range(B):
        i = int(seq_ids[rng.integers(0, len(seq_ids))])
        T = ds.frames(i)
        need = min(T, burn + clip_len)
        start = int(rng.integers(0, T - need + 1))
        b = need - clip_len
        clips.append(ds.clip(i, start + b, clip_len, video, first_dt_zero=(b == 0)))
        if b > 0:
            burns.append(ds.clip(i, start, b, video))
    return collate(clips), (collate(burns) if burns and len(burns) == B else None)


class ClipStream(torch.utils.data.IterableDataset):
    """Endless (video flag, batch, burn-in batch) items for DataLoader workers: the same
    sampling as the inline path (sample_batch); worker k of N draws from seq_ids[k::N]
    (each worker prepares and caches only its share) with RNG (seed, rank, k, start step)."""

    def __init__(self, ds, seq_ids: List[int], tc: Dict, dc: Dict, rank: int, start_step: int):
        super().__init__()
        self.ds, self.seq_ids, self.rank, self.start_step = ds, list(seq_ids), rank, start_step
        self.seed, self.batch = int(tc["seed"]), int(tc["batch"])
        self.single_frame_prob = float(tc["single_frame_prob"])
        self.clip_len, self.burn_in_max = int(dc["clip_len"]), int(dc["burn_in_max"])

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        k, n = (info.id, info.num_workers) if info is not None else (0, 1)
        ids = self.seq_ids[k::n] or self.seq_ids
        rng = np.random.default_rng([self.seed, self.rank, k, self.start_step])
        while True:
            video = bool(rng.random() >= self.single_frame_prob)
            batch, burn = sample_batch(self.ds, rng, ids, self.batch, self.clip_len,
                                       self.burn_in_max, video)
            yield video, batch, burn


def _loader_worker_init(_worker_id: int):
    # lazy: cv2 only matters in the loader workers (rectification); one thread each
    import cv2
    cv2.setNumThreads(1)


def to_device(batch, dev):
    out = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
    if "images" in out:
        out["images"] = out["images"].float().div_(255.0)
    else:   # cached encoder features
        out["feats"] = [out.pop(f"feats{k}").float() for k in range(len([k for k in batch if k.startswith("feats")]))]
    return out


def clip_loss(net, model_call, batch, state, video: bool):
    outs, _ = model_call(batch.get("images"), batch["kin"], batch["dt"], state, video, batch.get("feats"))
    L = batch["kin"].shape[1]
    parts: Dict[str, torch.Tensor] = {}
    for t in range(L):
        tgt = {k: v[:, t] for k, v in batch.items() if k not in ("images", "kin", "dt", "feats")}
        for k, v in net.losses(outs[t], tgt).items():
            parts[k] = parts.get(k, 0.0) + v / L
    return sum(parts.values()), parts


def set_trainable(net: PerceptionNet, which: str):
    """'all' or a comma list of top-level modules (e.g. 'heads' or 'trunk,heads')."""
    if which == "all":
        for p in net.parameters():
            p.requires_grad_(True)
        return
    names = set(which.split(","))
    for n, p in net.named_parameters():
        p.requires_grad_(n.split(".")[0] in names)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonomy_perception.training.train",
                                 description="train the BEV/video perception network")
    ap.add_argument("--config", required=True)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ap.add_argument("--steps", type=int, default=0, help="override train.steps")
    ap.add_argument("--out", default="", help="override train.out")
    ap.add_argument("--export", default="", help="override train.export")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        cfg = load_train_config(a.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tc, dc = cfg["train"], cfg["data"]
    if a.steps:
        tc["steps"] = a.steps
    if a.out:
        tc["out"] = a.out
    if a.export:
        tc["export"] = a.export

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and tc["device"] in ("auto", "cuda")
    dev = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    torch.set_num_threads(int(tc["threads"]))
    torch.set_flush_denormal(True)
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    is_main = rank == 0

    torch.manual_seed(int(tc["seed"]))
    net = PerceptionNet(cfg["model"]).to(dev)
    fcache = None
    try:
        if tc["init_checkpoint"]:
            init, _ = load_checkpoint(tc["init_checkpoint"], dev, expect_config=cfg["model"])
            net.load_state_dict(init.state_dict())
        if dc["feature_cache"]:
            fcache = FeatureCache(dc["feature_cache"], net)
        ds = SimDataset(dc["train"], cfg["model"], rectify=dc["rectify"], memory_s=dc["memory_s"],
                        min_visible_px=dc["min_visible_px"], feature_cache=fcache)
        val = SimDataset(dc["val"], cfg["model"], rectify=dc["rectify"], memory_s=dc["memory_s"],
                         min_visible_px=dc["min_visible_px"]) if dc["val"] and is_main else None
    except Exception as e:  # DatasetError, CheckpointError, FeatureCacheError: user errors
        if not isinstance(e, (DatasetError, ValueError, RuntimeError)):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    seq_ids = [i for i in range(len(ds)) if i % world == rank] or list(range(len(ds)))
    set_trainable(net, tc["train_modules"])
    if fcache is not None:      # the encoder is not run when training from the cache
        for n_, p_ in net.named_parameters():
            if n_.startswith(("backbone.", "fpn.")):
                p_.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc["lr"], weight_decay=tc["weight_decay"])
    rng = np.random.default_rng([int(tc["seed"]), rank])
    out = Path(tc["out"])
    out.mkdir(parents=True, exist_ok=True)
    step = 0
    elapsed = 0.0          # training wall time so far (kept across --resume)
    cpu_s = 0.0            # this process's CPU time in training steps
    frames = 0             # supervised frames (burn-in frames excluded) of this process
    last = out / "last.pt"
    if a.resume and last.exists():
        ck = torch.load(last, map_location=dev, weights_only=False)
        diffs = arch_diff(ck["config"], cfg["model"])
        if diffs:
            print(f"error: {last} has another model config: {'; '.join(diffs[:5])}", file=sys.stderr)
            return 2
        net.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        step = int(ck["step"])
        elapsed, cpu_s, frames = (float(ck.get("elapsed_s", 0.0)), float(ck.get("cpu_s", 0.0)),
                                  int(ck.get("frames", 0)))
        rng.bit_generator.state = ck["rng"][rank] if isinstance(ck["rng"], list) else ck["rng"]
        torch.set_rng_state(ck["torch_rng"].cpu())     # map_location moved it to `dev`
        if use_cuda and ck.get("cuda_rng") is not None:
            cuda_rng = [r.cpu() for r in ck["cuda_rng"]]
            if len(cuda_rng) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda_rng)
            else:
                torch.cuda.set_rng_state(cuda_rng[min(local, len(cuda_rng) - 1)], dev)
        if is_main:
            print(f"resumed from {last} at step {step}", file=sys.stderr)
    elif a.resume and is_main:
        print(f"no {last}; starting from scratch", file=sys.stderr)
    model = net
    if world > 1:
        model = DDP(net, device_ids=[local] if use_cuda else None)

    def call(images, kin, dt, state, video, feats=None):
        return model(images, kin, dt, state, video, None, feats)

    scal_path, val_path = out / "scalars.csv", out / "val.csv"
    scal_f = open(scal_path, "a", newline="") if is_main else None
    scal_w = None
    bar = tqdm(total=tc["steps"], initial=step, desc="train", unit="step",
               disable=not is_main or a.no_progress)
    frozen = {n.split(".")[0] for n, p in net.named_parameters() if not p.requires_grad}

    def train_mode():
        """Frozen modules stay in eval mode (their BatchNorm statistics do not move)."""
        net.train()
        for name in frozen:
            getattr(net, name).eval()

    train_mode()
    loader = None
    if int(tc["loader_workers"]) > 0:
        loader = iter(torch.utils.data.DataLoader(
            ClipStream(ds, seq_ids, tc, dc, rank, step), batch_size=None,
            num_workers=int(tc["loader_workers"]), pin_memory=use_cuda, prefetch_factor=2,
            persistent_workers=True, worker_init_fn=_loader_worker_init))
    t_last = time.perf_counter()
    c_last = time.process_time()

    def rank0_elapsed(e: float) -> float:
        """Rank 0's training time, broadcast: every rank then uses the same learning rate
        and stops at the same step (DDP would diverge or hang otherwise)."""
        if world == 1:
            return e
        t = torch.tensor([e], dtype=torch.float64)
        dist.broadcast(t, 0)
        return float(t.item())

    while True:
        elapsed = rank0_elapsed(elapsed)
        if progress(step, elapsed, tc) >= 1.0:
            break
        if loader is None:
            video = bool(rng.random() >= tc["single_frame_prob"])
            batch, burn = sample_batch(ds, rng, seq_ids, tc["batch"], dc["clip_len"], dc["burn_in_max"], video)
        else:
            video, batch, burn = next(loader)
        batch = to_device(batch, dev)
        state = None
        if burn is not None and video:
            burn = to_device(burn, dev)
            with torch.no_grad():
                _, state = net(burn.get("images"), burn["kin"], burn["dt"], None, True, None,
                               burn.get("feats"))
            state = state.detach()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc, elapsed)
        loss, parts = clip_loss(net, call, batch, state, video)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, tc["grad_clip"])
        opt.step()
        step += 1
        now, cnow = time.perf_counter(), time.process_time()
        elapsed += now - t_last
        cpu_s += cnow - c_last
        frames += int(batch["kin"].shape[0] * batch["kin"].shape[1])
        if is_main:
            row = {"step": step, "lr": lr_at(step - 1, tc, elapsed), "loss": float(loss.detach()),
                   "grad_norm": float(gn), "video": int(video), "s_per_step": now - t_last,
                   "cpu_s_per_step": cnow - c_last, "elapsed_s": elapsed, "frames": frames,
                   **{k: float(v.detach()) for k, v in parts.items()}}
            if scal_w is None:
                scal_w = csv.DictWriter(scal_f, fieldnames=list(row))
                if scal_path.stat().st_size == 0:
                    scal_w.writeheader()
            scal_w.writerow(row)
            scal_f.flush()
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", mode="video" if video else "single")
            bar.update(1)
        final = progress(step, elapsed, tc) >= 1.0
        if is_main and (step % tc["ckpt_every"] == 0 or final):
            torch.save({"format": "perception_train_state/1", "config": net.cfg,
                        "state_dict": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
                        "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state_all() if use_cuda else None,
                        "elapsed_s": elapsed, "cpu_s": cpu_s, "frames": frames,
                        "train_config": cfg}, last.with_suffix(".tmp"))
            os.replace(last.with_suffix(".tmp"), last)
        if is_main and val is not None and (step % tc["val_every"] == 0 or final):
            r = evaluate_dataset(net, val, True, list(range(min(tc["val_sequences"], len(val)))))
            vrow = {"step": step, "drivable_iou": r["iou"].get("drivable"), "lane_iou": r["iou"].get("lane"),
                    "edge_iou": r["iou"].get("edge"), "vehicle_ap": r["vehicle_ap"],
                    "velocity_error": r["velocity_error"], "occluded_recall": r["occluded_recall"]}
            new = not val_path.exists()
            with open(val_path, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(vrow))
                if new:
                    w.writeheader()
                w.writerow(vrow)
            train_mode()
            bar.write(f"val @ {step}: " + ", ".join(f"{k}={v:.3f}" for k, v in vrow.items()
                                                   if k != "step" and v is not None))
        t_last, c_last = time.perf_counter(), time.process_time()   # validation not counted
    bar.close()
    del loader          # stops the loader workers
    if is_main:
        summary = {"steps": step, "elapsed_s": round(elapsed, 1), "cpu_s_rank0": round(cpu_s, 1),
                   "frames_rank0": frames, "world_size": world, "threads": int(tc["threads"]),
                   "train_frames_per_cpu_s": round(frames / max(cpu_s, 1e-9), 4),
                   "train_frames_per_wall_s": round(frames * world / max(elapsed, 1e-9), 4)}
        (out / "train_summary.json").write_text(json.dumps(summary, indent=1))
        print("training summary: " + json.dumps(summary), file=sys.stderr)
    if is_main and tc["export"]:
        net.eval().cpu()        # a portable checkpoint: CPU tensors
        net.save(tc["export"], train={"config_file": str(a.config), "steps": step,
                                      "seed": tc["seed"], "data": dc, "world_size": world,
                                      "elapsed_s": round(elapsed, 1)})
        print(f"exported {tc['export']}", file=sys.stderr)
    if world > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
