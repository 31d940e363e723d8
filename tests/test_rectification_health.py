"""A dead camera is not OK: the rectification node reports a camera without images for
longer than camera_silent_warn_s as WARN and camera_silent_error_s as ERROR, with its age,
in /diagnostics; a camera that never sent is ERROR too; images again -> OK."""
import time

import numpy as np
import pytest
from ros_helpers import spin_until, start_node, stop, wait_for_subscribers
from test_rectification_node import _info_msg, _tf_msg

W, H = 160, 120
LIVE, DEAD = "left_repeater", "rear"       # one camera that sends then dies, one never


def _status(diags, cam):
    for arr in reversed(diags):
        for s in arr.status:
            if s.name == f"rectification: {cam}":
                return s.level[0], s.message, {kv.key: kv.value for kv in s.values}
    return None


@pytest.mark.timeout(90)
def test_a_silent_camera_turns_warn_then_error_with_its_age():
    import rclpy
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image
    from tf2_msgs.msg import TFMessage
    from autonomy_stack.ros.qos import LATCHED, SENSOR_IMAGES
    from autonomy_stack.ros.ros_conversions import numpy_to_image
    from autonomy_vehicle.camera_models import load_rig
    rig = load_rig(width=W, height=H)
    proc = start_node("rectification_node", name="rectification_health",
                      params_files=["rectification.yaml"],
                      params={"cameras": f"[{LIVE},{DEAD}]", "output_width": W,
                              "output_height": H, "diagnostics_period": 0.2,
                              "camera_silent_warn_s": 0.6, "camera_silent_error_s": 1.5})
    rclpy.init()
    node = rclpy.create_node("rectification_health_probe")
    diags = []
    try:
        node.create_publisher(TFMessage, "/tf_static", LATCHED).publish(
            _tf_msg({LIVE: rig[LIVE]}))
        img_pub = node.create_publisher(Image, f"/cameras/{LIVE}/image_raw", SENSOR_IMAGES)
        info_pub = node.create_publisher(CameraInfo, f"/cameras/{LIVE}/camera_info",
                                         SENSOR_IMAGES)
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
        assert wait_for_subscribers(node, img_pub, 30), stop(proc)
        raw = np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8)

        def send_until(predicate, timeout):
            """10 Hz frames of the live camera until predicate()."""
            deadline, sec = time.monotonic() + timeout, 1
            while time.monotonic() < deadline:
                stamp = Time(sec=sec)
                info_pub.publish(_info_msg(rig[LIVE], stamp))
                img_pub.publish(numpy_to_image(raw, "rgb8", stamp=stamp,
                                               frame_id=f"camera_{LIVE}"))
                sec += 1
                if spin_until(node, predicate, 0.1):
                    return True
            return False

        def level(cam):
            st = _status(diags, cam)
            return None if st is None else st[0]
        # live and rectifying: OK; the never-sending camera turns ERROR meanwhile
        assert send_until(lambda: level(LIVE) == 0 and level(DEAD) == 2, 20), \
            (_status(diags, LIVE), _status(diags, DEAD))
        lv, msg, vals = _status(diags, DEAD)
        assert msg.startswith("camera silent: no image ever for ") and "limit 1.5 s" in msg
        assert float(vals["image_age_s"]) > 1.5
        # the live camera dies: WARN with its age, then ERROR
        n = len(diags)
        assert spin_until(node, lambda: level(LIVE) == 2, 10), _status(diags, LIVE)
        seen = [_status(diags[n:i + 1], LIVE) for i in range(n, len(diags))]
        seen = [s for s in seen if s is not None]
        warns = [s for s in seen if s[0] == 1]
        assert warns and "camera silent: no image for " in warns[0][1] \
            and "limit 0.6 s" in warns[0][1]
        assert 0.6 < float(warns[0][2]["image_age_s"]) <= 1.5
        lv, msg, vals = _status(diags, LIVE)
        assert "camera silent: no image for " in msg and "(0 Hz; limit 1.5 s)" in msg
        assert float(vals["image_age_s"]) > 1.5
        # back to life: OK again
        assert send_until(lambda: level(LIVE) == 0, 10), _status(diags, LIVE)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        out = stop(proc)
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
