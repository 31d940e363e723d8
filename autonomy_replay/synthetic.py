"""Generated rosbag2 files for replay tests and the replay benchmark (pure: rosbags only).

`write_synthetic_bag` writes the simulator's topic layout in miniature: /clock, /odom,
/tf, /tf_static, /cameras/<cam>/image_raw + camera_info, and (optionally) ground truth:
/ground_truth/objects, /ground_truth/ego, /ground_truth/bev/<layer>. The ego drives along
+x at constant speed; agents drive straight lines; one of them is occluded for a while.
Deterministic for a given seed.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from autonomy_replay.bag import make_typestore

CAMERAS = ("main", "narrow", "fisheye", "left_pillar", "right_pillar", "left_repeater",
           "right_repeater", "rear")

_NP = {"float64": np.float64, "float32": np.float32, "int8": np.int8, "uint8": np.uint8,
       "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
       "int64": np.int64, "uint64": np.uint64, "byte": np.uint8, "char": np.uint8,
       "bool": np.bool_, "octet": np.uint8}


def default_msg(ts, msgtype: str):
    """A rosbags message instance with every field at its zero value."""
    _consts, fields = ts.fielddefs[msgtype]
    return ts.types[msgtype](**{n: _default(ts, node, sub) for n, (node, sub) in fields})


def _default(ts, node, sub):
    node = int(node)
    if node == 1:                       # BASE
        name = sub[0]
        if name == "string" or name == "wstring":
            return ""
        if name == "bool":
            return False
        if name.startswith("float"):
            return 0.0
        return 0
    if node == 2:                       # NAME
        return default_msg(ts, sub)
    (inode, isub), length = sub
    if int(inode) == 1 and isub[0] in _NP:
        return np.zeros(length if node == 3 else 0, dtype=_NP[isub[0]])
    if node == 3:
        return [_default(ts, inode, isub) for _ in range(length)]
    return []


def _set_stamp(h, t_ns: int, frame: str):
    h.stamp.sec, h.stamp.nanosec = divmod(int(t_ns), 1_000_000_000)
    h.frame_id = frame


def _quat(q, yaw: float):
    q.x, q.y, q.z, q.w = 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)


def write_synthetic_bag(path, duration: float = 2.0, odom_hz: float = 50.0,
                        camera_hz: float = 10.0, cameras: Sequence[str] = CAMERAS,
                        image_size=(64, 48), ground_truth: bool = True,
                        bev_layers: Sequence[str] = ("drivable",), storage: str = "mcap",
                        seed: int = 0, start_s: float = 100.0, speed: float = 5.0,
                        extra_types: Optional[Dict[str, str]] = None) -> Path:
    """Write a rosbag2 directory at `path`; returns it. start_s: sim time of the first
    message (small, clearly not wall time)."""
    # lazy: rosbags only when reading/writing bags (start-up time)
    from rosbags.rosbag2 import StoragePlugin, Writer
    ts = make_typestore()
    rng = np.random.default_rng(seed)
    path = Path(path)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    w, h = image_size
    t0 = int(start_s * 1e9)
    with Writer(path, version=9, storage_plugin=plugin) as wr:
        conns = {}

        def conn(topic, mt):
            if topic not in conns:
                conns[topic] = wr.add_connection(topic, mt, typestore=ts)
            return conns[topic]

        def write(topic, mt, t_ns, msg):
            wr.write(conn(topic, mt), t_ns, ts.serialize_cdr(msg, mt))

        write("/tf_static", "tf2_msgs/msg/TFMessage", t0, _static_tf(ts, cameras, t0))
        agents = [(10.0 + 8 * k, (-3.5 if k % 2 else 3.5), (6.0 if k % 2 else 3.0),
                   0.0 if k % 2 else math.pi) for k in range(3)]
        n_odom = int(round(duration * odom_hz))
        cam_every = max(1, int(round(odom_hz / camera_hz))) if camera_hz > 0 else 0
        base = _base_image(rng, w, h)
        for i in range(n_odom):
            t = t0 + int(i * 1e9 / odom_hz)
            ts_s = i / odom_hz
            x = speed * ts_s
            od = _write_ego(write, ts, t, x, speed)
            if not (cam_every and i % cam_every == 0):
                continue
            _write_cameras(write, ts, t, i, cameras, base)
            if ground_truth:
                _write_ground_truth(write, ts, t, ts_s, duration, agents, od, x, bev_layers)
    return path


def _static_tf(ts, cameras: Sequence[str], t0: int):
    """/tf_static: base_link -> camera_<cam>, the cameras turned around the vertical axis."""
    tfs = default_msg(ts, "tf2_msgs/msg/TFMessage")
    for i, cam in enumerate(cameras):
        tr = default_msg(ts, "geometry_msgs/msg/TransformStamped")
        _set_stamp(tr.header, t0, "base_link")
        tr.child_frame_id = f"camera_{cam}"
        tr.transform.translation.x = 1.5
        tr.transform.translation.z = 1.3
        _quat(tr.transform.rotation, 2 * math.pi * i / max(len(cameras), 1))
        tfs.transforms.append(tr)
    return tfs


def _base_image(rng, w: int, h: int) -> np.ndarray:
    """BGR: sky over road, with texture and posts (rolled per frame so that they move)."""
    base = np.empty((h, w, 3), np.uint8)
    base[: h // 2] = (200, 150, 90)
    base[h // 2:] = (90, 90, 90)
    base = np.clip(base.astype(int) + rng.integers(-12, 12, size=(h, w, 3)), 0, 255
                   ).astype(np.uint8)
    base[:, ::max(1, w // 6)] = (40, 200, 230)  # posts that move with the frame
    return base


def _write_ego(write, ts, t: int, x: float, speed: float):
    """/clock, /odom and /tf (odom -> base_link) at `t`; returns the Odometry message."""
    clock = default_msg(ts, "rosgraph_msgs/msg/Clock")
    clock.clock.sec, clock.clock.nanosec = divmod(t, 1_000_000_000)
    write("/clock", "rosgraph_msgs/msg/Clock", t, clock)
    od = default_msg(ts, "nav_msgs/msg/Odometry")
    _set_stamp(od.header, t, "odom")
    od.child_frame_id = "base_link"
    od.pose.pose.position.x = x
    _quat(od.pose.pose.orientation, 0.0)
    od.twist.twist.linear.x = speed
    write("/odom", "nav_msgs/msg/Odometry", t, od)
    tf = default_msg(ts, "tf2_msgs/msg/TFMessage")
    tr = default_msg(ts, "geometry_msgs/msg/TransformStamped")
    _set_stamp(tr.header, t, "odom")
    tr.child_frame_id = "base_link"
    tr.transform.translation.x = x
    _quat(tr.transform.rotation, 0.0)
    tf.transforms.append(tr)
    write("/tf", "tf2_msgs/msg/TFMessage", t, tf)
    return od


def _write_cameras(write, ts, t: int, i: int, cameras: Sequence[str], base: np.ndarray):
    """image_raw + camera_info of every camera for odometry step `i`."""
    h, w = base.shape[:2]
    for ci, cam in enumerate(cameras):
        img = default_msg(ts, "sensor_msgs/msg/Image")
        _set_stamp(img.header, t, f"camera_{cam}")
        img.height, img.width, img.encoding, img.step = h, w, "bgr8", 3 * w
        frame = np.roll(base, shift=i + 7 * ci, axis=1).copy()
        frame[: h // 8, :, ci % 3] = 255     # per-camera colour strip
        img.data = frame.reshape(-1)
        write(f"/cameras/{cam}/image_raw", "sensor_msgs/msg/Image", t, img)
        info = default_msg(ts, "sensor_msgs/msg/CameraInfo")
        _set_stamp(info.header, t, f"camera_{cam}")
        info.height, info.width = h, w
        info.k = np.array([w / 2, 0, w / 2, 0, w / 2, h / 2, 0, 0, 1], dtype=np.float64)
        write(f"/cameras/{cam}/camera_info", "sensor_msgs/msg/CameraInfo", t, info)


def _write_ground_truth(write, ts, t: int, ts_s: float, duration: float, agents, od,
                        x: float, bev_layers: Sequence[str]):
    """/ground_truth/objects (agent 3 occluded in the middle third), /ground_truth/ego and
    one /ground_truth/bev/<layer> grid per layer (an 8 m wide road along x)."""
    objs = default_msg(ts, "autonomy_interfaces/msg/ObjectArray")
    _set_stamp(objs.header, t, "odom")
    for k, (ax, ay, av, ayaw) in enumerate(agents):
        o = default_msg(ts, "autonomy_interfaces/msg/Object")
        o.id = k + 1
        o.object_class.value = 1
        o.score = 1.0
        o.pose.position.x = ax + av * math.cos(ayaw) * ts_s
        o.pose.position.y = ay
        o.pose.position.z = 0.8
        _quat(o.pose.orientation, ayaw)
        o.size.x, o.size.y, o.size.z = 4.5, 1.9, 1.6
        o.velocity.x, o.velocity.y = av * math.cos(ayaw), av * math.sin(ayaw)
        o.occluded = bool(k == 2 and 0.3 * duration < ts_s < 0.6 * duration)
        o.visible_pixels = 0 if o.occluded else 500
        objs.objects.append(o)
    write("/ground_truth/objects", "autonomy_interfaces/msg/ObjectArray", t, objs)
    ego = default_msg(ts, "nav_msgs/msg/Odometry")
    ego.header, ego.child_frame_id, ego.pose, ego.twist = (
        od.header, od.child_frame_id, od.pose, od.twist)
    write("/ground_truth/ego", "nav_msgs/msg/Odometry", t, ego)
    for layer in bev_layers:
        g = default_msg(ts, "nav_msgs/msg/OccupancyGrid")
        _set_stamp(g.header, t, "odom")
        g.info.resolution = 0.5
        g.info.width, g.info.height = 80, 40
        g.info.origin.position.x, g.info.origin.position.y = x - 10.0, -10.0
        _quat(g.info.origin.orientation, 0.0)
        grid = np.zeros((40, 80), dtype=np.int8)
        grid[12:28, :] = 100             # a 8 m wide road along x
        g.data = grid.reshape(-1)
        write(f"/ground_truth/bev/{layer}", "nav_msgs/msg/OccupancyGrid", t, g)
