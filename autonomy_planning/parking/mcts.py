"""PUCT Monte-Carlo tree search (AlphaZero style) over the parking motion primitives.

One tree from the start pose. Each simulation descends from the root choosing
    argmax_a  -Q(s, a) / cost_scale + c_puct * P(s, a) * sqrt(N(s)) / (1 + N(s, a))
where Q(s, a) = c(s, a) + the cost-to-go backed up through the child (default "min"
backup, suited to a deterministic single-agent problem: a node's value is the best
edge cost + child value over its visited children, the network's estimate at a leaf;
"mean" backup = the AlphaZero average; first-play urgency for unvisited children: the
parent's value + `fpu_reduction`), expands one leaf (collision check
of all its primitives + one network evaluation: prior over the valid primitives and a
predicted cost-to-go), and backs the leaf's cost-to-go up the path, adding the explicit
edge costs (distance, traversal time, steering, direction changes; collisions are
infinite: such primitives are never children). A leaf without valid children is a dead end
and is pruned from its parent. A child whose (cell, heading, direction) was already reached
with a lower cost elsewhere in the tree is pruned (transpositions). The search stops when
an expansion produces a primitive that ends in the goal region, or at the node budget.

`expanded` counts expanded nodes (= network evaluations), comparable to A*'s expansions.
"""
from __future__ import annotations

import math
import time
from typing import List, Optional

import numpy as np
import torch

from autonomy_planning.parking.astar import SearchResult
from autonomy_planning.parking.network import VALUE_SCALE, SceneFeatures
from autonomy_planning.parking.primitives import SearchSpace


class _Node:
    __slots__ = ("x", "y", "h", "d", "g", "parent", "prim", "N", "W", "V", "children", "P",
                 "edge", "valid", "expanded", "ends", "key")

    def __init__(self, x, y, h, d, g, parent, prim, key):
        self.x, self.y, self.h, self.d, self.g = x, y, h, d, g
        self.parent, self.prim, self.key = parent, prim, key
        self.N = 0
        self.W = 0.0
        self.V = 0.0          # backed-up cost-to-go (min over expanded children, else network)
        self.children = None
        self.P = None
        self.edge = None
        self.valid = None
        self.expanded = False
        self.ends = None


class MCTS:
    # defaults chosen on validation lots (training seeds 150-159, not in the training data)
    def __init__(self, net, c_puct: float = 0.1, cost_scale: float = 10.0,
                 fpu_reduction: float = 3.0, dead_end_cost: float = 200.0,
                 prior_temperature: float = 1.0, backup: str = "min"):
        self.net = net
        self.c_puct = c_puct
        self.cost_scale = cost_scale
        self.fpu_reduction = fpu_reduction
        self.dead_end_cost = dead_end_cost
        self.temp = prior_temperature
        if backup not in ("min", "mean"):
            raise ValueError("backup must be 'min' or 'mean'")
        self.backup = backup

    def _value(self, n: _Node) -> float:
        if self.backup == "min":
            return n.V
        return n.W / n.N if n.N > 0 else n.V

    def _evaluate(self, feats: SceneFeatures, node: _Node, yaw: float, valid: np.ndarray):
        r = torch.from_numpy(feats.raster(node.x, node.y, yaw))[None]
        s = torch.from_numpy(feats.state(node.x, node.y, yaw, node.d))[None]
        with torch.no_grad():
            logits, v = self.net(r, s)
        lg = logits[0].numpy().astype(np.float64) / self.temp
        lg = np.where(valid, lg, -np.inf)
        lg = lg - lg.max()
        p = np.exp(lg)
        p /= p.sum()
        return p, max(0.0, float(v[0]) * VALUE_SCALE)

    def search(self, space: SearchSpace, max_nodes: int = 2000,
               max_seconds: float = math.inf, feats: Optional[SceneFeatures] = None) -> SearchResult:
        t0 = time.perf_counter()
        torch.set_num_threads(1)
        feats = feats if feats is not None else SceneFeatures(space)
        res = space.cfg.xy_res or 1e-6
        sx, sy, syaw = space.start

        def key_of(x, y, h, d):
            return (int(math.floor(x / res)), int(math.floor(y / res)), h, d)

        root = _Node(sx, sy, space.h0, 0, 0.0, None, -1, key_of(sx, sy, space.h0, 0))
        best_g = {root.key: 0.0}
        expanded = 0
        if not space.pose_free(sx, sy, syaw):
            return SearchResult(False, math.inf, 0, wall_s=time.perf_counter() - t0, method="mcts")
        goal_leaf = None
        capped = False
        while goal_leaf is None:
            if expanded >= max_nodes or time.perf_counter() - t0 > max_seconds:
                capped = True
                break
            node = self._select(root, key_of)
            if node.expanded:          # root without any valid move
                break
            expanded += 1
            goal_leaf, v = self._expand(node, space, feats, best_g, key_of)
            if goal_leaf is None:
                self._backup(node, v)
        wall = time.perf_counter() - t0
        if goal_leaf is None:
            return SearchResult(False, math.inf, expanded, wall_s=wall, capped=capped, method="mcts")
        return self._result(space, goal_leaf, expanded, wall)

    def _select(self, root: _Node, key_of) -> _Node:
        """Descend from the root by the PUCT rule to a node not yet expanded (creating
        the chosen child on first visit); the root itself if it has no valid move."""
        node = root
        while node.expanded:
            if node.valid is None or not node.valid.any():
                break
            sqrtN = math.sqrt(max(node.N, 1))
            parent_ctg = self._value(node)
            best, best_a = -math.inf, -1
            for a in np.flatnonzero(node.valid).tolist():
                ch = node.children[a]
                if ch is not None and ch.N > 0:
                    q = node.edge[a] + self._value(ch)
                    n = ch.N
                else:
                    q = parent_ctg + self.fpu_reduction
                    n = 0
                u = -q / self.cost_scale + self.c_puct * node.P[a] * sqrtN / (1 + n)
                if u > best:
                    best, best_a = u, a
            a = best_a
            if node.children[a] is None:
                ex, ey, eh, ed = node.ends[a]
                node.children[a] = _Node(ex, ey, eh, ed, node.g + node.edge[a], node, a,
                                         key_of(ex, ey, eh, ed))
            node = node.children[a]
        return node

    def _expand(self, node: _Node, space: SearchSpace, feats: SceneFeatures, best_g: dict,
                key_of):
        """Expand `node`: collision-check its primitives, drop transpositions, evaluate it
        with the network (or prune it as a dead end). Returns (goal_leaf, value):
        goal_leaf = (node, primitive, goal index, cost) when a primitive ends in the goal
        region (value None), else None and the node's cost-to-go estimate."""
        node.expanded = True
        valid, goal_k, ex, ey, eh, cost = space.expand(node.x, node.y, node.h, node.d)
        valid = valid.copy()
        if (valid & (goal_k >= 0)).any():
            cand = np.flatnonzero(valid & (goal_k >= 0))
            a = int(cand[np.argmin(cost[cand])])
            return (node, a, int(goal_k[a]), float(cost[a])), None
        ends = []
        for a in range(space.n_prims):
            d2 = int(space.prim_dir[a])
            ends.append((float(ex[a]), float(ey[a]), int(eh[a]), d2))
            if valid[a]:
                k2 = key_of(ends[a][0], ends[a][1], ends[a][2], d2)
                g2 = node.g + float(cost[a])
                old = best_g.get(k2)
                if old is not None and old <= g2 + 1e-9:
                    valid[a] = False
                else:
                    best_g[k2] = g2
        node.valid, node.edge, node.ends = valid, cost, ends
        node.children = [None] * space.n_prims
        if valid.any():
            node.P, v = self._evaluate(feats, node, space.yaw_of(node.h), valid)
        else:
            node.P, v = None, self.dead_end_cost
            # prune the dead end (and ancestors left without any valid move)
            n = node
            while n.parent is not None:
                n.parent.valid[n.prim] = False
                if n.parent.valid.any():
                    break
                n = n.parent
        node.V = v
        return None, v

    def _backup(self, node: _Node, v: float) -> None:
        """Back the leaf value up the path: visit counts, mean return and the best (min)
        cost-to-go."""
        ret = v
        n = node
        while n is not None:
            n.N += 1
            n.W += ret
            if n is not node and self.backup == "min":
                best_v = math.inf
                for a in np.flatnonzero(n.valid).tolist():
                    ch = n.children[a]
                    if ch is not None and ch.N > 0:
                        best_v = min(best_v, n.edge[a] + ch.V)
                n.V = best_v if best_v < math.inf else self.dead_end_cost
            if n.parent is not None:
                ret += n.parent.edge[n.prim]
            n = n.parent

    @staticmethod
    def _result(space: SearchSpace, goal_leaf: tuple, expanded: int, wall: float) -> SearchResult:
        """The successful SearchResult: the tree path to the goal leaf plus its goal state."""
        node, a, gk, c = goal_leaf
        chain = []
        n = node
        while n is not None:
            chain.append(n)
            n = n.parent
        chain.reverse()
        path = []
        for i, n in enumerate(chain):
            if i + 1 < len(chain):
                path.append((n.x, n.y, n.h, n.d, chain[i + 1].prim, -1))
            else:
                path.append((n.x, n.y, n.h, n.d, a, gk))
        # the final (goal) state
        X, Y, Yw, _, _ = space.primitive_samples(node.x, node.y, node.h, a, gk)
        path.append((float(X[-1]), float(Y[-1]), int((node.h + space.prim_dh[a]) % space.cfg.n_headings),
                     int(space.prim_dir[a]), -1, -1))
        return SearchResult(True, node.g + c, expanded, path, wall, False, "mcts")
