"""Camera models of the 8-camera rig: intrinsics, lens distortion and mounting.

Pure numpy (no rclpy, no OpenCV needed at run time; tests compare against OpenCV).

Conventions
- Pixels: OpenCV convention, (u, v) with the centre of the top-left pixel at (0, 0).
- Camera optical frame: z forward, x right, y down (frame ``camera_<name>``).
- ``base_link``: rear-axle centre, x forward, y left, z up.
- ``T_base_camera`` (4x4) maps points of the camera optical frame into base_link:
  ``p_base = T_base_camera @ p_cam``.

Distortion models (same coefficient order as OpenCV / ROS CameraInfo):
- ``plumb_bob``: D = (k1, k2, p1, p2, k3)               -> cv2.projectPoints
- ``rational_polynomial``: D = (k1, k2, p1, p2, k3, k4, k5, k6) -> cv2.projectPoints
- ``equidistant``: D = (k1, k2, k3, k4), r_d = theta (1 + k1 t^2 + k2 t^4 + ...)
  -> cv2.fisheye.projectPoints. Unlike OpenCV (which forms x/z first) the angle here is
  ``atan2(sqrt(x^2+y^2), z)``, so rays up to and beyond 90 degrees off axis (a ~180 degree
  fisheye) project correctly; for z > 0 the two agree exactly.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
import yaml

from autonomy_stack.paths import config_file

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
CAMERA_NAMES = ("main", "narrow", "fisheye", "left_pillar", "right_pillar",
                "left_repeater", "right_repeater", "rear")

# optical axes expressed in a body frame (x forward, y left, z up):
# optical x = -body y (right), optical y = -body z (down), optical z = body x (forward)
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0],
                           [-1.0, 0.0, 0.0],
                           [0.0, -1.0, 0.0]])


def rotate(R: np.ndarray, P: np.ndarray) -> np.ndarray:
    """P (Nx3) @ R.T without BLAS (tall-skinny BLAS matmuls are slow and thread-hungry on
    a loaded 2-core machine)."""
    P = np.asarray(P)
    return (P[:, 0:1] * R[:, 0] + P[:, 1:2] * R[:, 1] + P[:, 2:3] * R[:, 2])


def rot_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll) (ROS fixed-axis rpy; positive pitch = nose down)."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotvec_to_matrix(rv: np.ndarray) -> np.ndarray:
    """Rodrigues formula (axis * angle -> 3x3)."""
    rv = np.asarray(rv, dtype=float).reshape(3)
    th = float(np.linalg.norm(rv))
    if th < 1e-15:
        return np.eye(3)
    k = rv / th
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * kx + (1 - np.cos(th)) * (kx @ kx)


def mount_transform(xyz, rpy) -> np.ndarray:
    """T_base_camera for a camera at `xyz` (m, base_link) whose body (x = viewing
    direction) has roll/pitch/yaw `rpy` (rad) relative to base_link."""
    T = np.eye(4)
    T[:3, :3] = rot_rpy(*rpy) @ R_BODY_OPTICAL
    T[:3, 3] = np.asarray(xyz, dtype=float)
    return T


@dataclass
class CameraCalibration:
    name: str
    width: int
    height: int
    K: np.ndarray                       # 3x3
    D: np.ndarray                       # distortion coefficients (see module doc)
    distortion_model: str
    T_base_camera: np.ndarray = field(default_factory=lambda: np.eye(4))
    max_angle_deg: float = 0.0          # optional limit on the ray angle off the optical axis
    _rmax: Optional[float] = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        self.K = np.asarray(self.K, dtype=float).reshape(3, 3)
        self.D = np.asarray(self.D, dtype=float).reshape(-1)
        self.T_base_camera = np.asarray(self.T_base_camera, dtype=float).reshape(4, 4)
        if self.distortion_model not in DISTORTION_MODELS:
            raise ValueError(f"camera {self.name}: unknown distortion_model "
                             f"{self.distortion_model!r} (one of {DISTORTION_MODELS})")
        need = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}[self.distortion_model]
        if self.D.size != need:
            raise ValueError(f"camera {self.name}: {self.distortion_model} needs {need} "
                             f"distortion coefficients, got {self.D.size}")
        self.width, self.height = int(self.width), int(self.height)

    # ------------------------------------------------------------------ basic properties
    @property
    def is_fisheye(self) -> bool:
        return self.distortion_model == "equidistant"

    @property
    def T_camera_base(self) -> np.ndarray:
        R = self.T_base_camera[:3, :3]
        t = self.T_base_camera[:3, 3]
        T = np.eye(4)
        T[:3, :3] = R.T
        T[:3, 3] = -R.T @ t
        return T

    @property
    def position(self) -> np.ndarray:
        return self.T_base_camera[:3, 3].copy()

    @property
    def optical_axis_base(self) -> np.ndarray:
        return self.T_base_camera[:3, 2].copy()

    def rvec_tvec(self) -> Tuple[np.ndarray, np.ndarray]:
        """(rvec, tvec) of base_link -> camera for cv2.projectPoints."""
        Tcb = self.T_camera_base
        R = Tcb[:3, :3]
        # log map of R
        cos_th = np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)
        th = np.arccos(cos_th)
        if th < 1e-12:
            rv = np.zeros(3)
        elif np.pi - th < 1e-6:
            # near pi: axis from the symmetric part
            A = (R + np.eye(3)) / 2
            axis = np.sqrt(np.clip(np.diag(A), 0, None))
            i = int(np.argmax(axis))
            axis = A[:, i] / np.sqrt(A[i, i])
            rv = axis * th
        else:
            rv = th / (2 * np.sin(th)) * np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0],
                                                   R[1, 0] - R[0, 1]])
        return rv, Tcb[:3, 3].copy()

    # ------------------------------------------------------------------ distortion
    def _distort_normalized(self, x: np.ndarray, y: np.ndarray):
        """Pinhole models: normalized undistorted (x, y) -> distorted (xd, yd)."""
        d = self.D
        r2 = x * x + y * y
        if self.distortion_model == "plumb_bob":
            k1, k2, p1, p2, k3 = d
            radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        else:
            k1, k2, p1, p2, k3, k4, k5, k6 = d
            radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return xd, yd

    def _fisheye_theta_d(self, theta: np.ndarray) -> np.ndarray:
        k1, k2, k3, k4 = self.D
        t2 = theta * theta
        return theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))

    def valid_radius(self) -> float:
        """Largest undistorted radius (tan of the ray angle for pinhole models, the angle
        in radians for the fisheye) up to which the distortion is monotonic (beyond it
        the polynomial folds back and projections are not physical)."""
        if self._rmax is not None:
            return self._rmax
        if self.is_fisheye:
            r = np.linspace(0.0, np.pi, 20001)
            f = self._fisheye_theta_d(r)
        else:
            r = np.linspace(0.0, 20.0, 200001)
            xd, _ = self._distort_normalized(r, np.zeros_like(r))
            f = xd
        df = np.diff(f)
        bad = np.nonzero(df <= 0)[0]
        rmax = float(r[bad[0]]) if bad.size else float(r[-1])
        if self.max_angle_deg > 0:
            a = np.radians(self.max_angle_deg)
            rmax = min(rmax, a if self.is_fisheye else float(np.tan(min(a, np.radians(89.0)))))
        self._rmax = rmax
        return rmax

    # ------------------------------------------------------------------ projection
    def project_camera(self, pc: np.ndarray, check_image: bool = True):
        """Points in the camera optical frame (Nx3) -> (uv Nx2, valid N)."""
        pc = np.asarray(pc, dtype=float).reshape(-1, 3)
        X, Y, Z = pc[:, 0], pc[:, 1], pc[:, 2]
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        skew = self.K[0, 1]
        rmax = self.valid_radius()
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.is_fisheye:
                rxy = np.hypot(X, Y)
                theta = np.arctan2(rxy, Z)
                theta_d = self._fisheye_theta_d(theta)
                scale = np.where(rxy > 1e-12, theta_d / np.maximum(rxy, 1e-300), 0.0)
                xd, yd = X * scale, Y * scale
                valid = theta < rmax
            else:
                zs = np.where(Z > 1e-9, Z, np.nan)
                x, y = X / zs, Y / zs
                r = np.hypot(x, y)
                xd, yd = self._distort_normalized(x, y)
                valid = (Z > 1e-9) & (r < rmax)
            u = fx * xd + skew * yd + cx
            v = fy * yd + cy
        uv = np.stack([u, v], axis=1)
        valid = valid & np.isfinite(uv).all(axis=1)
        if check_image:
            valid &= (uv[:, 0] >= -0.5) & (uv[:, 0] <= self.width - 0.5) & \
                     (uv[:, 1] >= -0.5) & (uv[:, 1] <= self.height - 0.5)
        return uv, valid

    def project(self, points_base: np.ndarray, check_image: bool = True):
        """Points in base_link (Nx3) -> (uv Nx2, valid N bool).

        `valid`: in front of the lens (within its monotonic range) and, with
        `check_image`, inside the image. uv of invalid points is not meaningful.
        """
        p = np.asarray(points_base, dtype=float).reshape(-1, 3)
        Tcb = self.T_camera_base
        pc = rotate(Tcb[:3, :3], p) + Tcb[:3, 3]
        return self.project_camera(pc, check_image)

    # ------------------------------------------------------------------ back-projection
    def _undistort_pinhole(self, xd: np.ndarray, yd: np.ndarray, iters: int = 20):
        """Distorted normalized -> undistorted normalized (Newton, vectorised)."""
        # initial guess: radial-only fixed point
        x, y = xd.copy(), yd.copy()
        for _ in range(5):
            fxd, fyd = self._distort_normalized(x, y)
            r = np.hypot(x, y)
            rd = np.hypot(fxd, fyd)
            s = np.where(rd > 1e-12, r / np.maximum(rd, 1e-300), 1.0)
            x, y = xd * s, yd * s
        h = 1e-7
        for _ in range(iters):
            fx0, fy0 = self._distort_normalized(x, y)
            ex, ey = fx0 - xd, fy0 - yd
            fxa, fya = self._distort_normalized(x + h, y)
            fxb, fyb = self._distort_normalized(x, y + h)
            a, c = (fxa - fx0) / h, (fya - fy0) / h
            b, d = (fxb - fx0) / h, (fyb - fy0) / h
            det = a * d - b * c
            det = np.where(np.abs(det) < 1e-12, 1e-12, det)
            dx = (d * ex - b * ey) / det
            dy = (-c * ex + a * ey) / det
            x, y = x - dx, y - dy
            if np.nanmax(np.abs(np.concatenate([dx, dy])) if dx.size else [0]) < 1e-13:
                break
        return x, y

    def _undistort_fisheye_theta(self, theta_d: np.ndarray, iters: int = 30):
        th = theta_d.copy()
        k1, k2, k3, k4 = self.D
        for _ in range(iters):
            t2 = th * th
            f = th * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - theta_d
            df = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
            step = f / np.where(np.abs(df) < 1e-12, 1e-12, df)
            th = th - step
            if step.size == 0 or np.nanmax(np.abs(step)) < 1e-14:
                break
        return th

    def pixel_rays(self, uv: np.ndarray) -> np.ndarray:
        """Pixels (Nx2) -> unit rays (Nx3) in the camera optical frame (undistorted).
        Pixels outside the lens' valid range give NaN rays."""
        uv = np.asarray(uv, dtype=float).reshape(-1, 2)
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        skew = self.K[0, 1]
        yd = (uv[:, 1] - cy) / fy
        xd = (uv[:, 0] - cx - skew * yd) / fx
        rmax = self.valid_radius()
        if self.is_fisheye:
            theta_d = np.hypot(xd, yd)
            theta = self._undistort_fisheye_theta(theta_d)
            phi = np.arctan2(yd, xd)
            st = np.sin(theta)
            rays = np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)], axis=1)
            bad = (theta > rmax) | (theta < 0)
        else:
            x, y = self._undistort_pinhole(xd, yd)
            rays = np.stack([x, y, np.ones_like(x)], axis=1)
            rays /= np.linalg.norm(rays, axis=1, keepdims=True)
            # reject pixels whose solution is outside the monotonic range or not converged
            rx, ry = self._distort_normalized(x, y)
            bad = (np.hypot(x, y) > rmax) | (np.hypot(rx - xd, ry - yd) > 1e-6)
        rays[bad] = np.nan
        return rays

    def pixel_rays_base(self, uv: np.ndarray) -> np.ndarray:
        """Pixels -> unit rays in base_link orientation (origin at `position`)."""
        return rotate(self.T_base_camera[:3, :3], self.pixel_rays(uv))

    # ------------------------------------------------------------------ variants
    def scaled(self, width: int, height: int) -> "CameraCalibration":
        """Same camera at another resolution (same field of view)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, 0] *= sx
        K[0, 1] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return CameraCalibration(self.name, int(width), int(height), K, self.D.copy(),
                                 self.distortion_model, self.T_base_camera.copy(),
                                 self.max_angle_deg)

    def with_mounting_error(self, R_err: np.ndarray, t_err) -> "CameraCalibration":
        """The same camera mounted slightly off: the error (R_err, t_err) is a rigid
        motion expressed in the nominal camera frame, T' = T_base_camera @ [R_err|t_err]."""
        E = np.eye(4)
        E[:3, :3] = np.asarray(R_err, dtype=float).reshape(3, 3)
        E[:3, 3] = np.asarray(t_err, dtype=float).reshape(3)
        return CameraCalibration(self.name, self.width, self.height, self.K.copy(),
                                 self.D.copy(), self.distortion_model, self.T_base_camera @ E,
                                 self.max_angle_deg)

    def copy(self) -> "CameraCalibration":
        return copy.deepcopy(self)

    def fov_deg(self) -> Tuple[float, float]:
        """Horizontal and vertical field of view (degrees) through the image centre lines."""
        cx, cy = self.K[0, 2], self.K[1, 2]
        uv = np.array([[-0.5, cy], [self.width - 0.5, cy], [cx, -0.5], [cx, self.height - 0.5]])
        r = self.pixel_rays(uv)
        ang = np.degrees(np.arctan2(np.hypot(r[:, 0], r[:, 1]), r[:, 2]))
        return float(ang[0] + ang[1]), float(ang[2] + ang[3])

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height,
                "K": self.K.tolist(), "D": self.D.tolist(),
                "distortion_model": self.distortion_model,
                "T_base_camera": self.T_base_camera.tolist(),
                "max_angle_deg": self.max_angle_deg}


Rig = Dict[str, CameraCalibration]


def _calibration_from_yaml(name: str, c: dict) -> CameraCalibration:
    K = np.array([[c["fx"], c.get("skew", 0.0), c["cx"]], [0.0, c["fy"], c["cy"]], [0, 0, 1.0]])
    mount = c["mount"]
    T = mount_transform(mount["xyz"], np.radians(mount["rpy_deg"]))
    return CameraCalibration(name, c["width"], c["height"], K, c["D"], c["distortion_model"],
                             T, float(c.get("max_angle_deg", 0.0)))


def load_rig(path: Union[str, Path, None] = None, width: Optional[int] = None,
             height: Optional[int] = None) -> Rig:
    """Read config/camera_rig.yaml (or `path`) -> {name: CameraCalibration} in the
    order of the file; optionally scaled to width x height."""
    if path is None:
        path = config_file("camera_rig.yaml")
    with open(path, "r", encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    cams = doc["cameras"]
    rig = {name: _calibration_from_yaml(name, c) for name, c in cams.items()}
    if width is not None or height is not None:
        rig = scale_rig(rig, width, height)
    return rig


def scale_rig(rig: Rig, width: Optional[int], height: Optional[int]) -> Rig:
    out = {}
    for n, c in rig.items():
        w = width if width is not None else int(round(c.width * height / c.height))
        h = height if height is not None else int(round(c.height * width / c.width))
        out[n] = c.scaled(w, h)
    return out


def sample_mounting_error(rig: Rig, rng: Union[np.random.Generator, int, None] = None,
                          rot_std_deg: float = 0.6, trans_std_m: float = 0.01) -> Rig:
    """A new rig with per-camera random extrinsic errors (the "slightly cockeyed" car).

    Each camera gets a rotation with a random axis-angle vector (per-axis std
    `rot_std_deg`) and an offset (per-axis std `trans_std_m`), both in its own frame.
    `rng`: a np.random.Generator or an int seed (per vehicle)."""
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    out = {}
    for name, cam in rig.items():
        rv = rng.normal(0.0, np.radians(rot_std_deg), 3)
        t = rng.normal(0.0, trans_std_m, 3)
        out[name] = cam.with_mounting_error(rotvec_to_matrix(rv), t)
    return out
