"""Parking search benchmark: A* (Euclidean heuristic), A* (navigation-route heuristic) and
network-guided PUCT MCTS on held-out lots from the simulator's parking_lot world (by
default its own scenario: enter on the entrance road and park in the target bay, nose-in
or reverse-in; `--start mixed` also starts in other bays / the aisle).

    bench/run parking [--n 50] [--workers 2] [--euclid-max-nodes 1000000] [--reuse]

Per method: expanded nodes (median, p90; a run stopped by its node budget counts with the
budget as its node count and as a failure: censored), success rate, cost relative to the
best A* cost on the same lot (median over lots both solved), wall time (median). Per-lot
records are appended to `--records` (JSONL); `--reuse` takes records of the same seed,
method and budget from there instead of searching again (A* only; MCTS always runs, the
model may have changed). Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from multiprocessing import Pool

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from autonomy_planning.parking.astar import astar  # noqa: E402
from autonomy_planning.parking.lot import heldout_seeds  # noqa: E402
from autonomy_tools.parking_problems import make_problem  # noqa: E402
from autonomy_planning.parking.primitives import SearchSpace, path_samples  # noqa: E402

METHODS = ("astar_euclid", "astar_route", "mcts")
_NET = {}


def run_lot(job):
    seed, methods, budgets, model, start_kind = job
    import torch
    torch.set_num_threads(1)
    pb = make_problem(seed, start_kind=start_kind)
    out = []
    for m in methods:
        space = SearchSpace(pb.lot, pb.start, pb.goal, grid=pb.cache["grid"],
                            cspace=pb.cache["cspace"])
        if m == "mcts":
            from autonomy_planning.parking.mcts import MCTS
            from autonomy_planning.parking.network import load_model
            if model not in _NET:
                _NET[model] = load_model(model)
            r = MCTS(_NET[model]).search(space, max_nodes=budgets[m])
        else:
            r = astar(space, m.split("_")[1], max_nodes=budgets[m])
        rec = {"seed": seed, "method": m, "budget": budgets[m], "success": bool(r.success),
               "nodes": int(r.expanded), "capped": bool(r.capped),
               "cost": float(r.cost) if r.success else None, "wall_s": round(r.wall_s, 4),
               "steps": len(r.path) - 1 if r.success else None,
               "start": [round(v, 3) for v in pb.start], "goal": [round(v, 3) for v in pb.goal],
               "reverse_in": pb.reverse_in, "start_kind": start_kind}
        if r.success:
            x, y, yaw, curv, d = path_samples(space, r.path)
            rec["cusps"] = int(np.sum(d[2:] != d[1:-1]))
            rec["length_m"] = round(float(np.sum(np.hypot(np.diff(x), np.diff(y)))), 2)
        out.append(rec)
    return out


def summarize(recs, seeds):
    by = {(r["seed"], r["method"]): r for r in recs}
    res = {}
    best_astar = {}
    for s in seeds:
        c = [by[(s, m)]["cost"] for m in ("astar_euclid", "astar_route")
             if (s, m) in by and by[(s, m)]["success"]]
        if c:
            best_astar[s] = min(c)
    for m in METHODS:
        rs = [by[(s, m)] for s in seeds if (s, m) in by]
        if not rs:
            continue
        nodes = np.array([r["nodes"] for r in rs], float)
        ratios = [r["cost"] / best_astar[r["seed"]] for r in rs
                  if r["success"] and r["seed"] in best_astar]
        res[m] = {"nodes_median": float(np.median(nodes)),
                  "nodes_p90": float(np.percentile(nodes, 90)),
                  "success_rate": float(np.mean([r["success"] for r in rs])),
                  "cost_vs_astar": float(np.median(ratios)) if ratios else None,
                  "wall_s_median": float(np.median([r["wall_s"] for r in rs])),
                  "n": len(rs), "capped": int(sum(r["capped"] for r in rs)),
                  "nodes_budget": int(rs[0]["budget"])}
        if ratios:
            res[m]["cost_vs_astar_mean"] = float(np.mean(ratios))
    if "astar_euclid" in res and "mcts" in res:
        res["ratio_euclid_over_mcts"] = res["astar_euclid"]["nodes_median"] / max(
            res["mcts"]["nodes_median"], 1.0)
        res["ratio_route_over_mcts"] = res["astar_route"]["nodes_median"] / max(
            res["mcts"]["nodes_median"], 1.0) if "astar_route" in res else None
        # per-lot ratio (same lot), median
        per = [by[(s, "astar_euclid")]["nodes"] / max(by[(s, "mcts")]["nodes"], 1)
               for s in seeds if (s, "astar_euclid") in by and (s, "mcts") in by]
        res["ratio_euclid_over_mcts_per_lot_median"] = float(np.median(per))
        res["euclid_censored"] = res["astar_euclid"]["capped"] > 0
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50, help="held-out lots")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--euclid-max-nodes", type=int, default=1_000_000)
    ap.add_argument("--route-max-nodes", type=int, default=1_000_000)
    ap.add_argument("--mcts-max-nodes", type=int, default=2000)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "parking_policy.pt"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--records", default=os.path.join(ROOT, "build", "parking_bench.jsonl"))
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--start", default="entrance", choices=("entrance", "mixed"),
                    help="entrance: the world's scenario (enter and park); mixed: also "
                         "starts in other bays / the aisle")
    a = ap.parse_args(argv)
    methods = [m for m in a.methods.split(",") if m]
    budgets = {"astar_euclid": a.euclid_max_nodes, "astar_route": a.route_max_nodes,
               "mcts": a.mcts_max_nodes}
    seeds = heldout_seeds(a.n, a.offset)
    os.makedirs(os.path.dirname(a.records), exist_ok=True)
    old = {}
    if a.reuse and os.path.exists(a.records):
        for line in open(a.records):
            r = json.loads(line)
            old[(r["seed"], r["method"], r["budget"], r.get("start_kind", "mixed"))] = r
    recs, jobs = [], []
    for s in seeds:
        todo = []
        for m in methods:
            r = old.get((s, m, budgets[m], a.start))
            if r is not None and m != "mcts":
                recs.append(r)
            else:
                todo.append(m)
        if todo:
            jobs.append((s, todo, budgets, a.model, a.start))
    t0 = time.time()
    it = Pool(a.workers).imap_unordered(run_lot, jobs) if a.workers > 1 else map(run_lot, jobs)
    with open(a.records, "a") as f:
        for out in it:
            for r in out:
                recs.append(r)
                f.write(json.dumps(r) + "\n")
                print(f"seed {r['seed']} {r['method']:13s} ok={int(r['success'])} nodes={r['nodes']:8d} "
                      f"cost={r['cost'] if r['cost'] is None else round(r['cost'], 1)} "
                      f"wall={r['wall_s']:.2f}s  [{time.time() - t0:.0f}s]", flush=True)
            f.flush()
    res = summarize(recs, seeds)
    res["n_lots"] = len(seeds)
    res["start"] = a.start
    res["seeds"] = [seeds[0], seeds[-1]]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
