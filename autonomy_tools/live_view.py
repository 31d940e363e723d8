"""Live browser view of the stack (issue 19): ROS messages -> Rerun logs, served with Rerun's
web viewer (it ships in the `rerun-sdk` wheel; no RViz2 needed on the pip-only path).

Why Rerun: its viewer runs in a browser tab served by this process, it keeps a time line
per recording (scrubbing a recorded bag comes for free) and its server drops the oldest data
beyond a memory limit. Foxglove would need the Foxglove app (or its web app online).

`ViewLogger.log(topic, msgtype, msg)` takes a decoded message -- from rosbags (a bag) or rclpy
(a live subscription): both carry the same field names -- and logs it under
  cameras/<camera>            camera images (sensor_msgs/Image)
  world/...                   the vector space from above, in the odom frame: ego box,
                              objects with velocity arrows, road lines, planned trajectory,
                              corridor bounds, other agents' futures
  bev/<topic>                 BEV rasters (nav_msgs/OccupancyGrid) as images
Messages stamped in the ego frame (frame_id == the odometry's child frame) are moved into
odom with the latest ego pose. Rate bounded by `max_rate_hz` per topic (message stamps).

    autonomy-stack view BAG [--web-port 9090] [--memory-limit 512MiB] [--max-rate-hz 10]
    autonomy-stack view --live     # the running stack (autonomy_tools/live_view_ros.py)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from autonomy_stack.geometry import rotation

# line_type (RoadLine) -> colour: white lanes, yellow lanes, edges/curbs grey, stop red
CAMERAS = ["main", "narrow", "fisheye", "left_pillar", "right_pillar", "left_repeater",
           "right_repeater", "rear"]
ROAD_COLOURS = {0: (230, 230, 230), 1: (255, 255, 255), 2: (240, 200, 40), 3: (255, 210, 0),
                4: (150, 150, 150), 5: (120, 120, 120), 6: (230, 40, 40), 7: (80, 160, 255)}


@dataclass
class ViewConfig:
    max_rate_hz: float = 10.0          # per topic, message stamps; 0 = every message
    image_scale: float = 0.5           # camera images are downscaled by this before logging
    memory_limit: str = "512MiB"       # Rerun server: oldest data dropped beyond this


def stamp_seconds(header) -> float:
    return float(header.stamp.sec) + 1e-9 * float(header.stamp.nanosec)


def quat_yaw(q) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def image_array(msg) -> Optional[np.ndarray]:
    """sensor_msgs/Image (rosbags or rclpy) -> HxWxC uint8 RGB, or None if not 8-bit colour/mono."""
    ch = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}.get(msg.encoding)
    if ch is None:
        return None
    data = np.frombuffer(memoryview(msg.data), np.uint8)
    img = data[: msg.height * msg.step].reshape(msg.height, msg.step)[:, : msg.width * ch]
    img = img.reshape(msg.height, msg.width, ch)
    if msg.encoding.startswith("bgr"):
        img = img[:, :, [2, 1, 0]]
    return img if ch != 4 else img[:, :, :3]


@dataclass
class ViewLogger:
    """Logs decoded ROS messages into a Rerun recording stream."""
    rec: object                        # rerun.RecordingStream
    config: ViewConfig = field(default_factory=ViewConfig)
    ego_frame: str = "base_link"
    ego_pose: Optional[tuple] = None   # (x, y, yaw) in odom
    last_logged: Dict[str, float] = field(default_factory=dict)
    logged: int = 0
    skipped: int = 0

    def log(self, topic: str, msgtype: str, msg) -> bool:
        """Log one message; False when decimated or of a type the view does not draw."""
        handler = _HANDLERS.get(msgtype)
        header = getattr(msg, "header", None)
        if handler is None or header is None:
            return False
        t = stamp_seconds(header)
        if not self.due(topic, t):
            self.skipped += 1
            return False
        self.last_logged[topic] = t
        # lazy: rerun only where the view runs (start-up time of the CLI)
        import rerun as rr
        rr.set_time("time", duration=t, recording=self.rec)
        handler(self, topic, msg)
        self.logged += 1
        return True

    def due(self, topic: str, t: float) -> bool:
        """Whether a message of `topic` stamped t (s) passes the per-topic rate limit."""
        last = self.last_logged.get(topic)
        return not (self.config.max_rate_hz > 0 and last is not None
                    and 0.0 <= t - last < 1.0 / self.config.max_rate_hz - 1e-6)

    def to_odom(self, header, pts: np.ndarray) -> np.ndarray:
        """[N, 2] points of a message into odom (ego-frame messages via the latest ego pose)."""
        if header.frame_id != self.ego_frame or self.ego_pose is None:
            return pts
        x, y, yaw = self.ego_pose
        return pts @ rotation(yaw).T + np.array([x, y])

    def _send(self, path: str, archetype) -> None:
        # lazy: rerun only where the view runs
        import rerun as rr
        rr.log(path, archetype, recording=self.rec)


def _entity(topic: str) -> str:
    return topic.strip("/").replace("/image_raw", "").replace("/image_rect", "_rect")


def _log_image(view: ViewLogger, topic: str, msg) -> None:
    import rerun as rr  # lazy: rerun only where the view runs
    img = image_array(msg)
    if img is None:
        return
    s = view.config.image_scale
    if 0 < s < 1:
        import cv2  # lazy: optional heavy dependency, only for downscaling
        img = cv2.resize(img, (max(1, int(img.shape[1] * s)), max(1, int(img.shape[0] * s))),
                         interpolation=cv2.INTER_AREA)
    view._send(_entity(topic), rr.Image(np.ascontiguousarray(img)))


def _log_odometry(view: ViewLogger, topic: str, msg) -> None:
    import rerun as rr  # lazy: rerun only where the view runs
    p = msg.pose.pose
    yaw = quat_yaw(p.orientation)
    view.ego_frame = msg.child_frame_id or view.ego_frame
    view.ego_pose = (p.position.x, p.position.y, yaw)
    v = msg.twist.twist.linear
    name = "world/ego" if "ground_truth" not in topic else "world/ego_ground_truth"
    view._send(name, rr.Boxes3D(centers=[[p.position.x, p.position.y, 0.75]], half_sizes=[[2.35, 0.95, 0.75]],
                                rotation_axis_angles=[rr.RotationAxisAngle(axis=[0, 0, 1], radians=yaw)],
                                colors=[(40, 200, 80)], labels=[f"ego {math.hypot(v.x, v.y):.1f} m/s"]))


def _log_objects(view: ViewLogger, topic: str, msg) -> None:
    import rerun as rr  # lazy: rerun only where the view runs
    name = "world/" + topic.strip("/").replace("/", "_")
    if not msg.objects:
        view._send(name, rr.Clear(recursive=True))
        return
    xy = view.to_odom(msg.header, np.array([[o.pose.position.x, o.pose.position.y] for o in msg.objects]))
    yaw0 = view.ego_pose[2] if (msg.header.frame_id == view.ego_frame and view.ego_pose) else 0.0
    yaws = [quat_yaw(o.pose.orientation) + yaw0 for o in msg.objects]
    vel = np.array([[o.velocity.x, o.velocity.y] for o in msg.objects]) @ rotation(yaw0).T
    centres = np.column_stack([xy, [max(o.size.z, 0.5) / 2 for o in msg.objects]])
    view._send(name + "/boxes", rr.Boxes3D(
        centers=centres, half_sizes=[[o.size.x / 2, o.size.y / 2, max(o.size.z, 0.5) / 2] for o in msg.objects],
        rotation_axis_angles=[rr.RotationAxisAngle(axis=[0, 0, 1], radians=a) for a in yaws],
        colors=[(230, 120, 30)], labels=[f"{o.id} {o.score:.2f}" for o in msg.objects]))
    view._send(name + "/velocity", rr.Arrows3D(origins=centres, vectors=np.column_stack([vel, np.zeros(len(vel))]),
                                               colors=[(255, 60, 60)]))


def _log_road(view: ViewLogger, topic: str, msg) -> None:
    import rerun as rr  # lazy: rerun only where the view runs
    strips, colours = [], []
    for line in msg.lines:
        pts = view.to_odom(msg.header, np.array([[p.x, p.y] for p in line.points], float).reshape(-1, 2))
        if len(pts) >= 2:
            strips.append(np.column_stack([pts, np.zeros(len(pts))]))
            colours.append(ROAD_COLOURS.get(int(line.line_type), (200, 200, 200)))
    view._send("world/" + topic.strip("/").replace("/", "_"), rr.LineStrips3D(strips, colors=colours or None))


def _pose_strip(view: ViewLogger, header, poses) -> np.ndarray:
    pts = view.to_odom(header, np.array([[p.position.x, p.position.y] for p in poses], float).reshape(-1, 2))
    return np.column_stack([pts, np.full(len(pts), 0.05)])


def _log_trajectory(view: ViewLogger, topic: str, msg) -> None:
    import rerun as rr  # lazy: rerun only where the view runs
    strip = _pose_strip(view, msg.header, [p.pose for p in msg.points])
    view._send("world/" + topic.strip("/").replace("/", "_"),
               rr.LineStrips3D([strip], colors=[(60, 140, 255)], radii=[0.15], labels=[msg.maneuver or "plan"]))


def _log_corridor(view: ViewLogger, topic: str, msg) -> None:
    import rerun as rr  # lazy: rerun only where the view runs
    ref = np.array([[s.reference.x, s.reference.y] for s in msg.slices], float).reshape(-1, 2)
    head = np.array([s.heading for s in msg.slices], float)
    normal = np.column_stack([-np.sin(head), np.cos(head)])
    bounds = []
    for side in ("left_bound", "right_bound"):
        off = np.array([getattr(s, side) for s in msg.slices], float)[:, None]
        pts = view.to_odom(msg.header, ref + normal * off)
        bounds.append(np.column_stack([pts, np.full(len(pts), 0.03)]))
    view._send("world/" + topic.strip("/").replace("/", "_"), rr.LineStrips3D(bounds, colors=[(160, 90, 255)]))


def _log_futures(view: ViewLogger, topic: str, msg) -> None:
    import rerun as rr  # lazy: rerun only where the view runs
    strips, labels = [], []
    for agent in msg.agents:
        for hyp in agent.hypotheses:
            if len(hyp.points) >= 2:
                strips.append(_pose_strip(view, msg.header, [p.pose for p in hyp.points]))
                labels.append(f"{agent.agent_id} {hyp.label} {hyp.probability:.2f}")
    view._send("world/" + topic.strip("/").replace("/", "_"),
               rr.LineStrips3D(strips, colors=[(250, 180, 220)], labels=labels or None))


def _log_grid(view: ViewLogger, topic: str, msg) -> None:
    import rerun as rr  # lazy: rerun only where the view runs
    info = msg.info
    data = np.asarray(msg.data, dtype=np.int8).reshape(info.height, info.width).astype(np.int16)
    # occupancy 0..100 -> brightness, unknown (-1) black; row 0 at the bottom as seen from above
    img = np.flipud(np.clip(data, 0, 100) * 255 // 100).astype(np.uint8)
    view._send("bev/" + topic.strip("/").replace("/", "_"), rr.Image(img))


_HANDLERS = {
    "sensor_msgs/msg/Image": _log_image,
    "nav_msgs/msg/Odometry": _log_odometry,
    "autonomy_interfaces/msg/ObjectArray": _log_objects,
    "autonomy_interfaces/msg/RoadStructure": _log_road,
    "autonomy_interfaces/msg/Trajectory": _log_trajectory,
    "autonomy_interfaces/msg/Corridor": _log_corridor,
    "autonomy_interfaces/msg/AgentFutureArray": _log_futures,
    "nav_msgs/msg/OccupancyGrid": _log_grid,
}
VIEWED_TYPES = tuple(_HANDLERS)


def blueprint(camera_entities):
    """World from above on the left, the cameras in a grid on the right, BEV rasters below."""
    import rerun.blueprint as rrb  # lazy: rerun only where the view runs
    cams = [rrb.Spatial2DView(origin=c, name=c.split("/")[-1]) for c in camera_entities]
    right = rrb.Vertical(rrb.Grid(*cams), rrb.Spatial2DView(origin="bev", name="BEV rasters"),
                         row_shares=[3, 1]) if cams else rrb.Spatial2DView(origin="bev", name="BEV rasters")
    return rrb.Blueprint(rrb.Horizontal(rrb.Spatial3DView(origin="world", name="vector space (odom)"), right,
                                        column_shares=[1, 1]), collapse_panels=True)


def start_server(config: ViewConfig, web_port: int, grpc_port: int, camera_entities, open_browser=False):
    """A recording served over gRPC (bounded by config.memory_limit) and the web viewer on
    web_port connected to it. Returns (recording stream, viewer URL)."""
    import rerun as rr  # lazy: rerun only where the view runs
    rec = rr.RecordingStream("autonomy_stack_view")
    uri = rr.serve_grpc(grpc_port=grpc_port, server_memory_limit=config.memory_limit,
                        default_blueprint=blueprint(camera_entities), recording=rec)
    rr.serve_web_viewer(web_port=web_port, open_browser=open_browser, connect_to=uri)
    return rec, f"http://localhost:{web_port}/?url={uri}"


def log_bag(view: ViewLogger, path, realtime: float = 0.0) -> int:
    """Every viewed message of a bag in log-time order; realtime > 0 paces it (1 = recorded
    speed). Returns the number of messages logged."""
    # lazy: rosbags only when reading bags (start-up time)
    from autonomy_replay.bag import BagReader
    reader = BagReader(path)
    ts = reader.typestore()
    types = {n: t.msgtype for n, t in reader.topics.items()}
    t_first, wall0 = None, time.monotonic()
    for topic, t_ns, data in reader.messages():
        msgtype = types.get(topic)
        if msgtype not in VIEWED_TYPES:
            continue
        if realtime > 0:
            t_first = t_ns if t_first is None else t_first
            time.sleep(max(0.0, (t_ns - t_first) / 1e9 / realtime - (time.monotonic() - wall0)))
        view.log(topic, msgtype, ts.deserialize_cdr(data, msgtype))
    reader.close()
    return view.logged


def bag_camera_entities(path) -> list:
    from autonomy_replay.bag import BagReader  # lazy: rosbags only when reading bags
    reader = BagReader(path)
    names = sorted(_entity(n) for n, t in reader.topics.items() if t.msgtype == "sensor_msgs/msg/Image")
    reader.close()
    return names
