"""Feature caching (as the reference team does): run the image encoder (RegNet + BiFPN) of a
checkpoint once over a dataset and store the multi-scale features on disk; task heads (and,
optionally, everything downstream of the encoder) are then fine-tuned from the cache
without touching images or the backbone, many times faster per step.

    python -m autonomy_perception.training.cache_features --checkpoint CK --data DIR \
        --out CACHE_DIR [--raw]          # cache
    python -m autonomy_perception.training.train --config CFG    # with data.feature_cache:
        CACHE_DIR, train.init_checkpoint: CK, train.train_modules: heads   # fine-tune

Layout: CACHE_DIR/meta.json (encoder fingerprint, levels, shapes, dataset) and one
CACHE_DIR/<sequence name>.npz per sequence with `level<i>` arrays [T, N, C, h, w] float16.
Fine-tuning refuses a cache whose encoder fingerprint differs from the checkpoint's."""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import List

import numpy as np
import torch
from tqdm import tqdm

from autonomy_perception.network.model import CheckpointError, load_checkpoint
from autonomy_perception.training.data import DatasetError, SimDataset


def encoder_fingerprint(net) -> str:
    """Hash of the encoder weights (backbone + fpn) and config."""
    h = hashlib.sha1()
    h.update(json.dumps({k: net.cfg[k] for k in ("input_hw", "cameras", "regnet", "fpn")},
                        sort_keys=True).encode())
    for name, t in sorted(net.state_dict().items()):
        if name.startswith(("backbone.", "fpn.")):
            h.update(name.encode())
            h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class FeatureCacheError(ValueError):
    pass


class FeatureCache:
    def __init__(self, root, net=None):
        self.root = Path(root)
        meta = self.root / "meta.json"
        if not meta.exists():
            raise FeatureCacheError(f"no feature cache at {self.root} (meta.json missing)")
        self.meta = json.loads(meta.read_text())
        if net is not None and self.meta["encoder"] != encoder_fingerprint(net):
            raise FeatureCacheError(f"feature cache {self.root} was made by another encoder "
                                    f"({self.meta['encoder']} != {encoder_fingerprint(net)})")
        self._mem = {}

    def load(self, name: str) -> List[np.ndarray]:
        if name not in self._mem:
            p = self.root / f"{name}.npz"
            if not p.exists():
                raise FeatureCacheError(f"{p} missing: re-run cache_features")
            with np.load(p) as z:
                self._mem[name] = [z[f"level{i}"] for i in range(self.meta["levels"])]
        return self._mem[name]


@torch.no_grad()
def cache(net, ds, out: Path, batch_frames: int = 4, progress: bool = True) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    net.eval()
    dev = next(net.parameters()).device
    t0 = time.perf_counter()
    n = 0
    for i in tqdm(range(len(ds)), desc="cache", unit="seq", disable=not progress):
        name = ds.files[i].stem
        p = out / f"{name}.npz"
        if p.exists():
            continue
        s = ds.sequence(i)
        levels = None
        for a in range(0, s.images.shape[0], batch_frames):
            x = torch.from_numpy(s.images[a:a + batch_frames]).to(dev).float().div_(255.0)
            f = net.encode(x)           # frames as the batch: [b, N, C, h, w]
            f = [v.half().cpu().numpy() for v in f]
            levels = f if levels is None else [np.concatenate([l, v]) for l, v in zip(levels, f)]
        tmp = p.with_name(p.stem + ".tmp.npz")
        np.savez(tmp, **{f"level{k}": v for k, v in enumerate(levels)})
        tmp.replace(p)
        ds.cache.pop(i, None)           # images are not needed any more
        n += 1
    meta = {"encoder": encoder_fingerprint(net), "levels": len(net.levels),
            "dataset": str(ds.root), "rectify": ds.rectify, "sequences": len(ds)}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return {"written": n, "s": time.perf_counter() - t0, **meta}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonomy_perception.training.cache_features",
                                 description="cache the encoder's multi-scale features")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--raw", action="store_true", help="unrectified images (ablation)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        net, _ = load_checkpoint(a.checkpoint)
        ds = SimDataset(a.data, net.cfg, rectify=not a.raw, cache_size=2)
    except (CheckpointError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    r = cache(net, ds, Path(a.out))
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
