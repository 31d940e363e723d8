"""Atlas planning: which ideal pinhole views (crops of cube faces aligned with each
camera's optical axis) cover a camera's pixels, where the crops sit in the shared atlas
framebuffer, and the fixed-point remap maps from the atlas back to every camera's pixels.
All of it depends only on the intrinsics (cached per calibration); see
`autonomy_simulator.rendering` for the whole pipeline."""
import hashlib
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from autonomy_vehicle.camera_models import CameraCalibration, rotate

# columns = face axes (x right, y down, z forward) expressed in the camera optical frame
CUBE_FACES = {
    "front": np.eye(3),
    "right": np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], float),
    "left": np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]], float),
    "down": np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float),
    "up": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float),
    "back": np.array([[-1, 0, 0], [0, 1, 0], [0, 0, -1]], float),
}


@dataclass
class FaceView:
    """One ideal pinhole crop rendered into the atlas."""
    camera: str
    face: str
    R_cam_face: np.ndarray     # 3x3
    f: float                   # focal length (px), square pixels
    cx: float                  # principal point in crop pixels
    cy: float
    w: int
    h: int
    x0: int = 0                # position in the atlas
    y0: int = 0


@dataclass
class CameraMaps:
    name: str
    width: int
    height: int
    map1: np.ndarray           # CV_16SC2 fixed-point map into the atlas
    map2: np.ndarray           # CV_16UC1 interpolation weights
    inside: np.ndarray         # HxW bool: pixel sees through the lens
    ray_z: np.ndarray          # HxW float32: z component of the unit pixel ray (range -> depth)
    faces: List[FaceView]
    wide: bool = False         # some rays have z <= 0 (beyond 90 degrees)
    range_scale: Optional[np.ndarray] = None   # HxW 1 / cos(ray, face axis): face z -> range
    edge_invz: float = 0.0     # 1/m: |bilinear - nearest| inverse depth that marks a depth edge


def shelf_pack(faces: List[FaceView], width: int) -> int:
    """Place crops on shelves of an atlas `width` wide; returns the atlas height."""
    order = sorted(range(len(faces)), key=lambda i: -faces[i].h)
    x = y = shelf_h = 0
    for i in order:
        f = faces[i]
        if x + f.w > width:
            y += shelf_h
            x = shelf_h = 0
        f.x0, f.y0 = x, y
        x += f.w
        shelf_h = max(shelf_h, f.h)
    return y + shelf_h


def atlas_width(faces: List[FaceView], max_size: int, requested: Optional[int] = None) -> int:
    """Shelf width of the atlas: `requested` (at least the widest crop), else the width of
    the smallest atlas area (clear + read back cost) over a range of widths that fits the
    GL limit `max_size`. Leaves the crops packed for the last width tried: call
    `shelf_pack(faces, width)` with the result."""
    wmin = max(f.w for f in faces)
    if requested:
        return max(wmin, requested)
    total = sum(f.w * f.h for f in faces)
    cands = range(wmin, max(wmin, min(max_size, int(2.5 * math.sqrt(total)))) + 1, 16)
    return min(cands, key=lambda w_: (w_ * shelf_pack(faces, w_)
                                      if shelf_pack(faces, w_) <= max_size
                                      else float("inf"), w_))


_MAP_CACHE: Dict[str, Tuple[np.ndarray, np.ndarray, List[FaceView]]] = {}


def intrinsic_key(cam: CameraCalibration, density: float) -> str:
    h = hashlib.sha1()
    for a in (cam.K, cam.D):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    h.update(f"{cam.distortion_model}{cam.width}x{cam.height}{cam.max_angle_deg}{density}".encode())
    return h.hexdigest()


def dense_pixel_rays(cam: CameraCalibration, step: int = 4) -> np.ndarray:
    """HxWx3 unit rays of every pixel. The (iterative) undistortion runs on a grid every
    `step` pixels and is interpolated bilinearly (the lens maps are smooth: ~0.01 px
    error); pixels whose grid neighbours leave the lens are solved exactly."""
    H, W = cam.height, cam.width
    gu = np.arange(0, W - 1 + step, step, dtype=np.float64)
    gv = np.arange(0, H - 1 + step, step, dtype=np.float64)
    U, V = np.meshgrid(gu, gv)
    g = cam.pixel_rays(np.stack([U.ravel(), V.ravel()], 1)).reshape(len(gv), len(gu), 3)
    mx, my = np.meshgrid(np.arange(W, dtype=np.float32) / step,
                         np.arange(H, dtype=np.float32) / step)
    rays = cv2.remap(g.astype(np.float32), mx, my, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).astype(np.float64)
    bad = ~np.isfinite(rays).all(axis=2)
    if bad.any():
        vv, uu = np.nonzero(bad)
        rays[vv, uu] = cam.pixel_rays(np.stack([uu, vv], 1).astype(np.float64))
    rays /= np.linalg.norm(rays, axis=2, keepdims=True)
    return rays


def plan_faces(cam: CameraCalibration, density: float = 1.0, margin: int = 2):
    """Cube faces (cropped) that cover the camera's pixels, and per pixel the face index and
    the face-crop pixel coordinates. Depends only on the intrinsics."""
    key = intrinsic_key(cam, density)
    if key in _MAP_CACHE:
        rays, fidx, fuv, cosf, faces = _MAP_CACHE[key]
        return rays, fidx, fuv, cosf, [FaceView(**{k: getattr(f, k) for k in
                                                   f.__dataclass_fields__}) for f in faces]
    H, W = cam.height, cam.width
    rays = dense_pixel_rays(cam).reshape(-1, 3).astype(np.float64)
    ok = np.isfinite(rays).all(1)
    f_face = density * float(max(cam.K[0, 0], cam.K[1, 1]))
    names = list(CUBE_FACES)
    # dot products with the 6 face axes (front +z, right +x, left -x, down +y, up -y, back -z)
    x, y, z = rays[:, 0], rays[:, 1], rays[:, 2]
    dots = np.stack([z, x, -x, y, -y, -z], axis=1)
    dots[~ok] = -np.inf
    best = np.argmax(dots, axis=1)
    fidx = np.full(len(rays), -1, np.int32)
    fuv = np.full((len(rays), 2), -1.0, np.float32)
    cosf = np.ones(len(rays), np.float32)      # cosine between the ray and its face's axis
    faces: List[FaceView] = []
    n_full = 2.0 * f_face                                        # face spans tan in [-1, 1]
    c_full = n_full / 2.0 - 0.5
    for k, name in enumerate(names):
        sel = ok & (best == k)
        if not sel.any():
            continue
        R = CUBE_FACES[name]
        rf = rotate(R.T, rays[sel])                              # rays in the face frame
        a = rf[:, 0] / rf[:, 2]
        b = rf[:, 1] / rf[:, 2]
        uf = f_face * a + c_full
        vf = f_face * b + c_full
        u0 = int(math.floor(uf.min())) - margin
        v0 = int(math.floor(vf.min())) - margin
        u1 = int(math.ceil(uf.max())) + margin
        v1 = int(math.ceil(vf.max())) + margin
        fv = FaceView(cam.name, name, R, f_face, c_full - u0, c_full - v0, u1 - u0 + 1,
                      v1 - v0 + 1)
        fidx[sel] = len(faces)
        fuv[sel, 0] = uf - u0
        fuv[sel, 1] = vf - v0
        cosf[sel] = rf[:, 2]
        faces.append(fv)
    rays = rays.reshape(H, W, 3).astype(np.float32)
    _MAP_CACHE[key] = (rays, fidx, fuv, cosf, faces)
    return rays, fidx, fuv, cosf, [FaceView(**{k: getattr(f, k) for k in f.__dataclass_fields__})
                                   for f in faces]



def camera_maps(name: str, cam: CameraCalibration, plan) -> CameraMaps:
    """Remap maps of one camera from the packed atlas (`plan` = `plan_faces(cam, ..)`, its
    faces already placed by `shelf_pack`) to the camera's pixels."""
    rays, fidx, fuv, cosf, faces = plan
    off = np.array([[f.x0, f.y0] for f in faces], np.float32) if faces else \
        np.zeros((0, 2), np.float32)
    mx = np.full(fidx.shape, -10.0, np.float32)
    my = np.full(fidx.shape, -10.0, np.float32)
    good = fidx >= 0
    mx[good] = fuv[good, 0] + off[fidx[good], 0]
    my[good] = fuv[good, 1] + off[fidx[good], 1]
    H, W = cam.height, cam.width
    m1, m2 = cv2.convertMaps(mx.reshape(H, W), my.reshape(H, W), cv2.CV_16SC2)
    ray_z = np.nan_to_num(rays[..., 2], nan=1.0).astype(np.float32)
    range_scale = (1.0 / cosf).reshape(H, W).astype(np.float32)
    f_face = faces[0].f if faces else 1.0
    return CameraMaps(name, W, H, m1, m2, good.reshape(H, W), ray_z, faces,
                      bool((ray_z <= 0).any()), range_scale, 1.5 / f_face)
