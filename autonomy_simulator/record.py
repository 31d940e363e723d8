"""Record a scenario into a rosbag2 (MCAP) with the stack's real topic layout (no rclpy:
messages are built and CDR-serialised with `rosbags`; the custom types are registered from
interfaces/autonomy_interfaces/msg/*.msg).

    python -m autonomy_simulator.record narrow_street_oncoming --seed 3 --duration 10 \
        --out /tmp/narrow.mcap [--param oncoming=proceed] [--camera-rate 10] \
        [--width 640 --height 480] [--cameras main,rear] [--no-images]

`--out X.mcap` writes the rosbag2 directory `X/` holding `X.mcap` and `metadata.yaml`
(what `ros2 bag play X` and `rosbags` read).

Topics (stamps = sim time, the bag's time = sim time in ns):
  /clock (rosgraph_msgs/Clock)                   every step (50 Hz)
  /odom (nav_msgs/Odometry, odom->base_link)     every step
  /imu/kinematics (sensor_msgs/Imu)              every step: linear accel (x long., y lat.,
                                                 z gravity), yaw rate, orientation
  /tf (odom->base_link)                          every step
  /tf_static (base_link->camera_<cam>)           once: this vehicle's actual (mis)mounting
  /ground_truth/ego (nav_msgs/Odometry)          every step
  /ground_truth/objects (ObjectArray, odom)      --gt-rate (visibility: pixel counts of the
                                                 latest camera frame; 0 / not occluded
                                                 without images)
  /ground_truth/bev/<layer> (OccupancyGrid, base_link, 0/100)  --gt-rate
  /ground_truth/road (RoadStructure, odom)       1 Hz
  /planning/goal (geometry_msgs/PoseStamped)     1 Hz
  /cameras/<cam>/image_raw (rgb8), /cameras/<cam>/camera_info   --camera-rate
Deterministic: the same scenario/seed/options give the same bytes on every topic that does
not depend on the renderer (and on those too where the renderer is deterministic).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from autonomy_simulator import labels as lab
from autonomy_simulator import scenarios
from autonomy_simulator.simulation import Simulation
from autonomy_stack.vector_space import ObjectState, VectorSpace
from autonomy_stack.bag_writer import open_mcap_writer
from autonomy_simulator.rendering import RigRenderer
from autonomy_vehicle.camera_models import load_rig, sample_mounting_error

ROOT = Path(__file__).resolve().parent.parent
MSG_DIR = ROOT / "interfaces" / "autonomy_interfaces" / "msg"
GT_LAYERS = lab.LAYERS


# ============================================================== typestore + message factory
def typestore():
    """rosbags typestore (ROS 2 Kilted) with autonomy_interfaces registered."""
    # lazy: rosbags only when reading/writing bags (start-up time)
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    ts = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for f in sorted(MSG_DIR.glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"autonomy_interfaces/msg/{f.stem}"))
    ts.register(types)
    return ts


class Msgs:
    """Builds rosbags message objects with defaults for every field not given."""

    def __init__(self, ts):
        self.ts = ts
        # lazy: rosbags only when reading/writing bags (start-up time)
        from rosbags.typesys.base import Nodetype
        self.NT = Nodetype

    def _default(self, node):
        NT = self.NT
        kind, det = node
        if kind == NT.BASE:
            t = det[0]
            if t == "string":
                return ""
            if t == "bool":
                return False
            if t in ("float32", "float64"):
                return 0.0
            return 0
        if kind == NT.NAME:
            return self.make(det)
        if kind == NT.ARRAY:
            sub, n = det
            if sub[0] == NT.BASE and sub[1][0] != "string":
                return np.zeros(n, dtype=_np_dtype(sub[1][0]))
            return [self._default(sub) for _ in range(n)]
        if kind == NT.SEQUENCE:
            sub, _ = det
            if sub[0] == NT.BASE and sub[1][0] != "string":
                return np.zeros(0, dtype=_np_dtype(sub[1][0]))
            return []
        raise ValueError(node)

    def make(self, typename: str, **kw):
        _, fields = self.ts.fielddefs[typename]
        args = {}
        for name, node in fields:
            args[name] = kw.pop(name) if name in kw else self._default(node)
        if kw:
            raise TypeError(f"{typename}: unknown fields {sorted(kw)}")
        return self.ts.types[typename](**args)

    def serialize(self, msg, typename: str) -> bytes:
        return bytes(self.ts.serialize_cdr(msg, typename))

    # ---------------------------------------------------------------- common pieces
    def time(self, t: float):
        sec = math.floor(t)
        nsec = int(round((t - sec) * 1e9))
        if nsec >= 1_000_000_000:
            sec, nsec = sec + 1, nsec - 1_000_000_000
        return self.make("builtin_interfaces/msg/Time", sec=int(sec), nanosec=nsec)

    def header(self, t: float, frame: str):
        return self.make("std_msgs/msg/Header", stamp=self.time(t), frame_id=frame)

    def quat_yaw(self, yaw: float):
        return self.make("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=math.sin(yaw / 2),
                         w=math.cos(yaw / 2))

    def quat_R(self, R: np.ndarray):
        # lazy: optional dependency
        import transforms3d
        w, x, y, z = transforms3d.quaternions.mat2quat(np.asarray(R, float))
        return self.make("geometry_msgs/msg/Quaternion", x=float(x), y=float(y), z=float(z), w=float(w))

    def point(self, x, y, z=0.0):
        return self.make("geometry_msgs/msg/Point", x=float(x), y=float(y), z=float(z))

    def vec(self, x, y, z=0.0):
        return self.make("geometry_msgs/msg/Vector3", x=float(x), y=float(y), z=float(z))

    def pose(self, x, y, yaw, z=0.0):
        return self.make("geometry_msgs/msg/Pose", position=self.point(x, y, z), orientation=self.quat_yaw(yaw))

    # ---------------------------------------------------------------- stack messages
    def odometry(self, t, x, y, yaw, speed, yaw_rate, frame="odom", child="base_link"):
        pose = self.make("geometry_msgs/msg/PoseWithCovariance", pose=self.pose(x, y, yaw))
        tw = self.make("geometry_msgs/msg/Twist", linear=self.vec(speed, 0.0), angular=self.vec(0.0, 0.0, yaw_rate))
        twist = self.make("geometry_msgs/msg/TwistWithCovariance", twist=tw)
        return self.make("nav_msgs/msg/Odometry", header=self.header(t, frame), child_frame_id=child,
                         pose=pose, twist=twist)

    def imu(self, t, k):
        return self.make("sensor_msgs/msg/Imu", header=self.header(t, "base_link"),
                         orientation=self.quat_yaw(k.yaw),
                         angular_velocity=self.vec(0.0, 0.0, k.yaw_rate),
                         linear_acceleration=self.vec(k.accel, k.lat_accel, 9.81))

    def transform(self, t, parent, child, xyz, R=None, yaw=None):
        rot = self.quat_R(R) if R is not None else self.quat_yaw(yaw or 0.0)
        tr = self.make("geometry_msgs/msg/Transform", translation=self.vec(*xyz), rotation=rot)
        return self.make("geometry_msgs/msg/TransformStamped", header=self.header(t, parent),
                         child_frame_id=child, transform=tr)

    def tf(self, transforms):
        return self.make("tf2_msgs/msg/TFMessage", transforms=list(transforms))

    def clock(self, t):
        return self.make("rosgraph_msgs/msg/Clock", clock=self.time(t))

    def object(self, o: ObjectState):
        c, s = math.cos(o.yaw), math.sin(o.yaw)
        cov = np.zeros(36) if o.covariance is None else np.asarray(o.covariance, float).reshape(36)
        return self.make("autonomy_interfaces/msg/Object", id=int(o.id),
                         object_class=self.make("autonomy_interfaces/msg/ObjectClass", value=int(o.object_class)),
                         score=float(o.score), pose=self.pose(o.x, o.y, o.yaw, o.z),
                         size=self.vec(o.length, o.width, o.height),
                         velocity=self.vec(o.speed * c, o.speed * s),
                         acceleration=self.vec(o.accel * c, o.accel * s), yaw_rate=float(o.yaw_rate),
                         covariance=cov, visible_pixels=int(o.visible_pixels), occluded=bool(o.occluded))

    def object_array(self, t, frame, objs):
        return self.make("autonomy_interfaces/msg/ObjectArray", header=self.header(t, frame),
                         objects=[self.object(o) for o in objs])

    def road(self, v: VectorSpace):
        lines = []
        for l in v.lines:
            pts = np.asarray(l.points, float)
            lines.append(self.make("autonomy_interfaces/msg/RoadLine", id=int(l.id), line_type=int(l.line_type),
                                   confidence=float(l.confidence),
                                   points=[self.point(p[0], p[1], p[2] if len(p) > 2 else 0.0) for p in pts]))
        poly = self.make("geometry_msgs/msg/Polygon", points=[] if v.drivable_area is None else [
            self.make("geometry_msgs/msg/Point32", x=float(p[0]), y=float(p[1]), z=0.0) for p in v.drivable_area])
        return self.make("autonomy_interfaces/msg/RoadStructure", header=self.header(v.stamp, v.frame_id),
                         lines=lines, drivable_area=poly)

    def grid(self, t, frame, raster: np.ndarray, spec: lab.BevSpec):
        info = self.make("nav_msgs/msg/MapMetaData", map_load_time=self.time(t), resolution=float(spec.cell),
                         width=int(raster.shape[1]), height=int(raster.shape[0]),
                         origin=self.pose(spec.origin_x, spec.origin_y, 0.0))
        data = (raster.astype(np.int8) * np.int8(100)).ravel()
        return self.make("nav_msgs/msg/OccupancyGrid", header=self.header(t, frame), info=info, data=data)

    def goal(self, t, goal):
        return self.make("geometry_msgs/msg/PoseStamped", header=self.header(t, "odom"),
                         pose=self.pose(goal[0], goal[1], goal[2]))

    def camera_info(self, t, cam, frame):
        K = np.asarray(cam.K, float)
        P = np.zeros((3, 4))
        P[:, :3] = K
        return self.make("sensor_msgs/msg/CameraInfo", header=self.header(t, frame), height=int(cam.height),
                         width=int(cam.width), distortion_model=cam.distortion_model,
                         d=np.asarray(cam.D, float), k=K.ravel(), r=np.eye(3).ravel(), p=P.ravel())

    def image(self, t, frame, rgb: np.ndarray):
        rgb = np.ascontiguousarray(rgb, np.uint8)
        return self.make("sensor_msgs/msg/Image", header=self.header(t, frame), height=int(rgb.shape[0]),
                         width=int(rgb.shape[1]), encoding="rgb8", is_bigendian=0,
                         step=int(rgb.shape[1] * 3), data=rgb.reshape(-1))


def _np_dtype(t: str):
    return {"bool": np.bool_, "int8": np.int8, "uint8": np.uint8, "byte": np.uint8, "char": np.uint8,
            "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
            "int64": np.int64, "uint64": np.uint64, "float32": np.float32, "float64": np.float64}[t]


# ============================================================== camera rig of one vehicle
class VehicleCameras:
    """The simulated vehicle's cameras: nominal rig (config/camera_rig.yaml, scaled to
    width x height), this vehicle's actual mounting (random error seeded by
    `mounting_seed`) and a renderer (created on first use)."""

    def __init__(self, width: Optional[int] = None, height: Optional[int] = None,
                 cameras: Optional[Sequence[str]] = None, mounting_seed: int = 0,
                 mounting_error: bool = True, density: float = 1.0):
        rig = load_rig(width=width, height=height) if (width or height) else load_rig()
        if cameras:
            missing = [c for c in cameras if c not in rig]
            if missing:
                raise ValueError(f"unknown cameras {missing}; rig has {list(rig)}")
            rig = {c: rig[c] for c in cameras}
        self.nominal = rig
        self.actual = sample_mounting_error(rig, mounting_seed) if mounting_error else dict(rig)
        self.density = density
        self._renderer = None

    @property
    def renderer(self):
        if self._renderer is None:
            self._renderer = RigRenderer(self.actual, density=self.density)
        return self._renderer

    def render(self, snap, outputs=("rgb",)):
        return self.renderer.render(snap, outputs=outputs)

    def release(self):
        if self._renderer is not None:
            self._renderer.release()
            self._renderer = None


# ============================================================== recording
def record(scenario: str, seed: int, duration: float, out: Path, params: Optional[dict] = None,
           camera_rate: float = 10.0, width: Optional[int] = 640, height: Optional[int] = 480,
           cameras: Optional[Sequence[str]] = None, images: bool = True, gt_rate: float = 10.0,
           bev: lab.BevSpec = lab.BevSpec(), mounting_seed: Optional[int] = None,
           progress: bool = False) -> Path:
    """Run `scenario` for `duration` s and write the bag; returns the bag directory."""
    out = Path(out)
    bag_dir = out.with_suffix("") if out.suffix == ".mcap" else out
    if bag_dir.exists():
        raise FileExistsError(f"{bag_dir} exists")
    sc = scenarios.make(scenario, seed=seed, **(params or {}))
    sim: Simulation = sc.sim
    ts = typestore()
    M = Msgs(ts)
    vc = VehicleCameras(width, height, cameras, seed if mounting_seed is None else mounting_seed) \
        if images else None
    bag_dir.parent.mkdir(parents=True, exist_ok=True)
    writer = open_mcap_writer(bag_dir)      # chunk CRCs + zstd (autonomy_stack.bag_writer)
    conns: Dict[str, object] = {}

    def put(topic: str, typename: str, msg, t: float):
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, typename, typestore=ts)
        writer.write(conns[topic], int(round(t * 1e9)), M.serialize(msg, typename))

    steps = int(round(duration / sim.dt))
    cam_every = max(1, int(round(1.0 / (camera_rate * sim.dt)))) if images else 0
    gt_every = max(1, int(round(1.0 / (gt_rate * sim.dt))))
    slow_every = max(1, int(round(1.0 / sim.dt)))
    t_render = 0.0
    n_frames = 0
    vis = None                 # per-object visible pixels of the latest camera frame
    try:
        t0 = sim.t
        if vc is not None:
            put("/tf_static", "tf2_msgs/msg/TFMessage", M.tf([
                M.transform(t0, "base_link", f"camera_{n}", c.T_base_camera[:3, 3], R=c.T_base_camera[:3, :3])
                for n, c in vc.actual.items()]), t0)
        iterator = range(steps + 1)
        if progress:
            # lazy: optional dependency (progress bars)
            from tqdm import tqdm
            iterator = tqdm(iterator, desc=f"record {scenario}", unit="step")
        for i in iterator:
            if i > 0:
                sim.step()
            t = sim.t
            _put_kinematics(put, M, t, sim.kinematics())
            if cam_every and i % cam_every == 0:
                tr = time.perf_counter()
                frame = vc.render(sim.snapshot(), outputs=("rgb",))
                t_render += time.perf_counter() - tr
                n_frames += 1
                vis = frame.visible_pixels
                _put_cameras(put, M, t, vc, frame)
            if i % gt_every == 0:
                _put_ground_truth(put, M, t, sim, vis, bev)
            if i % slow_every == 0:
                put("/ground_truth/road", "autonomy_interfaces/msg/RoadStructure",
                    M.road(sim.world.vector_space(t)), t)
                if sim.goal is not None:
                    put("/planning/goal", "geometry_msgs/msg/PoseStamped", M.goal(t, sim.goal), t)
    finally:
        writer.close()
        if vc is not None:
            vc.release()
    record.last_stats = dict(frames=n_frames, render_s=t_render, steps=steps)
    return bag_dir


def _put_kinematics(put, M: Msgs, t: float, k) -> None:
    """/clock, /odom, /imu/kinematics, /tf (odom -> base_link) and /ground_truth/ego."""
    put("/clock", "rosgraph_msgs/msg/Clock", M.clock(t), t)
    put("/odom", "nav_msgs/msg/Odometry", M.odometry(t, k.x, k.y, k.yaw, k.speed, k.yaw_rate), t)
    put("/imu/kinematics", "sensor_msgs/msg/Imu", M.imu(t, k), t)
    put("/tf", "tf2_msgs/msg/TFMessage",
        M.tf([M.transform(t, "odom", "base_link", (k.x, k.y, 0.0), yaw=k.yaw)]), t)
    put("/ground_truth/ego", "nav_msgs/msg/Odometry",
        M.odometry(t, k.x, k.y, k.yaw, k.speed, k.yaw_rate), t)


def _put_cameras(put, M: Msgs, t: float, vc: VehicleCameras, frame) -> None:
    """image_raw + camera_info of every camera of a rendered rig frame."""
    for name, cf in frame.cameras.items():
        cal = vc.actual[name]
        put(f"/cameras/{name}/image_raw", "sensor_msgs/msg/Image",
            M.image(t, f"camera_{name}", cf.rgb), t)
        put(f"/cameras/{name}/camera_info", "sensor_msgs/msg/CameraInfo",
            M.camera_info(t, cal, f"camera_{name}"), t)


def _put_ground_truth(put, M: Msgs, t: float, sim: Simulation, vis, bev: lab.BevSpec) -> None:
    """/ground_truth/objects (visibility from the latest camera frame) and the BEV layers."""
    objs = lab.object_labels(sim.objects(), vis)
    put("/ground_truth/objects", "autonomy_interfaces/msg/ObjectArray",
        M.object_array(t, "odom", objs), t)
    rasters = lab.bev_rasters(sim.ground_truth("base_link"), bev)
    for layer in GT_LAYERS:
        put(f"/ground_truth/bev/{layer}", "nav_msgs/msg/OccupancyGrid",
            M.grid(t, "base_link", rasters[layer], bev), t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonomy_simulator.record", description=__doc__.split("\n")[0])
    ap.add_argument("scenario", choices=sorted(scenarios.CATALOGUE))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of sim time")
    ap.add_argument("--out", required=True, help="X.mcap -> rosbag2 directory X/ with X.mcap")
    ap.add_argument("--param", action="append", default=[], help="scenario parameter key=value")
    ap.add_argument("--camera-rate", type=float, default=10.0)
    ap.add_argument("--width", type=int, default=640, help="image width (native 1280)")
    ap.add_argument("--height", type=int, default=480, help="image height (native 960)")
    ap.add_argument("--cameras", default="", help="comma-separated subset (default: all 8)")
    ap.add_argument("--no-images", action="store_true", help="skip rendering (kinematics + ground truth only)")
    ap.add_argument("--gt-rate", type=float, default=10.0)
    ap.add_argument("--bev-extent", type=float, default=100.0)
    ap.add_argument("--bev-cell", type=float, default=0.5)
    ap.add_argument("--mounting-seed", type=int, default=None, help="vehicle's mounting error seed (default: --seed)")
    a = ap.parse_args(argv)
    ext = a.bev_extent
    spec = lab.BevSpec(ext, ext, a.bev_cell, -ext / 2, -ext / 2)
    t = time.perf_counter()
    try:
        bag = record(a.scenario, a.seed, a.duration, Path(a.out), scenarios.parse_params(a.param),
                     a.camera_rate, a.width, a.height, [c for c in a.cameras.split(",") if c] or None,
                     not a.no_images, a.gt_rate, spec, a.mounting_seed, progress=sys.stderr.isatty())
    except (FileExistsError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    st = record.last_stats
    print(f"wrote {bag} ({st['steps']} steps, {st['frames']} camera frames, render {st['render_s']:.1f} s, "
          f"total {time.perf_counter() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
