"""Perception node: 8 camera streams + odometry in, the vector space out.

Inputs: /cameras/<cam>/image_rect (virtual cameras; `input: rect`) or /cameras/<cam>/image_raw
+ camera_info + /tf_static (`input: raw`: the node warps each raw image straight into the
network's virtual camera at the network's input size, on the GPU with device=cuda, which
saves the full-resolution rectified copy), and /odom.
Frames are assembled by an approximate time synchroniser (FrameSynchronizer): a camera
that stops arriving is masked and reported, it does not stall the node. One worker thread
runs the network on the newest complete frame; older frames are skipped and counted
(never an unbounded queue).
Outputs (stamp = the input frame's stamp, frame `output_frame`): /perception/objects
(ObjectArray), /perception/road (RoadStructure), /perception/bev/<layer> (OccupancyGrid),
/perception/markers (MarkerArray), /perception/latency (LatencyReport: receive, sync,
convert, upload, network, postprocess, publish) and /diagnostics.
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from autonomy_perception.frame_sync import FrameSynchronizer
from autonomy_stack.ros.node_runtime import StartupError, run_node
from autonomy_stack.params import ParamSpec, declare_parameters
from autonomy_stack.vector_space import transform_vector_space
from autonomy_stack.ros.ros_conversions import (ImageFormatError, image_to_numpy, odometry_to_ego,
                                            stamp_to_sec, sec_to_stamp)
from autonomy_interfaces.msg import LatencyReport, ObjectArray, RoadStructure, StageLatency
from autonomy_perception.nodes.ros_outputs import probability_grid, vector_space_markers
from autonomy_perception.postprocess import PostProcessor
from autonomy_perception.rectification import (CalibrationError, CameraGeometry, Rectifier,
                                               StaticTransformCache, network_input_image)
from autonomy_perception.virtual_camera import VirtualCamera
from autonomy_stack.paths import share_dir
from autonomy_stack.ros.qos import OUTPUTS, SENSOR_IMAGES, STATE
from autonomy_stack.ros.ros_conversions import vector_space_to_msgs

PARAMS = [
    ParamSpec("checkpoint", "", "perception checkpoint (empty: models/perception_tiny.pt of the package)"),
    ParamSpec("device", "cpu", "where the network runs", choices=["cpu", "cuda"]),
    ParamSpec("precision", "fp32", "autocast precision on CUDA", choices=["fp32", "fp16", "bf16"]),
    ParamSpec("compile", False, "torch.compile the static-shape image encoder"),
    ParamSpec("tensorrt", False, "TensorRT for the encoder (needs torch-tensorrt and CUDA)"),
    ParamSpec("video", True, "use the video module (false: single-frame mode)"),
    ParamSpec("input", "rect", "subscribe to rectified images or raw images + camera_info",
              choices=["rect", "raw"]),
    ParamSpec("sync_tolerance_ms", 5.0, "max stamp spread within one frame", min=0.1, max=500.0),
    ParamSpec("dead_camera_timeout_s", 0.5, "a camera silent this long is masked", min=0.05, max=60.0),
    ParamSpec("odom_timeout_s", 0.5, "odometry older than this is treated as missing", min=0.01, max=60.0),
    ParamSpec("output_frame", "base_link", "frame of objects/road: base_link (ego) or odom "
              "(transformed with the latest odometry pose; the planner plans "
              "in odom)", choices=["base_link", "odom"]),
    ParamSpec("score_threshold", 0.5, "objectness that starts an object track (published)",
              min=0.0, max=1.0),
    ParamSpec("keep_threshold", 0.18, "objectness that continues an existing track (hysteresis; "
              "above score_threshold acts as score_threshold)", min=0.0, max=1.0),
    ParamSpec("coast_frames", 3, "frames a missed track is still published at its predicted "
              "position (0: only detections)", min=0, max=50),
    ParamSpec("static_coast_frames", 30, "frames a missed track of a static class (cone, pole, "
              "barrier; seen in 3+ frames) is still published, in odom: the network loses small "
              "static objects close to the car", min=0, max=300),
    ParamSpec("edge_margin_m", 2.0, "m: objects decoded this close to the BEV grid's front or "
              "rear end are dropped (the network piles cars beyond the grid onto its last rows)",
              min=0.0, max=20.0),
    ParamSpec("publish_bev", True, "publish the BEV rasters as OccupancyGrid"),
    ParamSpec("publish_markers", True, "publish RViz markers"),
    ParamSpec("diagnostics_period_s", 1.0, "seconds between /diagnostics", min=0.05, max=60.0),
    ParamSpec("error_throttle_s", 2.0, "min seconds between identical error logs", min=0.0, max=3600.0),
    ParamSpec("torch_threads", 1, "CPU threads of the network (0: torch's default). On a "
              "small CPU shared with the other nodes, 1 avoids OpenMP threads thrashing", min=0, max=256),
    ParamSpec("base_frame", "base_link", "vehicle frame of the camera mountings (input: raw)"),
    ParamSpec("camera_frame_prefix", "camera_", "real camera frame prefix (input: raw)"),
]


def resolve_checkpoint(path: str) -> Path:
    if path:
        return Path(path)
    return share_dir() / "models" / "perception_tiny.pt"


class _CameraInput:
    """Per-camera state: raw-mode rectifier, counters."""

    def __init__(self, name: str, index: int):
        self.name, self.index = name, index
        self.received = 0
        self.dropped = 0
        self.info = None
        self.rectifier = None
        self.calib_key = None
        self.last_error: Optional[str] = None


class PerceptionNode(Node):
    def __init__(self):
        super().__init__("perception")
        p = self.p = declare_parameters(self, PARAMS)

        # lazy: autonomy_perception.inference_engine pulls in torch, tqdm (start-up time)
        from autonomy_perception.inference_engine import EngineError, InferenceEngine
        # lazy: autonomy_perception.network.model pulls in torch, tqdm (start-up time)
        from autonomy_perception.network.model import CheckpointError

        ckpt = resolve_checkpoint(p["checkpoint"])
        if p["torch_threads"] > 0:
            # lazy: torch is heavy and optional here (start-up time)
            import torch
            torch.set_num_threads(p["torch_threads"])
        try:
            self.engine = InferenceEngine.from_checkpoint(
                ckpt, p["device"], p["precision"], p["compile"], p["tensorrt"], video=p["video"])
        except (CheckpointError, EngineError) as exc:
            raise StartupError(f"parameter 'checkpoint'/'device': {exc}") from None
        self.post = PostProcessor.from_node_params(self.engine.config, p)
        self.cameras = self.engine.camera_names
        self.inputs = {c: _CameraInput(c, i) for i, c in enumerate(self.cameras)}
        self.sync = FrameSynchronizer(self.cameras, p["sync_tolerance_ms"] / 1e3,
                                      p["dead_camera_timeout_s"], buffer_size=4)
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.odom = None                 # (EgoState, receive monotonic time)
        self.odom_rejected = 0
        self.frames_processed = 0
        self._last_sent = None           # (stamp, road msg, objects msg) of the last frame
        self.resends_answered = 0
        self.last_latency: Dict[str, float] = {}
        self.last_missing: List[str] = []
        self._last_log: Dict[str, float] = {}
        h, w = self.engine.input_hw
        self.input_hw = (h, w)
        if p["input"] == "raw":
            self._setup_raw_mode()
        topic = "image_rect" if p["input"] == "rect" else "image_raw"
        for c in self.cameras:
            self.create_subscription(Image, f"/cameras/{c}/{topic}",
                                     lambda m, c=c: self._on_image(c, m), SENSOR_IMAGES)
            if p["input"] == "raw":
                self.create_subscription(CameraInfo, f"/cameras/{c}/camera_info",
                                         lambda m, c=c: self._on_info(c, m), STATE)
        self.create_subscription(Odometry, "/odom", self._on_odom, STATE)
        self.pub_objects = self.create_publisher(ObjectArray, "/perception/objects", OUTPUTS)
        self.pub_road = self.create_publisher(RoadStructure, "/perception/road", OUTPUTS)
        self.pub_markers = self.create_publisher(MarkerArray, "/perception/markers", OUTPUTS)
        self.pub_latency = self.create_publisher(LatencyReport, "/perception/latency", OUTPUTS)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        heads = self.engine.config["heads"]
        self.bev_layers = list(heads["segmentation"]["classes"]) if "segmentation" in heads else []
        self.pub_bev = {layer: self.create_publisher(OccupancyGrid, f"/perception/bev/{layer}", OUTPUTS)
                        for layer in self.bev_layers} if p["publish_bev"] else {}
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)
        self._running = True
        self.worker = threading.Thread(target=self._worker, name="perception_worker", daemon=True)
        self.worker.start()
        self.get_logger().info(
            f"perception: {ckpt.name} on {p['device']} ({p['precision']}), input {w}x{h}, "
            f"{len(self.cameras)} cameras from {topic}, video={'on' if self.engine.video else 'off'}")

    # ------------------------------------------------------------------ raw mode
    def _setup_raw_mode(self):

        self.tf_cache = StaticTransformCache()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(TFMessage, "/tf_static", self._on_tf_static, qos)

    def _on_tf_static(self, msg):
        with self.lock:
            for t in msg.transforms:
                tr, q = t.transform.translation, t.transform.rotation
                self.tf_cache.add(t.header.frame_id, t.child_frame_id, (tr.x, tr.y, tr.z),
                                  (q.x, q.y, q.z, q.w))

    def _on_info(self, cam: str, msg):
        self.inputs[cam].info = (int(msg.width), int(msg.height), str(msg.distortion_model),
                                 np.array(msg.k, dtype=np.float64).reshape(3, 3),
                                 np.array(msg.d, dtype=np.float64))

    def _raw_rectifier(self, ci: _CameraInput):
        """Rectifier from this camera's CameraInfo + mounting into the network's virtual
        camera (at the network input size); rebuilt only when the calibration changes."""
        if ci.info is None:
            raise CalibrationError(f"camera {ci.name}: no CameraInfo received yet")
        T = self.tf_cache.lookup(self.p["base_frame"], self.p["camera_frame_prefix"] + ci.name)
        if T is None:
            raise CalibrationError(f"camera {ci.name}: no mounting on /tf_static yet")
        w, h, model, K, D = ci.info
        geom = CameraGeometry(ci.name, w, h, K, D, model, T[:3, :3])
        key = geom.key()
        if ci.rectifier is None:
            vc = self.engine.virtual_cameras[ci.index]     # the network's virtual camera
            K = np.array([[vc.fx, 0.0, vc.cx], [0.0, vc.fy, vc.cy], [0.0, 0.0, 1.0]])
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = vc.R, vc.t
            virtual = VirtualCamera(ci.name, vc.width, vc.height, K, vc.model, T)
            ci.rectifier = Rectifier(virtual, None, device=self.p["device"],
                                     warn=self.get_logger().warning)
        if key != ci.calib_key:
            ci.rectifier.set_calibration(geom)
            ci.calib_key = key
        return ci.rectifier

    # ------------------------------------------------------------------ callbacks
    def _on_image(self, cam: str, msg):
        ci = self.inputs[cam]
        ci.received += 1
        stamp = stamp_to_sec(msg.header.stamp)
        if msg.encoding not in ("bgr8", "rgb8", "mono8"):
            return self._drop(ci, "encoding", f"unsupported encoding '{msg.encoding}' "
                              "(accepted: bgr8, rgb8, mono8)")
        with self.lock:
            accepted = self.sync.add(cam, stamp, msg, time.monotonic())
        if not accepted:
            if self._answer_resend(cam, stamp):
                return
            return self._drop(ci, "stamp", f"stamp {stamp:.3f} is older than the last "
                              "processed frame (out of order or late)")
        self.wake.set()

    def _answer_resend(self, cam: str, stamp: float) -> bool:
        """A lockstep simulator re-sends an unanswered frame with the same stamp (a message
        of ours or of a node after us was lost): publish this frame's objects and road again
        instead of dropping the images as late, once per re-send (on the first camera)."""
        last = self._last_sent
        if last is None or abs(stamp - last[0]) > self.sync.tolerance:
            return False
        if cam == self.cameras[0]:
            self.resends_answered += 1
            self.get_logger().warning(f"frame {stamp:.3f} received again (re-sent): its "
                                      f"objects and road published again "
                                      f"({self.resends_answered} re-sends so far)")
            self.pub_road.publish(last[1])
            self.pub_objects.publish(last[2])
        return True

    def _on_odom(self, msg):
        ego = odometry_to_ego(msg)
        if not all(math.isfinite(v) for v in (ego.speed, ego.yaw_rate, ego.x, ego.y, ego.yaw)):
            self.odom_rejected += 1
            self._log_throttled("odom", "odometry contains NaN/inf; ignored (kinematics "
                                "fall back to zero motion)")
            return
        prev = self.odom
        accel = 0.0
        if prev is not None and ego.stamp > prev[0].stamp:
            accel = (ego.speed - prev[0].speed) / (ego.stamp - prev[0].stamp)
        ego.accel = float(np.clip(accel, -15.0, 15.0))
        self.odom = (ego, time.monotonic())

    def _drop(self, ci: _CameraInput, reason: str, message: str):
        ci.dropped += 1
        ci.last_error = reason
        self._log_throttled(f"{ci.name}:{reason}", f"camera {ci.name}: {message}; frame dropped "
                            f"({ci.dropped} dropped so far)")

    def _log_throttled(self, key: str, message: str):
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= self.p["error_throttle_s"]:
            self._last_log[key] = now
            self.get_logger().error(message)

    # ------------------------------------------------------------------ worker
    def _worker(self):
        while self._running:
            self.wake.wait(timeout=0.1)
            self.wake.clear()
            with self.lock:
                frame = self.sync.pop_newest(time.monotonic())
            if frame is not None:
                try:
                    self._process(frame)
                except Exception as exc:  # a bad frame must never kill the node
                    self._log_throttled("process", f"frame {frame.stamp:.3f} failed: {exc!r}")

    def _kinematics(self):
        if self.odom is None or time.monotonic() - self.odom[1] > self.p["odom_timeout_s"]:
            return (0.0, 0.0, 0.0), False
        e = self.odom[0]
        return (float(e.speed), float(e.accel), float(e.yaw_rate)), True

    def _process(self, frame):
        t_sync = time.perf_counter()
        now_wall = time.time()
        first_rx = min(frame.receive_times.values()) if frame.receive_times else time.monotonic()
        stages = {"receive": 0.0, "sync": max(0.0, (time.monotonic() - first_rx) * 1e3)}
        h, w = self.input_hw
        mask = list(frame.mask)
        for cam, msg in frame.images.items():
            ci = self.inputs[cam]
            if msg is None:
                self.engine.fill_camera(ci.index, None)
                continue
            try:
                img = image_to_numpy(msg)
                if self.p["input"] == "raw":
                    with self.lock:
                        rect = self._raw_rectifier(ci)
                    if img.shape[0] != rect.geometry.height or img.shape[1] != rect.geometry.width:
                        raise ImageFormatError(f"image is {img.shape[1]}x{img.shape[0]}, CameraInfo "
                                               f"says {rect.geometry.width}x{rect.geometry.height}")
                    if (rect.device == "cuda" and self.engine.device.type == "cuda"
                            and msg.encoding in ("bgr8", "rgb8")):
                        # warped on the GPU and left there for the engine: no download and
                        # re-upload per camera (issue 19)
                        self.engine.fill_camera_device(ci.index, rect.rectify_to_device(
                            img, flip_channels=msg.encoding == "bgr8"))
                        continue
                    img = rect.rectify(img)
                self.engine.fill_camera(ci.index, network_input_image(img, msg.encoding, (h, w)))
            except Exception as exc:  # noqa: BLE001 - calibration/format problems of one camera
                self._drop(ci, "convert", str(exc))
                self.engine.fill_camera(ci.index, None)
                mask[ci.index] = False
        stages["convert"] = (time.perf_counter() - t_sync) * 1e3
        kin, odom_ok = self._kinematics()
        result = self.engine.run(mask, kin, frame.stamp)
        stages.update({k: v for k, v in result.stages_ms.items() if k != "download"})
        stages["network"] += result.stages_ms.get("download", 0.0)
        t_post = time.perf_counter()
        # tracking runs in the odom frame when odometry is there, in the ego frame otherwise
        vspace = self.post.process(result.outputs, stamp=frame.stamp, frame_id="base_link",
                                   ego=self.odom[0] if odom_ok else None)
        if self.p["output_frame"] == "odom":
            if not odom_ok:
                self._log_throttled("odom_frame", "output_frame is odom but there is no recent "
                                    "odometry: frame not published")
                return
            e = self.odom[0]
            vspace = transform_vector_space(vspace, e.x, e.y, e.yaw, "odom")
        stages["postprocess"] = (time.perf_counter() - t_post) * 1e3
        t_pub = time.perf_counter()
        self._publish(frame, vspace, result.outputs)
        stages["publish"] = (time.perf_counter() - t_pub) * 1e3
        self.frames_processed += 1
        self.last_missing = [c for c, m in zip(self.cameras, mask) if not m]
        total = (time.time() - frame.stamp) * 1e3 if abs(time.time() - frame.stamp) < 3600 else \
            sum(stages.values())
        self.last_latency = dict(stages, total=total)
        self._publish_latency(frame.stamp, stages, total)
        del now_wall

    def _publish(self, frame, vspace, outputs):
        stamp = sec_to_stamp(frame.stamp)
        objs, road = vector_space_to_msgs(vspace)
        objs.header.stamp = road.header.stamp = stamp
        # road first: planning plans when the objects arrive (trigger: objects) and must
        # have this frame's road by then, not the previous frame's
        self.pub_road.publish(road)
        self.pub_objects.publish(objs)
        self._last_sent = (frame.stamp, road, objs)
        if self.pub_bev and "seg" in outputs:
            grid = self.engine.grid
            for i, layer in enumerate(self.bev_layers):
                self.pub_bev[layer].publish(probability_grid(outputs["seg"][i], grid, "base_link",
                                                             stamp))
        if self.p["publish_markers"]:
            self.pub_markers.publish(vector_space_markers(vspace, stamp))

    def _publish_latency(self, stamp: float, stages: Dict[str, float], total: float):
        m = LatencyReport(node=self.get_fully_qualified_name(), total_ms=float(total),
                          frames_processed=self.frames_processed, frames_skipped=self.sync.skipped)
        m.header.stamp = sec_to_stamp(stamp)
        m.header.frame_id = self.p["output_frame"]
        m.stages = [StageLatency(stage=k, duration_ms=float(v)) for k, v in stages.items()]
        self.pub_latency.publish(m)

    def _publish_diagnostics(self):
        now = time.monotonic()
        with self.lock:
            dead = self.sync.dead_cameras(now) if self.sync.started_at is not None else []
            skipped, ooo = self.sync.skipped, self.sync.out_of_order
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        _, odom_ok = self._kinematics()
        level = DiagnosticStatus.OK
        msgs = []
        if dead:
            level = DiagnosticStatus.WARN
            msgs.append(f"cameras not arriving (masked): {', '.join(dead)}")
        if not odom_ok:
            level = max(level, DiagnosticStatus.WARN)
            msgs.append("no recent odometry (kinematics = 0)")
        st = DiagnosticStatus(name="perception: pipeline", hardware_id="autonomy_stack",
                              level=level, message="; ".join(msgs) or "ok")
        st.values = [KeyValue(key="frames_processed", value=str(self.frames_processed)),
                     KeyValue(key="frames_skipped", value=str(skipped)),
                     KeyValue(key="images_out_of_order", value=str(ooo)),
                     KeyValue(key="odometry_rejected", value=str(self.odom_rejected)),
                     KeyValue(key="dead_cameras", value=",".join(dead)),
                     KeyValue(key="masked_last_frame", value=",".join(self.last_missing))]
        st.values += [KeyValue(key=f"latency_ms.{k}", value=f"{v:.2f}") for k, v in self.last_latency.items()]
        arr.status.append(st)
        for c in self.cameras:
            ci = self.inputs[c]
            cs = DiagnosticStatus(name=f"perception: camera {c}", hardware_id="autonomy_stack")
            cs.level = DiagnosticStatus.WARN if c in dead else DiagnosticStatus.OK
            cs.message = "not arriving (masked)" if c in dead else "ok"
            cs.values = [KeyValue(key="received", value=str(ci.received)),
                         KeyValue(key="dropped", value=str(ci.dropped)),
                         KeyValue(key="last_error", value=ci.last_error or "")]
            arr.status.append(cs)
        self.pub_diag.publish(arr)

    def close(self):
        self._running = False
        self.wake.set()
        self.worker.join(timeout=2.0)


def main(args=None):
    return run_node(PerceptionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
