"""Offscreen OpenGL renderer of the 8-camera rig (no ROS).

`RigRenderer(rig).render(snapshot)` turns a `scene.SceneSnapshot` into, per camera, an RGB
image (uint8), a depth image (float32 metres along the optical axis; `range` is the
Euclidean distance), a semantic segmentation (uint8 class ids, `SEMANTIC_CLASSES`), an
instance image (int32 object ids, 0 = no object) and the visible pixel count of every object.

Library: moderngl on an EGL context (`backend='egl'`). On this machine EGL is Mesa's
llvmpipe (OpenGL 4.5 core, software rasteriser on the CPU, no display needed); on a GPU
machine the same code reaches the NVIDIA driver through EGL. A rasteriser with a depth
buffer gives exact occlusion and handles thousands of triangles per view for almost
nothing, which vectorised ray casting in numpy could not match on 2 cores.

Lens model: the GPU renders *ideal pinhole* views and `cv2.remap` warps them into the real
(distorted) camera. Why not distort in the vertex shader: lens distortion bends straight
edges, so every large triangle (ground, curbs, box faces) would need tessellation, and a
~180 degree fisheye cannot be expressed by a single projective transform at all (triangles
crossing 90 degrees break). The remap route is exact per pixel for every model of
`camera_models` (the maps come from `CameraCalibration.pixel_rays`, i.e. the same
undistortion as everywhere else).

How: each camera's field of view is covered by up to 5 faces of a cube aligned with its
optical axis (front, left, right, up, down); a face is rendered only where the camera's
pixels look through it (cropped to their bounding box), so the narrow camera renders one
small front crop, main/pillars/repeaters a front face plus slivers, the fisheye and the
rear camera a front face plus 4 partial side faces. All crops of all cameras are packed
into one atlas framebuffer (MRT: colour RGBA8, label RGBA8 = 16-bit instance index +
class, inverse face depth float32, depth buffer), drawn with one viewport per crop and
read back in one go. The remap maps (fixed-point, from the atlas to each camera's pixels,
computed once per intrinsic calibration and cached) depend only on intrinsics: a mounting
error only changes the view matrices. Colour is remapped bilinearly, labels with nearest
neighbour (no blended ids at object borders), inverse depth bilinearly on surfaces (exact
on planes) and nearest at depth edges. The GL context, programs, buffers, the atlas and
the ground textures are reused across frames; the ground textures (top-down rasters of
asphalt, paint, edges with a fine 5 cm level near the ego and a coarse 25 cm level further
out) are rebuilt only when the static road geometry changes or the ego leaves their
centre.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from autonomy_vehicle.camera_models import CameraCalibration, rotate
from autonomy_simulator.scene import SceneSnapshot
from autonomy_stack.vector_space import ObjectClass, ObjectState

# ----------------------------------------------------------------------------- classes
SEM_NONE = 0          # outside the lens' image circle
SEM_SKY = 1
SEM_GROUND = 2        # verge / grass
SEM_ROAD = 3          # asphalt (drivable area)
SEM_LANE_MARKING = 4  # lane paint, stop lines, bay lines
SEM_ROAD_EDGE = 5     # border strip of the asphalt (no height)
SEM_CURB = 6          # kerb stones (with height)
SEM_OBJECT_BASE = 10  # object class c -> 10 + c (ObjectClass values)

SEMANTIC_CLASSES: Dict[int, str] = {
    SEM_NONE: "none", SEM_SKY: "sky", SEM_GROUND: "ground", SEM_ROAD: "road",
    SEM_LANE_MARKING: "lane_marking", SEM_ROAD_EDGE: "road_edge", SEM_CURB: "curb",
}
for _c in ObjectClass:
    SEMANTIC_CLASSES[SEM_OBJECT_BASE + int(_c)] = _c.name.lower()


def semantic_of_object_class(c: int) -> int:
    return SEM_OBJECT_BASE + int(c)


ASPHALT = (0.31, 0.31, 0.32)
EDGE_COLOR = (0.45, 0.42, 0.37)
CURB_COLOR = (0.72, 0.71, 0.68)
SKY_ZENITH = (0.30, 0.50, 0.82)
SKY_HORIZON = (0.78, 0.84, 0.90)
DEFAULT_COLORS = {
    ObjectClass.CAR: (0.6, 0.6, 0.65), ObjectClass.TRUCK: (0.85, 0.85, 0.82),
    ObjectClass.PEDESTRIAN: (0.2, 0.35, 0.7), ObjectClass.CYCLIST: (0.8, 0.2, 0.2),
    ObjectClass.CONE: (1.0, 0.45, 0.0), ObjectClass.POLE: (0.55, 0.55, 0.6),
    ObjectClass.BARRIER: (0.9, 0.9, 0.9), ObjectClass.UNKNOWN: (0.5, 0.4, 0.3),
}
GLASS = (0.10, 0.12, 0.15)
TYRE = (0.05, 0.05, 0.05)
SKIN = (0.85, 0.68, 0.55)
TROUSERS = (0.15, 0.15, 0.22)

# ----------------------------------------------------------------------------- cube faces
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


@dataclass
class CameraFrame:
    name: str
    rgb: np.ndarray                      # HxWx3 uint8
    depth: Optional[np.ndarray]          # HxW float32 m along the optical axis (inf sky, nan off-lens)
    range: Optional[np.ndarray]          # HxW float32, metres from the optical centre
    semantic: Optional[np.ndarray]       # HxW uint8 (SEMANTIC_CLASSES)
    instance: Optional[np.ndarray]       # HxW int32 object id (0 = none)
    visible_pixels: Dict[int, int] = field(default_factory=dict)


@dataclass
class RigFrame:
    stamp: float
    cameras: Dict[str, CameraFrame]
    visible_pixels: Dict[int, int]       # object id -> pixels summed over all cameras
    render_s: float = 0.0                # GL draw + read back
    remap_s: float = 0.0


# ----------------------------------------------------------------------------- meshes
def _box(x0, x1, y0, y1, z0, z1, color):
    """36 vertices (pos, normal, colour) of an axis-aligned box in object-normalised units."""
    P = np.array([[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0],
                  [x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]], float)
    quads = [((0, 3, 2, 1), (0, 0, -1)), ((4, 5, 6, 7), (0, 0, 1)), ((0, 1, 5, 4), (0, -1, 0)),
             ((2, 3, 7, 6), (0, 1, 0)), ((1, 2, 6, 5), (1, 0, 0)), ((3, 0, 4, 7), (-1, 0, 0))]
    out = []
    for q, n in quads:
        for i in (q[0], q[1], q[2], q[0], q[2], q[3]):
            out.append((*P[i], *n, *color))
    return out


def _prism(r0, r1, z0, z1, color, sides=8):
    """Frustum (cone when r1 small) around the z axis, flat-shaded sides + top."""
    out = []
    a = np.linspace(0, 2 * np.pi, sides + 1)
    slope = (r0 - r1) / max(z1 - z0, 1e-6)
    for i in range(sides):
        a0, a1 = a[i], a[i + 1]
        am = 0.5 * (a0 + a1)
        n = np.array([np.cos(am), np.sin(am), slope])
        n /= np.linalg.norm(n)
        p00 = (r0 * np.cos(a0), r0 * np.sin(a0), z0)
        p01 = (r0 * np.cos(a1), r0 * np.sin(a1), z0)
        p10 = (r1 * np.cos(a0), r1 * np.sin(a0), z1)
        p11 = (r1 * np.cos(a1), r1 * np.sin(a1), z1)
        for p in (p00, p01, p11, p00, p11, p10):
            out.append((*p, *n, *color))
        for p in ((0, 0, z1), p10, p11):
            out.append((*p, 0, 0, 1, *color))
    return out


BASE = (-1.0, -1.0, -1.0)    # placeholder colour: replaced by the object's colour


def _mesh_for_class(c: ObjectClass) -> np.ndarray:
    """Normalised mesh (x, y in [-0.5, 0.5] of length/width, z in [0, 1] of height)."""
    if c == ObjectClass.CAR:
        # the body is a little narrower than the box so that the tyres' outer faces stand
        # proud of it (coplanar faces would z-fight)
        v = _box(-0.5, 0.5, -0.48, 0.48, 0.17, 0.55, BASE)
        v += _box(-0.30, 0.20, -0.43, 0.43, 0.55, 0.92, GLASS)
        v += _box(-0.28, 0.18, -0.41, 0.41, 0.92, 1.0, BASE)
        for xs in (-0.33, 0.31):
            for ys in (-0.42, 0.42):
                v += _box(xs - 0.07, xs + 0.07, ys - 0.08, ys + 0.08, 0.0, 0.30, TYRE)
    elif c == ObjectClass.TRUCK:
        v = _box(0.30, 0.5, -0.48, 0.48, 0.10, 0.55, BASE)
        v += _box(0.31, 0.49, -0.46, 0.46, 0.55, 0.78, GLASS)
        v += _box(-0.5, 0.27, -0.48, 0.48, 0.17, 1.0, (0.80, 0.80, 0.78))
        for xs in (-0.42, -0.32, 0.38):
            for ys in (-0.42, 0.42):
                v += _box(xs - 0.04, xs + 0.04, ys - 0.08, ys + 0.08, 0.0, 0.16, TYRE)
    elif c == ObjectClass.PEDESTRIAN:
        v = _box(-0.2, 0.2, -0.32, 0.32, 0.0, 0.47, TROUSERS)
        v += _box(-0.25, 0.25, -0.5, 0.5, 0.47, 0.83, BASE)
        v += _box(-0.18, 0.18, -0.2, 0.2, 0.85, 1.0, SKIN)
    elif c == ObjectClass.CYCLIST:
        v = _box(-0.5, 0.5, -0.1, 0.1, 0.0, 0.42, (0.1, 0.1, 0.1))
        v += _box(-0.15, 0.15, -0.5, 0.5, 0.42, 0.82, BASE)
        v += _box(-0.09, 0.09, -0.2, 0.2, 0.84, 1.0, SKIN)
    elif c == ObjectClass.CONE:
        v = _box(-0.5, 0.5, -0.5, 0.5, 0.0, 0.06, BASE)
        v += _prism(0.36, 0.05, 0.06, 0.45, BASE)
        v += _prism(0.05 + 0.31 * 0.55 / 0.94 * 0.9, 0.05 + 0.31 * 0.35 / 0.94, 0.45, 0.62,
                    (0.95, 0.95, 0.95))
        v += _prism(0.05 + 0.31 * 0.35 / 0.94, 0.05, 0.62, 1.0, BASE)
    elif c == ObjectClass.POLE:
        v = _prism(0.5, 0.5, 0.0, 1.0, BASE)
    else:
        v = _box(-0.5, 0.5, -0.5, 0.5, 0.0, 1.0, BASE)
    return np.asarray(v, dtype=np.float32)


_MESHES: Dict[int, np.ndarray] = {}


def object_mesh(c: ObjectClass) -> np.ndarray:
    c = ObjectClass(int(c))
    if c not in _MESHES:
        _MESHES[c] = _mesh_for_class(c)
    return _MESHES[c]


def object_bottom_z(o: ObjectState) -> float:
    """Boxes stand on the ground unless their centre is higher than half their height."""
    return max(0.0, float(o.z) - float(o.height) / 2.0)


def object_vertices(objects: Sequence[ObjectState], colors: Dict[int, Tuple[float, float, float]],
                    index_of: Dict[int, int]) -> np.ndarray:
    """World-space vertex array (x y z nx ny nz r g b class instance_index) of all objects."""
    chunks = []
    for o in objects:
        m = object_mesh(o.object_class)
        col = np.asarray(colors.get(o.id, DEFAULT_COLORS.get(ObjectClass(int(o.object_class)),
                                                             (0.5, 0.5, 0.5))), np.float32)
        c, s = math.cos(o.yaw), math.sin(o.yaw)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32)
        scale = np.array([o.length, o.width, o.height], np.float32)
        p = (m[:, :3] * scale) @ R.T + np.array([o.x, o.y, object_bottom_z(o)], np.float32)
        n = m[:, 3:6] / scale      # normals transform with the inverse scale
        n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
        n = n @ R.T
        rgb = m[:, 6:9].copy()
        base = rgb[:, 0] < 0
        rgb[base] = col
        lab = np.empty((len(m), 2), np.float32)
        lab[:, 0] = semantic_of_object_class(o.object_class)
        lab[:, 1] = index_of[o.id]
        chunks.append(np.hstack([p, n, rgb, lab]).astype(np.float32))
    if not chunks:
        return np.zeros((0, 11), np.float32)
    return np.vstack(chunks)


def curb_vertices(curbs, width: float = 0.2) -> np.ndarray:
    """World-space vertices (x y z nx ny nz r g b class instance) of kerb stones: a strip
    `width` wide along each curb polyline with a top at the curb's height and two sides."""
    chunks = []
    col = np.asarray(CURB_COLOR, np.float64)
    for rl in curbs:
        pts = np.asarray(rl.points, float)[:, :2]
        if len(pts) < 2:
            continue
        h = float(rl.height) if rl.height > 0 else 0.15
        d = np.diff(pts, axis=0)
        L = np.linalg.norm(d, axis=1)
        keep = L > 1e-6
        a, b, d, L = pts[:-1][keep], pts[1:][keep], d[keep], L[keep]
        if len(a) == 0:
            continue
        t = d / L[:, None]
        nv = np.stack([-t[:, 1], t[:, 0]], 1)          # unit normal (left)
        ext = t * min(width / 2, 0.1)                   # overlap so joints close
        a, b = a - ext, b + ext
        off = nv * (width / 2)
        n = len(a)
        verts = []                                      # list of (n x 9) in vertex order
        for sgn, shade in ((1.0, 0.92), (-1.0, 0.86)):  # the two vertical sides
            pa, pb = a + sgn * off, b + sgn * off
            nn = np.hstack([sgn * nv, np.zeros((n, 1))])
            for P, z in ((pa, 0.0), (pb, 0.0), (pb, h), (pa, 0.0), (pb, h), (pa, h)):
                verts.append(np.hstack([P, np.full((n, 1), z), nn, np.tile(col * shade, (n, 1))]))
        la, lb, ra, rb = a + off, b + off, a - off, b - off
        up = np.tile([0.0, 0.0, 1.0], (n, 1))
        for P in (la, lb, rb, la, rb, ra):
            verts.append(np.hstack([P, np.full((n, 1), h), up, np.tile(col, (n, 1))]))
        v = np.stack(verts, axis=1).reshape(-1, 9)      # per segment: 18 vertices in order
        lab = np.zeros((len(v), 2))
        lab[:, 0] = SEM_CURB
        chunks.append(np.hstack([v, lab]).astype(np.float32))
    if not chunks:
        return np.zeros((0, 11), np.float32)
    return np.vstack(chunks)


# ----------------------------------------------------------------------------- textures
def noise_texture(seed: int, size: int = 512) -> np.ndarray:
    """Tileable multi-octave value noise in [0, 255] (uint8), seeded."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for cells in (8, 16, 32, 64, 128, 256, 512):
        g = rng.random((cells, cells)).astype(np.float32)
        g = np.pad(g, ((0, 1), (0, 1)), mode="wrap")
        up = cv2.resize(g, (size + size // cells, size + size // cells),
                        interpolation=cv2.INTER_CUBIC if cells < size else cv2.INTER_NEAREST)
        acc += amp * up[:size, :size]
        total += amp
        amp *= 0.62
    acc /= total
    acc = (acc - acc.min()) / max(float(acc.max() - acc.min()), 1e-6)
    return (acc * 255).astype(np.uint8)


def _dash_segments(pts: np.ndarray, dash: float, gap: float) -> List[np.ndarray]:
    """Split a polyline into painted pieces (dash, gap pattern along the arc length)."""
    pts = np.asarray(pts, float)[:, :2]
    if dash <= 0 or gap <= 0 or len(pts) < 2:
        return [pts]
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = s[-1]
    out = []
    period = dash + gap
    start = 0.0
    while start < total:
        end = min(start + dash, total)
        inner = s[(s > start) & (s < end)]
        ss = np.concatenate([[start], inner, [end]])
        xy = np.stack([np.interp(ss, s, pts[:, 0]), np.interp(ss, s, pts[:, 1])], 1)
        out.append(xy)
        start += period
    return out


class GroundLayer:
    """A top-down raster of the ground (colour RGB + class) around a centre."""

    def __init__(self, size: int, res: float):
        self.size = int(size)
        self.res = float(res)
        self.x0 = 0.0
        self.y0 = 0.0
        self.center = (1e18, 1e18)
        self.key = None

    def world_to_px(self, pts: np.ndarray) -> np.ndarray:
        p = (np.asarray(pts, float)[:, :2] - [self.x0, self.y0]) / self.res - 0.5
        return np.round(p * 16).astype(np.int32)   # shift = 4 (1/16 pixel)

    def build(self, snap: SceneSnapshot, cx: float, cy: float, noise: Optional[np.ndarray] = None):
        n, r = self.size, self.res
        self.center = (cx, cy)
        self.x0 = cx - n * r / 2
        self.y0 = cy - n * r / 2
        col = np.empty((n, n, 3), np.uint8)
        col[:] = (np.asarray(snap.ground_color) * 255).astype(np.uint8)
        cls = np.full((n, n), SEM_GROUND, np.uint8)
        polys = [self.world_to_px(p) for p in snap.drivable_polygons if len(p) >= 3]
        if polys:
            cv2.fillPoly(col, polys, tuple(int(c * 255) for c in ASPHALT), cv2.LINE_8, 4)
            cv2.fillPoly(cls, polys, SEM_ROAD, cv2.LINE_8, 4)
        ew = max(1, int(round(0.25 / r)))
        for e in snap.road_edges:
            pts = self.world_to_px(e.points)
            cv2.polylines(col, [pts], False, tuple(int(c * 255) for c in EDGE_COLOR), ew,
                          cv2.LINE_AA, 4)
            cv2.polylines(cls, [pts], False, SEM_ROAD_EDGE, ew, cv2.LINE_8, 4)
        for c in snap.curbs:
            pts = self.world_to_px(c.points)
            cv2.polylines(col, [pts], False, tuple(int(v * 255) for v in CURB_COLOR),
                          max(1, int(round(0.2 / r))), cv2.LINE_AA, 4)
            cv2.polylines(cls, [pts], False, SEM_CURB, max(1, int(round(0.2 / r))), cv2.LINE_8, 4)
        paint_col = np.zeros_like(col)
        paint_a = np.zeros((n, n), np.uint8)
        for pl in snap.painted_lines:
            w_px = pl.width / r
            th = max(1, int(round(w_px)))
            alpha = int(255 * min(1.0, w_px))
            pieces = [self.world_to_px(p) for p in _dash_segments(pl.line.points, pl.dash_length,
                                                                   pl.gap_length) if len(p) >= 2]
            if not pieces:
                continue
            c = tuple(int(v * 255) for v in pl.color)
            cv2.polylines(paint_col, pieces, False, c, th, cv2.LINE_8, 4)
            cv2.polylines(paint_a, pieces, False, alpha, th, cv2.LINE_AA, 4)
            cv2.polylines(cls, pieces, False, SEM_LANE_MARKING, th, cv2.LINE_8, 4)
        a = (paint_a.astype(np.float32) / 255.0)[..., None]
        col = col * (1 - a) + paint_col * a
        if noise is not None:
            # low-frequency variation (patches, wear) sampled at world coordinates
            ns = noise.shape[0]
            for period, amp in ((9.0, 0.22), (77.0, 0.25)):
                cells = (np.arange(n) + 0.5) * r
                ix = np.floor((self.x0 + cells) / period * ns).astype(np.int64) % ns
                iy = np.floor((self.y0 + cells) / period * ns).astype(np.int64) % ns
                nz = noise[iy[:, None], ix[None, :]]
                col *= (1.0 + amp * (nz.astype(np.float32) / 255.0 - 0.5))[..., None]
        return np.clip(col, 0, 255).astype(np.uint8), cls


# ----------------------------------------------------------------------------- shaders
_VS_WORLD = """
#version 330
uniform mat4 u_view;      // world -> face optical frame (x right, y down, z forward)
uniform vec4 u_intr;      // 2f/w, 2f/h, 2(cx+.5)/w-1, 2(cy+.5)/h-1
uniform vec2 u_clip;      // near, far
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in vec2 in_label;
out vec3 v_world;
out vec3 v_normal;
out vec3 v_color;
flat out vec2 v_label;
void main() {
    vec4 pc = u_view * vec4(in_pos, 1.0);
    float n = u_clip.x, f = u_clip.y;
    gl_Position = vec4(u_intr.x * pc.x + u_intr.z * pc.z,
                       u_intr.y * pc.y + u_intr.w * pc.z,
                       (f + n) / (f - n) * pc.z - 2.0 * f * n / (f - n),
                       pc.z);
    v_world = in_pos;
    v_normal = in_normal;
    v_color = in_color;
    v_label = in_label;
}
"""

_FS_COMMON = """
uniform vec3 u_campos;
uniform vec3 u_sun;
uniform vec3 u_fog;
uniform float u_fog_dist;
layout(location = 0) out vec4 o_color;
layout(location = 1) out vec4 o_label;
layout(location = 2) out float o_invz;
void emit(vec3 col, float cls, float inst) {
    float d = length(v_world - u_campos);
    float fog = 1.0 - exp(-d / u_fog_dist);
    o_color = vec4(mix(col, u_fog, fog), 1.0);
    float lo = mod(inst, 256.0);
    float hi = floor(inst / 256.0);
    o_label = vec4(lo / 255.0, hi / 255.0, cls / 255.0, 1.0);
    o_invz = gl_FragCoord.w;     // 1 / depth along the face's axis (affine on planes)
}
"""

_FS_OBJECT = """
#version 330
in vec3 v_world;
in vec3 v_normal;
in vec3 v_color;
flat in vec2 v_label;
""" + _FS_COMMON + """
void main() {
    vec3 n = normalize(v_normal);
    float diff = max(dot(n, u_sun), 0.0);
    float sky = 0.5 + 0.5 * n.z;
    vec3 col = v_color * (0.30 + 0.25 * sky + 0.60 * diff);
    // a little specular sheen on glass / paint
    vec3 vdir = normalize(u_campos - v_world);
    vec3 h = normalize(vdir + u_sun);
    col += vec3(0.25) * pow(max(dot(n, h), 0.0), 40.0);
    emit(col, v_label.x, v_label.y);
}
"""

_FS_GROUND = """
#version 330
in vec3 v_world;
in vec3 v_normal;
in vec3 v_color;
flat in vec2 v_label;
uniform sampler2D u_fine_col;
uniform sampler2D u_fine_cls;
uniform vec4 u_fine_rect;    // x0, y0, 1/extent_x, 1/extent_y
uniform sampler2D u_coarse_col;
uniform sampler2D u_coarse_cls;
uniform vec4 u_coarse_rect;
uniform vec3 u_verge;
""" + _FS_COMMON + """
void main() {
    vec2 p = v_world.xy;
    vec2 uf = (p - u_fine_rect.xy) * u_fine_rect.zw;
    vec2 uc = (p - u_coarse_rect.xy) * u_coarse_rect.zw;
    vec3 col;
    float cls;
    if (all(greaterThan(uf, vec2(0.002))) && all(lessThan(uf, vec2(0.998)))) {
        col = texture(u_fine_col, uf).rgb;
        cls = floor(texture(u_fine_cls, uf).r * 255.0 + 0.5);
    } else if (all(greaterThan(uc, vec2(0.0))) && all(lessThan(uc, vec2(1.0)))) {
        col = texture(u_coarse_col, uc).rgb;
        cls = floor(texture(u_coarse_cls, uc).r * 255.0 + 0.5);
    } else {
        col = u_verge;
        cls = 2.0;
    }
    // fine grain near the camera: a hash per 2.5 cm cell (arithmetic is much cheaper than
    // another filtered texture fetch on llvmpipe); the coarser variation is baked into the
    // ground rasters
    vec2 cell = floor(p * 40.0);
    float h = fract(sin(dot(cell, vec2(12.9898, 78.233))) * 43758.5453);
    float fade = clamp(1.0 - length(v_world - u_campos) / 25.0, 0.0, 1.0);
    float grain = (cls == 2.0) ? 0.35 : 0.18;
    col *= 1.0 + grain * fade * (h - 0.5);
    float diff = max(u_sun.z, 0.0);
    col *= 0.55 + 0.55 * diff;
    emit(col, cls, 0.0);
}
"""

_VS_SKY = """
#version 330
in vec2 in_ndc;
in vec3 in_dir;
noperspective out vec3 v_dir;
void main() {
    gl_Position = vec4(in_ndc, 0.999999, 1.0);
    v_dir = in_dir;
}
"""

_FS_SKY = """
#version 330
noperspective in vec3 v_dir;
uniform vec3 u_zenith;
uniform vec3 u_horizon;
uniform vec3 u_fog;
uniform vec3 u_sun;
layout(location = 0) out vec4 o_color;
layout(location = 1) out vec4 o_label;
layout(location = 2) out float o_invz;
void main() {
    vec3 d = normalize(v_dir);
    float e = clamp(d.z, 0.0, 1.0);
    vec3 col = mix(u_horizon, u_zenith, pow(e, 0.6));
    col += vec3(1.0, 0.95, 0.8) * pow(max(dot(d, u_sun), 0.0), 400.0);
    if (d.z < 0.0) col = u_fog;
    o_color = vec4(col, 1.0);
    o_label = vec4(0.0, 0.0, 1.0 / 255.0, 1.0);
    o_invz = 0.0;                // infinitely far
}
"""


def _set(prog, name: str, value) -> None:
    """Set a uniform if the shader uses it (GLSL compilers drop unused ones)."""
    u = prog.get(name, None)
    if u is not None:
        u.value = value


def _view_matrix(R_world_face: np.ndarray, p_world: np.ndarray) -> np.ndarray:
    """4x4 world -> face frame."""
    V = np.eye(4)
    V[:3, :3] = R_world_face.T
    V[:3, 3] = -R_world_face.T @ p_world
    return V


def _shelf_pack(faces: List[FaceView], width: int) -> int:
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


_MAP_CACHE: Dict[str, Tuple[np.ndarray, np.ndarray, List[FaceView]]] = {}


def _intrinsic_key(cam: CameraCalibration, density: float) -> str:
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
    key = _intrinsic_key(cam, density)
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


# ----------------------------------------------------------------------------- renderer
class RigRenderer:
    """Renders SceneSnapshots for every camera of a rig (see module docstring).

    rig: {name: CameraCalibration} (e.g. `load_rig()`, `scale_rig(..)`, or one with a
    mounting error from `sample_mounting_error`); `set_rig` swaps it (extrinsics only ->
    no new maps). density: ideal-view focal length / camera focal length (1.0 = the
    camera's own sampling at its centre; lower is faster and softer; the default 0.8 is
    1.6x faster than 1.0 at full resolution on the CPU and still sharp after the remap).
    """

    def __init__(self, rig: Dict[str, CameraCalibration], density: float = 0.8,
                 near: float = 0.1, far: float = 3000.0, fine_size: int = 2048,
                 fine_res: float = 0.05, coarse_size: int = 2048, coarse_res: float = 0.25,
                 sun_dir=(0.45, -0.35, 0.82), fog_dist: float = 700.0, ctx=None,
                 atlas_width: Optional[int] = None):
        import moderngl
        self.mgl = moderngl
        self.density = float(density)
        self.near, self.far = float(near), float(far)
        self.sun = np.asarray(sun_dir, float) / np.linalg.norm(sun_dir)
        self.fog_dist = float(fog_dist)
        self.ctx = ctx or moderngl.create_standalone_context(backend="egl")
        ctx = self.ctx
        self.prog_obj = ctx.program(vertex_shader=_VS_WORLD, fragment_shader=_FS_OBJECT)
        self.prog_ground = ctx.program(vertex_shader=_VS_WORLD, fragment_shader=_FS_GROUND)
        self.prog_sky = ctx.program(vertex_shader=_VS_SKY, fragment_shader=_FS_SKY)
        self.fine = GroundLayer(fine_size, fine_res)
        self.coarse = GroundLayer(coarse_size, coarse_res)
        self._tex = {}
        for name, lay in (("fine", self.fine), ("coarse", self.coarse)):
            tc = ctx.texture((lay.size, lay.size), 3, dtype="f1")
            tc.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
            tc.repeat_x = tc.repeat_y = False
            tk = ctx.texture((lay.size, lay.size), 1, dtype="f1")
            tk.filter = (moderngl.NEAREST, moderngl.NEAREST)
            tk.repeat_x = tk.repeat_y = False
            self._tex[name] = (tc, tk)
        # big ground quad (world coordinates, moved with the ego each frame)
        self.ground_vbo = ctx.buffer(reserve=6 * 3 * 4)
        self.ground_vao = ctx.vertex_array(self.prog_ground, [(self.ground_vbo, "3f", "in_pos")])
        self.sky_vbo = ctx.buffer(reserve=6 * 5 * 4 * 64)
        self.sky_vao = ctx.vertex_array(self.prog_sky, [(self.sky_vbo, "2f 3f", "in_ndc",
                                                         "in_dir")])
        self.obj_vbo = None
        self.obj_vao = None
        self.obj_capacity = 0
        self.curb_vbo = None
        self.curb_vao = None
        self._curb_key = None
        self._ground_key = None
        self.atlas_width = atlas_width
        self.profile = False
        self.last_gl_s = 0.0
        self.fbo = None
        self.rig: Dict[str, CameraCalibration] = {}
        self.maps: Dict[str, CameraMaps] = {}
        self.set_rig(rig)

    # ------------------------------------------------------------------ rig / atlas
    def set_rig(self, rig: Dict[str, CameraCalibration]):
        with self.ctx:
            self._set_rig(rig)

    def _set_rig(self, rig: Dict[str, CameraCalibration]):
        old = self.rig
        self.rig = dict(rig)
        same_intr = (set(old) == set(rig) and all(
            _intrinsic_key(old[n], self.density) == _intrinsic_key(rig[n], self.density)
            for n in rig))
        if same_intr and self.maps:
            return
        faces_all: List[FaceView] = []
        plans = {}
        for name, cam in self.rig.items():
            rays, fidx, fuv, cosf, faces = plan_faces(cam, self.density)
            plans[name] = (rays, fidx, fuv, cosf, faces)
            faces_all.extend(faces)
        max_size = int(self.ctx.info.get("GL_MAX_RENDERBUFFER_SIZE", 16384))
        total = sum(f.w * f.h for f in faces_all)
        wmin = max(f.w for f in faces_all)
        if self.atlas_width:
            width = max(wmin, self.atlas_width)
        else:
            # the smallest atlas area over a range of shelf widths (clear + read back cost)
            cands = range(wmin, max(wmin, min(max_size, int(2.5 * math.sqrt(total)))) + 1, 16)
            width = min(cands, key=lambda w_: (w_ * _shelf_pack(faces_all, w_)
                                                if _shelf_pack(faces_all, w_) <= max_size
                                                else float("inf"), w_))
        height = _shelf_pack(faces_all, width)
        if height > max_size or width > max_size:
            raise ValueError(f"atlas {width}x{height} exceeds the GL limit {max_size}; "
                             "lower the density")
        self.atlas_size = (width, height)
        self.faces = faces_all
        self.maps = {}
        for name, cam in self.rig.items():
            rays, fidx, fuv, cosf, faces = plans[name]
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
            self.maps[name] = CameraMaps(name, W, H, m1, m2, good.reshape(H, W), ray_z, faces,
                                         bool((ray_z <= 0).any()), range_scale,
                                         1.5 / f_face)
        ctx = self.ctx
        if self.fbo is not None:
            self.fbo.release()
            for rb in self._rbs:
                rb.release()
        self._rbs = [ctx.renderbuffer((width, height), 4, dtype="f1"),
                     ctx.renderbuffer((width, height), 4, dtype="f1"),
                     ctx.renderbuffer((width, height), 1, dtype="f4")]
        self._depth_rb = ctx.depth_renderbuffer((width, height))
        self.fbo = ctx.framebuffer(color_attachments=self._rbs,
                                   depth_attachment=self._depth_rb)
        self._buf_color = np.empty((height, width, 4), np.uint8)
        self._buf_label = np.empty((height, width, 4), np.uint8)
        self._buf_range = np.empty((height, width), np.float32)

    @property
    def atlas_pixels(self) -> int:
        return int(sum(f.w * f.h for f in self.faces))

    # ------------------------------------------------------------------ world upload
    def _noise_img(self, seed: int) -> np.ndarray:
        if getattr(self, "_noise_cache", (None,))[0] != seed:
            self._noise_cache = (seed, noise_texture(seed))
        return self._noise_cache[1]

    def _upload_ground(self, snap: SceneSnapshot, ex: float, ey: float):
        geo = hashlib.sha1()
        for p in snap.drivable_polygons:
            geo.update(np.ascontiguousarray(p, np.float64).tobytes())
        for pl in snap.painted_lines:
            geo.update(np.ascontiguousarray(pl.line.points, np.float64).tobytes())
            geo.update(repr((pl.width, pl.color, pl.dash_length, pl.gap_length)).encode())
        for rl in list(snap.curbs) + list(snap.road_edges):
            geo.update(np.ascontiguousarray(rl.points, np.float64).tobytes())
            geo.update(repr(rl.height).encode())
        geo.update(repr(tuple(snap.ground_color)).encode())
        key = geo.hexdigest()
        for name, lay, recenter in (("fine", self.fine, 0.2), ("coarse", self.coarse, 0.2)):
            ext = lay.size * lay.res
            moved = max(abs(ex - lay.center[0]), abs(ey - lay.center[1])) > recenter * ext
            if key != lay.key or moved:
                # centre on a grid so that re-centring gives the same raster
                step = lay.res * 16
                cx = round(ex / step) * step
                cy = round(ey / step) * step
                col, cls = lay.build(snap, cx, cy, self._noise_img(snap.seed))
                lay.key = key
                tc, tk = self._tex[name]
                tc.write(np.ascontiguousarray(col).tobytes())
                tc.build_mipmaps()
                tk.write(np.ascontiguousarray(cls).tobytes())
        if key != self._curb_key:
            cv = curb_vertices(snap.curbs)
            if self.curb_vbo is not None:
                self.curb_vao.release()
                self.curb_vbo.release()
                self.curb_vbo = self.curb_vao = None
            if len(cv):
                self.curb_vbo = self.ctx.buffer(cv.tobytes())
                self.curb_vao = self.ctx.vertex_array(
                    self.prog_obj, [(self.curb_vbo, "3f 3f 3f 2f", "in_pos", "in_normal",
                                     "in_color", "in_label")])
            self._curb_key = key
        # ground quad: a large square around the ego, slightly below z = 0
        S = self.far * 0.8
        z = -0.005
        quad = np.array([[ex - S, ey - S], [ex + S, ey - S], [ex + S, ey + S],
                         [ex - S, ey - S], [ex + S, ey + S], [ex - S, ey + S]])
        v = np.zeros((6, 3), np.float32)
        v[:, :2] = quad
        v[:, 2] = z
        self.ground_vbo.write(v.tobytes())

    def _upload_objects(self, snap: SceneSnapshot):
        self._index_to_id = np.zeros(len(snap.objects) + 1, np.int32)
        index_of = {}
        for i, o in enumerate(snap.objects):
            index_of[o.id] = i + 1
            self._index_to_id[i + 1] = o.id
        if len(snap.objects) >= 65535:
            raise ValueError("at most 65534 objects per snapshot")
        self._lut_256 = np.zeros(256, np.int32)
        n = min(256, len(self._index_to_id))
        self._lut_256[:n] = self._index_to_id[:n]
        v = object_vertices(snap.objects, snap.object_colors, index_of)
        self._n_obj_vertices = len(v)
        if len(v) == 0:
            return
        nbytes = v.nbytes
        if self.obj_vbo is None or nbytes > self.obj_capacity:
            if self.obj_vbo is not None:
                self.obj_vao.release()
                self.obj_vbo.release()
            self.obj_capacity = max(nbytes * 2, 1 << 16)
            self.obj_vbo = self.ctx.buffer(reserve=self.obj_capacity)
            self.obj_vao = self.ctx.vertex_array(
                self.prog_obj, [(self.obj_vbo, "3f 3f 3f 2f", "in_pos", "in_normal",
                                 "in_color", "in_label")])
        self.obj_vbo.write(v.tobytes())

    # ------------------------------------------------------------------ rendering
    def camera_pose_world(self, snap: SceneSnapshot, cam: CameraCalibration) -> np.ndarray:
        e = snap.ego
        c, s = math.cos(e.yaw), math.sin(e.yaw)
        T_wb = np.array([[c, -s, 0, e.x], [s, c, 0, e.y], [0, 0, 1, 0.0], [0, 0, 0, 1]])
        return T_wb @ cam.T_base_camera

    def render_atlas(self, snap: SceneSnapshot, cameras: Optional[Sequence[str]] = None):
        """Draw all (or the named) cameras' face crops into the atlas framebuffer."""
        ctx = self.ctx
        mgl = self.mgl
        self._upload_ground(snap, snap.ego.x, snap.ego.y)
        self._upload_objects(snap)
        self.fbo.use()
        self.fbo.viewport = (0, 0, *self.atlas_size)
        ctx.scissor = None
        self.fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable(mgl.DEPTH_TEST)
        ctx.disable(mgl.CULL_FACE | mgl.BLEND)
        fog = np.asarray(SKY_HORIZON) * 0.92 + np.asarray(snap.ground_color) * 0.08
        for p in (self.prog_obj, self.prog_ground):
            _set(p, "u_clip", (self.near, self.far))
            _set(p, "u_sun", tuple(self.sun))
            _set(p, "u_fog", tuple(fog))
            _set(p, "u_fog_dist", self.fog_dist)
        g = self.prog_ground
        for name, lay, unit in (("fine", self.fine, 0), ("coarse", self.coarse, 2)):
            tc, tk = self._tex[name]
            tc.use(unit)
            tk.use(unit + 1)
            _set(g, f"u_{name}_col", unit)
            _set(g, f"u_{name}_cls", unit + 1)
            ext = lay.size * lay.res
            _set(g, f"u_{name}_rect", (lay.x0, lay.y0, 1.0 / ext, 1.0 / ext))
        _set(g, "u_verge", tuple(snap.ground_color))
        ps = self.prog_sky
        _set(ps, "u_zenith", SKY_ZENITH)
        _set(ps, "u_horizon", SKY_HORIZON)
        _set(ps, "u_fog", tuple(fog))
        _set(ps, "u_sun", tuple(self.sun))
        want = set(cameras) if cameras is not None else None
        faces = [f for f in self.faces if want is None or f.camera in want]
        # sky quads for all faces in one buffer
        sky = np.zeros((len(faces) * 6, 5), np.float32)
        poses = {}
        for i, f in enumerate(faces):
            if f.camera not in poses:
                poses[f.camera] = self.camera_pose_world(snap, self.rig[f.camera])
            R_wf = poses[f.camera][:3, :3] @ f.R_cam_face
            corners = [(-1, -1), (1, -1), (1, 1), (-1, -1), (1, 1), (-1, 1)]
            for j, (nx, ny) in enumerate(corners):
                u = (nx + 1) / 2 * f.w - 0.5
                v = (ny + 1) / 2 * f.h - 0.5
                d = R_wf @ np.array([(u - f.cx) / f.f, (v - f.cy) / f.f, 1.0])
                sky[i * 6 + j] = (nx, ny, *d)
        if sky.nbytes > self.sky_vbo.size:
            self.sky_vbo.orphan(sky.nbytes)
        self.sky_vbo.write(sky.tobytes())
        for i, f in enumerate(faces):
            T_wc = poses[f.camera]
            R_wf = T_wc[:3, :3] @ f.R_cam_face
            p_w = T_wc[:3, 3]
            view = _view_matrix(R_wf, p_w)
            vp = (f.x0, f.y0, f.w, f.h)
            ctx.viewport = vp
            ctx.scissor = vp
            intr = (2 * f.f / f.w, 2 * f.f / f.h, 2 * (f.cx + 0.5) / f.w - 1,
                    2 * (f.cy + 0.5) / f.h - 1)
            mat = tuple(view.T.astype(np.float32).ravel())     # column-major
            for p in (self.prog_obj, self.prog_ground):
                _set(p, "u_view", mat)
                _set(p, "u_intr", intr)
                _set(p, "u_campos", tuple(p_w))
            # near things first, the sky last: hidden fragments fail the early depth test
            ctx.depth_func = "<="
            if self.obj_vao is not None and self._n_obj_vertices:
                self.obj_vao.render(mgl.TRIANGLES, vertices=self._n_obj_vertices)
            if self.curb_vao is not None:
                self.curb_vao.render(mgl.TRIANGLES)
            self.ground_vao.render(mgl.TRIANGLES)
            self.sky_vao.render(mgl.TRIANGLES, vertices=6, first=i * 6)
        ctx.scissor = None

    def read_atlas(self, outputs=("rgb", "depth", "semantic", "instance")):
        w, h = self.atlas_size
        if self.profile:
            import time
            t = time.perf_counter()
            self.ctx.finish()
            self.last_gl_s = time.perf_counter() - t
        self.fbo.read_into(self._buf_color, viewport=(0, 0, w, h), components=4,
                           attachment=0, dtype="f1")
        self.fbo.read_into(self._buf_label, viewport=(0, 0, w, h), components=4,
                           attachment=1, dtype="f1")
        if "depth" in outputs or "range" in outputs:
            self.fbo.read_into(self._buf_range, viewport=(0, 0, w, h), components=1,
                               attachment=2, dtype="f4")

    def render(self, snap: SceneSnapshot, cameras: Optional[Sequence[str]] = None,
               outputs: Sequence[str] = ("rgb", "depth", "semantic", "instance")) -> RigFrame:
        """Render one snapshot. `outputs` may drop depth/semantic/instance to save time
        (visible pixel counts are always computed)."""
        import time
        t0 = time.perf_counter()
        with self.ctx:                 # this renderer's context current (several may exist)
            self.render_atlas(snap, cameras)
            self.read_atlas(outputs)
        t1 = time.perf_counter()
        names = list(cameras) if cameras is not None else list(self.rig)
        frames = {}
        total: Dict[int, int] = {int(o.id): 0 for o in snap.objects}
        for name in names:
            m = self.maps[name]
            rgba = cv2.remap(self._buf_color, m.map1, m.map2, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            rgb = cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)
            lab = cv2.remap(self._buf_label, m.map1, None, cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            sem = np.ascontiguousarray(lab[..., 2])
            n_idx = len(self._index_to_id)
            if n_idx <= 256:                           # fast path: the G byte is 0
                idx = lab[..., 0]
                counts = cv2.calcHist([np.ascontiguousarray(idx)], [0], None, [256],
                                      [0, 256]).ravel().astype(np.int64)
            else:
                idx = lab.view(np.uint16)[..., 0]      # R + 256 G: instance index
                counts = np.bincount(idx.ravel(), minlength=n_idx)
            vis = {int(self._index_to_id[i]): int(counts[i])
                   for i in range(1, len(self._index_to_id))}
            for k, c in vis.items():
                total[k] = total.get(k, 0) + c
            depth = rng = None
            if "depth" in outputs or "range" in outputs:
                # inverse face depth is affine in face pixels on any plane, so bilinear
                # interpolation is exact on surfaces; at depth edges (a jump between samples
                # larger than a plane ~0.5 m from the lens makes) keep the nearest sample
                invz = cv2.remap(self._buf_range, m.map1, None, cv2.INTER_NEAREST,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
                lin = cv2.remap(self._buf_range, m.map1, m.map2, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
                smooth = cv2.compare(cv2.absdiff(lin, invz), m.edge_invz, cv2.CMP_LT)
                cv2.copyTo(lin, smooth, invz)          # NaN compares false: stays nearest
                with np.errstate(divide="ignore", invalid="ignore"):
                    rng = np.divide(m.range_scale, invz)     # 1/0 -> inf (sky)
                depth = cv2.multiply(rng, m.ray_z)
                if m.wide:       # rays beyond 90 deg: inf * (z <= 0) would not be +inf
                    np.copyto(depth, rng, where=np.isinf(rng))
            inst = None
            if "instance" in outputs:
                inst = (cv2.LUT(np.ascontiguousarray(idx), self._lut_256) if n_idx <= 256
                        else self._index_to_id[idx])
            frames[name] = CameraFrame(name, rgb, depth, rng if "range" in outputs or
                                       "depth" in outputs else None,
                                       sem if "semantic" in outputs else None, inst, vis)
        t2 = time.perf_counter()
        return RigFrame(snap.stamp, frames, total, render_s=t1 - t0, remap_s=t2 - t1)

    def release(self):
        try:
            self.ctx.release()
        except Exception:
            pass


def label_visibility(objects: Sequence[ObjectState], frame: RigFrame,
                     min_pixels: int = 1) -> List[ObjectState]:
    """Copies of `objects` with `visible_pixels` (all cameras) and `occluded` set from a
    rendered frame (fully hidden objects stay in the list, marked occluded)."""
    import dataclasses
    out = []
    for o in objects:
        n = int(frame.visible_pixels.get(int(o.id), 0))
        out.append(dataclasses.replace(o, visible_pixels=n, occluded=n < min_pixels))
    return out
