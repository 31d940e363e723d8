"""Live browser view (issue 19): the message -> Rerun core on asymmetric fixtures, and the
real thing -- `autonomy-stack view` on a short recorded bag, opened in headless Chromium,
screenshot checked for a rendered scene (camera images and the green ego in the viewport),
not Rerun's loading screen or an error page."""
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest

rr = pytest.importorskip("rerun")
from autonomy_tools import live_view  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _header(t, frame="odom"):
    return NS(stamp=NS(sec=int(t), nanosec=int((t % 1) * 1e9)), frame_id=frame)


def _odom(t, x, y, yaw):
    q = NS(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))
    return NS(header=_header(t), child_frame_id="base_link",
              pose=NS(pose=NS(position=NS(x=x, y=y, z=0.0), orientation=q)),
              twist=NS(twist=NS(linear=NS(x=3.0, y=0.0, z=0.0))))


def test_image_array_bgr_to_rgb_and_row_padding():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[0, 2] = (255, 0, 0)                                   # blue, top right
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = bgr.reshape(2, 9)
    msg = NS(encoding="bgr8", height=2, width=3, step=12, data=padded.tobytes())
    rgb = live_view.image_array(msg)
    assert rgb.shape == (2, 3, 3) and tuple(rgb[0, 2]) == (0, 0, 255)


def test_ego_frame_objects_move_into_odom_with_the_ego_pose():
    view = live_view.ViewLogger(rr.RecordingStream("test_live_view"))
    view.log("/odom", "nav_msgs/msg/Odometry", _odom(1.0, 10.0, 5.0, math.pi / 2))  # facing +y
    # an object 4 m ahead, 2 m left of the ego, in base_link -> odom (10 - 2, 5 + 4)
    pts = view.to_odom(_header(1.0, "base_link"), np.array([[4.0, 2.0]]))
    np.testing.assert_allclose(pts, [[8.0, 9.0]], atol=1e-9)
    assert view.to_odom(_header(1.0, "odom"), np.array([[4.0, 2.0]])).tolist() == [[4.0, 2.0]]


def test_rate_is_bounded_per_topic():
    view = live_view.ViewLogger(rr.RecordingStream("test_live_view_rate"), live_view.ViewConfig(max_rate_hz=10))
    logged = [view.log("/odom", "nav_msgs/msg/Odometry", _odom(0.02 * i, 0.0, 0.0, 0.0)) for i in range(50)]
    assert sum(logged) == 10 and view.skipped == 40          # 1 s of 50 Hz odometry at 10 Hz
    assert not view.log("/x", "std_msgs/msg/String", NS(header=_header(0), data="a"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scene_rendered(png: bytes) -> bool:
    """Colourful pixels (camera images, the green ego) cover part of the page: Rerun's loading
    screen and an error page are grey/white text on a dark background."""
    import cv2
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return False
    spread = img.max(axis=2).astype(int) - img.min(axis=2).astype(int)
    return float((spread > 60).mean()) > 0.02 and float(img.std()) > 20


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                    reason="no /usr/bin/chromium (tools/setup_env.sh installs Debian's chromium)")
@pytest.mark.timeout(150)
def test_view_renders_a_recorded_bag_in_headless_chromium(tmp_path):
    from autonomy_replay.synthetic import write_synthetic_bag
    from helpers.headless_browser import HeadlessChromium, wait_for
    bag = write_synthetic_bag(tmp_path / "bag", duration=1.0, image_size=(160, 120),
                              bev_layers=("drivable", "lane_lines"))
    web, grpc = _free_port(), _free_port()
    view = subprocess.Popen([sys.executable, "-m", "autonomy_tools.view_command", str(bag), "--web-port", str(web),
                             "--grpc-port", str(grpc), "--serve-seconds", "120", "--image-scale", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for line in view.stdout:
            if line.startswith("view: http"):
                url = line.split("view: ", 1)[1].strip()
            if line.startswith("view: logged"):
                break
        assert url, "the view printed no URL"
        with HeadlessChromium(str(tmp_path / "chromium"), url.replace("url=rerun+", "url=rerun%2B")) as browser:
            png = wait_for(scene_rendered, browser, limit_s=90)
        (tmp_path / "view.png").write_bytes(png)
        if os.environ.get("LIVE_VIEW_SCREENSHOT"):
            Path(os.environ["LIVE_VIEW_SCREENSHOT"]).write_bytes(png)
        assert scene_rendered(png), f"no scene rendered (screenshot {tmp_path / 'view.png'})"
    finally:
        view.terminate()
        view.wait(timeout=20)


@pytest.mark.timeout(60)
def test_live_view_discovers_and_logs_the_stacks_topics():
    """`view --live`: topics of viewed types are found and subscribed (best effort, so a
    reliable publisher is matched and never waits on the view); other types are left alone."""
    rclpy = pytest.importorskip("rclpy")
    from nav_msgs.msg import Odometry
    from std_msgs.msg import String

    from autonomy_stack.ros.qos import STATE
    from autonomy_tools.live_view_ros import LiveSubscriber
    rclpy.init()
    try:
        pub_node, view_node = rclpy.create_node("fake_stack"), rclpy.create_node("live_view_test")
        odom_pub = pub_node.create_publisher(Odometry, "/odom", STATE)
        pub_node.create_publisher(String, "/chatter", STATE)
        view = live_view.ViewLogger(rr.RecordingStream("test_live_view_ros"), live_view.ViewConfig(max_rate_hz=0))
        live = None
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(pub_node)
        executor.add_node(view_node)
        end, k = time.monotonic() + 30, 0
        while time.monotonic() < end and view.logged < 3:
            if live is None or "/odom" not in live.subs:
                live = live or LiveSubscriber(view_node, view)
                live.discover()
            msg = Odometry()
            msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
            msg.header.stamp.sec, msg.pose.pose.position.x, msg.pose.pose.orientation.w = k, 1.0 * k, 1.0
            odom_pub.publish(msg)
            k += 1
            executor.spin_once(timeout_sec=0.1)
        assert view.logged >= 3 and "/chatter" not in live.subs
        assert view.ego_pose[0] > 0 and live.errors == 0
    finally:
        rclpy.shutdown()


def test_raw_images_are_decoded_only_when_due():
    """Live images arrive serialised; the rate limit is applied to the stamp in the CDR."""
    pytest.importorskip("rclpy")
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from autonomy_tools.live_view_ros import LiveSubscriber
    view = live_view.ViewLogger(rr.RecordingStream("test_live_view_raw"), live_view.ViewConfig(max_rate_hz=2))
    live = LiveSubscriber.__new__(LiveSubscriber)          # the callbacks only, no node
    live.view, live.errors = view, 0
    for i in range(10):                                    # 10 Hz for 1 s
        img = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(range(18)))
        img.header.stamp.sec, img.header.stamp.nanosec = 100, i * 100_000_000
        live._on_raw("/cameras/main/image_raw", "sensor_msgs/msg/Image", serialize_message(img))
    assert (view.logged, view.skipped) == (2, 8)
