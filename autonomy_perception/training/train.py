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


class Trainer:
    """One training process (rank) of a run: set-up, resume, the step loop with logging,
    checkpoints and validation, the summary and the export. Under torchrun every rank
    builds one; rank 0 logs, validates and saves."""

    def __init__(self, cfg: Dict, config_file: str, progress_bar: bool = True):
        self.cfg, self.config_file = cfg, config_file
        self.tc, self.dc = cfg["train"], cfg["data"]
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local = int(os.environ.get("LOCAL_RANK", "0"))
        self.use_cuda = torch.cuda.is_available() and self.tc["device"] in ("auto", "cuda")
        self.dev = torch.device(f"cuda:{self.local}" if self.use_cuda else "cpu")
        self.is_main = self.rank == 0
        self.progress_bar = progress_bar
        self.step, self.elapsed, self.cpu_s, self.frames = 0, 0.0, 0.0, 0
        # elapsed: training wall time (kept across --resume); cpu_s: this process's CPU
        # time in training steps; frames: supervised frames (burn-in excluded) of this rank

    def setup(self) -> None:
        """Devices, process group, network, data sets, optimiser. Raises DatasetError /
        ValueError / RuntimeError (checkpoint, feature cache) on user errors."""
        tc, dc = self.tc, self.dc
        if self.use_cuda:
            torch.cuda.set_device(self.dev)
        torch.set_num_threads(int(tc["threads"]))
        torch.set_flush_denormal(True)
        if self.world > 1:
            dist.init_process_group("nccl" if self.use_cuda else "gloo")
        torch.manual_seed(int(tc["seed"]))
        self.net = net = PerceptionNet(self.cfg["model"]).to(self.dev)
        fcache = None
        if tc["init_checkpoint"]:
            init, _ = load_checkpoint(tc["init_checkpoint"], self.dev, expect_config=self.cfg["model"])
            net.load_state_dict(init.state_dict())
        if dc["feature_cache"]:
            fcache = FeatureCache(dc["feature_cache"], net)
        kw = dict(rectify=dc["rectify"], memory_s=dc["memory_s"], min_visible_px=dc["min_visible_px"])
        self.ds = SimDataset(dc["train"], self.cfg["model"], feature_cache=fcache, **kw)
        self.val = SimDataset(dc["val"], self.cfg["model"], **kw) \
            if dc["val"] and self.is_main else None
        n = len(self.ds)
        self.seq_ids = [i for i in range(n) if i % self.world == self.rank] or list(range(n))
        set_trainable(net, tc["train_modules"])
        if fcache is not None:      # the encoder is not run when training from the cache
            for n_, p_ in net.named_parameters():
                if n_.startswith(("backbone.", "fpn.")):
                    p_.requires_grad_(False)
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=tc["lr"], weight_decay=tc["weight_decay"])
        self.rng = np.random.default_rng([int(tc["seed"]), self.rank])
        self.out = Path(tc["out"])
        self.out.mkdir(parents=True, exist_ok=True)
        self.last = self.out / "last.pt"
        self.frozen = {n.split(".")[0] for n, p in net.named_parameters() if not p.requires_grad}

    def resume(self) -> bool:
        """Continue from OUT/last.pt; False (after printing why) when its config differs."""
        if not self.last.exists():
            if self.is_main:
                print(f"no {self.last}; starting from scratch", file=sys.stderr)
            return True
        ck = torch.load(self.last, map_location=self.dev, weights_only=False)
        diffs = arch_diff(ck["config"], self.cfg["model"])
        if diffs:
            print(f"error: {self.last} has another model config: {'; '.join(diffs[:5])}",
                  file=sys.stderr)
            return False
        self.net.load_state_dict(ck["state_dict"])
        self.opt.load_state_dict(ck["optimizer"])
        self.step = int(ck["step"])
        self.elapsed, self.cpu_s, self.frames = (float(ck.get("elapsed_s", 0.0)),
                                                 float(ck.get("cpu_s", 0.0)), int(ck.get("frames", 0)))
        self.rng.bit_generator.state = ck["rng"][self.rank] if isinstance(ck["rng"], list) else ck["rng"]
        torch.set_rng_state(ck["torch_rng"].cpu())     # map_location moved it to `dev`
        if self.use_cuda and ck.get("cuda_rng") is not None:
            cuda_rng = [r.cpu() for r in ck["cuda_rng"]]
            if len(cuda_rng) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda_rng)
            else:
                torch.cuda.set_rng_state(cuda_rng[min(self.local, len(cuda_rng) - 1)], self.dev)
        if self.is_main:
            print(f"resumed from {self.last} at step {self.step}", file=sys.stderr)
        return True

    def train_mode(self) -> None:
        """Frozen modules stay in eval mode (their BatchNorm statistics do not move)."""
        self.net.train()
        for name in self.frozen:
            getattr(self.net, name).eval()

    def rank0_elapsed(self) -> float:
        """Rank 0's training time, broadcast: every rank then uses the same learning rate
        and stops at the same step (DDP would diverge or hang otherwise)."""
        if self.world == 1:
            return self.elapsed
        t = torch.tensor([self.elapsed], dtype=torch.float64)
        dist.broadcast(t, 0)
        return float(t.item())

    def _batches(self):
        """Endless (video, batch, burn-in batch): inline, or from DataLoader workers."""
        tc, dc = self.tc, self.dc
        if int(tc["loader_workers"]) > 0:
            yield from torch.utils.data.DataLoader(
                ClipStream(self.ds, self.seq_ids, tc, dc, self.rank, self.step), batch_size=None,
                num_workers=int(tc["loader_workers"]), pin_memory=self.use_cuda, prefetch_factor=2,
                persistent_workers=True, worker_init_fn=_loader_worker_init)
            return
        while True:
            video = bool(self.rng.random() >= tc["single_frame_prob"])
            yield (video,) + sample_batch(self.ds, self.rng, self.seq_ids, tc["batch"],
                                          dc["clip_len"], dc["burn_in_max"], video)

    def train_step(self, model_call, video: bool, batch, burn):
        """One optimiser step on a clip after its burn-in -> (loss, parts, grad norm)."""
        batch = to_device(batch, self.dev)
        state = None
        if burn is not None and video:
            burn = to_device(burn, self.dev)
            with torch.no_grad():
                _, state = self.net(burn.get("images"), burn["kin"], burn["dt"], None, True, None,
                                    burn.get("feats"))
            state = state.detach()
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, self.tc, self.elapsed)
        loss, parts = clip_loss(self.net, model_call, batch, state, video)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(self.params, self.tc["grad_clip"])
        self.opt.step()
        self.step += 1
        self.frames += int(batch["kin"].shape[0] * batch["kin"].shape[1])
        return loss, parts, gn

    def save_state(self) -> None:
        torch.save({"format": "perception_train_state/1", "config": self.net.cfg,
                    "state_dict": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                    "step": self.step, "rng": self.rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if self.use_cuda else None,
                    "elapsed_s": self.elapsed, "cpu_s": self.cpu_s, "frames": self.frames,
                    "train_config": self.cfg}, self.last.with_suffix(".tmp"))
        os.replace(self.last.with_suffix(".tmp"), self.last)

    def validate(self) -> Dict:
        tc, val = self.tc, self.val
        r = evaluate_dataset(self.net, val, True, list(range(min(tc["val_sequences"], len(val)))))
        vrow = {"step": self.step, "drivable_iou": r["iou"].get("drivable"),
                "lane_iou": r["iou"].get("lane"), "edge_iou": r["iou"].get("edge"),
                "vehicle_ap": r["vehicle_ap"], "velocity_error": r["velocity_error"],
                "occluded_recall": r["occluded_recall"]}
        path = self.out / "val.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(vrow))
            if new:
                w.writeheader()
            w.writerow(vrow)
        self.train_mode()
        return vrow

    def run(self) -> None:
        """The step loop until the schedule (steps or time budget) is done."""
        tc = self.tc
        model = DDP(self.net, device_ids=[self.local] if self.use_cuda else None) \
            if self.world > 1 else self.net

        def call(images, kin, dt, state, video, feats=None):
            return model(images, kin, dt, state, video, None, feats)

        log = ScalarLog(self.out / "scalars.csv") if self.is_main else None
        bar = tqdm(total=tc["steps"], initial=self.step, desc="train", unit="step",
                   disable=not self.is_main or not self.progress_bar)
        self.train_mode()
        batches = self._batches()
        t_last, c_last = time.perf_counter(), time.process_time()
        while True:
            self.elapsed = self.rank0_elapsed()
            if progress(self.step, self.elapsed, tc) >= 1.0:
                break
            video, batch, burn = next(batches)
            loss, parts, gn = self.train_step(call, video, batch, burn)
            now, cnow = time.perf_counter(), time.process_time()
            self.elapsed += now - t_last
            self.cpu_s += cnow - c_last
            if log is not None:
                log.write({"step": self.step, "lr": lr_at(self.step - 1, tc, self.elapsed),
                           "loss": float(loss.detach()), "grad_norm": float(gn), "video": int(video),
                           "s_per_step": now - t_last, "cpu_s_per_step": cnow - c_last,
                           "elapsed_s": self.elapsed, "frames": self.frames,
                           **{k: float(v.detach()) for k, v in parts.items()}})
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", mode="video" if video else "single")
                bar.update(1)
            final = progress(self.step, self.elapsed, tc) >= 1.0
            if self.is_main and (self.step % tc["ckpt_every"] == 0 or final):
                self.save_state()
            if self.is_main and self.val is not None and (self.step % tc["val_every"] == 0 or final):
                vrow = self.validate()
                bar.write(f"val @ {self.step}: " + ", ".join(
                    f"{k}={v:.3f}" for k, v in vrow.items() if k != "step" and v is not None))
            t_last, c_last = time.perf_counter(), time.process_time()   # validation not counted
        bar.close()
        batches.close()         # stops the loader workers

    def finish(self) -> None:
        """Summary (rank 0), export (rank 0, when configured), process group down."""
        tc = self.tc
        summary = None
        if self.is_main:
            summary = {"steps": self.step, "elapsed_s": round(self.elapsed, 1),
                       "cpu_s_rank0": round(self.cpu_s, 1), "frames_rank0": self.frames,
                       "world_size": self.world, "threads": int(tc["threads"]),
                       "train_frames_per_cpu_s": round(self.frames / max(self.cpu_s, 1e-9), 4),
                       "train_frames_per_wall_s": round(self.frames * self.world
                                                        / max(self.elapsed, 1e-9), 4)}
            (self.out / "train_summary.json").write_text(json.dumps(summary, indent=1))
            print("training summary: " + json.dumps(summary), file=sys.stderr)
        if self.is_main and tc["export"]:
            self.net.eval().cpu()        # a portable checkpoint: CPU tensors
            self.net.save(tc["export"], train={
                "config_file": str(self.config_file), "steps": self.step, "seed": tc["seed"],
                "data": self.dc, "world_size": self.world, "elapsed_s": round(self.elapsed, 1),
                "summary": summary})
            print(f"exported {tc['export']}", file=sys.stderr)
        if self.world > 1:
            dist.destroy_process_group()


class ScalarLog:
    """scalars.csv, one row per step (appends across --resume)."""

    def __init__(self, path: Path):
        self.path = path
        self.f = open(path, "a", newline="")
        self.w = None

    def write(self, row: Dict) -> None:
        if self.w is None:
            self.w = csv.DictWriter(self.f, fieldnames=list(row))
            if self.path.stat().st_size == 0:
                self.w.writeheader()
        self.w.writerow(row)
        self.f.flush()


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
    tc = cfg["train"]
    for key in ("steps", "out", "export"):
        if getattr(a, key):
            tc[key] = getattr(a, key)
    tr = Trainer(cfg, a.config, progress_bar=not a.no_progress)
    try:
        tr.setup()
    except (DatasetError, ValueError, RuntimeError) as e:   # data, checkpoint, feature cache
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.resume and not tr.resume():
        return 2
    tr.run()
    tr.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
