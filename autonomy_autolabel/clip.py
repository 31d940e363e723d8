"""Run the perception network over a whole recorded clip (no ground truth read).

A clip is a rosbag2 as the simulator and the vehicle record it: /cameras/<cam>/image_raw +
camera_info, /tf_static (camera mountings), /odom. Frames are streamed in log-time order
(memory bounded by one frame of images, not the clip): the images of one stamp are
rectified into the network's virtual cameras the way the deployed graph does it
(`autonomy_replay.perception_agreement.CameraFrames`: the rectification node's Rectifier
from the bag's CameraInfo and /tf_static), and the frame goes through the one inference
wrapper (`InferenceEngine`, video state carried) when the next stamp begins.

Per frame we keep what the labeler needs, all small: the ego pose and kinematics from
/odom, the decoded detections moved into odom (`decode_score`, lower than the car's
operating point: the tracker decides what is real), the online tracker's output at the
node's operating point (the comparison baseline), and the segmentation probabilities
(uint8) handed to a callback (road fusion) instead of being stored.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from autonomy_perception.postprocess import PostProcessor, decode_objects
from autonomy_perception.rectification import network_input_image
from autonomy_replay.bag import BagReader, stamp_ns
from autonomy_replay.bag_data import BagData, quat_yaw
from autonomy_replay.perception_agreement import CameraFrames, kinematics_at
from autonomy_replay.perception_eval import node_params
from autonomy_stack.geometry import from_frame, wrap_angle
from autonomy_stack.ros.ros_conversions import image_to_numpy
from autonomy_stack.vector_space import EgoState, ObjectState

ODOM_TYPE = "nav_msgs/msg/Odometry"
Pose = Tuple[float, float, float]


class ClipError(ValueError):
    """A clip that cannot be labeled (no cameras, no odometry, ...): the message says why."""


@dataclass
class ClipFrame:
    stamp_ns: int
    pose: Pose                                   # ego (x, y, yaw) in odom, from /odom
    kinematics: Tuple[float, float, float]       # speed, accel, yaw rate
    cameras: int                                 # cameras present
    detections: List[ObjectState] = field(default_factory=list)   # odom, score >= decode_score
    online: List[ObjectState] = field(default_factory=list)       # ego frame, node's output
    seg: Optional[np.ndarray] = None   # uint8 [L, H, W] network segmentation, kept for evaluation


@dataclass
class ClipPerception:
    bag: str
    frames: List[ClipFrame]
    camera_names: List[str]
    problems: List[str]
    network_s: float = 0.0

    @property
    def stamps(self) -> np.ndarray:
        return np.array([f.stamp_ns * 1e-9 for f in self.frames])


def to_odom(objs: List[ObjectState], pose: Pose) -> List[ObjectState]:
    """Ego-frame objects -> odom (position, heading; speed is along the heading)."""
    if not objs:
        return []
    xy = from_frame(np.array([[o.x, o.y] for o in objs]), *pose)
    return [replace(o, x=float(p[0]), y=float(p[1]), yaw=float(wrap_angle(o.yaw + pose[2])))
            for o, p in zip(objs, xy)]


class StreamingCameraFrames(CameraFrames):
    """CameraFrames read once front to back: yields (stamp, {camera: RGB at the network
    input}) per camera stamp, in log-time order."""

    def stream(self):
        topics = {f"/cameras/{c}/image_raw": c for c in self.cameras}
        reader = BagReader(self.bag)
        ts = reader.typestore()
        types = {n: t.msgtype for n, t in reader.topics.items()}
        cur, imgs = None, {}
        try:
            for topic, _t, data in reader.messages(topics=[t for t in topics if t in types]):
                msg = ts.deserialize_cdr(data, types[topic])
                s = stamp_ns(msg.header.stamp)
                if cur is not None and s != cur:
                    yield cur, imgs
                    imgs = {}
                cur = s
                rect = self._rectifier(topics[topic])
                if rect is None:
                    continue
                # the perception node's conversion
                imgs[topics[topic]] = network_input_image(rect.rectify(image_to_numpy(msg)),
                                                          msg.encoding, (self.H, self.W))
            if cur is not None:
                yield cur, imgs
        finally:
            reader.close()


def _pose_at(odom: list, stamps: np.ndarray, t_ns: int) -> Optional[Pose]:
    """Pose of the latest /odom at or before t_ns (within 0.2 s), else None."""
    k = int(np.searchsorted(stamps, t_ns, side="right")) - 1
    if k < 0 or t_ns - stamps[k] > 200_000_000:
        return None
    p = odom[k][1].pose.pose
    return float(p.position.x), float(p.position.y), quat_yaw(p.orientation)


def perceive_clip(bag, engine, decode_score: float = 0.2, online_score: Optional[float] = None,
                  on_frame: Optional[Callable[[ClipFrame, Dict[str, np.ndarray]], None]] = None
                  ) -> ClipPerception:
    """Run the network over every camera stamp of `bag` (see the module docstring).
    `on_frame(frame, outputs)` sees the network's rasters of each frame (road fusion).
    Raises ClipError when the bag has no camera images or no /odom."""
    bag = Path(bag)
    meta = BagData(bag, lambda t, mt: mt == ODOM_TYPE)
    odom = sorted(meta.get("/odom"), key=lambda tm: stamp_ns(tm[1].header.stamp))
    if not odom:
        raise ClipError(f"{bag}: no /odom messages: the labels need the ego poses")
    ostamps = np.array([stamp_ns(m.header.stamp) for _, m in odom], dtype=np.int64)
    rect = node_params("rectification")
    cams = StreamingCameraFrames(bag, engine.camera_names, engine.input_hw, rect)
    if all(info is None for info in cams.infos.values()):
        raise ClipError(f"{bag}: no /cameras/<cam>/camera_info of the network's cameras "
                        f"{engine.camera_names}")
    node = node_params("perception")
    thr = float(node.get("score_threshold", 0.3)) if online_score is None else online_score
    online = PostProcessor.from_node_params(engine.config, {**node, "score_threshold": thr})
    det_classes = engine.config["heads"]["detection"]["classes"]
    engine.reset()
    frames: List[ClipFrame] = []
    problems: List[str] = []
    net_s = 0.0
    for s, imgs in cams.stream():
        pose = _pose_at(odom, ostamps, s)
        if pose is None:
            problems.append(f"camera stamp {s * 1e-9:.3f} s: no /odom within 0.2 s before; frame skipped")
            continue
        mask = []
        for i, cam in enumerate(engine.camera_names):
            engine.fill_camera(i, imgs.get(cam))
            mask.append(cam in imgs)
        kin = kinematics_at(odom, s)
        t0 = time.perf_counter()
        res = engine.run(mask, kin, s * 1e-9)
        net_s += time.perf_counter() - t0
        ego = EgoState(pose[0], pose[1], pose[2], kin[0], kin[1], kin[2], stamp=s * 1e-9)
        f = ClipFrame(s, pose, kin, int(sum(mask)),
                      to_odom(decode_objects(res.outputs, engine.grid, det_classes, decode_score), pose),
                      online.process(res.outputs, s * 1e-9, ego=ego).objects)
        frames.append(f)
        if on_frame is not None:
            on_frame(f, res.outputs)
    problems += cams.problems
    if not frames:
        raise ClipError(f"{bag}: no camera frame could be labeled ({'; '.join(problems) or 'no images'})")
    return ClipPerception(str(bag), frames, list(engine.camera_names), problems, net_s)
