"""Perception node end-to-end latency vs the bare network forward, measured in one run.

CPU (default): the node (own process, default config/perception.yaml, committed checkpoint)
receives 8 rectified images per frame at the network's input size over DDS; latency =
arrival of /perception/objects at the driver - the frame's header stamp (wall clock, same
machine). In the same run the driver times the bare network forward (InferenceEngine.run
on the same checkpoint) -> overhead_ratio = node p50 / forward p50.
CUDA (--device cuda): 8 raw 1280x960 bgr8 images + CameraInfo + /tf_static; the node
rectifies on the GPU (input: raw) -> latency including rectification.

    bench/run perception_node [--device cpu|cuda] [--frames 60] [--rate 5]
Last line: JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
CAMS = ["main", "narrow", "fisheye", "left_pillar", "right_pillar", "left_repeater",
        "right_repeater", "rear"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rate", type=float, default=5.0, help="frames/s sent (below the node's capacity)")
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "perception_tiny.pt"))
    return ap.parse_args(argv)


def camera_inputs(node, raw: bool, hw, rng):
    """(images per camera, CameraInfo publishers, CameraInfo per camera). Raw (CUDA): full
    size images of the rig, their CameraInfo and /tf_static; else rectified images at the
    network's input size (no CameraInfo)."""
    from sensor_msgs.msg import CameraInfo
    from tf2_msgs.msg import TFMessage

    from autonomy_stack.ros.qos import LATCHED, STATE
    from autonomy_stack.ros.ros_conversions import numpy_to_image

    if not raw:
        msgs = {c: numpy_to_image(rng.integers(0, 255, (hw[0], hw[1], 3), dtype=np.uint8), "bgr8") for c in CAMS}
        return msgs, {}, {}
    from autonomy_vehicle.camera_models import load_rig
    from autonomy_vehicle.nodes.vehicle_description_node import rig_transforms
    rig = load_rig()
    info_pubs = {c: node.create_publisher(CameraInfo, f"/cameras/{c}/camera_info", STATE) for c in CAMS}
    tf_pub = node.create_publisher(TFMessage, "/tf_static", LATCHED)
    tf_pub.publish(TFMessage(transforms=rig_transforms(rig, "base_link", "camera_", node.get_clock().now().to_msg())))
    infos = {}
    for c in CAMS:
        cal = rig[c]
        ci = CameraInfo(width=cal.width, height=cal.height, distortion_model=cal.distortion_model)
        ci.k = np.asarray(cal.K, dtype=float).reshape(9)
        ci.d = list(np.asarray(cal.D, dtype=float))
        infos[c] = ci
    msgs = {c: numpy_to_image(rng.integers(0, 255, (rig[c].height, rig[c].width, 3), dtype=np.uint8), "bgr8")
            for c in CAMS}
    return msgs, info_pubs, infos


def wait_for_node(node, pubs, proc):
    """Spin until the node subscribes to every camera and publishes objects (90 s)."""
    import rclpy
    from ros_helpers import stop

    t0 = time.monotonic()
    while any(p.get_subscription_count() == 0 for p in pubs.values()) or \
            node.count_publishers("/perception/objects") == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() - t0 > 90:
            raise SystemExit("perception node did not come up: " + stop(proc)[-2000:])


def bare_engine(ckpt: Path, device: str):
    """The same network in this process, on the node's torch thread count: (engine, threads)."""
    import torch
    import yaml

    from autonomy_perception.inference_engine import InferenceEngine
    threads = yaml.safe_load((ROOT / "config" / "perception.yaml").read_text())["/**"]["ros__parameters"]["torch_threads"]
    if threads > 0:
        torch.set_num_threads(threads)      # the node's setting: same work, same threads
    eng = InferenceEngine.from_checkpoint(ckpt, device=device,
                                          precision="fp32" if device == "cpu" else "fp16")
    return eng, threads


def drive(args, node, pubs, msgs, info_pubs, infos, recv, eng, bare_imgs):
    """Frames and bare forwards alternate (frame -> its output -> one bare forward of the
    same network in this process), so both see the same machine load. Returns (stamps
    sent, bare forward ms), the first 5 frames left out (warm-up of node and engine)."""
    import rclpy
    from autonomy_stack.ros.ros_conversions import sec_to_stamp, stamp_to_sec

    sent, fwd = [], []
    for k in range(args.frames + 5):
        t_next = time.monotonic() + 1.0 / args.rate
        now = time.time()
        st = sec_to_stamp(now)
        key = round(stamp_to_sec(st), 6)
        for c in CAMS:
            if infos:
                infos[c].header.stamp = st
                info_pubs[c].publish(infos[c])
            msgs[c].header.stamp = st
            pubs[c].publish(msgs[c])
        deadline = time.monotonic() + 10
        while key not in recv and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.005)
        tb = time.perf_counter()
        for i, img in enumerate(bare_imgs):
            eng.fill_camera(i, img)
        eng.run([True] * len(CAMS), (5.0, 0.0, 0.0), 1.0 + 0.2 * k)
        if k >= 5:              # the first frames warm up node and engine
            sent.append(key)
            fwd.append((time.perf_counter() - tb) * 1e3)
        while time.monotonic() < t_next:
            rclpy.spin_once(node, timeout_sec=max(0.0, t_next - time.monotonic()))
    return sent, fwd


def main():
    args = parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    ckpt = Path(args.checkpoint)
    if not ckpt.exists():
        raise SystemExit(f"checkpoint {ckpt} not found (train it: see models/README.md)")

    import rclpy
    from autonomy_interfaces.msg import LatencyReport, ObjectArray
    from sensor_msgs.msg import Image

    from autonomy_stack.ros.qos import OUTPUTS, SENSOR_IMAGES
    from autonomy_stack.ros.ros_conversions import stamp_to_sec
    from ros_helpers import start_node, stop

    raw = args.device == "cuda"
    params = {"checkpoint": str(ckpt), "device": args.device, "input": "raw" if raw else "rect"}
    if raw:
        params["precision"] = "fp16"
    proc = start_node("perception_node", name="perception", params_files=["perception.yaml"], params=params)
    rclpy.init()
    node = rclpy.create_node("perception_bench_driver")
    lat, stages, threads = [], [], 0
    try:
        from autonomy_perception.inference_engine import InferenceEngine
        hw = InferenceEngine.from_checkpoint(ckpt).input_hw
        topic = "image_raw" if raw else "image_rect"
        pubs = {c: node.create_publisher(Image, f"/cameras/{c}/{topic}", SENSOR_IMAGES) for c in CAMS}
        recv = {}
        node.create_subscription(ObjectArray, "/perception/objects",
                                 lambda m: recv.setdefault(round(stamp_to_sec(m.header.stamp), 6), time.time()), OUTPUTS)
        node.create_subscription(LatencyReport, "/perception/latency",
                                 lambda m: stages.append({s.stage: s.duration_ms for s in m.stages}), OUTPUTS)
        rng = np.random.default_rng(1)
        msgs, info_pubs, infos = camera_inputs(node, raw, hw, rng)
        wait_for_node(node, pubs, proc)
        time.sleep(1.0)
        eng, threads = bare_engine(ckpt, args.device)
        bare_imgs = [rng.integers(0, 255, (hw[0], hw[1], 3), dtype=np.uint8) for _ in CAMS]
        sent, fwd = drive(args, node, pubs, msgs, info_pubs, infos, recv, eng, bare_imgs)
        lat = [(recv[s] - s) * 1e3 for s in sent if s in recv]
    finally:
        node.destroy_node()
        rclpy.shutdown()
        out = stop(proc)
    if not lat:
        raise SystemExit("no outputs received; node output:\n" + out[-3000:])
    st_p50 = {k: round(float(np.median([s[k] for s in stages if k in s])), 2) for k in (stages[-1] if stages else {})}
    res = {
        "device": args.device,
        "gpu": __import__("torch").cuda.get_device_name(0) if args.device == "cuda" else None,
        "input": "8 x raw 1280x960 bgr8 (+GPU rectification)" if raw else f"8 x rectified {hw[1]}x{hw[0]} bgr8",
        "input_hw": list(hw),
        "frames_sent": len(sent),
        "frames_out": len(lat),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2),
        "model_forward_ms_p50": round(float(np.percentile(fwd, 50)), 2),
        "torch_threads": threads,
        "overhead_ratio": round(float(np.percentile(lat, 50) / np.percentile(fwd, 50)), 3),
        "stage_ms_p50": st_p50,
    }
    print(json.dumps(res))

if __name__ == "__main__":
    main()
