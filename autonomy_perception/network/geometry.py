"""Virtual-camera geometry at the network input resolution (pure numpy).

The network sees *rectified* images: every vehicle's images are warped into one fixed
virtual camera per position (see autonomy_perception.rectification), so the geometry
below is a constant of the model config and the image-to-BEV attention can precompute
which image columns can see which BEV cell (see bev_transformer.py).

Frames: base_link x forward, y left, z up; camera optical frame z forward, x right, y down.
Models: "pinhole" (u = fx x/z + cx) and "equidistant" fisheye (r = f * theta)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from autonomy_perception.virtual_camera import load_virtual_cameras

# name: (x, y, z, yaw_deg, pitch_down_deg, hfov_deg, model)
_DEFAULT_MOUNTS = {
    "main": (1.9, 0.0, 1.4, 0.0, 5.0, 90.0, "pinhole"),
    "narrow": (1.9, 0.0, 1.4, 0.0, 2.0, 40.0, "pinhole"),
    "fisheye": (1.9, 0.0, 1.4, 0.0, 10.0, 180.0, "equidistant"),
    "left_pillar": (1.2, 0.9, 1.3, 60.0, 5.0, 90.0, "pinhole"),
    "right_pillar": (1.2, -0.9, 1.3, -60.0, 5.0, 90.0, "pinhole"),
    "left_repeater": (2.3, 1.0, 0.9, 125.0, 5.0, 90.0, "pinhole"),
    "right_repeater": (2.3, -1.0, 0.9, -125.0, 5.0, 90.0, "pinhole"),
    "rear": (-1.0, 0.0, 1.0, 180.0, 10.0, 120.0, "pinhole"),
}


def rotation_base_from_cam(yaw: float, pitch_down: float, roll: float = 0.0) -> np.ndarray:
    """3x3 whose columns are the camera's x (right), y (down), z (forward) in base_link."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch_down), np.sin(pitch_down)
    f = np.array([cy * cp, sy * cp, -sp])
    r = np.array([sy, -cy, 0.0])
    d = np.cross(f, r)
    R = np.stack([r, d, f], axis=1)
    if roll:
        cr, sr = np.cos(roll), np.sin(roll)
        Rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1.0]])
        R = R @ Rz
    return R


@dataclass
class VirtualCamera:
    name: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    R: np.ndarray            # 3x3 base_link <- camera
    t: np.ndarray            # camera centre in base_link
    model: str = "pinhole"

    def pixel_rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Unit rays (..., 3) in base_link for pixel coordinates (pixel centres at +0.5)."""
        x = (u - self.cx) / self.fx
        y = (v - self.cy) / self.fy
        if self.model == "equidistant":
            theta = np.sqrt(x * x + y * y)
            phi = np.arctan2(y, x)
            st = np.sin(np.minimum(theta, np.pi - 1e-3))
            d = np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)], -1)
        else:
            d = np.stack([x, y, np.ones_like(x)], -1)
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        return d @ self.R.T

    def project(self, pts: np.ndarray):
        """base_link points (..., 3) -> (u, v, valid)."""
        pc = (pts - self.t) @ self.R
        x, y, z = pc[..., 0], pc[..., 1], pc[..., 2]
        if self.model == "equidistant":
            rxy = np.sqrt(x * x + y * y) + 1e-9
            theta = np.arctan2(rxy, z)
            u = self.cx + self.fx * theta * x / rxy
            v = self.cy + self.fy * theta * y / rxy
            valid = theta < np.deg2rad(95.0)
        else:
            zz = np.where(z > 1e-3, z, 1e-3)
            u = self.cx + self.fx * x / zz
            v = self.cy + self.fy * y / zz
            valid = z > 0.1
        valid = valid & (u >= 0) & (u < self.width) & (v >= 0) & (v < self.height)
        return u, v, valid


def camera_from_mount(name, x, y, z, yaw_deg, pitch_deg, hfov_deg, model, width, height,
                      roll_deg: float = 0.0) -> VirtualCamera:
    half = np.deg2rad(hfov_deg) / 2.0
    if model == "equidistant":
        f = (width / 2.0) / half
    else:
        f = (width / 2.0) / np.tan(half)
    return VirtualCamera(name, width, height, f, f, width / 2.0, height / 2.0,
                         rotation_base_from_cam(np.deg2rad(yaw_deg), np.deg2rad(pitch_deg),
                                                np.deg2rad(roll_deg)),
                         np.array([x, y, z], dtype=float), model)


def default_virtual_rig(names: Sequence[str], width: int, height: int) -> List[VirtualCamera]:
    out = []
    for n in names:
        if n not in _DEFAULT_MOUNTS:
            raise KeyError(f"no default virtual camera for '{n}'")
        out.append(camera_from_mount(n, *_DEFAULT_MOUNTS[n], width=width, height=height))
    return out


def resolve_virtual_cameras(names: Sequence[str], width: int, height: int,
                            path=None) -> Dict:
    """The rectification layer's virtual cameras (autonomy_perception.virtual_camera,
    config/virtual_cameras.yaml) at the network input size, as an explicit rig dict."""
    vcs = load_virtual_cameras(path, width=width, height=height)
    cams = []
    for n in names:
        if n not in vcs:
            raise KeyError(f"camera '{n}' is not in the virtual cameras ({sorted(vcs)})")
        v = vcs[n]
        T = v.T_base_virtual
        cams.append({"name": n, "model": v.model,
                     # +0.5: this module puts pixel centres at +0.5 (OpenCV: at 0)
                     "fx": float(v.K[0, 0]), "fy": float(v.K[1, 1]),
                     "cx": float(v.K[0, 2]) + 0.5, "cy": float(v.K[1, 2]) + 0.5,
                     "R": np.round(T[:3, :3], 9).tolist(), "t": np.round(T[:3, 3], 9).tolist()})
    return {"source": "explicit", "from": "config/virtual_cameras.yaml", "cameras": cams}


def rig_from_config(cfg: Dict) -> List[VirtualCamera]:
    """The model config's `rig` (see config.DEFAULTS) -> cameras at the input resolution."""
    h, w = cfg["input_hw"]
    rig = cfg.get("rig", {"source": "default"})
    src = rig.get("source", "default")
    if src == "default":
        return default_virtual_rig(cfg["cameras"], w, h)
    if src == "virtual_cameras":
        rig = resolve_virtual_cameras(cfg["cameras"], w, h, rig.get("path"))
    by_name = {c["name"]: c for c in rig["cameras"]}
    out = []
    for n in cfg["cameras"]:
        c = by_name[n]
        if "R" in c:
            out.append(VirtualCamera(n, w, h, c["fx"], c["fy"], c["cx"], c["cy"],
                                     np.asarray(c["R"], float), np.asarray(c["t"], float),
                                     c.get("model", "pinhole")))
        else:
            out.append(camera_from_mount(n, c["x"], c["y"], c["z"], c["yaw_deg"],
                                         c["pitch_deg"], c["hfov_deg"], c.get("model", "pinhole"),
                                         w, h, c.get("roll_deg", 0.0)))
    return out
