"""Rectification core: warp a real camera image into its virtual common camera.

ROS-free (no rclpy): the rectification node and the perception training pipeline both use
`Rectifier` / `rectify_image`, so training and deployment warp identically.

Geometry. Every pixel of the virtual camera is a ray r_v in the virtual optical frame. The
warp is a pure rotation (the camera's small translation error is negligible against scene
depth, as in the reference stack): r_c = R_camera_virtual r_v with
R_camera_virtual = R_base_camera^T R_base_virtual, then the real lens model (K, D,
distortion model) projects r_c to a source pixel. The resulting float maps are computed
once per calibration and converted to OpenCV's fixed-point form (CV_16SC2 + interpolation
table) for the CPU path (`cv2.remap`), or to a normalised sampling grid for the torch path
(`torch.nn.functional.grid_sample`, CUDA when present).

Real lens models (coefficients in OpenCV / ROS CameraInfo order):
- plumb_bob (k1 k2 p1 p2 k3) and rational_polynomial (k1 k2 p1 p2 k3 k4 k5 k6): OpenCV's
  pinhole model (`cv2.projectPoints`); rays at or behind the image plane are invalid.
- equidistant (k1 k2 k3 k4): OpenCV's fisheye model, with the angle taken as
  atan2(sqrt(x^2+y^2), z) so rays beyond 90 degrees project as well.
Rays outside the range where the distortion polynomial is monotonic (where it folds back
and would produce ghost images), or beyond the lens' `max_angle_deg`, are left black.
"""
from __future__ import annotations

import hashlib
import math
import threading
import warnings
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import cv2
import numpy as np

from autonomy_perception.virtual_camera import VirtualCamera

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
N_COEFFS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
# encodings the rectifier accepts: encoding -> (numpy dtype, channels)
SUPPORTED_ENCODINGS = {
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "bgr8": (np.uint8, 3),
    "rgb8": (np.uint8, 3),
}
DEVICES = ("cpu", "cuda", "torch-cpu")
INTERPOLATIONS = ("linear", "nearest")
# map value for virtual pixels that see nothing of the real image (far outside -> black)
_OUTSIDE = -1000.0


def network_input_image(img: np.ndarray, encoding: str, hw: Tuple[int, int]) -> np.ndarray:
    """A camera image (already rectified to the virtual camera) as the network takes it:
    resized to `hw` (area interpolation) when it is another size, RGB (mono8 expanded,
    bgr8 swapped), contiguous. The one conversion of the perception node, the offline
    agreement re-run and the auto-labeler."""
    h, w = hw
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif encoding == "bgr8":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


class CalibrationError(ValueError):
    """A camera calibration that cannot be used (NaN, unknown model, ...)."""


# ====================================================================== calibration
@dataclass
class CameraGeometry:
    """What the warp depends on: a real camera's intrinsics, lens and mounting rotation.

    Build it from a `camera_models.CameraCalibration` (or anything with width, height, K,
    D, distortion_model and T_base_camera / R_base_camera) with `from_calibration`, or from
    CameraInfo fields + a TF rotation (the node)."""
    name: str
    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: str
    R_base_camera: np.ndarray = field(default_factory=lambda: np.eye(3))
    max_angle_deg: float = 0.0

    def __post_init__(self):
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.D = np.asarray(self.D, dtype=np.float64).reshape(-1)
        self.R_base_camera = np.asarray(self.R_base_camera, dtype=np.float64).reshape(3, 3)
        self.width, self.height = int(self.width), int(self.height)
        self.max_angle_deg = float(self.max_angle_deg or 0.0)

    @classmethod
    def from_calibration(cls, cal, name: Optional[str] = None) -> "CameraGeometry":
        if isinstance(cal, CameraGeometry):
            return cal
        if hasattr(cal, "R_base_camera"):
            R = cal.R_base_camera
        else:
            R = np.asarray(cal.T_base_camera, dtype=np.float64)[:3, :3]
        return cls(name if name is not None else getattr(cal, "name", ""), cal.width,
                   cal.height, cal.K, cal.D, cal.distortion_model, R,
                   getattr(cal, "max_angle_deg", 0.0) or 0.0)

    def validate(self) -> None:
        """Raise CalibrationError (naming the camera) if the warp cannot be computed."""
        who = f"camera {self.name}" if self.name else "camera"
        if self.distortion_model not in DISTORTION_MODELS:
            raise CalibrationError(f"{who}: unsupported distortion model "
                                   f"'{self.distortion_model}' (one of {DISTORTION_MODELS})")
        n = N_COEFFS[self.distortion_model]
        if self.distortion_model == "plumb_bob" and self.D.size == 0:
            pass  # ROS drivers send an empty D for a distortion-free plumb_bob camera
        elif self.D.size != n:
            raise CalibrationError(f"{who}: {self.distortion_model} needs {n} distortion "
                                   f"coefficients, got {self.D.size}")
        for label, arr in (("K", self.K), ("D", self.D), ("mounting rotation", self.R_base_camera)):
            if not np.all(np.isfinite(arr)):
                raise CalibrationError(f"{who}: NaN/inf in calibration {label}")
        if self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise CalibrationError(f"{who}: focal lengths must be positive "
                                   f"(fx={self.K[0, 0]}, fy={self.K[1, 1]})")
        if self.width <= 0 or self.height <= 0:
            raise CalibrationError(f"{who}: image size {self.width}x{self.height} is empty")
        R = self.R_base_camera
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-4 or np.linalg.det(R) < 0:
            raise CalibrationError(f"{who}: mounting rotation is not a rotation matrix")

    def coefficients(self) -> np.ndarray:
        """D padded to the model's length (empty plumb_bob D -> zeros)."""
        n = N_COEFFS.get(self.distortion_model, self.D.size)
        d = np.zeros(n)
        d[:min(n, self.D.size)] = self.D[:n]
        return d

    def key(self) -> bytes:
        """Digest of everything the warp depends on (maps are rebuilt when it changes)."""
        h = hashlib.sha1()
        h.update(f"{self.width}x{self.height}:{self.distortion_model}:{self.max_angle_deg}".encode())
        for arr in (self.K, self.D, self.R_base_camera):
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        return h.digest()


def virtual_key(v: VirtualCamera) -> bytes:
    h = hashlib.sha1()
    h.update(f"{v.name}:{v.width}x{v.height}:{v.model}".encode())
    h.update(np.ascontiguousarray(v.K).tobytes())
    h.update(np.ascontiguousarray(v.T_base_virtual[:3, :3]).tobytes())
    return h.digest()


# ====================================================================== lens models
def _distort_pinhole(x, y, d, model):
    r2 = x * x + y * y
    k1, k2, p1, p2, k3 = d[:5]
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    if model == "rational_polynomial":
        k4, k5, k6 = d[5:8]
        radial = radial / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def _fisheye_theta_d(theta, d):
    k1, k2, k3, k4 = d[:4]
    t2 = theta * theta
    return theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))


def monotonic_limit(geom: CameraGeometry) -> float:
    """Largest undistorted radius (tan of the off-axis angle for pinhole models, the angle
    in radians for the fisheye) up to which the radial distortion grows monotonically,
    capped by the lens' max_angle_deg."""
    d = geom.coefficients()
    if geom.distortion_model == "equidistant":
        r = np.linspace(0.0, math.pi, 20001)
        f = _fisheye_theta_d(r, d)
    else:
        r = np.linspace(0.0, 20.0, 200001)
        with np.errstate(all="ignore"):
            f, _ = _distort_pinhole(r, np.zeros_like(r), d, geom.distortion_model)
    with np.errstate(invalid="ignore"):
        bad = np.nonzero(~(np.diff(f) > 0))[0]
    rmax = float(r[bad[0]]) if bad.size else float(r[-1])
    if geom.max_angle_deg > 0:
        a = math.radians(geom.max_angle_deg)
        rmax = min(rmax, a if geom.distortion_model == "equidistant"
                   else math.tan(min(a, math.radians(89.9))))
    return rmax


def project_to_image(geom: CameraGeometry, rays: np.ndarray,
                     rmax: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rays (... x 3) in the real camera's optical frame -> (u, v, valid) through its lens
    model (valid: in the lens' monotonic range; pixels may lie outside the image)."""
    rays = np.asarray(rays, dtype=np.float64)
    X, Y, Z = rays[..., 0], rays[..., 1], rays[..., 2]
    d = geom.coefficients()
    if rmax is None:
        rmax = monotonic_limit(geom)
    fx, fy, cx, cy, skew = geom.K[0, 0], geom.K[1, 1], geom.K[0, 2], geom.K[1, 2], geom.K[0, 1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if geom.distortion_model == "equidistant":
            rxy = np.hypot(X, Y)
            theta = np.arctan2(rxy, Z)
            scale = np.where(rxy > 1e-12, _fisheye_theta_d(theta, d) / np.maximum(rxy, 1e-300),
                             1.0 / np.where(Z > 0, Z, np.nan))
            xd, yd = X * scale, Y * scale
            valid = theta < rmax
        else:
            zs = np.where(Z > 1e-9, Z, np.nan)
            x, y = X / zs, Y / zs
            xd, yd = _distort_pinhole(x, y, d, geom.distortion_model)
            valid = (Z > 1e-9) & (np.hypot(x, y) < rmax)
        u = fx * xd + skew * yd + cx
        v = fy * yd + cy
    valid &= np.isfinite(u) & np.isfinite(v)
    return u, v, valid


def virtual_to_real(geom: CameraGeometry, virtual: VirtualCamera,
                    uv: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Virtual pixels (... x 2; None: every pixel centre, H x W) -> the real camera's
    pixels (u, v, valid): the exact (unquantised) warp the maps sample."""
    R_cv = geom.R_base_camera.T @ virtual.R_base_virtual
    rays_v = virtual.pixel_grid_rays() if uv is None else virtual.pixel_rays(uv)
    return project_to_image(geom, rays_v @ R_cv.T)


def build_maps(geom: CameraGeometry, virtual: VirtualCamera) -> Tuple[np.ndarray, np.ndarray]:
    """Float maps (H x W float32 each, virtual size): source pixel of every virtual pixel;
    virtual pixels that see nothing of the real camera point far outside the image."""
    geom.validate()
    u, v, valid = virtual_to_real(geom, virtual, None)
    # Far outside the image -> outside; also keeps the fixed-point conversion in int16 range.
    valid &= (u > -2.0) & (u < geom.width + 1.0) & (v > -2.0) & (v < geom.height + 1.0)
    mapx = np.where(valid, u, _OUTSIDE).astype(np.float32)
    mapy = np.where(valid, v, _OUTSIDE).astype(np.float32)
    return mapx, mapy


# ====================================================================== warp backends
class _OpenCVWarp:
    """cv2.remap with fixed-point maps (CV_16SC2 + CV_16UC1 interpolation table)."""
    device = "cpu"

    def __init__(self, mapx: np.ndarray, mapy: np.ndarray, interpolation: str):
        # lazy: OpenCV only on this path (start-up time)
        import cv2
        self._cv2 = cv2
        self.interp = cv2.INTER_NEAREST if interpolation == "nearest" else cv2.INTER_LINEAR
        self.map1, self.map2 = cv2.convertMaps(mapx, mapy, cv2.CV_16SC2,
                                               nninterpolation=interpolation == "nearest")
        if self.map2 is not None and self.map2.size == 0:
            self.map2 = None

    def __call__(self, img: np.ndarray, out: np.ndarray) -> np.ndarray:
        return self._cv2.remap(img, self.map1, self.map2, self.interp, dst=out,
                               borderMode=self._cv2.BORDER_CONSTANT, borderValue=0)


class _TorchWarp:
    """torch.nn.functional.grid_sample with a precomputed normalised grid."""

    def __init__(self, mapx: np.ndarray, mapy: np.ndarray, src_size: Tuple[int, int],
                 interpolation: str, device: str):
        # lazy: torch is heavy and optional here (start-up time)
        import torch
        self.torch = torch
        self.device = torch.device(device)
        w, h = src_size
        # align_corners=False: normalised -1 / +1 are the outer edges of the border pixels
        gx = (2.0 * mapx.astype(np.float64) + 1.0) / w - 1.0
        gy = (2.0 * mapy.astype(np.float64) + 1.0) / h - 1.0
        grid = np.stack([gx, gy], axis=-1).astype(np.float32)[None]
        self.grid = torch.from_numpy(grid).to(self.device)
        self.mode = "nearest" if interpolation == "nearest" else "bilinear"
        self._host: Dict[tuple, "torch.Tensor"] = {}

    def _staging(self, img: np.ndarray):
        """A (pinned when on CUDA) host tensor the input is copied into once."""
        torch = self.torch
        key = (img.shape, img.dtype.str)
        t = self._host.get(key)
        if t is None:
            dt = torch.uint8 if img.dtype == np.uint8 else torch.int16
            t = torch.empty(img.shape, dtype=dt,
                            pin_memory=self.device.type == "cuda")
            self._host[key] = t
        return t

    def to_device(self, img: np.ndarray, flip_channels: bool = False):
        """uint8 H x W x 3 -> the warped image as a uint8 [3, h, w] tensor left on the device
        (channels reversed when flip_channels: BGR in, RGB out): no download, so the
        inference engine takes it without a host round trip (issue 19)."""
        torch = self.torch
        host = self._staging(img)
        np.copyto(host.numpy(), img)
        x = host.to(self.device, non_blocking=True).permute(2, 0, 1)[None].to(torch.float32)
        if flip_channels:
            x = x.flip(1)
        y = torch.nn.functional.grid_sample(x, self.grid, mode=self.mode,
                                            padding_mode="zeros", align_corners=False)
        return torch.round(y[0]).clamp_(0.0, 255.0).to(torch.uint8)

    def __call__(self, img: np.ndarray, out: np.ndarray) -> np.ndarray:
        torch = self.torch
        host = self._staging(img)
        if img.dtype == np.uint16:
            np.copyto(host.numpy(), img.view(np.int16))
        else:
            np.copyto(host.numpy(), img)
        x = host.to(self.device, non_blocking=True)
        if img.dtype == np.uint16:
            x = x.to(torch.int32) & 0xFFFF
            top = 65535.0
        else:
            top = 255.0
        x = x.to(torch.float32)
        x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
        y = torch.nn.functional.grid_sample(x, self.grid, mode=self.mode,
                                            padding_mode="zeros", align_corners=False)
        y = y[0, 0] if img.ndim == 2 else y[0].permute(1, 2, 0)
        y = torch.round(y).clamp_(0.0, top)
        y = y.to(torch.uint8) if img.dtype == np.uint8 else y.to(torch.int32)
        np.copyto(out, y.cpu().numpy(), casting="unsafe")
        return out


def cuda_available() -> bool:
    try:
        # lazy: torch is heavy and optional here (start-up time)
        import torch
        return bool(torch.cuda.is_available())
    except Exception:  # torch missing or broken: no GPU path
        return False


# ====================================================================== the rectifier
class Rectifier:
    """Warps images of one real camera into one virtual camera.

    `set_calibration(cal)` (re)computes the maps only when the calibration changed;
    `rectify(img, out=None)` warps one image (H x W or H x W x C, uint8/uint16) and writes
    into `out` when given (no allocation on the hot path).

    device: 'cpu' (cv2.remap, fixed-point maps), 'cuda' (torch grid_sample on the GPU;
    falls back to 'cpu' with a warning when CUDA is missing) or 'torch-cpu' (the torch path
    on the CPU, for comparisons)."""

    def __init__(self, virtual: VirtualCamera, calibration=None, device: str = "cpu",
                 interpolation: str = "linear",
                 warn: Optional[Callable[[str], None]] = None):
        if device not in DEVICES:
            raise ValueError(f"device {device!r} is not one of {DEVICES}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {interpolation!r} is not one of {INTERPOLATIONS}")
        self.virtual = virtual
        self.interpolation = interpolation
        self.requested_device = device
        if device == "cuda" and not cuda_available():
            msg = (f"rectification of {virtual.name}: device 'cuda' requested but no CUDA "
                   "device is available; falling back to the CPU (cv2.remap)")
            (warn or (lambda m: warnings.warn(m, RuntimeWarning, stacklevel=2)))(msg)
            device = "cpu"
        self.device = device
        self.geometry: Optional[CameraGeometry] = None
        self._key: Optional[bytes] = None
        self._warp = None
        self.map_builds = 0
        if calibration is not None:
            self.set_calibration(calibration)

    @property
    def ready(self) -> bool:
        return self._warp is not None

    @property
    def output_shape(self) -> Tuple[int, int]:
        return self.virtual.height, self.virtual.width

    @property
    def map1(self):
        """Fixed-point maps of the CPU path (None on the torch path)."""
        return getattr(self._warp, "map1", None)

    @property
    def map2(self):
        return getattr(self._warp, "map2", None)

    def set_calibration(self, calibration) -> bool:
        """Use this calibration; returns True when the maps were (re)built. Raises
        CalibrationError for an unusable calibration (the previous maps stay)."""
        geom = CameraGeometry.from_calibration(calibration)
        geom.validate()
        key = geom.key()
        if key == self._key and self._warp is not None:
            return False
        mapx, mapy = build_maps(geom, self.virtual)
        if self.device == "cpu":
            warp = _OpenCVWarp(mapx, mapy, self.interpolation)
        else:
            warp = _TorchWarp(mapx, mapy, (geom.width, geom.height), self.interpolation,
                              "cuda" if self.device == "cuda" else "cpu")
        # the float maps are not kept (2 x 4 bytes per pixel); build_maps() recomputes them
        self.geometry, self._key, self._warp = geom, key, warp
        self.map_builds += 1
        return True

    def rectify_to_device(self, img: np.ndarray, flip_channels: bool = False):
        """Torch devices ('cuda', 'torch-cpu') only: a uint8 H x W x 3 image -> uint8 [3, h, w]
        tensor on the device (see _TorchWarp.to_device); feed it to
        InferenceEngine.fill_camera_device."""
        if not isinstance(self._warp, _TorchWarp):
            raise RuntimeError(f"rectifier {self.virtual.name}: rectify_to_device needs a torch "
                               f"device, this one warps with OpenCV on the CPU")
        g = self.geometry
        if img.shape != (g.height, g.width, 3) or img.dtype != np.uint8:
            raise ValueError(f"camera {g.name}: rectify_to_device takes {g.width}x{g.height}x3 uint8, "
                             f"got {img.shape} {img.dtype}")
        return self._warp.to_device(img, flip_channels)

    def allocate_output(self, like: np.ndarray) -> np.ndarray:
        shape = self.output_shape + like.shape[2:]
        return np.empty(shape, dtype=like.dtype)

    def rectify(self, img: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        if self._warp is None:
            raise RuntimeError(f"rectifier {self.virtual.name}: no calibration set")
        g = self.geometry
        if img.shape[0] != g.height or img.shape[1] != g.width:
            raise ValueError(f"camera {g.name}: image is {img.shape[1]}x{img.shape[0]}, "
                             f"calibration is {g.width}x{g.height}")
        if img.dtype.byteorder == ">":
            img = img.astype(img.dtype.newbyteorder("="))
        if out is None:
            out = self.allocate_output(img)
        return self._warp(img, out)


# ---------------------------------------------------------------------- ROS-free function
_CACHE: "OrderedDict[tuple, Rectifier]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 32


def rectify_image(image: np.ndarray, calibration, virtual: VirtualCamera,
                  device: str = "cpu", interpolation: str = "linear",
                  out: Optional[np.ndarray] = None) -> np.ndarray:
    """Image of the real camera `calibration` (a camera_models.CameraCalibration or a
    CameraGeometry) -> the same scene seen by `virtual`. Maps are cached per (calibration,
    virtual camera, device), so calling this per training sample costs one remap."""
    geom = CameraGeometry.from_calibration(calibration)
    key = (geom.key(), virtual_key(virtual), device, interpolation)
    with _CACHE_LOCK:
        rect = _CACHE.get(key)
        if rect is not None:
            _CACHE.move_to_end(key)
    if rect is None:
        rect = Rectifier(virtual, geom, device=device, interpolation=interpolation)
        with _CACHE_LOCK:
            _CACHE[key] = rect
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return rect.rectify(image, out)


# ====================================================================== static TF cache
def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> 3x3 rotation (NaN stays NaN; zero -> NaN)."""
    n = math.sqrt(x * x + y * y + z * z + w * w) if all(map(math.isfinite, (x, y, z, w))) else float("nan")
    if not n > 0:
        return np.full((3, 3), np.nan)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


class StaticTransformCache:
    """The static transform tree from /tf_static (tf2_ros is not available on the pip
    path). `add(parent, child, translation, quaternion_xyzw)` stores one edge (a later
    edge for the same child replaces it); `lookup(target, source)` returns the 4x4
    T_target_source (maps points in `source` into `target`) or None when the two frames
    are not connected. `version` increments on every change."""

    def __init__(self):
        self._edges: Dict[str, Tuple[str, np.ndarray]] = {}
        self.version = 0

    def add(self, parent: str, child: str, translation, quaternion_xyzw) -> bool:
        parent, child = parent.lstrip("/"), child.lstrip("/")
        T = np.eye(4)
        T[:3, :3] = quaternion_matrix(*[float(q) for q in quaternion_xyzw])
        T[:3, 3] = [float(t) for t in translation]
        old = self._edges.get(child)
        if old is not None and old[0] == parent and np.array_equal(old[1], T, equal_nan=True):
            return False
        self._edges[child] = (parent, T)
        self.version += 1
        return True

    def frames(self):
        return set(self._edges) | {p for p, _ in self._edges.values()}

    def _to_root(self, frame: str):
        """(root, T_root_frame), following parents (cycle-safe)."""
        T = np.eye(4)
        seen = set()
        while frame in self._edges and frame not in seen:
            seen.add(frame)
            parent, T_pf = self._edges[frame]
            T = T_pf @ T
            frame = parent
        return frame, T

    def lookup(self, target: str, source: str) -> Optional[np.ndarray]:
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        if source not in self._edges and target not in self._edges:
            return None
        rt, T_rt = self._to_root(target)
        rs, T_rs = self._to_root(source)
        if rt != rs:
            return None
        R, t = T_rt[:3, :3], T_rt[:3, 3]
        inv = np.eye(4)
        inv[:3, :3] = R.T
        inv[:3, 3] = -R.T @ t
        return inv @ T_rs


# ====================================================================== statistics
class CameraStats:
    """Per-camera counters for diagnostics: received/published/dropped frames (by
    reason), output rate over a sliding window and processing time."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self.received = 0
        self.published = 0
        self.dropped = 0
        self.drop_reasons: Dict[str, int] = {}
        self.last_error = ""
        self._times: deque = deque()
        self._proc_sum = 0.0
        self._proc_n = 0
        self._proc_max = 0.0
        self.map_builds = 0

    def frame_in(self):
        self.received += 1

    def frame_out(self, now: float, processing_s: float):
        self.published += 1
        self._times.append(now)
        self._proc_sum += processing_s
        self._proc_n += 1
        if processing_s > self._proc_max:
            self._proc_max = processing_s

    def drop(self, reason: str, message: str):
        self.dropped += 1
        self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + 1
        self.last_error = message

    def rate(self, now: float) -> float:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = now - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def take_processing(self) -> Tuple[float, float]:
        """(mean, max) processing time in seconds since the last call."""
        mean = self._proc_sum / self._proc_n if self._proc_n else 0.0
        mx = self._proc_max
        self._proc_sum, self._proc_n, self._proc_max = 0.0, 0, 0.0
        return mean, mx
