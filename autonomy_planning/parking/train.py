"""Imitation training of the parking policy/value network from A* solutions.

    python -m autonomy_planning.parking.train --lots 200 --starts 4 --epochs 40 --seed 0 \\
        --out models/parking_policy.pt --work build/parking_train

1. Data: for each training lot (seeds `lot.train_seeds`, disjoint from the held-out seeds
   of the bench) the problem's start plus `starts - 1` more start poses are solved with
   A* (navigation-route heuristic, weighted by `--weight` for speed); every node on a solution path gives one
   sample: ego raster + car state -> the primitive taken (policy target) and the
   remaining cost of the path (value target). Cached in `<work>/data.npz`.
2. Training: cross-entropy (policy, masked to the collision-free primitives) + Huber loss
   (value / VALUE_SCALE), Adam, a held-out 10 % of the lots for validation; a checkpoint
   per epoch in `<work>/ckpt_XXX.pt`; the best validation checkpoint is written to `--out`
   with its figures (also in `<work>/metrics.json`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from multiprocessing import Pool

import numpy as np
import torch
import torch.nn.functional as F

from autonomy_planning.parking.astar import astar
from autonomy_planning.parking.lot import sample_start, train_seeds
from autonomy_planning.parking.network import (VALUE_SCALE, PolicyValueNet, SceneFeatures,
                                               save_model)
from autonomy_planning.parking.primitives import SearchSpace
from autonomy_tools.parking_problems import make_problem


def collect_lot(args):
    seed, n_starts, max_nodes, weight = args
    torch.set_num_threads(1)
    pb = make_problem(seed)
    rng = np.random.default_rng(seed + 7919)
    starts = [pb.start]
    for _ in range(n_starts - 1):
        s = sample_start(pb.lot, pb.goal, pb.cache["cspace"], rng)
        if s is not None:
            starts.append(s)
    out = {"raster": [], "state": [], "action": [], "valid": [], "ctg": [], "lot": []}
    stats = {"seed": seed, "solved": 0, "tried": 0, "nodes": []}
    for st in starts:
        sp = SearchSpace(pb.lot, st, pb.goal, grid=pb.cache["grid"], cspace=pb.cache["cspace"])
        feats = SceneFeatures(sp)
        r = astar(sp, "route", max_nodes=max_nodes, weight=weight)
        stats["tried"] += 1
        if not r.success:
            continue
        stats["solved"] += 1
        stats["nodes"].append(r.expanded)
        g = 0.0
        for (x, y, h, d, p, gk) in r.path[:-1]:
            valid, goal_k, ex, ey, eh, cost = sp.expand(x, y, h, d)
            yaw = sp.yaw_of(h)
            out["raster"].append(np.round(feats.raster(x, y, yaw) * 2).astype(np.uint8))
            out["state"].append(feats.state(x, y, yaw, d))
            out["action"].append(p)
            out["valid"].append(valid)
            out["ctg"].append(r.cost - g)
            out["lot"].append(seed)
            g += float(cost[p]) if gk < 0 else float(sp.sample_cost[p, gk] + sp.switch_cost(d, sp.prim_dir[p]))
    return out, stats


def collect(n_lots: int, n_starts: int, workers: int, max_nodes: int = 150_000, offset: int = 0,
            weight: float = 1.0):
    seeds = train_seeds(n_lots, offset)
    data = {"raster": [], "state": [], "action": [], "valid": [], "ctg": [], "lot": []}
    all_stats = []
    t0 = time.time()
    jobs = [(s, n_starts, max_nodes, weight) for s in seeds]
    it = Pool(workers).imap(collect_lot, jobs) if workers > 1 else map(collect_lot, jobs)
    for i, (out, st) in enumerate(it):
        for k in data:
            data[k].extend(out[k])
        all_stats.append(st)
        if (i + 1) % 10 == 0:
            print(f"collect: {i + 1}/{n_lots} lots, {len(data['action'])} samples, "
                  f"{time.time() - t0:.0f} s", flush=True)
    arrays = {"raster": np.stack(data["raster"]), "state": np.stack(data["state"]),
              "action": np.array(data["action"], np.int64), "valid": np.stack(data["valid"]),
              "ctg": np.array(data["ctg"], np.float32), "lot": np.array(data["lot"], np.int64)}
    return arrays, all_stats


MIRROR_PERM = [4, 3, 2, 1, 0, 9, 8, 7, 6, 5]   # primitive (d, k) -> (d, -k)


def mirror(data: dict, idx: np.ndarray) -> dict:
    """Left-right mirrored copies of samples `idx` (a mirrored lot is a valid lot): the
    raster flips across the car's axis, lateral goal offset and heading error change sign,
    steering primitives swap left/right; the cost-to-go is unchanged."""
    st = data["state"][idx].copy()
    st[:, 1] *= -1.0
    st[:, 3] *= -1.0
    perm = np.array(MIRROR_PERM)
    inv = np.argsort(perm)
    return {"raster": data["raster"][idx][:, :, :, ::-1].copy(), "state": st,
            "action": perm[data["action"][idx]], "valid": data["valid"][idx][:, inv],
            "ctg": data["ctg"][idx], "lot": data["lot"][idx]}


def train(data: dict, epochs: int, seed: int, work: str, lr: float = 1e-3, batch: int = 128,
          n_actions: int = 10, augment_mirror: bool = False):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lots = np.unique(data["lot"])
    val_lots = set(rng.choice(lots, size=max(1, len(lots) // 10), replace=False).tolist())
    is_val = np.array([l in val_lots for l in data["lot"]])
    tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if augment_mirror:           # mirrored copies of the training samples only
        m = mirror(data, tr)
        n0 = len(data["action"])
        data = {k: np.concatenate([data[k], m[k]]) for k in data}
        tr = np.concatenate([tr, n0 + np.arange(len(m["action"]))])
    R = torch.from_numpy(data["raster"]).float() / 2.0
    S = torch.from_numpy(data["state"]).float()
    A = torch.from_numpy(data["action"])
    V = torch.from_numpy(data["valid"])
    C = torch.from_numpy(data["ctg"]).float() / VALUE_SCALE
    net = PolicyValueNet(n_actions)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)

    def run(idx, training):
        net.train(training)
        tot = {"loss": 0.0, "acc": 0.0, "vmae": 0.0, "n": 0}
        order = torch.from_numpy(idx)[torch.randperm(len(idx), generator=gen)] if training \
            else torch.from_numpy(idx)
        for b in range(0, len(order), batch):
            j = order[b:b + batch]
            with torch.set_grad_enabled(training):
                logits, v = net(R[j], S[j])
                logits = logits.masked_fill(~V[j], -1e9)
                lp = F.cross_entropy(logits, A[j])
                lv = F.smooth_l1_loss(v, C[j], beta=0.1)
                loss = lp + lv
                if training:
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            n = len(j)
            tot["loss"] += float(loss) * n
            tot["acc"] += float((logits.argmax(1) == A[j]).float().sum())
            tot["vmae"] += float((v - C[j]).abs().sum()) * VALUE_SCALE
            tot["n"] += n
        return {k: tot[k] / max(tot["n"], 1) for k in ("loss", "acc", "vmae")}

    best, history = None, []
    os.makedirs(work, exist_ok=True)
    for ep in range(epochs):
        t0 = time.time()
        trm = run(tr, True)
        sched.step()
        vam = run(va, False)
        history.append({"epoch": ep, "train": trm, "val": vam, "s": time.time() - t0})
        print(f"epoch {ep:3d} train loss {trm['loss']:.3f} acc {trm['acc']:.3f} | val loss "
              f"{vam['loss']:.3f} acc {vam['acc']:.3f} value MAE {vam['vmae']:.2f} "
              f"({time.time() - t0:.1f} s)", flush=True)
        save_model(net, os.path.join(work, f"ckpt_{ep:03d}.pt"), {"epoch": ep, "val": vam})
        if best is None or vam["loss"] < best[1]["loss"]:
            best = (ep, vam, {k: v.clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[2])
    net.eval()
    return net, {"best_epoch": best[0], "best_val": best[1], "history": history,
                 "n_train": int(len(tr)), "n_val": int(len(va)),
                 "n_train_lots": int(len(lots) - len(val_lots)), "n_val_lots": len(val_lots)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lots", type=int, default=200)
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-nodes", type=int, default=150_000)
    ap.add_argument("--weight", type=float, default=1.5,
                    help="A* heuristic weight of the expert (1 = optimal, >1 faster)")
    ap.add_argument("--out", default="models/parking_policy.pt")
    ap.add_argument("--work", default="build/parking_train")
    ap.add_argument("--reuse-data", action="store_true", help="use <work>/data.npz if present")
    ap.add_argument("--data", default=None, help="data.npz to use (default <work>/data.npz)")
    ap.add_argument("--mirror", type=int, default=1, help="1: add left-right mirrored samples")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    os.makedirs(a.work, exist_ok=True)
    path = a.data or os.path.join(a.work, "data.npz")
    t0 = time.time()
    if a.reuse_data and os.path.exists(path):
        data = dict(np.load(path))
        cstats = json.load(open(os.path.join(os.path.dirname(path), "collect_stats.json")))
    else:
        data, stats = collect(a.lots, a.starts, a.workers, a.max_nodes, weight=a.weight)
        np.savez_compressed(path, **data)
        solved = sum(s["solved"] for s in stats)
        tried = sum(s["tried"] for s in stats)
        cstats = {"lots": a.lots, "searches": tried, "solved": solved,
                  "samples": int(len(data["action"])), "collect_s": round(time.time() - t0, 1)}
        json.dump(cstats, open(os.path.join(a.work, "collect_stats.json"), "w"), indent=1)
    print("data:", cstats, flush=True)
    t1 = time.time()
    net, m = train(data, a.epochs, a.seed, a.work, augment_mirror=bool(a.mirror))
    m["train_s"] = round(time.time() - t1, 1)
    m["collect"] = cstats
    m["command"] = "python -m autonomy_planning.parking.train " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items() if not isinstance(v, bool))
    save_model(net, a.out, {k: v for k, v in m.items() if k != "history"})
    json.dump(m, open(os.path.join(a.work, "metrics.json"), "w"), indent=1)
    print(json.dumps({k: v for k, v in m.items() if k != "history"}))


if __name__ == "__main__":
    main()
