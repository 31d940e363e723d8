"""Perception node over DDS: 8 camera streams in, typed outputs out with the frames' stamps;
a dead camera is masked (outputs continue, diagnostics name it); bad input is counted;
missing/incompatible checkpoints fail start-up clearly; CPU vs CUDA (skipped without GPU)."""
import subprocess
import time

import numpy as np
import pytest
import torch

from ros_helpers import node_command, spin_until, start_node, stop

CAMS = ["main", "narrow", "fisheye", "left_pillar", "right_pillar", "left_repeater",
        "right_repeater", "rear"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A randomly initialised network of the default tiny configuration (the node's
    plumbing is under test here, not the weights)."""
    from autonomy_perception.network.config import model_config
    from autonomy_perception.network.model import PerceptionNet
    torch.manual_seed(0)
    net = PerceptionNet(model_config({}))
    path = tmp_path_factory.mktemp("ckpt") / "random_tiny.pt"
    net.save(path)
    return path, tuple(net.cfg["input_hw"])


def _images(hw, k):
    rng = np.random.default_rng(k)
    return [rng.integers(0, 255, (hw[0], hw[1], 3), dtype=np.uint8) for _ in CAMS]


class _Driver:
    """The test's side of the perception node: camera/odometry publishers and subscriptions
    to every output, frames sent at 10 Hz sim time from t0."""
    T0 = 1000.0

    def __init__(self, node, hw):
        import rclpy  # noqa: F401  (initialised by the test)
        from autonomy_interfaces.msg import LatencyReport, ObjectArray, RoadStructure
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import OccupancyGrid, Odometry
        from sensor_msgs.msg import Image

        from autonomy_stack.ros.qos import OUTPUTS, SENSOR_IMAGES, STATE
        from autonomy_stack.ros.ros_conversions import numpy_to_image
        self.node, self.hw, self.k, self.sent = node, hw, 0, []
        self.pubs = {c: node.create_publisher(Image, f"/cameras/{c}/image_rect", SENSOR_IMAGES)
                     for c in CAMS}
        self.odom_pub = node.create_publisher(Odometry, "/odom", STATE)
        self.got = got = {"objects": [], "road": [], "bev": [], "latency": [], "diag": []}
        for key, typ, topic, qos in (("objects", ObjectArray, "/perception/objects", OUTPUTS),
                                     ("road", RoadStructure, "/perception/road", OUTPUTS),
                                     ("bev", OccupancyGrid, "/perception/bev/drivable", OUTPUTS),
                                     ("latency", LatencyReport, "/perception/latency", OUTPUTS),
                                     ("diag", DiagnosticArray, "/diagnostics", 10)):
            node.create_subscription(typ, topic, lambda m, key=key: got[key].append(m), qos)
        self.msgs = {c: numpy_to_image(img, "bgr8", frame_id=f"virtual_camera_{c}")
                     for c, img in zip(CAMS, _images(hw, 0))}

    def ready(self) -> bool:
        return (all(p.get_subscription_count() > 0 for p in self.pubs.values())
                and self.node.count_publishers("/perception/objects") > 0)

    def send_frame(self, cams=CAMS):
        from nav_msgs.msg import Odometry

        from autonomy_stack.ros.ros_conversions import sec_to_stamp
        t = self.T0 + self.k * 0.1
        self.k += 1
        for c in cams:
            self.msgs[c].header.stamp = sec_to_stamp(t + 0.001 * CAMS.index(c) / 4)  # < 5 ms spread
            self.pubs[c].publish(self.msgs[c])
        o = Odometry()
        o.header.stamp = sec_to_stamp(t)
        o.twist.twist.linear.x = 5.0
        self.odom_pub.publish(o)
        self.sent.append(t)
        spin_until(self.node, lambda: False, 0.1)

    def diag_values(self, status: str, key: str, last: int):
        return [kv.value for d in self.got["diag"][-last:] for s in d.status if s.name == status
                for kv in s.values if kv.key == key]


def _outputs_carry_frame_stamps(drv: _Driver, proc):
    from autonomy_stack.ros.ros_conversions import sec_to_stamp, stamp_to_sec
    got = drv.got
    deadline = time.monotonic() + 60
    while len(got["objects"]) < 3 and time.monotonic() < deadline:
        drv.send_frame()
    assert len(got["objects"]) >= 3, stop(proc)
    # stamp of a frame = its newest image's stamp (the last camera's)
    sent_stamps = np.array([stamp_to_sec(sec_to_stamp(t + 0.001 * 7 / 4)) for t in drv.sent])
    for m in got["objects"]:
        assert np.min(np.abs(sent_stamps - stamp_to_sec(m.header.stamp))) < 1e-6
    assert spin_until(drv.node, lambda: got["road"] and got["bev"] and got["latency"], 10)
    assert got["bev"][0].info.width > 0 and len(got["bev"][0].data) == got["bev"][0].info.width * got["bev"][0].info.height
    stages = {s.stage for s in got["latency"][-1].stages}
    assert {"receive", "sync", "convert", "upload", "network", "postprocess", "publish"} <= stages


def _resent_frame_is_answered(drv: _Driver):
    """A lockstep simulator re-sends an unanswered frame with its stamps: the node publishes
    that frame's objects and road again instead of dropping the images as late."""
    from autonomy_stack.ros.ros_conversions import sec_to_stamp, stamp_to_sec
    got = drv.got
    # wait until the last sent frame is the last processed one (nothing newer in flight)
    last = drv.sent[-1] + 0.001 * 7 / 4
    assert spin_until(drv.node, lambda: got["objects"] and abs(
        stamp_to_sec(got["objects"][-1].header.stamp) - last) < 1e-6, 30)
    n = len(got["objects"])
    t = drv.sent[-1]
    for c in CAMS:
        drv.msgs[c].header.stamp = sec_to_stamp(t + 0.001 * CAMS.index(c) / 4)
        drv.pubs[c].publish(drv.msgs[c])
    assert spin_until(drv.node, lambda: len(got["objects"]) > n, 15), "re-sent frame not answered"
    assert abs(stamp_to_sec(got["objects"][-1].header.stamp) - last) < 1e-6
    assert stamp_to_sec(got["road"][-1].header.stamp) == stamp_to_sec(got["objects"][-1].header.stamp)
    # answered once per re-send (on the first camera), not once per camera
    spin_until(drv.node, lambda: False, 0.5)
    assert len(got["objects"]) == n + 1


def _dead_camera_is_masked(drv: _Driver):
    """The rear camera dies: outputs continue, diagnostics name it."""
    n_before = len(drv.got["objects"])
    deadline = time.monotonic() + 30
    dead = []
    while time.monotonic() < deadline:
        drv.send_frame(CAMS[:-1])
        dead = drv.diag_values("perception: pipeline", "dead_cameras", 3)
        if len(drv.got["objects"]) >= n_before + 3 and any("rear" in v for v in dead):
            break
    assert len(drv.got["objects"]) >= n_before + 3, "outputs stopped when a camera died"
    assert any("rear" in v for v in dead), "diagnostics do not name the dead camera"


def _bad_encoding_is_dropped_and_counted(drv: _Driver):
    """Wrong encoding on one camera: dropped and counted, the node keeps running."""
    from autonomy_stack.ros.ros_conversions import numpy_to_image, sec_to_stamp
    bad = numpy_to_image(np.zeros((drv.hw[0], drv.hw[1]), np.uint16), "mono16")
    bad.header.stamp = sec_to_stamp(drv.T0 + drv.k * 0.1)
    drv.pubs["main"].publish(bad)
    deadline = time.monotonic() + 15
    dropped = "0"
    while time.monotonic() < deadline and dropped == "0":
        spin_until(drv.node, lambda: False, 0.2)
        vals = drv.diag_values("perception: camera main", "dropped", 2)
        dropped = vals[-1] if vals else "0"
    assert dropped != "0"


@pytest.mark.timeout(150)
def test_outputs_carry_frame_stamps_and_dead_camera_is_masked(checkpoint):
    import rclpy
    path, hw = checkpoint
    proc = start_node("perception_node", name="perception", params_files=["perception.yaml"],
                      params={"checkpoint": str(path), "dead_camera_timeout_s": 0.6,
                              "diagnostics_period_s": 0.2, "score_threshold": 0.3})
    rclpy.init()
    node = rclpy.create_node("perception_test_driver")
    try:
        drv = _Driver(node, hw)
        assert spin_until(node, drv.ready, timeout=60), stop(proc)
        _outputs_carry_frame_stamps(drv, proc)
        _resent_frame_is_answered(drv)
        _dead_camera_is_masked(drv)
        _bad_encoding_is_dropped_and_counted(drv)
        assert proc.poll() is None
    finally:
        node.destroy_node()
        rclpy.shutdown()
        out = stop(proc)
    assert "Traceback" not in out, out


@pytest.mark.timeout(90)
def test_missing_checkpoint_fails_startup(tmp_path):
    cmd = node_command("perception_node", name="perception", params_files=["perception.yaml"],
                       params={"checkpoint": str(tmp_path / "nope.pt")})
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=80)
    assert res.returncode == 2, res.stderr
    assert "checkpoint" in res.stderr and "not found" in res.stderr


@pytest.mark.timeout(90)
def test_incompatible_checkpoint_fails_startup(tmp_path):
    bad = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, bad)
    cmd = node_command("perception_node", name="perception", params_files=["perception.yaml"],
                       params={"checkpoint": str(bad)})
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=80)
    assert res.returncode == 2 and "not a" in res.stderr, res.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine; the "
                    "CPU/CUDA agreement test runs where a GPU is present")
def test_cpu_and_cuda_paths_agree(checkpoint):
    from autonomy_perception.inference_engine import InferenceEngine
    path, hw = checkpoint
    outs = {}
    for dev in ("cpu", "cuda"):
        eng = InferenceEngine.from_checkpoint(path, dev, "fp32")
        for k in range(3):
            for i, img in enumerate(_images(hw, k)):
                eng.fill_camera(i, img)
            res = eng.run([True] * 8, (5.0, 0.0, 0.0), 1.0 + 0.1 * k)
        outs[dev] = res.outputs
    for key in outs["cpu"]:
        np.testing.assert_allclose(outs["cpu"][key], outs["cuda"][key], atol=2e-3, rtol=1e-2)
