"""Triangle meshes of the scene: one normalised mesh per object class (boxes and prisms in
object-normalised units), placed per object into world space, and the kerb-stone strips along
the curbs. Vertex layout everywhere: x y z nx ny nz r g b class instance_index (float32)."""
import math
from typing import Dict, Sequence, Tuple

import numpy as np

from autonomy_simulator.rendering.semantics import (CURB_COLOR, DEFAULT_COLORS, GLASS, SEM_CURB,
                                                    SKIN, TROUSERS, TYRE,
                                                    semantic_of_object_class)
from autonomy_stack.vector_space import ObjectClass, ObjectState


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
