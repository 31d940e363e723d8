"""Training/evaluation data from the simulator's dataset writer (autonomy_simulator.dataset,
format "autonomy_sim_dataset/1"): clips of consecutive frames with

* images rectified into the virtual cameras with the *same* function the deployed
  rectification node uses (autonomy_perception.rectification.rectify_image, each vehicle's
  own calibration with its mounting error) - or, for the "without rectification" ablation,
  the raw images of the real (distorted, mis-mounted) cameras;
* BEV segmentation targets resampled from the writer's label rasters onto the network grid;
* detection targets from the object labels, with the visibility rules below;
* kinematics (speed, accel, yaw rate) and dt from the ego log.

Visibility rules (the same ones evaluation uses): an object is *visible* at a frame when it
has >= `min_visible_px` pixels over all cameras. Video targets: visible objects and objects
that are now occluded but were visible within the last `memory_s` seconds (persistence);
other objects are "ignore" (neither positive nor negative). Single-frame targets: visible
objects only, everything else ignored."""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch

from autonomy_perception.rectification import rectify_image
from autonomy_perception.virtual_camera import load_virtual_cameras
from autonomy_simulator.dataset import load_sequence
from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.vector_space import ObjectClass, ObjectState
from autonomy_vehicle.camera_models import CameraCalibration

from .targets import detection_target

FORMAT = "autonomy_sim_dataset/1"
LAYER_OF = {"drivable": "drivable", "lane": "lane_lines", "edge": "road_edges"}


class DatasetError(ValueError):
    pass


def objects_from_array(arr: np.ndarray, fields: Sequence[str]) -> List[ObjectState]:
    f = {n: i for i, n in enumerate(fields)}
    out = []
    for r in arr:
        speed = float(np.hypot(r[f["vx"]], r[f["vy"]]))
        # signed speed along the box heading
        yaw = float(r[f["yaw"]])
        speed = float(r[f["vx"]] * np.cos(yaw) + r[f["vy"]] * np.sin(yaw)) if speed > 0 else 0.0
        out.append(ObjectState(int(r[f["id"]]), ObjectClass(int(r[f["class"]])), float(r[f["x"]]),
                               float(r[f["y"]]), yaw, float(r[f["length"]]), float(r[f["width"]]),
                               float(r[f["height"]]), z=float(r[f["z"]]), speed=speed,
                               visible_pixels=int(r[f["visible_pixels"]]),
                               occluded=bool(r[f["occluded"]] > 0.5),
                               is_static=bool(r[f["is_static"]] > 0.5)))
    return out


def resample_layer(layer: np.ndarray, bev: Dict, grid: BEVGrid, mode: str) -> np.ndarray:
    """Writer raster (OccupancyGrid layout: row = +y, col = +x from origin) -> network grid
    (row 0 = front, col 0 = left). `mode`: "max" (thin lines) or "mean" (areas, >= .5)."""
    cell, ox, oy = float(bev["cell"]), float(bev["origin_x"]), float(bev["origin_y"])
    k = max(1, int(round(grid.res / cell)))
    sub = (np.arange(k) + 0.5) / k - 0.5
    r = np.arange(grid.H)[:, None, None, None]
    c = np.arange(grid.W)[None, :, None, None]
    x = grid.x_range[1] - (r + 0.5 + sub[None, None, :, None]) * grid.res
    y = grid.y_range[1] - (c + 0.5 + sub[None, None, None, :]) * grid.res
    j = np.floor((x - ox) / cell).astype(int)
    i = np.floor((y - oy) / cell).astype(int)
    ok = (i >= 0) & (i < layer.shape[0]) & (j >= 0) & (j < layer.shape[1])
    vals = np.where(ok, layer[np.clip(i, 0, layer.shape[0] - 1), np.clip(j, 0, layer.shape[1] - 1)], 0)
    vals = vals.reshape(grid.H, grid.W, -1).astype(np.float32)
    return vals.max(-1) if mode == "max" else (vals.mean(-1) >= 0.5).astype(np.float32)


def calibrations(d: Dict) -> List:
    H, W = d["images"].shape[2:4]
    out = []
    for c, name in enumerate(d["camera_names"]):
        out.append(CameraCalibration(str(name), W, H, d["K"][c], d["D"][c, :int(d["D_len"][c])],
                                     str(d["distortion_model"][c]), d["T_base_camera"][c]))
    return out


@dataclass
class Sequence_:
    name: str
    images: np.ndarray        # [T, N, 3, H, W] uint8 (rectified or raw)
    seg: np.ndarray           # [T, S, H, W] float32
    kin: np.ndarray           # [T, 3] speed, accel, yaw_rate
    dt: np.ndarray            # [T]
    ego: np.ndarray           # [T, 3] x, y, yaw (world)
    objects: List[List[ObjectState]]   # per frame, ego frame
    visible: List[np.ndarray]          # per frame, bool per object
    recent: List[np.ndarray]           # per frame, occluded now but visible within memory_s
    det_video: List[Dict[str, np.ndarray]]
    det_single: List[Dict[str, np.ndarray]]


class SimDataset:
    """A dataset directory; `sequence(i)` prepares (and LRU-caches) one sequence."""

    def __init__(self, root, model_cfg: Dict, rectify: bool = True, memory_s: float = 2.0,
                 min_visible_px: int = 4, cache_size: int = 256, feature_cache=None):
        """feature_cache: a training.cache_features.FeatureCache; clips then carry the
        cached encoder features (`feats<i>`) instead of images (which are not prepared)."""
        self.root = Path(root)
        man = self.root / "manifest.json"
        if not man.exists():
            raise DatasetError(f"no dataset at {self.root} (manifest.json missing); write one with "
                               f"python -m autonomy_simulator.dataset --out {self.root} ...")
        self.manifest = json.loads(man.read_text())
        if self.manifest.get("format") != FORMAT:
            raise DatasetError(f"{man}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        self.files = sorted(self.root.glob("shard_*/seq_*.npz"))
        self.files = [f for f in self.files if not f.name.endswith(".tmp.npz")]
        if not self.files:
            raise DatasetError(f"{self.root}: no sequences")
        self.cfg = model_cfg
        self.grid = BEVGrid.from_config(model_cfg)
        self.rectify = rectify
        self.memory_s = memory_s
        self.min_visible_px = min_visible_px
        self.cache: "OrderedDict[int, Sequence_]" = OrderedDict()
        self.cache_size = cache_size
        self.feature_cache = feature_cache
        names = list(self.manifest["camera_names"])
        missing = [c for c in model_cfg["cameras"] if c not in names]
        if missing:
            raise DatasetError(f"dataset {self.root} lacks cameras {missing}")
        self.cam_index = [names.index(c) for c in model_cfg["cameras"]]
        H, W = model_cfg["input_hw"]
        if rectify:
            vcs = load_virtual_cameras(width=W, height=H)
            self.virtual = [vcs[c] for c in model_cfg["cameras"]]
        self.seg_classes = model_cfg["heads"]["segmentation"]["classes"] \
            if "segmentation" in model_cfg["heads"] else []
        self.det_classes = model_cfg["heads"]["detection"]["classes"] \
            if "detection" in model_cfg["heads"] else []

    def __len__(self):
        return len(self.files)

    def frames(self, i: int) -> int:
        return self.sequence(i).seg.shape[0]

    def _images(self, d: Dict) -> np.ndarray:
        H, W = self.cfg["input_hw"]
        imgs = d["images"][:, self.cam_index]                     # [T, N, h, w, 3]
        T, N = imgs.shape[:2]
        out = np.empty((T, N, H, W, 3), np.uint8)
        if self.rectify:
            cals = calibrations(d)
            for n, ci in enumerate(self.cam_index):
                for t in range(T):
                    out[t, n] = rectify_image(imgs[t, n], cals[ci], self.virtual[n])
        else:
            for t in range(T):
                for n in range(N):
                    im = imgs[t, n]
                    out[t, n] = im if im.shape[:2] == (H, W) else cv2.resize(im, (W, H), interpolation=cv2.INTER_AREA)
        return out.transpose(0, 1, 4, 2, 3).copy()

    def sequence(self, i: int) -> Sequence_:
        if i in self.cache:
            self.cache.move_to_end(i)
            return self.cache[i]
        d = load_sequence(self.files[i])
        bev = self.manifest["bev"]
        layers = list(bev["layers"])
        T = d["ego"].shape[0]
        seg = np.zeros((T, len(self.seg_classes), self.grid.H, self.grid.W), np.float32)
        for t in range(T):
            for s, name in enumerate(self.seg_classes):
                lay = d["bev"][t, layers.index(LAYER_OF[name])]
                seg[t, s] = resample_layer(lay, bev, self.grid, "mean" if name == "drivable" else "max")
        ef = list(self.manifest["ego_fields"])
        e = d["ego"]
        kin = np.stack([e[:, ef.index("speed")], e[:, ef.index("accel")], e[:, ef.index("yaw_rate")]], 1)
        st = d["stamps"]
        dt = np.concatenate([[0.0], np.diff(st)]).astype(np.float32)
        objs = [objects_from_array(d["objects"][t, :d["num_objects"][t]], self.manifest["object_fields"])
                for t in range(T)]
        vis = [np.array([o.visible_pixels >= self.min_visible_px for o in f], bool) for f in objs]
        last_seen: Dict[int, float] = {}
        recent = []
        det_v, det_s = [], []
        for t in range(T):
            for o, v in zip(objs[t], vis[t]):
                if v:
                    last_seen[o.id] = st[t]
            rc = np.array([(not v) and (o.id in last_seen) and (st[t] - last_seen[o.id] <= self.memory_s)
                           for o, v in zip(objs[t], vis[t])], bool)
            recent.append(rc)
            ids_ign_v = {o.id for o, v, r in zip(objs[t], vis[t], rc) if not v and not r}
            ids_ign_s = {o.id for o, v in zip(objs[t], vis[t]) if not v}
            det_v.append(detection_target(self.grid, objs[t], self.det_classes, ids_ign_v))
            det_s.append(detection_target(self.grid, objs[t], self.det_classes, ids_ign_s))
        images = self._images(d) if self.feature_cache is None else np.zeros((T, 0), np.uint8)
        seq = Sequence_(self.files[i].stem, images, seg, kin.astype(np.float32), dt,
                        e[:, [ef.index("x"), ef.index("y"), ef.index("yaw")]].astype(np.float64),
                        objs, vis, recent, det_v, det_s)
        self.cache[i] = seq
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return seq

    def clip(self, i: int, start: int, length: int, video: bool = True,
             first_dt_zero: bool = True) -> Dict[str, np.ndarray]:
        """Arrays of one clip: images [L, N, 3, H, W] uint8, kin [L, 3], dt [L], targets
        (each [L, ...])."""
        s = self.sequence(i)
        sl = slice(start, start + length)
        det = s.det_video if video else s.det_single
        out = {"kin": s.kin[sl], "dt": s.dt[sl].copy(), "seg": s.seg[sl]}
        if self.feature_cache is None:
            out["images"] = s.images[sl]
        else:
            for k, f in enumerate(self.feature_cache.load(s.name)):
                out[f"feats{k}"] = f[sl]
        if first_dt_zero:       # a clip starts the video state anew
            out["dt"][0] = 0.0
        for k in det[0]:
            out[k] = np.stack([det[t][k] for t in range(start, start + length)])
        return out


def collate(clips: List[Dict[str, np.ndarray]]):
    """-> dict of torch tensors [B, L, ...]."""
    return {k: torch.from_numpy(np.stack([c[k] for c in clips])) for k in clips[0]}
