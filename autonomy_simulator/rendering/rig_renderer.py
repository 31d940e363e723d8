"""`RigRenderer`: draws `scene.SceneSnapshot`s for every camera of a rig into the atlas
framebuffer (one viewport per face crop, see `atlas`), reads it back and remaps it into
each camera's RGB, depth/range, semantic and instance images (see `autonomy_simulator.rendering`
for the pipeline and why)."""
from __future__ import annotations

import math
import time
import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from autonomy_simulator.rendering.atlas import (CameraMaps, FaceView, atlas_width,
                                                camera_maps, intrinsic_key, plan_faces,
                                                shelf_pack)
from autonomy_simulator.rendering.ground import (GroundLayer, ground_key, ground_quad,
                                                 noise_texture)
from autonomy_simulator.rendering.meshes import curb_vertices, object_vertices
from autonomy_simulator.rendering.semantics import SKY_HORIZON, SKY_ZENITH
from autonomy_simulator.rendering.shaders import program
from autonomy_simulator.scene import SceneSnapshot
from autonomy_stack.vector_space import ObjectState
from autonomy_vehicle.camera_models import CameraCalibration


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


class RigRenderer:
    """Renders SceneSnapshots for every camera of a rig (see `autonomy_simulator.rendering`).

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
        import moderngl   # optional heavy dependency (GL): the rest of the simulator runs without
        self.mgl = moderngl
        self.density = float(density)
        self.near, self.far = float(near), float(far)
        self.sun = np.asarray(sun_dir, float) / np.linalg.norm(sun_dir)
        self.fog_dist = float(fog_dist)
        self.ctx = ctx or moderngl.create_standalone_context(backend="egl")
        ctx = self.ctx
        self.prog_obj = program(ctx, "world.vert.glsl", "object.frag.glsl")
        self.prog_ground = program(ctx, "world.vert.glsl", "ground.frag.glsl")
        self.prog_sky = program(ctx, "sky.vert.glsl", "sky.frag.glsl")
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
            intrinsic_key(old[n], self.density) == intrinsic_key(rig[n], self.density)
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
        width = atlas_width(faces_all, max_size, self.atlas_width)
        height = shelf_pack(faces_all, width)
        if height > max_size or width > max_size:
            raise ValueError(f"atlas {width}x{height} exceeds the GL limit {max_size}; "
                             "lower the density")
        self.atlas_size = (width, height)
        self.faces = faces_all
        self.maps = {name: camera_maps(name, cam, plans[name]) for name, cam in self.rig.items()}
        self._allocate_atlas(width, height)

    def _allocate_atlas(self, width: int, height: int):
        """(Re)create the atlas framebuffer (colour, label, inverse depth, depth buffer) and
        the read-back buffers."""
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
        key = ground_key(snap)
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
            self._upload_curbs(snap, key)
        # ground quad: a large square around the ego, slightly below z = 0
        self.ground_vbo.write(ground_quad(ex, ey, self.far * 0.8).tobytes())

    def _upload_curbs(self, snap: SceneSnapshot, key: str):
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
        self._set_frame_uniforms(snap)
        want = set(cameras) if cameras is not None else None
        faces = [f for f in self.faces if want is None or f.camera in want]
        poses = {}
        for f in faces:
            if f.camera not in poses:
                poses[f.camera] = self.camera_pose_world(snap, self.rig[f.camera])
        self._upload_sky(faces, poses)
        for i, f in enumerate(faces):
            self._draw_face(i, f, poses[f.camera])
        ctx.scissor = None

    def _set_frame_uniforms(self, snap: SceneSnapshot):
        """Uniforms shared by every face of a frame: clip range, sun, fog, ground rasters."""
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

    def _upload_sky(self, faces: List[FaceView], poses: Dict[str, np.ndarray]):
        """Sky quads of all faces in one buffer: per corner its NDC position and world ray."""
        sky = np.zeros((len(faces) * 6, 5), np.float32)
        for i, f in enumerate(faces):
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

    def _draw_face(self, i: int, f: FaceView, T_wc: np.ndarray):
        """Draw face crop `i` (its viewport in the atlas) seen from camera pose `T_wc`."""
        ctx, mgl = self.ctx, self.mgl
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

    def read_atlas(self, outputs=("rgb", "depth", "semantic", "instance")):
        w, h = self.atlas_size
        if self.profile:
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
        t0 = time.perf_counter()
        with self.ctx:                 # this renderer's context current (several may exist)
            self.render_atlas(snap, cameras)
            self.read_atlas(outputs)
        t1 = time.perf_counter()
        names = list(cameras) if cameras is not None else list(self.rig)
        frames = {}
        total: Dict[int, int] = {int(o.id): 0 for o in snap.objects}
        for name in names:
            frames[name] = self._camera_frame(name, outputs)
            for k, c in frames[name].visible_pixels.items():
                total[k] = total.get(k, 0) + c
        t2 = time.perf_counter()
        return RigFrame(snap.stamp, frames, total, render_s=t1 - t0, remap_s=t2 - t1)

    def _camera_frame(self, name: str, outputs: Sequence[str]) -> CameraFrame:
        """Remap the read-back atlas into camera `name`'s images and count visible pixels."""
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
        return CameraFrame(name, rgb, depth, rng if "range" in outputs or
                           "depth" in outputs else None,
                           sem if "semantic" in outputs else None, inst, vis)

    def release(self):
        try:
            self.ctx.release()
        except Exception:
            pass


def label_visibility(objects: Sequence[ObjectState], frame: RigFrame,
                     min_pixels: int = 1) -> List[ObjectState]:
    """Copies of `objects` with `visible_pixels` (all cameras) and `occluded` set from a
    rendered frame (fully hidden objects stay in the list, marked occluded)."""
    out = []
    for o in objects:
        n = int(frame.visible_pixels.get(int(o.id), 0))
        out.append(dataclasses.replace(o, visible_pixels=n, occluded=n < min_pixels))
    return out
