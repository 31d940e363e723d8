"""Bag data and grid helpers shared by the replay report and the renderer (pure: rosbags +
numpy, no rclpy): `BagData` (decoded messages of selected topics), the `non_image` topic
filter, `quat_yaw`, `ego_to_odom` (the transform of an ego-frame message into odom at its
stamp), `grid_from_msg` (OccupancyGrid -> metrics.Grid, moved to odom when in the ego
frame), `road_lines_in_odom`, `nearest_by_stamp`, `layer_key` (BEV layer names compared across
simulator and network) and `load_ego_shape` (the ego footprint from config/vehicle.yaml).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import yaml

from autonomy_replay import metrics as M
from autonomy_replay.bag import BagReader, stamp_ns
from autonomy_stack.geometry import rotation
from autonomy_stack.paths import config_file


def quat_yaw(q) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def ego_to_odom(header, ego_msgs: Optional[list]):
    """(R 2x2, t 2) moving points of a message stamped in the ego frame (header.frame_id ==
    the odometry's child frame, e.g. base_link) into odom at the message's stamp, using
    the nearest odometry (`ego_msgs` = [(t, Odometry)]); None when the message is already
    in odom (or no odometry is near its stamp)."""
    if not ego_msgs or header.frame_id in ("", ego_msgs[0][1].header.frame_id):
        return None
    ego = nearest_by_stamp(ego_msgs, stamp_ns(header.stamp))
    if ego is None:
        return None
    p = ego.pose.pose
    yaw = quat_yaw(p.orientation)
    return rotation(yaw), np.array([p.position.x, p.position.y])


def road_lines_in_odom(msg, ego_msgs: Optional[list] = None) -> List:
    """RoadStructure -> [(line_type, points [N, 2] in odom)]."""
    T = ego_to_odom(msg.header, ego_msgs)
    out = []
    for line in msg.lines:
        pts = np.array([[p.x, p.y] for p in line.points], float).reshape(-1, 2)
        if T is not None:
            pts = pts @ T[0].T + T[1]
        out.append((int(line.line_type), pts))
    return out


def grid_from_msg(msg, ego_msgs: Optional[list] = None) -> M.Grid:
    """OccupancyGrid -> Grid. With `ego_msgs` ([(t, Odometry)]) a grid in the ego frame
    (header.frame_id == the odometry's child frame, e.g. base_link) is moved to odom."""
    info = msg.info
    data = np.asarray(msg.data, dtype=np.int8).reshape(info.height, info.width)
    g = M.Grid(data, float(info.resolution), info.origin.position.x,
               info.origin.position.y, quat_yaw(info.origin.orientation))
    if ego_msgs and msg.header.frame_id not in ("", ego_msgs[0][1].header.frame_id):
        ego = nearest_by_stamp(ego_msgs, stamp_ns(msg.header.stamp))
        if ego is not None:
            p = ego.pose.pose
            yaw = quat_yaw(p.orientation)
            c, s = math.cos(yaw), math.sin(yaw)
            g = M.Grid(data, g.resolution, p.position.x + c * g.origin_x - s * g.origin_y,
                       p.position.y + s * g.origin_x + c * g.origin_y, yaw + g.origin_yaw)
    return g


def nearest_by_stamp(msgs: list, t_ns: int, tol_ns: int = 100_000_000):
    if not msgs:
        return None
    st = np.array([stamp_ns(m.header.stamp) for _, m in msgs], dtype=np.int64)
    k = int(np.argmin(np.abs(st - t_ns)))
    return msgs[k][1] if abs(int(st[k]) - t_ns) <= tol_ns else None


def layer_key(name: str) -> str:
    """BEV layer names of the simulator and the network differ in plural/suffix/prefix
    (lane_lines/lane, road_edges/road_edge/edge): compare them by this key."""
    n = name.lower()
    for suffix in ("_lines", "_line", "_area"):
        if n.endswith(suffix):
            n = n[: -len(suffix)]
    n = n[:-1] if n.endswith("s") else n
    return n[len("road_"):] if n.startswith("road_") else n     # road_edge(s) / edge


class BagData:
    """Decoded messages of selected topics of one bag: topic -> [(log_ns, msg)]."""

    def __init__(self, path, want=lambda topic, msgtype: True):
        self.topics: Dict[str, List] = {}
        self.types: Dict[str, str] = {}
        self.counts: Dict[str, int] = {}
        self.times: Dict[str, List[int]] = {}
        self.path = path
        if path is None or not Path(path).exists():
            return
        reader = BagReader(path)
        ts = reader.typestore()
        self.types = {n: t.msgtype for n, t in reader.topics.items()}
        decode = {n for n, mt in self.types.items() if want(n, mt) and mt in ts.fielddefs}
        for topic, t, data in reader.messages():
            self.counts[topic] = self.counts.get(topic, 0) + 1
            self.times.setdefault(topic, []).append(t)
            if topic in decode:
                try:
                    self.topics.setdefault(topic, []).append(
                        (t, ts.deserialize_cdr(data, self.types[topic])))
                except Exception:
                    pass
        reader.close()

    def get(self, topic) -> list:
        return self.topics.get(topic, [])


def load_ego_shape() -> M.EgoShape:
    try:
        p = yaml.safe_load(config_file("vehicle.yaml").read_text())["/**"]["ros__parameters"]
        return M.EgoShape(float(p.get("body_length", 4.7)), float(p.get("body_width", 1.9)),
                          float(p.get("rear_overhang", 0.9)))
    except Exception:
        return M.EgoShape()


def non_image(topic, msgtype) -> bool:
    """`BagData` filter: decode every topic except images and camera infos."""
    return msgtype not in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
                           "sensor_msgs/msg/CameraInfo")
