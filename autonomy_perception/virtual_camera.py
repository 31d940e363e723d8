"""Virtual common cameras: one fixed, distortion-free camera per camera position.

The rectification layer warps every vehicle's real (slightly "cockeyed", individually
distorted) camera image into the virtual camera of its position, so the network always
sees the same geometry. A virtual camera is fully described by `config/virtual_cameras.yaml`:
resolution, intrinsics, projection model and its pose relative to base_link.

Pure numpy (no rclpy, no OpenCV).

Conventions (the same as `autonomy_vehicle.camera_models` and `config/camera_rig.yaml`)
- pixels: OpenCV convention, the centre of the top-left pixel is (0, 0);
- optical frame `virtual_camera_<name>`: z forward, x right, y down;
- pose: the camera body (x = viewing direction) at `xyz` (m, base_link) with ROS roll,
  pitch, yaw `rpy_deg` (positive pitch = looking down); the optical frame is that body
  rotated to z forward, x right, y down. `T_base_virtual` maps virtual-optical points into
  base_link.

Models
- `pinhole`: u = fx x/z + cx, v = fy y/z + cy (CameraInfo `plumb_bob`, D = 0).
- `equidistant`: ideal f-theta fisheye, r = f * theta with theta the angle off the optical
  axis (CameraInfo `equidistant`, D = 0 0 0 0, i.e. OpenCV's fisheye model without
  distortion). Used for the ~180 degree fisheye position, which no pinhole can hold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
import yaml

from autonomy_stack.paths import config_file

VIRTUAL_MODELS = ("pinhole", "equidistant")

# optical axes expressed in a body frame (x forward, y left, z up)
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0],
                           [-1.0, 0.0, 0.0],
                           [0.0, -1.0, 0.0]])


class VirtualCameraError(ValueError):
    """A virtual camera description is incomplete or inconsistent (names the camera)."""


def rot_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll) (ROS fixed-axis rpy, radians)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]], dtype=float)
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]], dtype=float)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]], dtype=float)
    return rz @ ry @ rx


@dataclass
class VirtualCamera:
    name: str
    width: int
    height: int
    K: np.ndarray                              # 3x3 (no skew)
    model: str = "pinhole"
    T_base_virtual: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self):
        self.K = np.asarray(self.K, dtype=float).reshape(3, 3)
        self.T_base_virtual = np.asarray(self.T_base_virtual, dtype=float).reshape(4, 4)
        self.width, self.height = int(self.width), int(self.height)
        if self.model not in VIRTUAL_MODELS:
            raise VirtualCameraError(f"virtual camera {self.name}: model {self.model!r} is "
                                     f"not one of {VIRTUAL_MODELS}")
        if self.width <= 0 or self.height <= 0:
            raise VirtualCameraError(f"virtual camera {self.name}: size "
                                     f"{self.width}x{self.height} must be positive")
        if not np.all(np.isfinite(self.K)) or self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise VirtualCameraError(f"virtual camera {self.name}: focal lengths must be "
                                     f"finite and positive, K={self.K.tolist()}")
        R = self.T_base_virtual[:3, :3]
        if (not np.all(np.isfinite(self.T_base_virtual))
                or np.abs(R @ R.T - np.eye(3)).max() > 1e-6 or np.linalg.det(R) < 0):
            raise VirtualCameraError(f"virtual camera {self.name}: T_base_virtual is not a "
                                     "rigid transform")

    # ------------------------------------------------------------------ properties
    @property
    def frame_id(self) -> str:
        return f"virtual_camera_{self.name}"

    @property
    def R_base_virtual(self) -> np.ndarray:
        return self.T_base_virtual[:3, :3]

    @property
    def distortion_model(self) -> str:
        """CameraInfo distortion_model of the output (its D is all zeros)."""
        return "plumb_bob" if self.model == "pinhole" else "equidistant"

    @property
    def D(self) -> np.ndarray:
        return np.zeros(5 if self.model == "pinhole" else 4)

    @property
    def P(self) -> np.ndarray:
        """3x4 projection matrix [K | 0] (monocular)."""
        return np.hstack([self.K, np.zeros((3, 1))])

    def scaled(self, width: int, height: int) -> "VirtualCamera":
        """The same virtual camera at another resolution (same field of view)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, 0] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return VirtualCamera(self.name, int(width), int(height), K, self.model,
                             self.T_base_virtual.copy())

    # ------------------------------------------------------------------ geometry
    def pixel_grid_rays(self) -> np.ndarray:
        """Rays (H x W x 3, float64, not normalised for pinhole, unit for equidistant)
        through every pixel centre, in the virtual optical frame."""
        u = np.arange(self.width, dtype=np.float64)
        v = np.arange(self.height, dtype=np.float64)
        uu, vv = np.meshgrid(u, v)
        return self.pixel_rays(np.stack([uu, vv], axis=-1))

    def pixel_rays(self, uv: np.ndarray) -> np.ndarray:
        """Pixels (... x 2) -> rays (... x 3) in the virtual optical frame."""
        uv = np.asarray(uv, dtype=np.float64)
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        x = (uv[..., 0] - cx) / fx
        y = (uv[..., 1] - cy) / fy
        if self.model == "pinhole":
            return np.stack([x, y, np.ones_like(x)], axis=-1)
        theta = np.hypot(x, y)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(theta > 1e-12, np.sin(theta) / np.maximum(theta, 1e-300), 1.0)
        return np.stack([x * s, y * s, np.cos(theta)], axis=-1)

    def project(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Points (N x 3) in the virtual optical frame -> (uv N x 2, valid N): valid = in
        front of the camera (pinhole) / any direction but straight back (equidistant) and
        inside the image."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        X, Y, Z = p[:, 0], p[:, 1], p[:, 2]
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.model == "pinhole":
                zs = np.where(Z > 1e-12, Z, np.nan)
                x, y = X / zs, Y / zs
            else:
                rxy = np.hypot(X, Y)
                theta = np.arctan2(rxy, Z)
                s = np.where(rxy > 1e-12, theta / np.maximum(rxy, 1e-300), 1.0 / np.abs(Z))
                x, y = X * s, Y * s
            uv = np.stack([fx * x + cx, fy * y + cy], axis=1)
        valid = np.isfinite(uv).all(axis=1)
        valid &= (uv[:, 0] >= -0.5) & (uv[:, 0] <= self.width - 0.5)
        valid &= (uv[:, 1] >= -0.5) & (uv[:, 1] <= self.height - 0.5)
        return uv, valid

    def project_base(self, points_base: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Points in base_link (N x 3) -> (uv, valid)."""
        p = np.asarray(points_base, dtype=np.float64).reshape(-1, 3)
        R, t = self.R_base_virtual, self.T_base_virtual[:3, 3]
        return self.project((p - t) @ R)

    def camera_info_fields(self) -> dict:
        """Fields of the output sensor_msgs/CameraInfo (plain Python values)."""
        return {"width": self.width, "height": self.height,
                "distortion_model": self.distortion_model,
                "d": [0.0] * self.D.size,
                "k": [float(x) for x in self.K.reshape(9)],
                "r": [float(x) for x in np.eye(3).reshape(9)],
                "p": [float(x) for x in self.P.reshape(12)]}


# ---------------------------------------------------------------------- config file
def _number(name: str, key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise VirtualCameraError(f"virtual camera {name}: '{key}' must be a finite number, "
                                 f"got {value!r}")
    return float(value)


def virtual_camera_from_dict(name: str, c: dict) -> VirtualCamera:
    """One entry of virtual_cameras.yaml -> VirtualCamera.

    Intrinsics: either fx (fy defaults to fx), cx, cy (cx/cy default to the image centre)
    or hfov_deg (horizontal field of view; square pixels, centred principal point)."""
    if not isinstance(c, dict):
        raise VirtualCameraError(f"virtual camera {name}: entry must be a mapping")
    for key in ("width", "height", "mount"):
        if key not in c:
            raise VirtualCameraError(f"virtual camera {name}: missing '{key}'")
    w, h = int(_number(name, "width", c["width"])), int(_number(name, "height", c["height"]))
    model = c.get("model", "pinhole")
    cx = _number(name, "cx", c.get("cx", (w - 1) / 2.0))
    cy = _number(name, "cy", c.get("cy", (h - 1) / 2.0))
    if "fx" in c:
        fx = _number(name, "fx", c["fx"])
        fy = _number(name, "fy", c.get("fy", fx))
    elif "hfov_deg" in c:
        half = math.radians(_number(name, "hfov_deg", c["hfov_deg"])) / 2.0
        if model == "pinhole":
            if not 0 < half < math.pi / 2:
                raise VirtualCameraError(f"virtual camera {name}: a pinhole needs "
                                         f"0 < hfov_deg < 180, got {c['hfov_deg']}")
            fx = (w / 2.0) / math.tan(half)
        else:
            if not 0 < half <= math.pi:
                raise VirtualCameraError(f"virtual camera {name}: hfov_deg out of range")
            fx = (w / 2.0) / half
        fy = fx
    else:
        raise VirtualCameraError(f"virtual camera {name}: needs 'fx' or 'hfov_deg'")
    mount = c["mount"]
    if not isinstance(mount, dict) or "xyz" not in mount or "rpy_deg" not in mount:
        raise VirtualCameraError(f"virtual camera {name}: mount needs 'xyz' and 'rpy_deg'")
    xyz = [_number(name, "mount.xyz", v) for v in mount["xyz"]]
    rpy = [_number(name, "mount.rpy_deg", v) for v in mount["rpy_deg"]]
    if len(xyz) != 3 or len(rpy) != 3:
        raise VirtualCameraError(f"virtual camera {name}: mount xyz/rpy_deg need 3 values")
    T = np.eye(4)
    T[:3, :3] = rot_rpy(*np.radians(rpy)) @ R_BODY_OPTICAL
    T[:3, 3] = xyz
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return VirtualCamera(name, w, h, K, model, T)


def load_virtual_cameras(path: Union[str, Path, None] = None,
                         width: Optional[int] = None,
                         height: Optional[int] = None) -> Dict[str, VirtualCamera]:
    """config/virtual_cameras.yaml (or `path`) -> {name: VirtualCamera}, in file order;
    optionally scaled to width x height (e.g. the low-resolution CPU training setup)."""
    if path is None:
        path = config_file("virtual_cameras.yaml")
    with open(path, "r", encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or not isinstance(doc.get("virtual_cameras"), dict):
        raise VirtualCameraError(f"{path}: expected a top-level 'virtual_cameras' mapping")
    cams = {name: virtual_camera_from_dict(name, c) for name, c in doc["virtual_cameras"].items()}
    if width is not None or height is not None:
        out = {}
        for n, v in cams.items():
            w = width if width is not None else int(round(v.width * height / v.height))
            h = height if height is not None else int(round(v.height * width / v.width))
            out[n] = v.scaled(w, h)
        cams = out
    return cams
