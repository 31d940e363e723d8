"""Rectification node: every camera into its virtual common camera.

Per camera <cam> (parameter `cameras`):
  in:  /cameras/<cam>/image_raw, /cameras/<cam>/camera_info (intrinsics + distortion),
       the mounting base_link -> camera_<cam> from /tf_static (or a rig calibration file)
  out: /cameras/<cam>/image_rect (virtual camera, same encoding, same stamp, frame
       virtual_camera_<cam>), /cameras/<cam>/camera_info_rect (zero distortion, virtual K, P)
Also: /tf_static base_link -> virtual_camera_<cam> (the fixed virtual frames),
/diagnostics (per camera rate, received/published/dropped frames, processing time, and
the age of its last image: a camera silent for `camera_silent_warn_s` is WARN, for
`camera_silent_error_s` ERROR, naming the age; ages on the node's clock, so a replay that
holds /clock is not a dead camera).

Warp maps are built once per calibration (rebuilt only when CameraInfo or the mounting
changes). The per-frame path is allocation-free: the input is a zero-copy view of the
message buffer, `cv2.remap` writes straight into the preallocated buffer of a reused
output message. Bad input (wrong encoding, size disagreeing with CameraInfo, no
CameraInfo, NaN calibration, no mounting) -> throttled error naming the camera, the frame
is dropped and counted, the node keeps running.
"""
from __future__ import annotations

import array
import time
from typing import Dict, Optional

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import TransformStamped
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from autonomy_perception.rectification import (SUPPORTED_ENCODINGS, CalibrationError,
                                               CameraGeometry, CameraStats, Rectifier,
                                               StaticTransformCache)
from autonomy_perception.virtual_camera import VirtualCameraError, load_virtual_cameras
from autonomy_stack.ros.node_runtime import StartupError, run_node
from autonomy_stack.params import ParameterError, ParamSpec, declare_parameters
from autonomy_stack.ros.qos import LATCHED, SENSOR_IMAGES
from autonomy_stack.ros.ros_conversions import ImageFormatError, image_to_numpy, rotation_to_quaternion
from autonomy_vehicle.camera_models import load_rig

CAMERA_NAMES = ["main", "narrow", "fisheye", "left_pillar", "right_pillar",
                "left_repeater", "right_repeater", "rear"]

PARAMS = [
    ParamSpec("cameras", list(CAMERA_NAMES), "camera positions to rectify"),
    ParamSpec("virtual_cameras_file", "", "virtual camera YAML (empty: config/virtual_cameras.yaml)"),
    ParamSpec("output_width", 0, "width of the rectified images (0: the virtual camera's "
              "configured width; the field of view is kept)", min=0, max=8192),
    ParamSpec("output_height", 0, "height of the rectified images (0: as configured, or "
              "scaled with output_width)", min=0, max=8192),
    ParamSpec("mounting_source", "tf", "where each camera's mounting comes from: /tf_static "
              "(base_frame -> camera_<cam>) or the rig calibration file",
              choices=["tf", "file"]),
    ParamSpec("calibration_file", "", "rig YAML for mounting_source=file "
              "(empty: config/camera_rig.yaml)"),
    ParamSpec("base_frame", "base_link", "vehicle frame the mountings are expressed in"),
    ParamSpec("camera_frame_prefix", "camera_", "real camera frame = prefix + camera name"),
    ParamSpec("device", "cpu", "warp on the CPU (cv2.remap) or the GPU (torch grid_sample; "
              "falls back to the CPU with a warning without CUDA)", choices=["cpu", "cuda"]),
    ParamSpec("interpolation", "linear", "pixel interpolation", choices=["linear", "nearest"]),
    ParamSpec("cv_threads", 0, "OpenCV worker threads (0: OpenCV's default)", min=0, max=64),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", min=0.05, max=60.0),
    ParamSpec("error_throttle_s", 2.0, "minimum seconds between two identical error logs "
              "for one camera", min=0.0, max=3600.0),
    ParamSpec("camera_silent_warn_s", 1.0, "a camera without an image this long is WARN "
              "in /diagnostics (node clock)", min=0.01, max=3600.0),
    ParamSpec("camera_silent_error_s", 3.0, "... and this long ERROR (a dead camera)",
              min=0.01, max=3600.0),
    ParamSpec("publish_virtual_tf", True, "publish base_frame -> virtual_camera_<cam> on /tf_static"),
]

TF_STATIC_SUB = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                           reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


class _Camera:
    """Everything the node keeps per camera position."""

    def __init__(self, name: str, virtual, rectifier: Rectifier):
        self.name = name
        self.virtual = virtual
        self.rectifier = rectifier
        self.stats = CameraStats()
        self.info_key = None           # quick key of the last CameraInfo
        self.info = None               # (width, height, model, K, D) of the last CameraInfo
        self.dirty = True              # CameraInfo or mounting changed since the maps
        self.tf_version = -1
        self.calib_error: Optional[tuple] = None   # (reason, message) while unusable
        self.outputs: Dict[str, tuple] = {}        # encoding -> (Image msg, numpy view)
        self.info_rect = None
        self.pub_image = None
        self.pub_info = None
        self.dropped_reported = 0
        self.last_image_s: Optional[float] = None   # node-clock time of the last image


class RectificationNode(Node):
    def __init__(self, **kwargs):
        super().__init__("rectification", **kwargs)

        p = declare_parameters(self, PARAMS)
        self.p = p
        if p["camera_silent_error_s"] < p["camera_silent_warn_s"]:
            raise ParameterError("parameter 'camera_silent_error_s': must be >= "
                                 f"camera_silent_warn_s ({p['camera_silent_warn_s']})")
        # silence of a camera that never sent counts from the first diagnostics tick
        # (under use_sim_time: once /clock runs)
        self._silence_origin_s: Optional[float] = None
        if p["cv_threads"] > 0:
            # lazy: OpenCV only on this path (start-up time)
            import cv2
            cv2.setNumThreads(int(p["cv_threads"]))
        try:
            virtuals = load_virtual_cameras(p["virtual_cameras_file"] or None,
                                            width=p["output_width"] or None,
                                            height=p["output_height"] or None)
        except (OSError, VirtualCameraError, KeyError, ValueError) as exc:
            raise StartupError(f"virtual cameras: {exc}") from None
        names = [str(c) for c in p["cameras"]]
        if not names:
            raise ParameterError("parameter 'cameras': empty list")
        unknown = [c for c in names if c not in virtuals]
        if unknown:
            raise ParameterError(f"parameter 'cameras': no virtual camera for {unknown} "
                                 f"(known: {list(virtuals)})")
        self.rig_rotations: Dict[str, np.ndarray] = {}
        if p["mounting_source"] == "file":
            try:
                rig = load_rig(p["calibration_file"] or None)
            except (OSError, KeyError, ValueError) as exc:
                raise StartupError(f"calibration file: {exc}") from None
            missing = [c for c in names if c not in rig]
            if missing:
                raise StartupError(f"calibration file has no mounting for {missing}")
            self.rig_rotations = {c: rig[c].T_base_camera[:3, :3].copy() for c in names}

        self.tf_cache = StaticTransformCache()
        self._last_log: Dict[tuple, float] = {}
        self.cams: Dict[str, _Camera] = {}
        warned = []
        for name in names:
            rect = Rectifier(virtuals[name], device=p["device"],
                             interpolation=p["interpolation"], warn=warned.append)
            cam = _Camera(name, virtuals[name], rect)
            cam.info_rect = self._make_info_rect(CameraInfo, virtuals[name])
            cam.pub_image = self.create_publisher(Image, f"/cameras/{name}/image_rect", SENSOR_IMAGES)
            cam.pub_info = self.create_publisher(CameraInfo, f"/cameras/{name}/camera_info_rect",
                                                 SENSOR_IMAGES)
            self.create_subscription(Image, f"/cameras/{name}/image_raw",
                                     lambda m, c=cam: self._on_image(c, m), SENSOR_IMAGES)
            self.create_subscription(CameraInfo, f"/cameras/{name}/camera_info",
                                     lambda m, c=cam: self._on_info(c, m), SENSOR_IMAGES)
            self.cams[name] = cam
        if warned:
            self.get_logger().warning(warned[0].split(": ", 1)[-1])
        self.device = next(iter(self.cams.values())).rectifier.device

        if p["mounting_source"] == "tf":
            self.create_subscription(TFMessage, "/tf_static", self._on_tf_static, TF_STATIC_SUB)
        self.tf_pub = None
        if p["publish_virtual_tf"]:
            self.tf_pub = self.create_publisher(TFMessage, "/tf_static", LATCHED)
            self.tf_pub.publish(self._virtual_tf(TFMessage))
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_type = DiagnosticArray
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics)
        self.get_logger().info(
            f"rectifying {names} into virtual cameras on {self.device} "
            f"(mounting from {p['mounting_source']})")

    # ------------------------------------------------------------------ setup helpers
    def _make_info_rect(self, CameraInfo, v):
        m = CameraInfo()
        f = v.camera_info_fields()
        m.header.frame_id = v.frame_id
        m.width, m.height = f["width"], f["height"]
        m.distortion_model = f["distortion_model"]
        m.d = f["d"]
        m.k, m.r, m.p = f["k"], f["r"], f["p"]
        return m

    def _virtual_tf(self, TFMessage):
        msg = TFMessage()
        stamp = self.get_clock().now().to_msg()
        for cam in self.cams.values():
            t = TransformStamped()
            t.header.stamp = stamp
            t.header.frame_id = self.p["base_frame"]
            t.child_frame_id = cam.virtual.frame_id
            T = cam.virtual.T_base_virtual
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = \
                (float(x) for x in T[:3, 3])
            t.transform.rotation = rotation_to_quaternion(T[:3, :3])
            msg.transforms.append(t)
        return msg

    # ------------------------------------------------------------------ callbacks
    def _on_tf_static(self, msg):
        for t in msg.transforms:
            tr, q = t.transform.translation, t.transform.rotation
            self.tf_cache.add(t.header.frame_id, t.child_frame_id, (tr.x, tr.y, tr.z),
                              (q.x, q.y, q.z, q.w))

    def _on_info(self, cam: _Camera, msg):
        # cheap per-frame check; the maps are rebuilt lazily (next image) only on change
        key = (msg.width, msg.height, msg.distortion_model, msg.k.tobytes(), bytes(msg.d))
        if key != cam.info_key:
            cam.info_key = key
            cam.info = (int(msg.width), int(msg.height), str(msg.distortion_model),
                        np.array(msg.k, dtype=np.float64).reshape(3, 3),
                        np.array(msg.d, dtype=np.float64))
            cam.dirty = True

    def _on_image(self, cam: _Camera, msg):
        cam.last_image_s = self.get_clock().now().nanoseconds * 1e-9
        out = self.process_image(cam, msg)
        if out is not None:
            cam.pub_image.publish(out[0])
            cam.pub_info.publish(out[1])

    # ------------------------------------------------------------------ per-frame path
    def process_image(self, cam: _Camera, msg):
        """Image message in -> (rectified Image, CameraInfo) out, or None (dropped).

        The returned messages are reused for the next frame of this camera (publish
        them before the next call)."""
        t0 = time.perf_counter()
        stats = cam.stats
        stats.frame_in()
        enc = msg.encoding
        if enc not in SUPPORTED_ENCODINGS:
            return self._drop(cam, "encoding", f"unsupported encoding '{enc}' "
                              f"(accepted: {', '.join(SUPPORTED_ENCODINGS)})")
        if cam.info is None:
            return self._drop(cam, "no_camera_info",
                              f"no CameraInfo received on /cameras/{cam.name}/camera_info yet")
        if cam.dirty or self.tf_cache.version != cam.tf_version:
            self._update_calibration(cam)
        if cam.calib_error is not None:
            return self._drop(cam, *cam.calib_error)
        g = cam.rectifier.geometry
        if msg.width != g.width or msg.height != g.height:
            return self._drop(cam, "size", f"image is {msg.width}x{msg.height} but CameraInfo "
                              f"says {g.width}x{g.height}")
        try:
            img = image_to_numpy(msg)
        except ImageFormatError as exc:
            return self._drop(cam, "format", f"malformed image: {exc}")
        out = cam.outputs.get(enc)
        if out is None:
            out = cam.outputs[enc] = self._make_output(cam, enc)
        out_msg, view = out
        if cam.rectifier.rectify(img, view) is not view:   # never expected; stay correct
            view[...] = cam.rectifier.rectify(img)
        stamp = msg.header.stamp
        out_msg.header.stamp = stamp
        info = cam.info_rect
        info.header.stamp = stamp
        stats.frame_out(time.monotonic(), time.perf_counter() - t0)
        return out_msg, info

    def _make_output(self, cam: _Camera, enc: str):
        dtype, ch = SUPPORTED_ENCODINGS[enc]
        v = cam.virtual
        itemsize = np.dtype(dtype).itemsize
        m = Image()
        m.header.frame_id = v.frame_id
        m.height, m.width, m.encoding, m.is_bigendian = v.height, v.width, enc, 0
        m.step = v.width * ch * itemsize
        m.data = array.array("B", bytes(v.width * v.height * ch * itemsize))
        # the setter may copy (it does when field checks are off): view what it stored
        shape = (v.height, v.width, ch) if ch > 1 else (v.height, v.width)
        view = np.frombuffer(m.data, dtype=dtype).reshape(shape)   # writable view
        return m, view

    def _mounting(self, cam: _Camera) -> Optional[np.ndarray]:
        if self.p["mounting_source"] == "file":
            return self.rig_rotations[cam.name]
        T = self.tf_cache.lookup(self.p["base_frame"], self.p["camera_frame_prefix"] + cam.name)
        return None if T is None else T[:3, :3]

    def _update_calibration(self, cam: _Camera):
        cam.tf_version = self.tf_cache.version
        R = self._mounting(cam)
        if R is None:
            cam.calib_error = ("no_mounting", f"no mounting {self.p['base_frame']} -> "
                               f"{self.p['camera_frame_prefix']}{cam.name} on /tf_static yet")
            return
        w, h, model, K, D = cam.info
        geom = CameraGeometry(cam.name, w, h, K, D, model, R)
        try:
            if cam.rectifier.set_calibration(geom):
                cam.stats.map_builds += 1
                self.get_logger().info(
                    f"camera {cam.name}: warp maps built for {w}x{h} {model} -> "
                    f"virtual {cam.virtual.width}x{cam.virtual.height} ({cam.rectifier.device})")
        except CalibrationError as exc:
            reason = "nan_calibration" if "NaN" in str(exc) else "bad_calibration"
            cam.calib_error = (reason, f"unusable calibration: {exc}")
            return
        cam.calib_error = None
        cam.dirty = False

    def _drop(self, cam: _Camera, reason: str, message: str):
        cam.stats.drop(reason, message)
        now = time.monotonic()
        key = (cam.name, reason)
        last = self._last_log.get(key)
        if last is None or now - last >= self.p["error_throttle_s"]:
            self._last_log[key] = now
            self.get_logger().error(f"camera {cam.name}: {message}; frame dropped "
                                    f"({cam.stats.dropped} dropped so far)")
        return None

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self):
        now = time.monotonic()
        clock_s = self.get_clock().now().nanoseconds * 1e-9
        if self._silence_origin_s is None or clock_s < self._silence_origin_s:
            self._silence_origin_s = clock_s        # first tick, or the clock jumped back
        arr = self._diag_type()
        arr.header.stamp = self.get_clock().now().to_msg()
        for cam in self.cams.values():
            s = cam.stats
            rate = s.rate(now)
            mean, mx = s.take_processing()
            new_drops = s.dropped - cam.dropped_reported
            cam.dropped_reported = s.dropped
            st = DiagnosticStatus()
            st.name = f"rectification: {cam.name}"
            st.hardware_id = f"camera_{cam.name}"
            if new_drops:
                st.level = DiagnosticStatus.WARN if s.published else DiagnosticStatus.ERROR
                st.message = f"{new_drops} frames dropped: {s.last_error}"
            elif s.received == 0:
                st.level, st.message = DiagnosticStatus.WARN, "no images received"
            else:
                st.level, st.message = DiagnosticStatus.OK, "rectifying"
            age = self._silence(cam, st, clock_s)
            values = {"rate_hz": f"{rate:.2f}", "received": str(s.received),
                      "published": str(s.published), "dropped": str(s.dropped),
                      "processing_ms_mean": f"{mean * 1e3:.3f}",
                      "processing_ms_max": f"{mx * 1e3:.3f}",
                      "device": cam.rectifier.device, "map_builds": str(s.map_builds),
                      "image_age_s": f"{age:.2f}"}
            for reason, n in sorted(s.drop_reasons.items()):
                values[f"dropped_{reason}"] = str(n)
            if s.last_error:
                values["last_error"] = s.last_error
            st.values = [KeyValue(key=k, value=v) for k, v in values.items()]
            arr.status.append(st)
        self.diag_pub.publish(arr)

    def _silence(self, cam: _Camera, st, clock_s: float) -> float:
        """Seconds since the camera's last image (since the first tick if none yet);
        raises `st` to WARN/ERROR past the silence limits, naming the age."""
        if cam.last_image_s is not None and cam.last_image_s > clock_s:
            cam.last_image_s = clock_s                 # the clock jumped back (replay loop)
        since = cam.last_image_s if cam.last_image_s is not None else self._silence_origin_s
        age = max(0.0, clock_s - since)
        what = "no image" if cam.last_image_s is not None else "no image ever"
        for limit, level in ((self.p["camera_silent_error_s"], DiagnosticStatus.ERROR),
                             (self.p["camera_silent_warn_s"], DiagnosticStatus.WARN)):
            if age > limit:
                if st.level < level:
                    st.level = level
                    st.message = f"camera silent: {what} for {age:.1f} s (0 Hz; limit " \
                                 f"{limit:g} s)" + (f"; {st.message}" if st.message else "")
                break
        return age


def main(args=None):
    return run_node(RectificationNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
