"""The rectification node over DDS: images in, rectified images out, stamps preserved,
bad input (wrong encoding, size disagreeing with CameraInfo, missing CameraInfo, NaN
calibration) dropped, counted in /diagnostics, and the node keeps running."""
import time

import numpy as np
import pytest
from ros_helpers import spin_until, start_node, stop, wait_for_subscribers

W, H = 320, 240
CAMS = ["left_repeater", "rear", "main"]   # good / no CameraInfo / NaN calibration


def _info_msg(cal, stamp):
    from sensor_msgs.msg import CameraInfo
    m = CameraInfo()
    m.header.stamp = stamp
    m.header.frame_id = f"camera_{cal.name}"
    m.width, m.height = cal.width, cal.height
    m.distortion_model = cal.distortion_model
    m.k = [float(x) for x in cal.K.reshape(9)]
    m.d = [float(x) for x in cal.D]
    return m


def _tf_msg(rig):
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
    from autonomy_stack.ros.ros_conversions import rotation_to_quaternion
    msg = TFMessage()
    for name, cal in rig.items():
        t = TransformStamped()
        t.header.frame_id = "base_link"
        t.child_frame_id = f"camera_{name}"
        x, y, z = (float(v) for v in cal.T_base_camera[:3, 3])
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = x, y, z
        t.transform.rotation = rotation_to_quaternion(cal.T_base_camera[:3, :3])
        msg.transforms.append(t)
    return msg


class _RectDriver:
    """The test's side of the rectification node: TF mounting, raw image + CameraInfo
    publishers, subscriptions to one camera's rectified outputs, diagnostics and /tf_static."""

    def __init__(self, node, rig):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CameraInfo, Image
        from tf2_msgs.msg import TFMessage

        from autonomy_stack.ros.qos import LATCHED, SENSOR_IMAGES
        self.node = node
        self.tf_pub = node.create_publisher(TFMessage, "/tf_static", LATCHED)
        self.tf_pub.publish(_tf_msg(rig))
        self.img_pub = {c: node.create_publisher(Image, f"/cameras/{c}/image_raw", SENSOR_IMAGES)
                        for c in CAMS}
        self.info_pub = {c: node.create_publisher(CameraInfo, f"/cameras/{c}/camera_info",
                                                  SENSOR_IMAGES) for c in CAMS}
        self.rect, self.rect_info, self.diags, self.virtual_tf = [], [], [], []
        node.create_subscription(Image, "/cameras/left_repeater/image_rect",
                                 lambda m: self.rect.append(m), SENSOR_IMAGES)
        node.create_subscription(CameraInfo, "/cameras/left_repeater/camera_info_rect",
                                 lambda m: self.rect_info.append(m), SENSOR_IMAGES)
        node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.diags.append(m), 10)
        node.create_subscription(TFMessage, "/tf_static", lambda m: self.virtual_tf.append(m), LATCHED)

    def wait_subscribed(self):
        for c in CAMS:
            assert wait_for_subscribers(self.node, self.img_pub[c], 20.0), f"node never subscribed ({c})"
            assert wait_for_subscribers(self.node, self.info_pub[c], 10.0)

    def send(self, cam, img, encoding, sec, info_cal=None):
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import Image

        from autonomy_stack.ros.ros_conversions import numpy_to_image
        stamp = Time(sec=sec, nanosec=123)
        if info_cal is not None:
            self.info_pub[cam].publish(_info_msg(info_cal, stamp))
            spin_until(self.node, lambda: False, 0.05)
        if encoding == "yuv422":        # not an encoding numpy_to_image writes
            msg = Image()
            msg.header.stamp, msg.header.frame_id = stamp, f"camera_{cam}"
            msg.height, msg.width, msg.encoding, msg.step = H, W, "yuv422", 2 * W
            msg.data = bytes(2 * W * H)
        else:
            msg = numpy_to_image(img, encoding, stamp=stamp, frame_id=f"camera_{cam}")
        self.img_pub[cam].publish(msg)
        spin_until(self.node, lambda: False, 0.1)

    def counts(self):
        if not self.diags:
            return {}
        return {s.name: {kv.key: kv.value for kv in s.values} for s in self.diags[-1].status}


def _send_frames_with_bad_input(drv, raw, good, nan_cal, proc):
    """Warm up until the node answers, then 5 good frames interleaved with bad input and one
    mono16 frame; returns the seconds of the good frames."""
    sec = 1
    deadline = time.monotonic() + 30
    while not drv.rect and time.monotonic() < deadline:
        drv.send("left_repeater", raw, "bgr8", sec, good)
        sec += 1
        spin_until(drv.node, lambda: bool(drv.rect), 0.3)
    assert drv.rect, "no rectified image from the node:\n" + stop(proc)
    sent = []
    for i in range(5):
        sec += 1
        drv.send("left_repeater", raw, "bgr8", sec, good)
        sent.append(sec)
        if i == 1:
            drv.send("left_repeater", raw, "yuv422", 9000)                      # wrong encoding
            drv.send("left_repeater", raw[: H // 2, : W // 2].copy(), "bgr8", 9001, good)  # size
            drv.send("rear", raw, "bgr8", 9002)                                 # no CameraInfo
            drv.send("main", raw, "bgr8", 9003, nan_cal)                        # NaN calibration
    sec += 1
    mono12 = ((raw[..., 1].astype(np.uint16) << 4) | 7)
    drv.send("left_repeater", mono12, "mono16", sec, good)
    sent.append(sec)
    return sent, mono12


def _check_rectified_outputs(drv, sent, raw, mono12, good, v):
    """Stamps preserved, virtual frame, content = the core's warp of the same calibration."""
    from autonomy_perception.rectification import rectify_image
    from autonomy_stack.ros.ros_conversions import image_to_numpy
    rect = drv.rect
    assert spin_until(drv.node, lambda: {m.header.stamp.sec for m in rect} >= set(sent), 15.0), \
        f"missing rectified frames {set(sent) - {m.header.stamp.sec for m in rect}}"
    by_sec = {m.header.stamp.sec: m for m in rect}
    assert not {9000, 9001} & set(by_sec)
    ref = rectify_image(raw, good, v)
    for s in sent[:-1]:
        m = by_sec[s]
        assert m.header.stamp.nanosec == 123 and m.header.frame_id == "virtual_camera_left_repeater"
        assert (m.width, m.height, m.encoding) == (W, H, "bgr8")
        out = image_to_numpy(m)
        assert np.abs(out.astype(float) - ref).mean() < 0.2
    m16 = by_sec[sent[-1]]
    assert m16.encoding == "mono16"
    out16 = image_to_numpy(m16)
    ref16 = rectify_image(mono12, good, v)
    assert out16.max() <= 4095 and np.abs(out16.astype(float) - ref16).mean() < 4.0
    assert spin_until(drv.node, lambda: {i.header.stamp.sec for i in drv.rect_info} >= set(sent), 5.0)
    info = next(i for i in drv.rect_info if i.header.stamp.sec == sent[0])
    assert info.header.frame_id == "virtual_camera_left_repeater"
    assert not any(info.d) and np.allclose(np.array(info.k).reshape(3, 3), v.K)
    assert np.allclose(np.array(info.p).reshape(3, 4)[:, :3], v.K)
    # the virtual frames are on /tf_static
    assert spin_until(drv.node, lambda: any(t.child_frame_id == "virtual_camera_rear"
                                            for m in drv.virtual_tf for t in m.transforms), 5.0)


def _check_diagnostics_count_bad_frames(drv, sent):
    def ok():
        c = drv.counts()
        lr = c.get("rectification: left_repeater", {})
        return (int(lr.get("dropped_encoding", 0)) >= 1 and int(lr.get("dropped_size", 0)) >= 1
                and int(c.get("rectification: rear", {}).get("dropped_no_camera_info", 0)) >= 1
                and int(c.get("rectification: main", {}).get("dropped_nan_calibration", 0)) >= 1
                and int(lr.get("published", 0)) >= len(sent))
    assert spin_until(drv.node, ok, 10.0), drv.counts()
    lr = drv.counts()["rectification: left_repeater"]
    assert float(lr["processing_ms_mean"]) >= 0.0 and "rate_hz" in lr


@pytest.mark.timeout(90)
def test_rectification_node_over_dds():
    import cv2
    import rclpy

    from autonomy_perception.virtual_camera import load_virtual_cameras
    from autonomy_vehicle.camera_models import load_rig, sample_mounting_error

    virtuals = load_virtual_cameras(width=W, height=H)
    rig = sample_mounting_error(load_rig(width=W, height=H), np.random.default_rng(7))
    rig = {c: rig[c] for c in CAMS}
    proc = start_node("rectification_node", name="rectification",
                      params_files=["rectification.yaml"],
                      params={"cameras": "[" + ",".join(CAMS) + "]",
                              "output_width": W, "output_height": H,
                              "diagnostics_period": 0.3, "error_throttle_s": 0.5})
    rclpy.init()
    node = rclpy.create_node("test_rectification_client")
    try:
        drv = _RectDriver(node, rig)
        drv.wait_subscribed()
        rng = np.random.default_rng(3)
        small = rng.integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8)
        raw = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
        good = rig["left_repeater"]
        nan_cal = rig["main"].copy()
        nan_cal.K[0, 2] = float("nan")
        sent, mono12 = _send_frames_with_bad_input(drv, raw, good, nan_cal, proc)
        _check_rectified_outputs(drv, sent, raw, mono12, good, virtuals["left_repeater"])
        _check_diagnostics_count_bad_frames(drv, sent)
        assert proc.poll() is None, "node died on bad input"
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        out = stop(proc)
    for cam in ("left_repeater", "rear", "main"):
        assert f"camera {cam}:" in out, out
    assert "unsupported encoding 'yuv422'" in out
    assert "NaN" in out and "no CameraInfo" in out
    assert "Traceback" not in out, out


def test_in_process_path_file_mounting_and_calibration_change():
    """The per-frame path without DDS (what the bench times): mounting from the rig file,
    maps rebuilt only when CameraInfo changes, output buffer reused."""
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.parameter import Parameter

    from autonomy_vehicle.camera_models import load_rig
    from autonomy_perception.rectification import rectify_image
    from autonomy_perception.nodes.rectification_node import RectificationNode
    from autonomy_perception.virtual_camera import load_virtual_cameras
    from autonomy_stack.ros.ros_conversions import image_to_numpy, numpy_to_image

    rig = load_rig(width=W, height=H)
    v = load_virtual_cameras()["right_repeater"]
    rclpy.init()
    try:
        node = RectificationNode(parameter_overrides=[
            Parameter("cameras", value=["right_repeater"]),
            Parameter("mounting_source", value="file"),
            Parameter("publish_virtual_tf", value=False)])
        cam = node.cams["right_repeater"]
        img = np.random.default_rng(0).integers(0, 255, (H, W), dtype=np.uint8)
        msg = numpy_to_image(img, "mono8", stamp=Time(sec=5, nanosec=6))
        assert node.process_image(cam, msg) is None            # no CameraInfo yet
        assert cam.stats.drop_reasons == {"no_camera_info": 1}
        node._on_info(cam, _info_msg(rig["right_repeater"], msg.header.stamp))
        out1, info1 = node.process_image(cam, msg)
        assert (out1.width, out1.height) == (v.width, v.height)
        assert out1.header.stamp.sec == 5 and out1.header.stamp.nanosec == 6
        ref = rectify_image(img, rig["right_repeater"], v)
        assert np.array_equal(image_to_numpy(out1), ref)
        node._on_info(cam, _info_msg(rig["right_repeater"], msg.header.stamp))   # same calib
        out2, _ = node.process_image(cam, msg)
        assert out2 is out1 and cam.rectifier.map_builds == 1  # reused, not rebuilt
        changed = rig["right_repeater"].copy()
        changed.K[0, 0] *= 1.01
        node._on_info(cam, _info_msg(changed, msg.header.stamp))
        node.process_image(cam, msg)
        assert cam.rectifier.map_builds == 2
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


@pytest.mark.parametrize("params,word", [({"device": "gpu"}, "device"),
                                         ({"cameras": "[main,roof]"}, "cameras")])
def test_bad_parameters_exit_2(params, word):
    proc = start_node("rectification_node", params_files=["rectification.yaml"], params=params)
    try:
        proc.wait(timeout=30)
    finally:
        out = stop(proc)
    assert proc.returncode == 2, out
    assert f"'{word}'" in out, out


def test_cuda_device_parameter_falls_back_or_agrees():
    """device:=cuda uses the GPU when there is one, else warns and runs on the CPU; either
    way the output agrees with the CPU warp within 1 grey level on average."""
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.parameter import Parameter

    from autonomy_vehicle.camera_models import load_rig
    from autonomy_perception.rectification import cuda_available, rectify_image
    from autonomy_perception.nodes.rectification_node import RectificationNode
    from autonomy_perception.virtual_camera import load_virtual_cameras
    from autonomy_stack.ros.ros_conversions import image_to_numpy, numpy_to_image

    cal = load_rig(width=W, height=H)["left_pillar"]
    v = load_virtual_cameras()["left_pillar"]
    rclpy.init()
    try:
        node = RectificationNode(parameter_overrides=[
            Parameter("cameras", value=["left_pillar"]), Parameter("device", value="cuda"),
            Parameter("mounting_source", value="file"),
            Parameter("publish_virtual_tf", value=False)])
        cam = node.cams["left_pillar"]
        assert cam.rectifier.device == ("cuda" if cuda_available() else "cpu")
        small = np.random.default_rng(1).integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8)
        import cv2
        img = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
        msg = numpy_to_image(img, "rgb8", stamp=Time(sec=1))
        node._on_info(cam, _info_msg(cal, msg.header.stamp))
        out, _ = node.process_image(cam, msg)
        diff = np.abs(image_to_numpy(out).astype(float) - rectify_image(img, cal, v))
        assert diff.mean() < 1.0
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
