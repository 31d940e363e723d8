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


@pytest.mark.timeout(150)
def test_outputs_carry_frame_stamps_and_dead_camera_is_masked(checkpoint):
    import rclpy
    from autonomy_interfaces.msg import LatencyReport, ObjectArray, RoadStructure
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import OccupancyGrid, Odometry
    from sensor_msgs.msg import Image

    from autonomy_stack.ros.qos import OUTPUTS, SENSOR_IMAGES, STATE
    from autonomy_stack.ros.ros_conversions import numpy_to_image, sec_to_stamp, stamp_to_sec
    path, hw = checkpoint
    proc = start_node("perception_node", name="perception", params_files=["perception.yaml"],
                      params={"checkpoint": str(path), "dead_camera_timeout_s": 0.6,
                              "diagnostics_period_s": 0.2, "score_threshold": 0.3})
    rclpy.init()
    node = rclpy.create_node("perception_test_driver")
    try:
        pubs = {c: node.create_publisher(Image, f"/cameras/{c}/image_rect", SENSOR_IMAGES) for c in CAMS}
        odom_pub = node.create_publisher(Odometry, "/odom", STATE)
        got = {"objects": [], "road": [], "bev": [], "latency": [], "diag": []}
        node.create_subscription(ObjectArray, "/perception/objects", lambda m: got["objects"].append(m), OUTPUTS)
        node.create_subscription(RoadStructure, "/perception/road", lambda m: got["road"].append(m), OUTPUTS)
        node.create_subscription(OccupancyGrid, "/perception/bev/drivable", lambda m: got["bev"].append(m), OUTPUTS)
        node.create_subscription(LatencyReport, "/perception/latency", lambda m: got["latency"].append(m), OUTPUTS)
        node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: got["diag"].append(m), 10)
        assert spin_until(node, lambda: all(p.get_subscription_count() > 0 for p in pubs.values())
                          and node.count_publishers("/perception/objects") > 0, timeout=60), stop(proc)
        msgs = {c: numpy_to_image(img, "bgr8", frame_id=f"virtual_camera_{c}")
                for c, img in zip(CAMS, _images(hw, 0))}
        sent = []

        def send_frame(t, cams):
            for c in cams:
                msgs[c].header.stamp = sec_to_stamp(t + 0.001 * CAMS.index(c) / 4)  # < 5 ms spread
                pubs[c].publish(msgs[c])
            o = Odometry()
            o.header.stamp = sec_to_stamp(t)
            o.twist.twist.linear.x = 5.0
            odom_pub.publish(o)
            sent.append(t)

        t0 = 1000.0
        k = 0
        deadline = time.monotonic() + 60
        while len(got["objects"]) < 3 and time.monotonic() < deadline:
            send_frame(t0 + k * 0.1, CAMS)
            k += 1
            spin_until(node, lambda: False, 0.1)
        assert len(got["objects"]) >= 3, stop(proc)
        # stamp of a frame = its newest image's stamp (the last camera's)
        sent_stamps = np.array([stamp_to_sec(sec_to_stamp(t + 0.001 * 7 / 4)) for t in sent])
        for m in got["objects"]:
            assert np.min(np.abs(sent_stamps - stamp_to_sec(m.header.stamp))) < 1e-6
        assert spin_until(node, lambda: got["road"] and got["bev"] and got["latency"], 10)
        assert got["bev"][0].info.width > 0 and len(got["bev"][0].data) == got["bev"][0].info.width * got["bev"][0].info.height
        stages = {s.stage for s in got["latency"][-1].stages}
        assert {"receive", "sync", "convert", "upload", "network", "postprocess", "publish"} <= stages

        # the rear camera dies: outputs continue, diagnostics name it
        n_before = len(got["objects"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            send_frame(t0 + k * 0.1, CAMS[:-1])
            k += 1
            spin_until(node, lambda: False, 0.1)
            dead = [kv.value for d in got["diag"][-3:] for s in d.status if s.name == "perception: pipeline"
                    for kv in s.values if kv.key == "dead_cameras"]
            if len(got["objects"]) >= n_before + 3 and any("rear" in v for v in dead):
                break
        assert len(got["objects"]) >= n_before + 3, "outputs stopped when a camera died"
        assert any("rear" in v for v in dead), "diagnostics do not name the dead camera"

        # wrong encoding on one camera: dropped and counted, the node keeps running
        bad = numpy_to_image(np.zeros((hw[0], hw[1]), np.uint16), "mono16")
        bad.header.stamp = sec_to_stamp(t0 + k * 0.1)
        pubs["main"].publish(bad)
        deadline = time.monotonic() + 15
        dropped = "0"
        while time.monotonic() < deadline and dropped == "0":
            spin_until(node, lambda: False, 0.2)
            vals = [kv.value for d in got["diag"][-2:] for s in d.status if s.name == "perception: camera main"
                    for kv in s.values if kv.key == "dropped"]
            dropped = vals[-1] if vals else "0"
        assert dropped != "0"
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
