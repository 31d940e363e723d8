"""Draw the node graph of a mode from config/graph.yaml (nodes, the topics that connect
them, inputs from the bag/sensors, outputs) as a PNG for the README.

    python -m autonomy_tools.draw_graph --mode demo --out docs/images/node_graph.png
"""
from __future__ import annotations

import argparse
import re
from collections import OrderedDict
from pathlib import Path

from autonomy_stack.graph import load_graph


def _group(topic: str) -> str:
    """Collapse the 8 per-camera topics into one label."""
    return re.sub(r"^/cameras/[a-z_]+/", "/cameras/<cam>/", topic)


def edges_of_mode(mode: str, graph=None):
    graph = graph or load_graph()
    keys = graph["modes"][mode]["nodes"]
    nodes = {k: graph["nodes"][k] for k in keys}
    pubs = {k: OrderedDict.fromkeys(_group(t) for t in n.get("publishes") or []) for k, n in nodes.items()}
    subs = {k: OrderedDict.fromkeys(_group(t) for t in n.get("subscribes") or []) for k, n in nodes.items()}
    internal, inputs, outputs = [], OrderedDict(), OrderedDict()
    for k in keys:
        for t in subs[k]:
            producers = [p for p in keys if t in pubs[p] and p != k]
            if producers:
                internal += [(p, k, t) for p in producers]
            else:
                inputs.setdefault(t, []).append(k)
    consumed = {t for k in keys for t in subs[k]}
    for k in keys:
        for t in pubs[k]:
            if t not in consumed and t not in ("/diagnostics", "/tf_static"):
                outputs.setdefault(k, []).append(t)
    return keys, internal, inputs, outputs


def draw(mode: str, out: Path) -> Path:
    # lazy: matplotlib only when rendering (start-up time)
    import matplotlib
    matplotlib.use("Agg")
    # lazy: matplotlib only when rendering (start-up time)
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    keys, internal, inputs, outputs = edges_of_mode(mode)
    order = [k for k in keys if k != "stack_monitor"]
    fig, ax = plt.subplots(figsize=(14, 6.5))
    ax.set_xlim(-0.2, len(order) * 1.35 + 0.6)
    ax.set_ylim(-3.6, 3.0)
    ax.axis("off")
    pos = {k: (i * 1.35 + 0.9, 0.0) for i, k in enumerate(order)}
    for k, (x, y) in pos.items():
        ax.add_patch(FancyBboxPatch((x - 0.38, y - 0.3), 0.76, 0.6, boxstyle="round,pad=0.05",
                                    fc="#dbe9ff", ec="#2a5caa", lw=1.5))
        ax.text(x, y, k, ha="center", va="center", fontsize=11, weight="bold")
    # bag / sensor inputs from above, each label over its first consumer
    ins = list(inputs.items())
    slot = {}
    for t, consumers in ins:
        first = min(consumers, key=lambda c: pos.get(c, (99, 0))[0])
        n = slot.get(first, 0)
        slot[first] = n + 1
        x, _ = pos[first]
        lx, ly = x - 0.25 + 0.0 * n, 2.3 - 0.42 * n
        ax.text(lx, ly, t, ha="center", va="bottom", fontsize=8.5, color="#333")
        for c in consumers:
            xc, yc = pos[c]
            ax.annotate("", xy=(xc - 0.2 + 0.08 * n, yc + 0.33), xytext=(lx, ly - 0.02),
                        arrowprops=dict(arrowstyle="->", color="#999", lw=0.8))
    # internal topics (grouped per producer -> consumer pair)
    pairs = OrderedDict()
    for p, c, t in internal:
        if p != c and p in pos and c in pos:
            pairs.setdefault((p, c), []).append(t)
    for (p, c), ts in pairs.items():
        (x0, y0), (x1, y1) = pos[p], pos[c]
        far = abs(x1 - x0) > 1.1
        ax.annotate("", xy=(x1 - 0.4, y1 - (0.12 if far else 0)), xytext=(x0 + 0.4, y0 - (0.12 if far else 0)),
                    arrowprops=dict(arrowstyle="->", color="#2a5caa", lw=1.6,
                                    connectionstyle="arc3,rad=0.35" if far else "arc3"))
        ty = -0.55 - 0.25 * (abs(x1 - x0)) if far else -0.02
        for j, t in enumerate(ts):
            ax.text((x0 + x1) / 2, (ty - 0.2 * j) if far else (0.06 + 0.2 * j), t, ha="center",
                    va="bottom", fontsize=8, color="#2a5caa")
    # outputs below
    for k, ts in outputs.items():
        if k not in pos:
            continue
        x, _ = pos[k]
        for j, t in enumerate(ts):
            ax.text(x, -1.55 - 0.26 * j, t, ha="center", fontsize=7.5, color="#7a2a00")
    ax.text(len(order) / 2 + 0.4, 2.75, f"mode '{mode}' (config/graph.yaml); every node is its own process, "
            "topics over DDS; stack_monitor watches all topics",
            ha="center", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="demo")
    ap.add_argument("--out", default="docs/images/node_graph.png")
    a = ap.parse_args(argv)
    print(draw(a.mode, Path(a.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
